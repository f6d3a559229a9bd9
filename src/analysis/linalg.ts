// Small dense linear algebra in float64 for the K/V analysis: the Gram matrix of a tall matrix and
// its eigen-decomposition by cyclic Jacobi rotations. K/V widths are small (d <= 256), so a d x d
// eigenproblem in plain JS is milliseconds to a second, exact to float64 rounding, and has no
// convergence failure modes (Jacobi always converges on a symmetric matrix).

/** A row-major matrix of `rows` x `cols` float64 values. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

export interface SymmetricEigen {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Eigenvectors as the columns of a row-major n x n matrix, in the order of `values`. */
  vectors: Matrix;
  /** Jacobi sweeps used. */
  sweeps: number;
}

export interface ThinSvd {
  /** Singular values, descending (length = cols). */
  singularValues: Float64Array;
  /** Right singular vectors as columns (cols x cols), matching `singularValues`. */
  v: Matrix;
}

export function matrix(rows: number, cols: number, data?: ArrayLike<number>): Matrix {
  if (data != null && data.length !== rows * cols) {
    throw new Error(`matrix: data must hold rows*cols = ${rows * cols} values, received ${data.length}`);
  }
  return { rows, cols, data: data == null ? new Float64Array(rows * cols) : Float64Array.from(data) };
}

/** X^T X (cols x cols) of a row-major tall matrix, accumulated in float64. */
export function gram(x: Matrix): Matrix {
  const { rows, cols, data } = x;
  const g = new Float64Array(cols * cols);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    for (let i = 0; i < cols; i++) {
      const xi = data[off + i];
      if (xi === 0) continue;
      const gi = i * cols;
      for (let j = i; j < cols; j++) g[gi + j] += xi * data[off + j];
    }
  }
  for (let i = 0; i < cols; i++) for (let j = 0; j < i; j++) g[i * cols + j] = g[j * cols + i];
  return { rows: cols, cols, data: g };
}

/**
 * Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations (Golub & Van Loan 8.5):
 * each rotation zeroes one off-diagonal pair; sweeps repeat until the off-diagonal mass is below
 * `tolerance` times the matrix's Frobenius norm. Only the upper triangle of `a` is read.
 */
export function symmetricEigen(a: Matrix, options: { tolerance?: number; maxSweeps?: number } = {}): SymmetricEigen {
  const n = a.rows;
  if (a.cols !== n) throw new Error(`symmetricEigen: expected a square matrix, received ${a.rows} x ${a.cols}`);
  const tolerance = options.tolerance ?? 1e-14;
  const maxSweeps = options.maxSweeps ?? 100;
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) m[i * n + j] = m[j * n + i] = a.data[i * n + j];
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let norm2 = 0;
  for (let i = 0; i < n * n; i++) norm2 += m[i] * m[i];
  let sweeps = 0;
  while (sweeps < maxSweeps && offDiagonal2(m, n) > tolerance * tolerance * norm2) {
    sweeps++;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) rotate(m, v, n, p, q);
    }
  }
  return sortedEigen(m, v, n, sweeps);
}

function offDiagonal2(m: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) s += 2 * m[i * n + j] * m[i * n + j];
  return s;
}

/** One Jacobi rotation in the (p, q) plane that zeroes m[p][q]; v accumulates the rotations. */
function rotate(m: Float64Array, v: Float64Array, n: number, p: number, q: number): void {
  const apq = m[p * n + q];
  if (apq === 0) return;
  const app = m[p * n + p];
  const aqq = m[q * n + q];
  // The numerically stable choice of the rotation (the smaller angle), from theta = cot(2 phi).
  const theta = (aqq - app) / (2 * apq);
  const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
  const c = 1 / Math.sqrt(t * t + 1);
  const s = t * c;
  for (let k = 0; k < n; k++) {
    const mkp = m[k * n + p];
    const mkq = m[k * n + q];
    m[k * n + p] = c * mkp - s * mkq;
    m[k * n + q] = s * mkp + c * mkq;
  }
  for (let k = 0; k < n; k++) {
    const mpk = m[p * n + k];
    const mqk = m[q * n + k];
    m[p * n + k] = c * mpk - s * mqk;
    m[q * n + k] = s * mpk + c * mqk;
  }
  for (let k = 0; k < n; k++) {
    const vkp = v[k * n + p];
    const vkq = v[k * n + q];
    v[k * n + p] = c * vkp - s * vkq;
    v[k * n + q] = s * vkp + c * vkq;
  }
}

function sortedEigen(m: Float64Array, v: Float64Array, n: number, sweeps: number): SymmetricEigen {
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => m[j * n + j] - m[i * n + i]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = m[src * n + src];
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors: { rows: n, cols: n, data: vectors }, sweeps };
}

/**
 * Singular values and right singular vectors of a tall matrix X (rows >= 1) through the
 * eigen-decomposition of X^T X: sigma_i = sqrt(max(lambda_i, 0)). Squaring the matrix halves the
 * relative precision of the smallest singular values, which is irrelevant for energy fractions
 * (they are sums of sigma^2 = lambda, computed directly).
 */
export function thinSvd(x: Matrix): ThinSvd {
  const eig = symmetricEigen(gram(x));
  return { singularValues: eig.values.map((l) => Math.sqrt(Math.max(l, 0))), v: eig.vectors };
}

/** X V[:, 0:r] (rows x r): coordinates of each row on the first r columns of v. */
export function project(x: Matrix, v: Matrix, r: number): Matrix {
  const out = new Float64Array(x.rows * r);
  for (let row = 0; row < x.rows; row++) {
    const off = row * x.cols;
    for (let c = 0; c < r; c++) {
      let s = 0;
      for (let k = 0; k < x.cols; k++) s += x.data[off + k] * v.data[k * v.cols + c];
      out[row * r + c] = s;
    }
  }
  return { rows: x.rows, cols: r, data: out };
}
