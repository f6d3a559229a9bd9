// `bench ops --webgpu`: the custom kernels on tfjs's webgpu backend in Node, through the npm package
// `webgpu` (Dawn), against the cpu backend on the same inputs. What it is for is correctness (max
// abs error per kernel). Timings are reported too, but in CI and on machines without a GPU the
// adapter is a software rasterizer (Mesa lavapipe / llvmpipe, SwiftShader) running on the CPU: its
// speed says nothing about WebGPU on a GPU, and the result says so (`software`, `note`).
import * as tf from '@tensorflow/tfjs-core';
import {
  CompressedKV, KVPools, collectiveAttention, collectiveAttentionComposite, fusedRoutingLoss, gatherRows, gatherRowsComposite, routeTop1,
  routeTop1Composite, routingLossComposite, scatterAddRows, scatterAddRowsComposite,
} from '../../internal';
import { isSoftwareAdapter } from './gpuCheck';

export interface WebGPUBenchOptions {
  warmup?: number;
  iterations?: number;
  /** collectiveAttention: batch, history length, width H*dk, heads, pool rows. */
  batch?: number;
  tk?: number;
  width?: number;
  numHeads?: number;
  poolSize?: number;
  /** gatherRows / scatterAddRows: table rows x width, positions. */
  tableRows?: number;
  tableWidth?: number;
  positions?: number;
}

export type WebGPUBenchResult =
  | { available: false; reason: string }
  | {
    available: true;
    /** The adapter as Dawn describes it (vendor, architecture, device, description). */
    adapter: string;
    /** True for a CPU implementation (lavapipe, llvmpipe, SwiftShader, a fallback adapter). */
    software: boolean;
    note: string;
    /** Max |webgpu - cpu| per kernel output; routeTop1Index counts differing indices. */
    maxAbsError: Record<string, number>;
    /** Median ms per call including the read-back, per backend. Not a speed figure on a software adapter. */
    webgpuMs: Record<string, number>;
    cpuMs: Record<string, number>;
    sizes: Required<Omit<WebGPUBenchOptions, 'warmup' | 'iterations'>>;
    error?: string;
  };

/** The shape of the `webgpu` npm package we use (it ships no types we can rely on across versions). */
interface DawnModule {
  create(options: string[]): { requestAdapter(options?: { powerPreference?: string }): Promise<DawnAdapter | null> };
  globals: Record<string, unknown>;
}

export interface DawnAdapter {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

/**
 * Makes the tfjs webgpu backend available in Node: puts Dawn's navigator.gpu and the WebGPU
 * constants on globalThis, then imports @tensorflow/tfjs-backend-webgpu, which registers its
 * backend only when navigator.gpu exists at import (so it must come after). Returns the adapter,
 * or the reason there is none. Specifiers are computed so bundlers leave both optional imports alone.
 */
export async function loadNodeWebGPU(dawnOptions: string[] = []): Promise<{ adapter: DawnAdapter } | { reason: string }> {
  const existing = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<DawnAdapter | null> } } }).navigator?.gpu;
  if (existing != null && tf.findBackendFactory('webgpu') != null) {
    // Already set up (a browser, or a host such as the jest webgpu environment did it).
    const adapter = await existing.requestAdapter();
    return adapter == null ? { reason: 'navigator.gpu.requestAdapter() returned null' } : { adapter };
  }
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp'; // Mesa's lavapipe wants one
  let dawn: DawnModule;
  try {
    const name = 'webgpu';
    dawn = (await import(name)) as DawnModule;
  } catch (e) {
    return { reason: `npm package 'webgpu' failed to load (${(e as Error).message}); install it with npm install webgpu` };
  }
  const gpu = dawn.create(dawnOptions);
  let adapter: DawnAdapter | null;
  try {
    // A GPU beside a software adapter: ask for the fast one.
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return { reason: `requestAdapter() threw (${(e as Error).message})` };
  }
  if (adapter == null) return { reason: 'no WebGPU adapter (on Linux without a GPU: Mesa lavapipe, see DEVELOPERS.md)' };
  installNavigatorGpu(dawn, gpu);
  try {
    const backendModule = '@tensorflow/tfjs-backend-webgpu';
    await import(backendModule);
  } catch (e) {
    return { reason: `@tensorflow/tfjs-backend-webgpu failed to load (${(e as Error).message})` };
  }
  if (tf.findBackendFactory('webgpu') == null) {
    return { reason: '@tensorflow/tfjs-backend-webgpu was imported before navigator.gpu existed, so it registered no backend' };
  }
  return { adapter };
}

