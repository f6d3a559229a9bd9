// Seeded k-means (k-means++ init, Lloyd iterations, empty clusters re-seeded) in float64 on plain
// arrays: the pool initializer of swapAttention. The assignment step of big problems ranks the
// centroids with one float32 matmul on the current tfjs backend and settles near ties in float64,
// so the result is the float64 nearest centroid on every backend.
import * as tf from '@tensorflow/tfjs-core';
import { seededRandom } from '../data/random';

export interface KMeansOptions {
  /** Seed of the k-means++ draws. Default 1. */
  seed?: number;
  /** Lloyd iterations at most. Default 25. */
  maxIterations?: number;
}

export interface KMeansResult {
  /** k x dim, row-major. */
  centroids: Float64Array;
  /** Cluster of each point under the returned centroids (nearest centroid; ties to the lower index). */
  assignment: Int32Array;
  /** Points per cluster under `assignment`. */
  sizes: Int32Array;
  /** Sum of squared distances of the points to their centroids. */
  inertia: number;
  iterations: number;
  /** Times an empty cluster was re-seeded with the point farthest from its centroid. */
  reseeded: number;
}

/**
 * k-means of `n` points of width `dim` (row-major `points`). Needs n >= k. Empty clusters are
 * re-seeded with the point currently farthest from its centroid, so every cluster ends non-empty
 * whenever the points have at least k distinct values.
 */
export function kmeans(points: ArrayLike<number>, n: number, dim: number, k: number, options: KMeansOptions = {}): KMeansResult {
  checkArgs(points, n, dim, k);
  const rand = seededRandom(options.seed ?? 1);
  const maxIterations = options.maxIterations ?? 25;
  const x = Float64Array.from(points);
  const centroids = kmeansPlusPlus(x, n, dim, k, rand);
  let assignment: Int32Array = new Int32Array(n).fill(-1);
  let reseeded = 0;
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    const next = assign(x, n, dim, centroids, k);
    reseeded += reseedEmpty(x, n, dim, centroids, k, next);
    const changed = next.assignment.some((c, i) => c !== assignment[i]);
    assignment = next.assignment;
    updateCentroids(x, n, dim, centroids, k, assignment);
    if (!changed) break;
  }
  // The reported assignment is the nearest centroid under the final centroids (what a router must reproduce).
  const final = assign(x, n, dim, centroids, k);
  reseeded += reseedEmpty(x, n, dim, centroids, k, final);
  const sizes = new Int32Array(k);
  for (const c of final.assignment) sizes[c]++;
  return { centroids, assignment: final.assignment, sizes, inertia: final.distances.reduce((s, d) => s + d, 0), iterations, reseeded };
}

function checkArgs(points: ArrayLike<number>, n: number, dim: number, k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new Error(`kmeans: k must be a positive integer, received ${k}`);
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`kmeans: dim must be a positive integer, received ${dim}`);
  if (points.length !== n * dim) throw new Error(`kmeans: points must hold n*dim = ${n * dim} values, received ${points.length}`);
  if (n < k) throw new Error(`kmeans: needs at least k = ${k} points, received ${n}`);
}

function dist2(x: Float64Array, i: number, c: Float64Array, j: number, dim: number): number {
  let s = 0;
  for (let t = 0; t < dim; t++) {
    const d = x[i * dim + t] - c[j * dim + t];
    s += d * d;
  }
  return s;
}

/**
 * k-means++ (Arthur & Vassilvitskii 2007): each next center drawn with probability ~ D(x)^2.
 * Updating D(x) for a new center c_j skips the points it cannot be nearer to, by the triangle
 * inequality: ||x - c_j|| >= ||c_j - c_a|| - ||x - c_a|| with c_a x's nearest center so far, so
 * ||c_j - c_a||^2 >= 4 D(x)^2 rules c_j out (with a margin far above rounding, so D is exactly
 * what the full update gives). Late in the draw, when D is small, most points are skipped.
 */
function kmeansPlusPlus(x: Float64Array, n: number, dim: number, k: number, rand: () => number): Float64Array {
  const c = new Float64Array(k * dim);
  const copy = (j: number, i: number) => c.set(x.subarray(i * dim, (i + 1) * dim), j * dim);
  copy(0, Math.floor(rand() * n));
  const d = new Float64Array(n);
  const nearest = new Int32Array(n);
  const fromNewest = new Float64Array(k);
  for (let i = 0; i < n; i++) d[i] = dist2(x, i, c, 0, dim);
  for (let j = 1; j < k; j++) {
    const total = d.reduce((s, v) => s + v, 0);
    let pick = 0;
    if (total > 0) {
      let target = rand() * total;
      while (pick < n - 1 && (target -= d[pick]) > 0) pick++;
    } else {
      // Fewer distinct points than k: any point; reseeding cannot help either.
      pick = Math.floor(rand() * n);
    }
    copy(j, pick);
    for (let a = 0; a < j; a++) fromNewest[a] = dist2(c, j, c, a, dim);
    for (let i = 0; i < n; i++) {
      if (fromNewest[nearest[i]] >= 4 * d[i] * PRUNE_MARGIN) continue;
      const e = dist2(x, i, c, j, dim);
      if (e < d[i]) {
        d[i] = e;
        nearest[i] = j;
      }
    }
  }
  return c;
}

/** 1 + 1e-6: c_j is skipped only when it is farther than D(x) by far more than float64 rounding. */
const PRUNE_MARGIN = 1 + 1e-6;

