// CTR metrics on plain arrays: AUC, gAUC and logloss, the paper's quality measures. Inputs are
// validated up front, because a NaN score or a label of 2 would otherwise yield a plausible number.

export type Scores = ArrayLike<number>;
/** 0/1 labels (any numeric array; every entry must be exactly 0 or 1). */
export type Labels = ArrayLike<number>;
export type UserIds = ArrayLike<number> | readonly string[];

export interface GaucResult {
  /** Sum over scored users of (samples * AUC) / sum of their samples; NaN when no user could be scored. */
  gauc: number;
  /** Users with both a positive and a negative sample. */
  usersScored: number;
  /** Users with a single class, whose AUC is undefined: skipped, and counted here. */
  usersSkipped: number;
}

export interface CtrMetrics extends GaucResult {
  auc: number;
  logloss: number;
}

/** Default probability clip of `logloss`: keeps log(0) finite for a confidently wrong 0 or 1. */
export const LOGLOSS_EPS = 1e-7;

/**
 * Exact ROC AUC: the probability that a random positive scores above a random negative, ties
 * counting one half. O(n log n): positives and negatives are sorted separately, then merged.
 * Throws when either class is absent (AUC is undefined there).
 */
export function auc(scores: Scores, labels: Labels): number {
  validate('auc', scores, labels);
  const { pos, neg } = splitByLabel(scores, labels, 0, scores.length, identity);
  if (pos.length === 0 || neg.length === 0) {
    throw new Error(`auc: needs both classes, received ${pos.length} positives and ${neg.length} negatives`);
  }
  return sortedAuc(pos, neg);
}

/**
 * Group AUC: per-user AUC weighted by the user's number of samples. Users whose samples are all
 * one class have no AUC; they are skipped and counted, so a caller can see how much was scored.
 */
export function gauc(scores: Scores, labels: Labels, users: UserIds): GaucResult {
  validate('gauc', scores, labels);
  validateUsers('gauc', users, scores.length);
  const groups = groupIndices(users);
  let weighted = 0;
  let weight = 0;
  let usersScored = 0;
  let usersSkipped = 0;
  for (let g = 0; g + 1 < groups.start.length; g++) {
    const { pos, neg } = splitByLabel(scores, labels, groups.start[g], groups.start[g + 1], (k) => groups.order[k]);
    if (pos.length === 0 || neg.length === 0) {
      usersSkipped++;
      continue;
    }
    const n = pos.length + neg.length;
    weighted += n * sortedAuc(pos, neg);
    weight += n;
    usersScored++;
  }
  return { gauc: usersScored > 0 ? weighted / weight : NaN, usersScored, usersSkipped };
}

/**
 * Mean binary cross-entropy of probabilities, each clipped to [eps, 1 - eps] so a confident
 * mistake costs -log(eps) instead of Infinity. Scores must be probabilities in [0, 1].
 */
export function logloss(probabilities: Scores, labels: Labels, eps: number = LOGLOSS_EPS): number {
  validate('logloss', probabilities, labels);
  if (!(eps > 0 && eps < 0.5)) throw new Error(`logloss: eps must be in (0, 0.5), received ${eps}`);
  let sum = 0;
  for (let k = 0; k < probabilities.length; k++) {
    const p = probabilities[k];
    if (!(p >= 0 && p <= 1)) throw new Error(`logloss: probabilities[${k}] must be in [0, 1], received ${p}`);
    const q = Math.min(Math.max(p, eps), 1 - eps);
    sum -= labels[k] === 1 ? Math.log(q) : Math.log(1 - q);
  }
  return sum / probabilities.length;
}

/** AUC, gAUC and logloss in one call (the scores must be probabilities, for logloss). */
export function ctrMetrics(probabilities: Scores, labels: Labels, users: UserIds, eps: number = LOGLOSS_EPS): CtrMetrics {
  return { auc: auc(probabilities, labels), ...gauc(probabilities, labels, users), logloss: logloss(probabilities, labels, eps) };
}

/** A candidate's metric minus a baseline's on the same samples, with the standard error of that difference. */
export interface PairedDifference {
  difference: number;
  standardError: number;
}

