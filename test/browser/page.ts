// Runs in Chromium (bundled by webgpu.test.ts): each webgpu kernel against the cpu backend on the
// same inputs, inside a real browser's WebGPU. Publishes a summary on window.__RESULT__.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgpu';
import { collectiveAttention } from '../../ops/collectiveAttention/index';
import { gatherRows } from '../../ops/gatherRows/index';
import { routeTop1 } from '../../ops/routeTop1/index';
import { scatterAddRows } from '../../ops/scatterAddRows/index';

export interface BrowserResult { adapter: boolean; backend: string; maxErrors: Record<string, number>; error?: string }

function floats(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
}

function ints(n: number, max: number, seed: number): Int32Array {
  return Int32Array.from(floats(n, seed), (v) => Math.floor(((v + 1) / 2) * max) % max);
}

async function on(backend: string, make: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend(backend);
  const out = tf.tidy(make);
  const values = Float32Array.from(await out.data());
  out.dispose();
  return values;
}

async function maxError(make: () => tf.Tensor): Promise<number> {
  const cpu = await on('cpu', make);
  const gpu = await on('webgpu', make);
  if (cpu.length !== gpu.length) return Infinity;
  return cpu.reduce((m, v, i) => Math.max(m, Math.abs(v - gpu[i])), 0);
}

async function run(): Promise<BrowserResult> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  const adapter = gpu != null && (await gpu.requestAdapter()) != null;
  if (!adapter || !(await tf.setBackend('webgpu'))) return { adapter, backend: tf.getBackend(), maxErrors: {} };
  const logits = floats(70 * 257, 1);
  const table = floats(257 * 9, 2);
  const index = ints(300, 257, 3);
  const [b, tq, tk, h, dk, dv, pool] = [2, 3, 65, 2, 4, 3, 255];
  const attention = () => collectiveAttention(tf.tensor(floats(b * tq * h * dk, 4), [b, tq, h * dk]), {
    indexK: tf.tensor(ints(b * tk, pool, 5), [b, tk], 'int32'), indexV: tf.tensor(ints(b * tk, pool, 6), [b, tk], 'int32'),
    userK: tf.tensor(floats(b * tk, 7), [b, tk, 1]), userV: tf.tensor(floats(b * tk, 8), [b, tk, 1]),
    mask: tf.tensor(Float32Array.from(floats(b * tk, 9), (v) => (v > -0.5 ? 1 : 0)), [b, tk]),
  }, { poolK: tf.tensor(floats(pool * (h * dk - 1), 10), [pool, h * dk - 1]), poolV: tf.tensor(floats(pool * (h * dv - 1), 11), [pool, h * dv - 1]) },
  { numHeads: h, causal: true });
  const maxErrors = {
    routeTop1Index: await maxError(() => routeTop1(tf.tensor(logits, [70, 257])).index),
    routeTop1Gate: await maxError(() => routeTop1(tf.tensor(logits, [70, 257])).gate),
    gatherRows: await maxError(() => gatherRows(tf.tensor(table, [257, 9]), tf.tensor(index, [300], 'int32'))),
    scatterAddRows: await maxError(() => scatterAddRows(tf.tensor(floats(300 * 9, 12), [300, 9]), tf.tensor(index, [300], 'int32'), 257)),
    collectiveAttention: await maxError(attention),
  };
  return { adapter, backend: 'webgpu', maxErrors };
}

const target = window as unknown as { __RESULT__?: BrowserResult };
run().then((r) => { target.__RESULT__ = r; }, (e: Error) => { target.__RESULT__ = { adapter: false, backend: '', maxErrors: {}, error: String(e && e.stack || e) }; });