function assign(x: Float64Array, n: number, dim: number, c: Float64Array, k: number): { assignment: Int32Array; distances: Float64Array } {
  if (n * k * dim < MATMUL_ASSIGN_MIN_WORK) return assignExact(x, n, dim, c, k);
  const assignment = new Int32Array(n);
  const distances = new Float64Array(n);
  const centroidNorms = new Float64Array(k);
  for (let j = 0; j < k; j++) centroidNorms[j] = squaredNorm(c, j, dim);
  const centroidsT = tf.tidy(() => tf.transpose(tf.tensor2d(Float32Array.from(c), [k, dim])));
  try {
    const chunk = Math.max(1, Math.floor(MATMUL_ASSIGN_CHUNK / k));
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      const dots = tf.tidy(() => tf.matMul(tf.tensor2d(Float32Array.from(x.subarray(start * dim, (start + rows) * dim)), [rows, dim]),
        centroidsT as tf.Tensor2D));
      const scores = dots.dataSync() as Float32Array;
      dots.dispose();
      for (let r = 0; r < rows; r++) settleRow(x, start + r, dim, c, k, scores.subarray(r * k, (r + 1) * k), centroidNorms, assignment, distances);
    }
  } finally {
    centroidsT.dispose();
  }
  return { assignment, distances };
}

/** Below this much work (points * k * dim) the plain float64 loops are as fast as a matmul round trip. */
const MATMUL_ASSIGN_MIN_WORK = 2e7;
/** Scores per matmul chunk (rows * k), ~32 MB of float32. */
const MATMUL_ASSIGN_CHUNK = 1 << 23;

function squaredNorm(a: Float64Array, i: number, dim: number): number {
  let s = 0;
  for (let t = 0; t < dim; t++) s += a[i * dim + t] * a[i * dim + t];
  return s;
}

/**
 * Point i's nearest centroid from its float32 dot products: ||x - c_j||^2 = ||x||^2 + ||c_j||^2 - 2 x.c_j.
 * When the float32 winner leads every other centroid by more than the float32 error can explain it
 * wins; otherwise (near ties) every centroid is compared in float64, exactly as assignExact does.
 */
function settleRow(x: Float64Array, i: number, dim: number, c: Float64Array, k: number, dots: Float32Array, centroidNorms: Float64Array,
  assignment: Int32Array, distances: Float64Array): void {
  let best = 0;
  let bestScore = Infinity;
  let second = Infinity;
  let largestNorm = 0;
  for (let j = 0; j < k; j++) {
    const score = centroidNorms[j] - 2 * dots[j];
    if (score < bestScore) { second = bestScore; bestScore = score; best = j; } else if (score < second) second = score;
    if (centroidNorms[j] > largestNorm) largestNorm = centroidNorms[j];
  }
  const pointNorm = squaredNorm(x, i, dim);
  // float32 dot products of dim terms err by at most ~dim * 2^-24 * |x| |c|; 1e-4 of the norms is far above that.
  if (second - bestScore <= 1e-4 * (pointNorm + largestNorm)) best = nearestExact(x, i, dim, c, k);
  assignment[i] = best;
  distances[i] = dist2(x, i, c, best, dim);
}

/** Point i's nearest centroid in float64 (ties to the lower index). */
function nearestExact(x: Float64Array, i: number, dim: number, c: Float64Array, k: number): number {
  let best = 0;
  let bestD = Infinity;
  for (let j = 0; j < k; j++) {
    const dj = dist2(x, i, c, j, dim);
    if (dj < bestD) { bestD = dj; best = j; }
  }
  return best;
}

/** Nearest centroid of every point in float64 (ties to the lower index). */
function assignExact(x: Float64Array, n: number, dim: number, c: Float64Array, k: number): { assignment: Int32Array; distances: Float64Array } {
  const assignment = new Int32Array(n);
  const distances = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    assignment[i] = nearestExact(x, i, dim, c, k);
    distances[i] = dist2(x, i, c, assignment[i], dim);
  }
  return { assignment, distances };
}

/** Moves the farthest points into empty clusters (as their new centroids); returns how many. */
function reseedEmpty(x: Float64Array, n: number, dim: number, c: Float64Array, k: number,
  a: { assignment: Int32Array; distances: Float64Array }): number {
  const sizes = new Int32Array(k);
  for (const j of a.assignment) sizes[j]++;
  let count = 0;
  for (let j = 0; j < k; j++) {
    if (sizes[j] > 0) continue;
    let far = -1;
    for (let i = 0; i < n; i++) if (sizes[a.assignment[i]] > 1 && (far < 0 || a.distances[i] > a.distances[far])) far = i;
    if (far < 0 || a.distances[far] === 0) break;
    sizes[a.assignment[far]]--;
    a.assignment[far] = j;
    a.distances[far] = 0;
    sizes[j] = 1;
    c.set(x.subarray(far * dim, (far + 1) * dim), j * dim);
    count++;
  }
  return count;
}

function updateCentroids(x: Float64Array, n: number, dim: number, c: Float64Array, k: number, assignment: Int32Array): void {
  const sums = new Float64Array(k * dim);
  const sizes = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    const j = assignment[i];
    sizes[j]++;
    for (let t = 0; t < dim; t++) sums[j * dim + t] += x[i * dim + t];
  }
  for (let j = 0; j < k; j++) {
    if (sizes[j] === 0) continue; // keeps its previous centroid
    for (let t = 0; t < dim; t++) c[j * dim + t] = sums[j * dim + t] / sizes[j];
  }
}