/**
 * AUC(candidate) - AUC(baseline) on the same labelled samples, with DeLong's standard error of the
 * difference (DeLong, DeLong & Clarke-Pearson, 1988): each model's AUC is the mean of per-positive
 * and per-negative placement values, and the two models' placements are paired by sample, so a
 * shared hard sample does not count as noise twice. Ties count one half, as in `auc`.
 */
export function pairedAucDifference(baseline: Scores, candidate: Scores, labels: Labels): PairedDifference {
  validate('pairedAucDifference', baseline, labels);
  validate('pairedAucDifference', candidate, labels);
  const positives: number[] = [];
  const negatives: number[] = [];
  for (let k = 0; k < labels.length; k++) (labels[k] === 1 ? positives : negatives).push(k);
  if (positives.length < 2 || negatives.length < 2) {
    throw new Error(`pairedAucDifference: needs at least 2 samples of each class, received ${positives.length} positives and ${negatives.length} negatives`);
  }
  const a = placements(baseline, positives, negatives);
  const b = placements(candidate, positives, negatives);
  const variance = varianceOfDifference(a.positive, b.positive) / positives.length
    + varianceOfDifference(a.negative, b.negative) / negatives.length;
  return { difference: mean(b.positive) - mean(a.positive), standardError: Math.sqrt(Math.max(0, variance)) };
}

/**
 * gAUC(candidate) - gAUC(baseline), with the standard error of that difference over users: gAUC
 * is a sample-weighted mean of per-user AUCs, so the difference is the weighted mean of per-user
 * differences, and its error is that of a weighted mean over independent users. Users with a single
 * class are skipped (as in `gauc`).
 */
export function pairedGaucDifference(baseline: Scores, candidate: Scores, labels: Labels, users: UserIds): PairedDifference {
  validate('pairedGaucDifference', baseline, labels);
  validate('pairedGaucDifference', candidate, labels);
  validateUsers('pairedGaucDifference', users, labels.length);
  const groups = groupIndices(users);
  const weights: number[] = [];
  const differences: number[] = [];
  for (let g = 0; g + 1 < groups.start.length; g++) {
    const at = (k: number) => groups.order[k];
    const a = splitByLabel(baseline, labels, groups.start[g], groups.start[g + 1], at);
    if (a.pos.length === 0 || a.neg.length === 0) continue;
    const b = splitByLabel(candidate, labels, groups.start[g], groups.start[g + 1], at);
    weights.push(a.pos.length + a.neg.length);
    differences.push(sortedAuc(b.pos, b.neg) - sortedAuc(a.pos, a.neg));
  }
  if (weights.length < 2) throw new Error(`pairedGaucDifference: needs at least 2 users with both classes, received ${weights.length}`);
  const total = weights.reduce((x, w) => x + w, 0);
  const difference = differences.reduce((x, d, u) => x + weights[u] * d, 0) / total;
  const spread = differences.reduce((x, d, u) => x + (weights[u] * (d - difference)) ** 2, 0);
  // n / (n - 1): the usual small-sample correction of a mean's variance.
  const n = weights.length;
  return { difference, standardError: Math.sqrt((spread * n) / (n - 1)) / total };
}

/**
 * DeLong placement values: per positive, the share of negatives it outscores (ties one half); per
 * negative, the share of positives that outscore it.
 */
function placements(scores: Scores, positives: readonly number[], negatives: readonly number[]): { positive: Float64Array; negative: Float64Array } {
  const pos = Float64Array.from(positives, (k) => scores[k]).sort();
  const neg = Float64Array.from(negatives, (k) => scores[k]).sort();
  const positive = Float64Array.from(positives, (k) => {
    const s = scores[k];
    return (lowerBound(neg, s) + upperBound(neg, s)) / 2 / neg.length;
  });
  const negative = Float64Array.from(negatives, (k) => {
    const s = scores[k];
    return (2 * pos.length - lowerBound(pos, s) - upperBound(pos, s)) / 2 / pos.length;
  });
  return { positive, negative };
}

/** Sample variance of x - y (n - 1 in the denominator). */
function varianceOfDifference(x: Float64Array, y: Float64Array): number {
  const d = Float64Array.from(x, (v, i) => v - y[i]);
  const m = mean(d);
  return d.reduce((sum, v) => sum + (v - m) ** 2, 0) / (d.length - 1);
}

function mean(x: Float64Array): number {
  return x.reduce((sum, v) => sum + v, 0) / x.length;
}

