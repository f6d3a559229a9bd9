// The paper's SVD analysis of one stacked K (or V) matrix, on plain float64 arrays: spectrum,
// energy captured by the top r components, ranks for 90/95/99% energy, cross-user correlation of
// the principal and residual parts, how much of each component is explained by user identity,
// and a userDim suggestion. Independent of tfjs so it can be tested on planted matrices.
import { seededRandom } from '../data/random';
import { Matrix, project, thinSvd } from './linalg';

export const USER_DIM_OPTIONS: readonly number[] = [1, 2, 4, 8];

export interface SpectrumOptions {
  /**
   * Subtract the mean K/V vector before the SVD. Default false: the paper's plain SVD of the
   * stacked matrix, where a common offset counts as shared energy (a pool row can carry it).
   * `meanEnergyShare` says how much of the energy that offset is, either way.
   */
  center?: boolean;
  /** Energy fraction that defines the principal part (top r components). Default 0.9 (the paper's). */
  principalEnergy?: number;
  /** Random token pairs from different users for the correlation distributions. Default 2000. */
  numPairs?: number;
  /** Seed of the pair sampling. Default 1. */
  seed?: number;
  /** A component is user-specific when user identity explains at least this share of it. Default 0.5. */
  userShareThreshold?: number;
  /** ...and it holds at least this fraction of the energy (ignores noise directions). Default 0.005. */
  minComponentEnergy?: number;
}

export interface Quantiles {
  q05: number;
  q25: number;
  q50: number;
  q75: number;
  q95: number;
}

export interface CorrelationSummary {
  /** Pairs measured (pairs where a part is constant are skipped). */
  count: number;
  mean: number;
  meanAbs: number;
  min: number;
  max: number;
  quantiles: Quantiles;
  /** Counts in 20 equal bins over [-1, 1] (the figure's histogram). */
  histogram: number[];
}

export interface SpectrumAnalysis {
  tokens: number;
  users: number;
  width: number;
  centered: boolean;
  /** N ||mean||^2 / ||X||_F^2 of the raw matrix: the share of the energy that is a common offset. */
  meanEnergyShare: number;
  /** Descending singular values of the (centered or raw) stacked matrix. */
  singularValues: number[];
  /** energy[r-1] = fraction of sum sigma^2 in the top r components, r = 1..width. */
  cumulativeEnergy: number[];
  /** Smallest r whose top-r components hold 90 / 95 / 99% of the energy. */
  rank90: number;
  rank95: number;
  rank99: number;
  /** r of the principal part (rank for `principalEnergy`) and the energy it holds. */
  principalRank: number;
  principalEnergy: number;
  residualEnergy: number;
  /**
   * Pearson correlation (over the width's coordinates) between the parts of two tokens of
   * different users: the principal part (projection on the top principalRank components) and the
   * residual (the rest). The paper: principal parts correlate widely across users, residuals
   * cluster around 0.
   */
  crossUser: { principal: CorrelationSummary; residual: CorrelationSummary };
  /**
   * Per component: the share of its variance explained by which user a token belongs to
   * (between-user / total sum of squares, corrected for the share expected by chance, in [0, 1]).
   */
  componentUserShare: number[];
  /** Components (0-based, in spectrum order) counted as user-specific. */
  userComponents: number[];
  /** Energy fraction of the user-specific components. */
  userSpecificEnergy: number;
  suggestedUserDim: number;
  reasoning: string;
}

/**
 * Analyzes rows of `x` (tokens x width), `users[i]` the user (any integer id) of row i.
 * Requires at least 2 rows and 2 distinct users (correlations are between users).
 */
export function analyzeSpectrum(x: Matrix, users: Int32Array, options: SpectrumOptions = {}): SpectrumAnalysis {
  const o = { center: false, principalEnergy: 0.9, numPairs: 2000, seed: 1, userShareThreshold: 0.5, minComponentEnergy: 0.005, ...options };
  checkInputs(x, users, o.principalEnergy);
  const meanEnergyShare = offsetShare(x);
  const data = o.center ? centered(x) : x;
  const svd = thinSvd(data);
  const lambdas = Array.from(svd.singularValues, (s) => s * s);
  const cumulativeEnergy = cumulative(lambdas);
  const rankFor = (f: number) => firstReaching(cumulativeEnergy, f);
  const principalRank = rankFor(o.principalEnergy);
  const principalEnergy = cumulativeEnergy[principalRank - 1];
  const coords = project(data, svd.v, x.cols);
  const componentUserShare = userShares(coords, users);
  const total = lambdas.reduce((a, b) => a + b, 0);
  const energyOf = (c: number) => (total > 0 ? lambdas[c] / total : 0);
  const userComponents = componentUserShare.map((s, c) => c)
    .filter((c) => componentUserShare[c] >= o.userShareThreshold && energyOf(c) >= o.minComponentEnergy);
  const userSpecificEnergy = userComponents.reduce((s, c) => s + energyOf(c), 0);
  const crossUser = crossUserCorrelations(data, coords, svd.v, principalRank, users, o.numPairs, o.seed);
  const suggestedUserDim = suggestUserDim(userComponents.length);
  const base = {
    tokens: x.rows, users: new Set(users).size, width: x.cols, centered: o.center, meanEnergyShare,
    singularValues: Array.from(svd.singularValues), cumulativeEnergy,
    rank90: rankFor(0.9), rank95: rankFor(0.95), rank99: rankFor(0.99),
    principalRank, principalEnergy, residualEnergy: 1 - principalEnergy, crossUser,
    componentUserShare, userComponents, userSpecificEnergy, suggestedUserDim,
  };
  return { ...base, reasoning: explain(base, o.userShareThreshold) };
}