function installNavigatorGpu(dawn: DawnModule, gpu: unknown): void {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  for (const [key, value] of Object.entries(dawn.globals)) {
    if (!(key in globalThis)) Object.defineProperty(globalThis, key, { value, configurable: true, writable: true });
  }
  if (g.navigator?.gpu != null) return;
  // Node 21+ has a navigator without gpu (a getter on globalThis); extend it rather than replace it.
  if (g.navigator != null) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

function describeAdapter(adapter: DawnAdapter): { adapter: string; software: boolean } {
  const info = adapter.info ?? {};
  const text = [info.vendor, info.architecture, info.device, info.description].filter((s) => s != null && s !== '').join(' / ');
  return { adapter: text || 'unknown', software: isSoftwareAdapter({ ...info, isFallbackAdapter: adapter.isFallbackAdapter ?? info.isFallbackAdapter }) };
}

// ---------------------------------------------------------------- the measurements

export type KernelSizes = Required<Omit<WebGPUBenchOptions, 'warmup' | 'iterations'>>;
type Sizes = KernelSizes;
type Case = () => tf.Tensor;
type Inputs = Record<string, tf.Tensor>;

/** A custom op with a webgpu kernel: inputs made on the current backend, the op (its kernel where registered) and its composite. */
export interface KernelCase {
  inputs(): Inputs;
  kernel(x: Inputs): tf.Tensor;
  composite(x: Inputs): tf.Tensor;
}

function seededFloats(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => ((s = Math.imul(s, 1103515245) + 12345 >>> 0) / 2 ** 32) * 2 - 1);
}

function seededInts(n: number, max: number, seed: number): Int32Array {
  return Int32Array.from(seededFloats(n, seed), (v) => Math.min(max - 1, Math.floor(((v + 1) / 2) * max)));
}

/**
 * The custom ops that have webgpu kernels, with their composites, on inputs built from plain arrays
 * so the same case runs on any backend. Indices are int32 tensors: the kernels check indices that
 * still sit on the CPU (cheap), as a cache loaded from a store would.
 */
export function kernelCases(s: Sizes): Record<string, KernelCase> {
  const dg = s.width - 1;
  const arrays = {
    query: seededFloats(s.batch * s.width, 1), indexK: seededInts(s.batch * s.tk, s.poolSize, 2), indexV: seededInts(s.batch * s.tk, s.poolSize, 3),
    userK: seededFloats(s.batch * s.tk, 4), userV: seededFloats(s.batch * s.tk, 5), poolK: seededFloats(s.poolSize * dg, 6),
    poolV: seededFloats(s.poolSize * dg, 7), table: seededFloats(s.tableRows * s.tableWidth, 8), index: seededInts(s.positions, s.tableRows, 9),
    rows: seededFloats(s.positions * s.tableWidth, 10), logits: seededFloats(s.positions * s.poolSize, 11),
  };
  const attention = {
    inputs: (): Inputs => ({ query: tf.tensor(arrays.query, [s.batch, 1, s.width]), indexK: tf.tensor(arrays.indexK, [s.batch, s.tk], 'int32'),
      indexV: tf.tensor(arrays.indexV, [s.batch, s.tk], 'int32'), userK: tf.tensor(arrays.userK, [s.batch, s.tk, 1]),
      userV: tf.tensor(arrays.userV, [s.batch, s.tk, 1]), poolK: tf.tensor(arrays.poolK, [s.poolSize, dg]), poolV: tf.tensor(arrays.poolV, [s.poolSize, dg]) }),
    args: (x: Inputs): [tf.Tensor, CompressedKV, KVPools] => [x.query, { indexK: x.indexK, indexV: x.indexV, userK: x.userK, userV: x.userV },
      { poolK: x.poolK, poolV: x.poolV }],
  };
  const table = (): Inputs => ({ table: tf.tensor(arrays.table, [s.tableRows, s.tableWidth]), index: tf.tensor(arrays.index, [s.positions], 'int32') });
  const scatter = (): Inputs => ({ rows: tf.tensor(arrays.rows, [s.positions, s.tableWidth]), index: tf.tensor(arrays.index, [s.positions], 'int32') });
  const logits = (): Inputs => ({ logits: tf.tensor(arrays.logits, [s.positions, s.poolSize]) });
  const weights = { peakWeight: 1, balanceWeight: 1 };
  return {
    collectiveAttention: { inputs: attention.inputs, kernel: (x) => collectiveAttention(...attention.args(x), { numHeads: s.numHeads }),
      composite: (x) => collectiveAttentionComposite(...attention.args(x), { numHeads: s.numHeads }) },
    gatherRows: { inputs: table, kernel: (x) => gatherRows(x.table, x.index), composite: (x) => gatherRowsComposite(x.table, x.index) },
    scatterAddRows: { inputs: scatter, kernel: (x) => scatterAddRows(x.rows, x.index, s.tableRows),
      composite: (x) => scatterAddRowsComposite(x.rows, x.index, s.tableRows) },
    routeTop1Index: { inputs: logits, kernel: (x) => keepIndex(routeTop1(x.logits)), composite: (x) => keepIndex(routeTop1Composite(x.logits)) },
    routingLoss: { inputs: logits, kernel: (x) => fusedRoutingLoss(x.logits, null, weights), composite: (x) => routingLossComposite(x.logits, null, weights) },
  };
}