/** First index whose value is >= s (sorted ascending). */
function lowerBound(sorted: Float64Array, s: number): number {
  let [lo, hi] = [0, sorted.length];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose value is > s (sorted ascending). */
function upperBound(sorted: Float64Array, s: number): number {
  let [lo, hi] = [0, sorted.length];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= s) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function identity(k: number): number {
  return k;
}

function validate(fn: string, scores: Scores, labels: Labels): void {
  if (scores == null || typeof scores.length !== 'number') throw new TypeError(`${fn}: scores must be an array of numbers, received ${String(scores)}`);
  if (labels == null || typeof labels.length !== 'number') throw new TypeError(`${fn}: labels must be an array of 0/1, received ${String(labels)}`);
  if (scores.length !== labels.length) throw new Error(`${fn}: scores has length ${scores.length} but labels has length ${labels.length}`);
  if (scores.length === 0) throw new Error(`${fn}: empty input (0 scores and labels)`);
  for (let k = 0; k < scores.length; k++) {
    const s = scores[k];
    if (typeof s !== 'number' || Number.isNaN(s)) throw new Error(`${fn}: scores[${k}] must be a number, received ${String(s)}`);
    const y = labels[k];
    if (y !== 0 && y !== 1) throw new Error(`${fn}: labels[${k}] must be 0 or 1, received ${String(y)}`);
  }
}

function validateUsers(fn: string, users: UserIds, n: number): void {
  if (users == null || typeof users.length !== 'number') throw new TypeError(`${fn}: users must be an array of user ids, received ${String(users)}`);
  if (users.length !== n) throw new Error(`${fn}: users has length ${users.length} but scores has length ${n}`);
  for (let k = 0; k < n; k++) {
    const u = users[k];
    if (typeof u === 'number' ? Number.isNaN(u) : typeof u !== 'string') throw new Error(`${fn}: users[${k}] must be a number or string id, received ${String(u)}`);
  }
}

/** Scores of the samples order[at(k)] for k in [from, to), split by label into sorted Float64Arrays. */
function splitByLabel(scores: Scores, labels: Labels, from: number, to: number, at: (k: number) => number) {
  let positives = 0;
  for (let k = from; k < to; k++) positives += labels[at(k)];
  const pos = new Float64Array(positives);
  const neg = new Float64Array(to - from - positives);
  let p = 0;
  let q = 0;
  for (let k = from; k < to; k++) {
    const i = at(k);
    if (labels[i] === 1) pos[p++] = scores[i];
    else neg[q++] = scores[i];
  }
  // Typed-array sort is numeric (not the string order of Array.prototype.sort).
  return { pos: pos.sort(), neg: neg.sort() };
}

/**
 * AUC of sorted positive and negative scores: for each run of equal positive scores, the negatives
 * strictly below count 1 and the equal ones 1/2. Counts stay exact integers up to 2^53 pairs.
 */
function sortedAuc(pos: Float64Array, neg: Float64Array): number {
  let below = 0;
  let equal = 0;
  let wins = 0;
  let ties = 0;
  for (let p = 0; p < pos.length;) {
    const s = pos[p];
    let run = 0;
    while (p < pos.length && pos[p] === s) { run++; p++; }
    while (below < neg.length && neg[below] < s) below++;
    equal = below;
    while (equal < neg.length && neg[equal] === s) equal++;
    wins += run * below;
    ties += run * (equal - below);
  }
  return (wins + ties / 2) / (pos.length * neg.length);
}

/** Sample indices grouped by user (CSR), groups in order of first appearance. */
function groupIndices(users: UserIds): { start: Int32Array; order: Int32Array } {
  const group = new Map<number | string, number>();
  const of = new Int32Array(users.length);
  const sizes: number[] = [];
  for (let k = 0; k < users.length; k++) {
    let g = group.get(users[k]);
    if (g === undefined) {
      g = sizes.length;
      group.set(users[k], g);
      sizes.push(0);
    }
    of[k] = g;
    sizes[g]++;
  }
  const start = new Int32Array(sizes.length + 1);
  sizes.forEach((n, g) => { start[g + 1] = start[g] + n; });
  const fill = start.slice(0, sizes.length);
  const order = new Int32Array(users.length);
  for (let k = 0; k < users.length; k++) order[fill[of[k]]++] = k;
  return { start, order };
}
