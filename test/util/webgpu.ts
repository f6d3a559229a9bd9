// Helpers for the webgpu kernel tests. Test files using them must start with the docblock
//   /** @jest-environment ./test/util/webgpuEnvironment.js */
// which installs navigator.gpu before this module (and tfjs-backend-webgpu) is imported.
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's node entry registers no gradients for its own ops; tfjs-layers' bundle does (as in
// test/util/backends.ts).
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgpu';
// Our kernels for both backends compared here, and their gradients (ops and layers register nothing;
// the main entry registers cpu, wasm and gradients, `collectivekv/webgpu` the webgpu kernels).
import '../../ops/register/cpu';
import '../../ops/register/gradients';
import '../../src/webgpu';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { seededRandom as seeded } from '../../src/data/random';
import { recordSkip } from './skip';

tf.env().set('IS_TEST', true);

interface WebGPUState { available: boolean; reason: string }

/** What the environment found; undefined when a file forgot the docblock (reported as unavailable). */
export function webgpuState(): WebGPUState {
  const state = (globalThis as { __WEBGPU__?: WebGPUState }).__WEBGPU__;
  return state ?? { available: false, reason: 'test file lacks the @jest-environment ./test/util/webgpuEnvironment.js docblock' };
}

/**
 * describe() on the webgpu backend, or a visibly skipped describe when there is no adapter. (With
 * REQUIRE_WEBGPU=1 the environment already failed the file, so CI cannot skip silently.)
 */
export function describeWebGPU(title: string, body: () => void): void {
  const state = webgpuState();
  if (!state.available) {
    recordSkip(`webgpu tests "${title}"`, `${state.reason} (REQUIRE_WEBGPU=1 makes this an error)`);
    describe.skip(`${title} [webgpu unavailable: ${state.reason}]`, body);
    return;
  }
  describe(`${title} [webgpu]`, () => {
    beforeAll(async () => {
      if (!(await tf.setBackend('webgpu'))) throw new Error('an adapter exists but the tfjs webgpu backend failed to initialize');
      await tf.ready();
    });
    body();
  });
}

export type Values = Float32Array | Int32Array | Uint8Array;

/**
 * Runs `make` on `backend` (inside a tidy), reads every output asynchronously (the webgpu backend
 * has no usable readSync in Node) and disposes them. Inputs must be created inside `make`.
 */
export async function runOn(backend: 'cpu' | 'webgpu', make: () => tf.Tensor | tf.Tensor[]): Promise<{ values: Values[]; shapes: number[][] }> {
  const before = tf.getBackend();
  tf.setBackend(backend);
  try {
    const out = tf.tidy(make);
    const list = Array.isArray(out) ? out : [out];
    const values = await Promise.all(list.map((t) => t.data() as Promise<Values>));
    const shapes = list.map((t) => t.shape.slice());
    tf.dispose(list);
    return { values, shapes };
  } finally {
    tf.setBackend(before);
  }
}

/** Max |a - b|; also fails the test when lengths differ. */
export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Runs `make` on cpu and webgpu and returns the max abs difference per output (shapes must agree).
 * This is the core assertion of the suite: the webgpu kernel against the cpu path.
 */
export async function compareWithCpu(make: () => tf.Tensor | tf.Tensor[]): Promise<number[]> {
  const cpu = await runOn('cpu', make);
  const gpu = await runOn('webgpu', make);
  expect(gpu.shapes).toEqual(cpu.shapes);
  return cpu.values.map((v, i) => maxAbs(v, gpu.values[i]));
}

/** Buffers the webgpu backend holds for live tensors (pooled free buffers are not counted). */
export function usedGpuBuffers(): number {
  const backend = tf.engine().findBackend('webgpu') as unknown as WebGPUBackend;
  return backend.bufferManager.getNumUsedBuffers();
}

/**
 * Runs `step` (which must dispose what it makes) a few times and returns the growth of live
 * tensors and used GPU buffers between the first and the last repeat: 0 and 0 when nothing leaks.
 * The first run is a warm-up: it may create pipeline caches and uniform buffers that persist.
 */
export async function leakAcrossRepeats(step: () => Promise<void>, repeats = 3): Promise<{ tensors: number; buffers: number }> {
  await step();
  const tensors = tf.memory().numTensors;
  const buffers = usedGpuBuffers();
  for (let i = 0; i < repeats; i++) await step();
  return { tensors: tf.memory().numTensors - tensors, buffers: usedGpuBuffers() - buffers };
}

/**
 * Central finite-difference check of scalar f at x on the current backend, reading asynchronously.
 * Checks `probes` coordinates spread over x (all of them when x is small) to stay fast on software
 * Vulkan. Returns the max error relative to max(1, |numeric|, |analytic|).
 */
export async function finiteDifferenceErrorAsync(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, eps = 1e-2, probes = 12): Promise<number> {
  const gradient = tf.tidy(() => tf.grad(f)(x));
  const analytic = await gradient.data();
  gradient.dispose();
  const base = (await x.data()) as Float32Array;
  const step = Math.max(1, Math.floor(base.length / probes));
  let worst = 0;
  for (let i = 0; i < base.length; i += step) {
    const at = async (delta: number) => {
      const shifted = base.slice();
      shifted[i] += delta;
      const y = tf.tidy(() => f(tf.tensor(shifted, x.shape)));
      const v = (await y.data())[0];
      y.dispose();
      return v;
    };
    const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
    const err = Math.abs(numeric - analytic[i]) / Math.max(1, Math.abs(numeric), Math.abs(analytic[i]));
    worst = Math.max(worst, err);
  }
  return worst;
}

export { seededRandom as seeded } from '../../src/data/random';

/** n floats uniform in [-scale, scale). Plain arrays, so each backend builds its own tensor. */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  const rand = seeded(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}

/** n indices uniform in [0, numRows). */
export function randomInts(n: number, numRows: number, seed: number): Int32Array {
  const rand = seeded(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rand() * numRows);
  return out;
}

/**
 * An int32 tensor whose values exist only in a GPU buffer (computed by a webgpu kernel with the
 * backend's small-tensor CPU forwarding off), so kernels cannot check them on the CPU.
 */
export function indicesOnGpu(values: number[]): tf.Tensor {
  const forward = tf.env().getBool('WEBGPU_CPU_FORWARD');
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  try {
    return tf.tidy(() => tf.add(tf.tensor(values, [values.length], 'int32'), tf.zeros([values.length], 'int32')));
  } finally {
    tf.env().set('WEBGPU_CPU_FORWARD', forward);
  }
}