function checkInputs(x: Matrix, users: Int32Array, principalEnergy: number): void {
  if (x.rows < 2 || x.cols < 1) throw new Error(`analyzeSpectrum: x must have at least 2 rows and 1 column, received ${x.rows} x ${x.cols}`);
  if (users.length !== x.rows) throw new Error(`analyzeSpectrum: users must have one entry per row (${x.rows}), received ${users.length}`);
  if (new Set(users).size < 2) throw new Error('analyzeSpectrum: users must contain at least 2 distinct users, received 1');
  if (!(principalEnergy > 0 && principalEnergy < 1)) {
    throw new Error(`analyzeSpectrum: principalEnergy must be in (0, 1), received ${principalEnergy}`);
  }
}

/** Smallest of USER_DIM_OPTIONS that holds every user-specific component (at least 1, at most 8). */
export function suggestUserDim(userComponentCount: number): number {
  return USER_DIM_OPTIONS.find((du) => du >= userComponentCount) ?? USER_DIM_OPTIONS[USER_DIM_OPTIONS.length - 1];
}

function explain(a: Omit<SpectrumAnalysis, 'reasoning'>, threshold: number): string {
  const pct = (f: number) => `${(100 * f).toFixed(1)}%`;
  const corr = (c: CorrelationSummary) => `median ${c.quantiles.q50.toFixed(2)}, mean |r| ${c.meanAbs.toFixed(2)}`;
  const parts = [
    `top ${a.principalRank} of ${a.width} components hold ${pct(a.principalEnergy)} of the energy`
      + ` (90/95/99% at rank ${a.rank90}/${a.rank95}/${a.rank99}${a.centered ? ', centered' : `; the common offset is ${pct(a.meanEnergyShare)}`}).`,
    `Cross-user correlation: principal ${corr(a.crossUser.principal)}; residual ${corr(a.crossUser.residual)}.`,
    `${a.userComponents.length} component(s) are user-specific (user identity explains >= ${pct(threshold)} of their variance),`
      + ` holding ${pct(a.userSpecificEnergy)} of the energy`
      + (a.userComponents.length > 0 ? ` (components ${a.userComponents.map((c) => c + 1).join(', ')}).` : '.'),
  ];
  const n = a.userComponents.length;
  parts.push(n > USER_DIM_OPTIONS[USER_DIM_OPTIONS.length - 1]
    ? `userDim ${a.suggestedUserDim}: the largest option; ${n} user-specific directions suggest this layer shares poorly.`
    : `userDim ${a.suggestedUserDim}: the smallest of ${USER_DIM_OPTIONS.join(', ')} that can hold ${n === 0 ? 'the (minimal) user part' : `${n} user-specific direction(s)`}.`);
  return parts.join(' ');
}

// ---------------------------------------------------------------- pieces

function offsetShare(x: Matrix): number {
  const mean = columnMeans(x);
  let total = 0;
  for (let i = 0; i < x.data.length; i++) total += x.data[i] * x.data[i];
  const offset = x.rows * mean.reduce((s, m) => s + m * m, 0);
  return total > 0 ? offset / total : 0;
}

function columnMeans(x: Matrix): Float64Array {
  const mean = new Float64Array(x.cols);
  for (let r = 0; r < x.rows; r++) for (let c = 0; c < x.cols; c++) mean[c] += x.data[r * x.cols + c];
  return mean.map((m) => m / x.rows);
}

function centered(x: Matrix): Matrix {
  const mean = columnMeans(x);
  const data = new Float64Array(x.data.length);
  for (let r = 0; r < x.rows; r++) for (let c = 0; c < x.cols; c++) data[r * x.cols + c] = x.data[r * x.cols + c] - mean[c];
  return { rows: x.rows, cols: x.cols, data };
}

function cumulative(lambdas: number[]): number[] {
  const total = lambdas.reduce((a, b) => a + b, 0);
  let run = 0;
  // An all-zero matrix has no energy to split: report it fully captured by the first component.
  return lambdas.map((l) => (total > 0 ? (run += l) / total : 1));
}

