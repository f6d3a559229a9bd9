// The share of a --max-minutes budget bench quality gives the mha baseline.
import { baselineTimeShare } from '../../../src/app/bench/quality';

describe('baselineTimeShare', () => {
  test('from scratch: the baseline takes its steps\' share of both runs, less the margin', () => {
    expect(baselineTimeShare(1, 1)).toBeCloseTo(0.425, 10);
    expect(baselineTimeShare(1, 3)).toBeCloseTo(0.85 / 4, 10);
  });

  test('by warm start the CollectiveKV run is mha steps for 1 - X of its budget and its own for X', () => {
    // 0.8 of the steps at the baseline's rate, 0.2 at nine times it: 0.8 + 1.8 = 2.6 baseline runs' worth.
    expect(baselineTimeShare(1, 9, 0.2)).toBeCloseTo(0.85 / (1 + 2.6), 10);
    // A warm start never leaves the baseline less than a from-scratch run would.
    expect(baselineTimeShare(1, 9, 0.2)).toBeGreaterThan(baselineTimeShare(1, 9));
    expect(baselineTimeShare(2, 2, 0.5)).toBeCloseTo(0.425, 10);
  });
});