/** The routed index; the gate is disposed. */
function keepIndex(r: { index: tf.Tensor; gate: tf.Tensor }): tf.Tensor {
  r.gate.dispose();
  return r.index;
}

/** The ops as closures that build their inputs and run the op (its kernel where registered). */
function cases(s: Sizes): Record<string, Case> {
  return Object.fromEntries(Object.entries(kernelCases(s)).map(([name, c]) => [name, () => c.kernel(c.inputs())]));
}

/** One call on the current backend, read back asynchronously (webgpu has no readSync in Node). */
async function runOnce(make: Case): Promise<Float32Array> {
  const out = tf.tidy(make);
  try {
    return Float32Array.from(await out.data());
  } finally {
    out.dispose();
  }
}

export async function medianMs(make: Case, warmup: number, iterations: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await runOnce(make);
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    await runOnce(make);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

/** Max |a - b|; for indices, the number of positions that differ (0 = identical routing). */
export function difference(name: string, a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  let differing = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    if (a[i] !== b[i]) differing++;
  }
  return name.endsWith('Index') ? differing : worst;
}

/**
 * Runs every kernel on cpu and on webgpu: errors and timings. Switches backends and restores the
 * one it found. Never throws for a missing adapter or a failing kernel: the result says why.
 */
export async function benchWebGPU(options: WebGPUBenchOptions = {}): Promise<WebGPUBenchResult> {
  const loaded = await loadNodeWebGPU();
  if ('reason' in loaded) return { available: false, reason: loaded.reason };
  // The package's webgpu kernels come with their own entry, as the backend does.
  await import('../../webgpu');
  const { warmup = 1, iterations = 5, ...rest } = options;
  const given = Object.fromEntries(Object.entries(rest).filter(([, v]) => v != null));
  const sizes: Sizes = { batch: 4, tk: 200, width: 64, numHeads: 2, poolSize: 1024, tableRows: 3416, tableWidth: 64, positions: 2000, ...given };
  const { adapter, software } = describeAdapter(loaded.adapter);
  const note = software
    ? `software WebGPU on the CPU (${adapter}): correctness figures only; the timings are NOT a measure of WebGPU speed`
    : `hardware WebGPU adapter (${adapter})`;
  const result = { available: true as const, adapter, software, note, maxAbsError: {} as Record<string, number>,
    webgpuMs: {} as Record<string, number>, cpuMs: {} as Record<string, number>, sizes };
  const start = tf.getBackend();
  try {
    for (const [name, make] of Object.entries(cases(sizes))) {
      await tf.setBackend('cpu');
      const expected = await runOnce(make);
      result.cpuMs[name] = await medianMs(make, warmup, iterations);
      if (!(await tf.setBackend('webgpu'))) throw new Error('the webgpu backend failed to initialize');
      result.maxAbsError[name] = difference(name, expected, await runOnce(make));
      result.webgpuMs[name] = await medianMs(make, warmup, iterations);
    }
    return result;
  } catch (e) {
    return { ...result, error: (e as Error).message };
  } finally {
    if (start) await tf.setBackend(start);
  }
}

/** Rows for the bench ops table. */
export function webgpuTableRows(w: WebGPUBenchResult, ms: (x: number | null) => string): string[][] {
  if (!w.available) return [['webgpu (--webgpu)', 'unavailable', w.reason, '-']];
  const label = w.software ? 'software WebGPU, speed not meaningful' : 'webgpu';
  const rows = Object.keys(w.maxAbsError).map((name) => {
    const err = w.maxAbsError[name];
    const figure = name.endsWith('Index') ? `${err} indices differ` : `max err ${err.toExponential(1)}`;
    return [`${name}, ${label}`, `${ms(w.webgpuMs[name] ?? null)} (webgpu)`, `${ms(w.cpuMs[name] ?? null)} (cpu)`, `${figure} vs cpu`];
  });
  if (w.error != null) rows.push(['webgpu (--webgpu)', 'failed', w.error, '-']);
  return rows;
}