/** 1-based smallest r with cumulative[r-1] >= f (a hair of slack absorbs float rounding). */
function firstReaching(cumulativeEnergy: number[], f: number): number {
  const i = cumulativeEnergy.findIndex((e) => e >= f - 1e-12);
  return i < 0 ? cumulativeEnergy.length : i + 1;
}

/**
 * Between-user share of each coordinate's variance: SS_between / SS_total, minus the share that
 * user groups of these sizes explain by chance ((U-1)/(N-1) in expectation), rescaled to [0, 1].
 */
function userShares(coords: Matrix, users: Int32Array): number[] {
  const groups = new Map<number, number[]>();
  users.forEach((u, i) => {
    const g = groups.get(u);
    if (g == null) groups.set(u, [i]); else g.push(i);
  });
  const n = coords.rows;
  const chance = n > 1 ? (groups.size - 1) / (n - 1) : 0;
  const out: number[] = [];
  for (let c = 0; c < coords.cols; c++) {
    const at = (i: number) => coords.data[i * coords.cols + c];
    let mean = 0;
    for (let i = 0; i < n; i++) mean += at(i);
    mean /= n;
    let total = 0;
    for (let i = 0; i < n; i++) total += (at(i) - mean) ** 2;
    let between = 0;
    for (const rows of groups.values()) {
      const gm = rows.reduce((s, i) => s + at(i), 0) / rows.length;
      between += rows.length * (gm - mean) ** 2;
    }
    const share = total > 1e-300 ? between / total : 0;
    out.push(chance < 1 ? Math.min(1, Math.max(0, (share - chance) / (1 - chance))) : 0);
  }
  return out;
}

function crossUserCorrelations(data: Matrix, coords: Matrix, v: Matrix, r: number, users: Int32Array, numPairs: number, seed: number):
  { principal: CorrelationSummary; residual: CorrelationSummary } {
  const rand = seededRandom(seed);
  const principal: number[] = [];
  const residual: number[] = [];
  const d = data.cols;
  // Tries are capped so a sample dominated by one user still terminates.
  for (let tries = 0; principal.length < numPairs && tries < numPairs * 20; tries++) {
    const i = Math.floor(rand() * data.rows);
    const j = Math.floor(rand() * data.rows);
    if (users[i] === users[j]) continue;
    const [pi, ri] = split(data, coords, v, r, i, d);
    const [pj, rj] = split(data, coords, v, r, j, d);
    const cp = pearson(pi, pj);
    const cr = pearson(ri, rj);
    if (cp != null && cr != null) {
      principal.push(cp);
      residual.push(cr);
    }
  }
  return { principal: summarize(principal), residual: summarize(residual) };
}

/** Row i split into its principal part (coords on the top r components, mapped back) and the residual. */
function split(data: Matrix, coords: Matrix, v: Matrix, r: number, i: number, d: number): [Float64Array, Float64Array] {
  const p = new Float64Array(d);
  for (let c = 0; c < r; c++) {
    const z = coords.data[i * coords.cols + c];
    for (let k = 0; k < d; k++) p[k] += z * v.data[k * v.cols + c];
  }
  const res = new Float64Array(d);
  for (let k = 0; k < d; k++) res[k] = data.data[i * d + k] - p[k];
  return [p, res];
}

/** Pearson correlation of two vectors' coordinates; null when either is constant (undefined). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number | null {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let k = 0; k < n; k++) { ma += a[k]; mb += b[k]; }
  ma /= n; mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let k = 0; k < n; k++) {
    const da = a[k] - ma;
    const db = b[k] - mb;
    sab += da * db; saa += da * da; sbb += db * db;
  }
  // Relative floor: parts that are zero up to rounding (e.g. an empty residual) carry no correlation.
  const scale = Math.max(1e-300, ...Array.from(a, Math.abs), ...Array.from(b, Math.abs)) ** 2 * n * 1e-20;
  if (saa <= scale || sbb <= scale) return null;
  return sab / Math.sqrt(saa * sbb);
}

export function summarize(values: readonly number[]): CorrelationSummary {
  const sorted = values.slice().sort((a, b) => a - b);
  const n = sorted.length;
  const q = (p: number) => quantile(sorted, p);
  const histogram = new Array<number>(20).fill(0);
  for (const x of sorted) histogram[Math.min(19, Math.max(0, Math.floor((x + 1) * 10)))]++;
  return {
    count: n,
    mean: n ? sorted.reduce((s, x) => s + x, 0) / n : NaN,
    meanAbs: n ? sorted.reduce((s, x) => s + Math.abs(x), 0) / n : NaN,
    min: n ? sorted[0] : NaN,
    max: n ? sorted[n - 1] : NaN,
    quantiles: { q05: q(0.05), q25: q(0.25), q50: q(0.5), q75: q(0.75), q95: q(0.95) },
    histogram,
  };
}

/** Linear-interpolated quantile of a sorted array (NaN when empty). */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const pos = p * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}
