// Loads the cpu and wasm backends for tests and runs a suite once per backend.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
// Our kernels and gradients, as the package's main entry registers them (tests import ops and
// layers directly, and those register nothing).
import '../../ops/register/cpu';
import '../../ops/register/wasm';
import '../../ops/register/gradients';
import { seededRandom } from '../../src/data/random';

tf.env().set('IS_TEST', true);

export const TEST_BACKENDS = ['cpu', 'wasm'] as const;
export type TestBackend = (typeof TEST_BACKENDS)[number];

/** Switches to `name` and waits for it to be ready. */
export async function useBackend(name: string): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`backend ${name} failed to initialize`);
  await tf.ready();
}

/** describe.each over cpu and wasm, switching backend before each test. */
export function describeEachBackend(title: string, body: (backend: TestBackend) => void): void {
  for (const backend of TEST_BACKENDS) {
    describe(`${title} [${backend}]`, () => {
      beforeAll(() => useBackend(backend));
      body(backend);
    });
  }
}

/** Max |a - b| over two same-shaped tensors (reads them synchronously). */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

// One seeded generator for data and tests alike.
export { seededRandom } from '../../src/data/random';

export function randomTensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  const rand = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * scale;
  return tf.tensor(data, shape, 'float32');
}

export function randomIndex(shape: number[], numRows: number, seed: number): tf.Tensor {
  const rand = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.floor(rand() * numRows);
  return tf.tensor(data, shape, 'int32');
}

/**
 * Central finite-difference gradient check of scalar f at x (float64 accumulation on float32 math,
 * so tolerances are loose-ish). Returns max relative error.
 */
export function finiteDifferenceError(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, eps = 1e-2): number {
  const analytic = tf.tidy(() => tf.grad(f)(x)).dataSync();
  const base = x.dataSync().slice();
  let worst = 0;
  for (let i = 0; i < base.length; i++) {
    const plus = base.slice(); plus[i] += eps;
    const minus = base.slice(); minus[i] -= eps;
    const fp = tf.tidy(() => f(tf.tensor(plus, x.shape)).dataSync()[0]);
    const fm = tf.tidy(() => f(tf.tensor(minus, x.shape)).dataSync()[0]);
    const numeric = (fp - fm) / (2 * eps);
    const err = Math.abs(numeric - analytic[i]) / Math.max(1, Math.abs(numeric), Math.abs(analytic[i]));
    worst = Math.max(worst, err);
  }
  return worst;
}
