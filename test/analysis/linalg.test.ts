import { gram, matrix, symmetricEigen, thinSvd } from '../../src/analysis/linalg';
import { normals, orthonormal } from './planted';

function matMul(a: Float64Array, b: Float64Array, n: number, k: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
    let s = 0;
    for (let t = 0; t < k; t++) s += a[i * k + t] * b[t * m + j];
    out[i * m + j] = s;
  }
  return out;
}

describe('Jacobi eigen-decomposition', () => {
  test('2 x 2 and diagonal matrices: known eigenvalues and vectors', () => {
    const e = symmetricEigen(matrix(2, 2, [2, 1, 1, 2]));
    expect(Array.from(e.values)).toEqual([expect.closeTo(3, 12), expect.closeTo(1, 12)]);
    // Eigenvector of 3 is (1, 1)/sqrt2 up to sign.
    expect(Math.abs(e.vectors.data[0])).toBeCloseTo(Math.SQRT1_2, 12);
    expect(e.vectors.data[0] * e.vectors.data[2]).toBeCloseTo(0.5, 12);
    const d = symmetricEigen(matrix(3, 3, [1, 0, 0, 0, 5, 0, 0, 0, -2]));
    expect(Array.from(d.values)).toEqual([5, 1, -2]);
    expect(d.sweeps).toBe(0);
  });

  test('random symmetric 40 x 40: A V = V diag(lambda), V orthonormal, trace kept', () => {
    const n = 40;
    const z = normals(5);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = z();
    const e = symmetricEigen(matrix(n, n, a));
    const av = matMul(a, e.vectors.data, n, n, n);
    let worst = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) worst = Math.max(worst, Math.abs(av[i * n + j] - e.values[j] * e.vectors.data[i * n + j]));
    expect(worst).toBeLessThan(1e-10);
    const vt = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vt[j * n + i] = e.vectors.data[i * n + j];
    const vtv = matMul(vt, e.vectors.data, n, n, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) expect(Math.abs(vtv[i * n + j] - (i === j ? 1 : 0))).toBeLessThan(1e-12);
    let trace = 0;
    for (let i = 0; i < n; i++) trace += a[i * n + i];
    expect(e.values.reduce((s, x) => s + x, 0)).toBeCloseTo(trace, 9);
    for (let i = 1; i < n; i++) expect(e.values[i]).toBeLessThanOrEqual(e.values[i - 1]);
  });

  test('rejects a non-square matrix, naming the shapes', () => {
    expect(() => symmetricEigen(matrix(2, 3))).toThrow(/square matrix, received 2 x 3/);
  });
});

describe('thin SVD through the Gram matrix', () => {
  test('X = U diag(s) W^T with known s: singular values and right vectors recovered', () => {
    const [rows, d] = [60, 12];
    const s = [9, 7, 5, 3, 2, 1, 0.5, 0.25, 0, 0, 0, 0];
    const u = orthonormal(rows, d, 11);
    const w = orthonormal(d, d, 12);
    const us = u.map((x, i) => x * s[i % d]);
    const wt = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) wt[j * d + i] = w[i * d + j];
    const x = matrix(rows, d, matMul(us, wt, rows, d, d));
    const svd = thinSvd(x);
    s.forEach((expected, i) => expect(Math.abs(svd.singularValues[i] - expected)).toBeLessThan(1e-6));
    // Each recovered right vector with a distinct singular value is +-w_i.
    for (let c = 0; c < 8; c++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += svd.v.data[k * d + c] * w[k * d + c];
      expect(Math.abs(dot)).toBeCloseTo(1, 9);
    }
  });

  test('gram is X^T X', () => {
    const g = gram(matrix(3, 2, [1, 2, 3, 4, 5, 6]));
    expect(Array.from(g.data)).toEqual([35, 44, 44, 56]);
  });
});
