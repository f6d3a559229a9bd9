import { analyzeSpectrum, pearson, quantile, suggestUserDim } from '../../src/analysis/spectrum';
import { thinSvd } from '../../src/analysis/linalg';
import { captured, planted } from './planted';

// 5 shared directions (tokens pick one of 30 shared rows), 2 user directions (one vector per
// user), tiny noise: shared ~93% of the (centered) energy, user ~7%.
const base = { width: 16, users: 60, tokensPerUser: 40, sharedRank: 5, centers: 30, sharedScale: 2, userRank: 2, userScale: 0.8, noise: 0.02, seed: 3 };

describe('analyzeSpectrum on planted K/V', () => {
  const p = planted(base);
  const a = analyzeSpectrum(p.x, p.users, { center: true });

  test('recovers the planted rank: 99% energy at shared + user rank, nothing beyond', () => {
    expect(a.rank99).toBe(7);
    expect(a.cumulativeEnergy[6]).toBeGreaterThan(0.999);
    expect(a.principalRank).toBeLessThanOrEqual(5);
    expect(a.singularValues[7] / a.singularValues[0]).toBeLessThan(0.02);
  });

  test('recovers the shared / user split: the top 5 components span the shared subspace, the next 2 the user one', () => {
    const v = thinSvd({ ...p.x, data: centeredData(p.x.data, p.x.rows, p.x.cols) }).v;
    for (let c = 0; c < 5; c++) expect(captured(p.shared, 5, v, c)).toBeGreaterThan(0.99);
    for (let c = 5; c < 7; c++) expect(captured(p.user, 2, v, c)).toBeGreaterThan(0.99);
    expect(a.userComponents).toEqual([5, 6]);
    expect(a.userSpecificEnergy).toBeGreaterThan(0.04);
    expect(a.userSpecificEnergy).toBeLessThan(0.1);
    expect(a.suggestedUserDim).toBe(2);
    expect(a.reasoning).toMatch(/2 component\(s\) are user-specific/);
    // Shared components vary within every user: user identity explains almost none of them.
    for (let c = 0; c < 5; c++) expect(a.componentUserShare[c]).toBeLessThan(0.2);
  });

  test('a planted user rank of 3 and of 0 move the suggestion to 4 and 1', () => {
    const three = planted({ ...base, userRank: 3, seed: 4 });
    expect(analyzeSpectrum(three.x, three.users, { center: true }).suggestedUserDim).toBe(4);
    const none = planted({ ...base, userRank: 0, seed: 5 });
    const b = analyzeSpectrum(none.x, none.users, { center: true });
    expect(b.userComponents).toEqual([]);
    expect(b.suggestedUserDim).toBe(1);
  });

  test('cross-user correlation: shared rows recur across users (principal near 1 often), noise residual clusters at 0', () => {
    // 12 shared rows span the 5 shared directions; the principal part (98% energy) holds all of
    // them. Width 64 leaves a residual of 59 noise directions (Pearson |r| of random vectors ~ 0.1).
    const q = planted({ ...base, width: 64, userRank: 0, centers: 12, noise: 0.05, seed: 6 });
    const b = analyzeSpectrum(q.x, q.users, { center: true, numPairs: 1500, principalEnergy: 0.98 });
    expect(b.principalRank).toBe(5);
    expect(b.crossUser.principal.count).toBe(1500);
    expect(b.crossUser.principal.quantiles.q95).toBeGreaterThan(0.95);
    expect(Math.abs(b.crossUser.residual.quantiles.q50)).toBeLessThan(0.05);
    expect(b.crossUser.residual.meanAbs).toBeLessThan(0.15);
    expect(b.crossUser.principal.meanAbs).toBeGreaterThan(2 * b.crossUser.residual.meanAbs);
    expect(b.crossUser.principal.histogram.reduce((s, x) => s + x, 0)).toBe(1500);
  });

  test('uncentered: a common offset shows up as shared energy and in meanEnergyShare', () => {
    const shifted = { ...p.x, data: p.x.data.map((x, i) => x + (i % 16 === 0 ? 20 : 0)) };
    const raw = analyzeSpectrum(shifted, p.users);
    expect(raw.centered).toBe(false);
    expect(raw.meanEnergyShare).toBeGreaterThan(0.8);
    expect(raw.cumulativeEnergy[0]).toBeGreaterThan(0.8);
    expect(analyzeSpectrum(shifted, p.users, { center: true }).rank99).toBe(7);
  });

  test('argument errors name the argument', () => {
    expect(() => analyzeSpectrum(p.x, new Int32Array(3))).toThrow(/users must have one entry per row \(2400\), received 3/);
    expect(() => analyzeSpectrum(p.x, new Int32Array(p.x.rows))).toThrow(/at least 2 distinct users/);
    expect(() => analyzeSpectrum(p.x, p.users, { principalEnergy: 1 })).toThrow(/principalEnergy must be in \(0, 1\), received 1/);
  });
});

describe('helpers', () => {
  test('suggestUserDim picks the smallest option holding the count', () => {
    expect([0, 1, 2, 3, 4, 5, 8, 9].map(suggestUserDim)).toEqual([1, 1, 2, 4, 4, 8, 8, 8]);
  });
  test('pearson and quantile on known values', () => {
    expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(pearson([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNull();
    expect(quantile([0, 1, 2, 3, 4], 0.5)).toBe(2);
    expect(quantile([0, 10], 0.25)).toBe(2.5);
  });
});

function centeredData(data: Float64Array, rows: number, cols: number): Float64Array {
  const mean = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) mean[c] += data[r * cols + c] / rows;
  return data.map((x, i) => x - mean[i % cols]);
}
