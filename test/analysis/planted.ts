// Planted K/V matrices with a known structure, for the analysis tests.
import { seededRandom } from '../../src/data/random';
import { Matrix } from '../../src/analysis/linalg';

export function normals(seed: number): () => number {
  const rand = seededRandom(seed);
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** `count` orthonormal columns of width d (row-major d x count), by Gram-Schmidt on normals. */
export function orthonormal(d: number, count: number, seed: number): Float64Array {
  const z = normals(seed);
  const cols: Float64Array[] = [];
  while (cols.length < count) {
    const v = Float64Array.from({ length: d }, z);
    for (const c of cols) {
      const dot = v.reduce((s, x, k) => s + x * c[k], 0);
      for (let k = 0; k < d; k++) v[k] -= dot * c[k];
    }
    const norm = Math.hypot(...v);
    cols.push(v.map((x) => x / norm));
  }
  const out = new Float64Array(d * count);
  cols.forEach((c, j) => c.forEach((x, k) => { out[k * count + j] = x; }));
  return out;
}

export interface PlantedOptions {
  width: number;
  users: number;
  tokensPerUser: number;
  /** Rank of the shared subspace; token vectors there come from `centers` shared rows. */
  sharedRank: number;
  centers: number;
  sharedScale: number;
  /** Rank of the user-specific subspace (orthogonal to the shared one); one vector per user. */
  userRank: number;
  userScale: number;
  /** Isotropic noise std on every coordinate. */
  noise: number;
  seed: number;
}

/** X = shared center of the token + user vector + noise; also returns the planted bases. */
export function planted(o: PlantedOptions): { x: Matrix; users: Int32Array; shared: Float64Array; user: Float64Array } {
  const basis = orthonormal(o.width, o.sharedRank + o.userRank, o.seed);
  const z = normals(o.seed + 1);
  const rand = seededRandom(o.seed + 2);
  const centers = Array.from({ length: o.centers }, () => Array.from({ length: o.sharedRank }, () => o.sharedScale * z()));
  const userVecs = Array.from({ length: o.users }, () => Array.from({ length: o.userRank }, () => o.userScale * z()));
  const n = o.users * o.tokensPerUser;
  const data = new Float64Array(n * o.width);
  const users = new Int32Array(n);
  const r = o.sharedRank + o.userRank;
  for (let u = 0, row = 0; u < o.users; u++) {
    for (let t = 0; t < o.tokensPerUser; t++, row++) {
      users[row] = u;
      const coef = [...centers[Math.floor(rand() * o.centers)], ...userVecs[u]];
      for (let k = 0; k < o.width; k++) {
        let s = o.noise * z();
        for (let j = 0; j < r; j++) s += basis[k * r + j] * coef[j];
        data[row * o.width + k] = s;
      }
    }
  }
  const pickCols = (from: number, count: number) => {
    const out = new Float64Array(o.width * count);
    for (let k = 0; k < o.width; k++) for (let j = 0; j < count; j++) out[k * count + j] = basis[k * r + from + j];
    return out;
  };
  return { x: { rows: n, cols: o.width, data }, users, shared: pickCols(0, o.sharedRank), user: pickCols(o.sharedRank, o.userRank) };
}

/** ||B^T v||^2 for a unit vector v (column c of a row-major d x d matrix) and a basis B (d x k): 1 = inside span(B). */
export function captured(basis: Float64Array, k: number, v: Matrix, c: number): number {
  let total = 0;
  for (let j = 0; j < k; j++) {
    let dot = 0;
    for (let i = 0; i < v.rows; i++) dot += basis[i * k + j] * v.data[i * v.cols + c];
    total += dot * dot;
  }
  return total;
}
