// The share of a --max-minutes budget bench quality gives the mha baseline.
import { baselineTimeShare } from '../../../src/app/bench/quality';

describe('baselineTimeShare', () => {
  test('from scratch: the baseline takes its steps\' share of both runs, less the margin', () => {
    expect(baselineTimeShare(1, 1)).toBeCloseTo(0.425, 10);
    expect(baselineTimeShare(1, 3)).toBeCloseTo(0.85 / 4, 10);
  });

  test('by the recipe the CollectiveKV run is the baseline\'s steps at its rate plus a share X at its own', () => {
    // The full phase costs a baseline run, the fine-tune 0.25 of the steps at nine times the rate: 1 + 2.25 baseline runs' worth.
    expect(baselineTimeShare(1, 9, 0.25)).toBeCloseTo(0.85 / (1 + 1 + 2.25), 10);
    expect(baselineTimeShare(2, 2, 0.5)).toBeCloseTo(0.85 * 2 / (2 + 3), 10);
  });
});
