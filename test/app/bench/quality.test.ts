// The share of a --max-minutes budget bench quality gives the mha baseline.
import { baselineTimeShare, pairedNdcg10 } from '../../../src/app/bench/quality';

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

describe('pairedNdcg10', () => {
  test('mean and standard error of the per-user NDCG@10 differences, from ranks', () => {
    // Users: rank 1 vs 3, 2 vs 2, 11 vs 1 -> differences 1 - 0.5, 0, 0 - 1.
    const r = pairedNdcg10(Int32Array.from([1, 2, 11]), Int32Array.from([3, 2, 1]));
    const d = [0.5, 0, -1];
    const mean = (0.5 + 0 - 1) / 3;
    const sd = Math.sqrt(d.reduce((t, x) => t + (x - mean) ** 2, 0) / 2);
    expect(r.mean).toBeCloseTo(mean, 12);
    expect(r.standardError).toBeCloseTo(sd / Math.sqrt(3), 12);
    expect(pairedNdcg10(Int32Array.from([1]), Int32Array.from([1, 2])).mean).toBeNaN();
  });
});
