// Seeded k-means (k-means++ init, Lloyd iterations, empty clusters re-seeded) in float64 on plain
// arrays: the pool initializer of swapAttention. Plain JS keeps it deterministic across backends.
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

/** k-means++ (Arthur & Vassilvitskii 2007): each next center drawn with probability ~ D(x)^2. */
function kmeansPlusPlus(x: Float64Array, n: number, dim: number, k: number, rand: () => number): Float64Array {
  const c = new Float64Array(k * dim);
  const copy = (j: number, i: number) => c.set(x.subarray(i * dim, (i + 1) * dim), j * dim);
  copy(0, Math.floor(rand() * n));
  const d = new Float64Array(n);
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
    for (let i = 0; i < n; i++) d[i] = Math.min(d[i], dist2(x, i, c, j, dim));
  }
  return c;
}

function assign(x: Float64Array, n: number, dim: number, c: Float64Array, k: number): { assignment: Int32Array; distances: Float64Array } {
  const assignment = new Int32Array(n);
  const distances = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestD = Infinity;
    for (let j = 0; j < k; j++) {
      const dj = dist2(x, i, c, j, dim);
      if (dj < bestD) { bestD = dj; best = j; }
    }
    assignment[i] = best;
    distances[i] = bestD;
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
