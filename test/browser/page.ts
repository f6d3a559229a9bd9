// Runs in Chromium as a module script after the UMD scripts of tfjs (core, layers, cpu, webgpu) and
// of this package's built bundles (dist/collectivekv.umd.js, then dist/collectivekv.webgpu.umd.js,
// which registers the webgpu kernels), which define the globals `tf` and `collectivekv`: what a
// user's <script> tags give. The imports here are types only, so the page
// uses exactly the built artifact. Each webgpu kernel, the CollectiveKVAttention forward and one
// training step are compared in the page against the cpu backend. Publishes window.__RESULT__.
import type * as TF from '@tensorflow/tfjs-core';
import type * as Package from '../../src/index';

declare const tf: typeof TF;
declare const collectivekv: typeof Package;

export interface BrowserResult { adapter: boolean; backend: string; maxErrors: Record<string, number>; error?: string }

function floats(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
}

function ints(n: number, max: number, seed: number): Int32Array {
  return Int32Array.from(floats(n, seed), (v) => Math.floor(((v + 1) / 2) * max) % max);
}

async function read(tensors: TF.Tensor[]): Promise<Float32Array> {
  const parts = await Promise.all(tensors.map((t) => t.data()));
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

async function on(backend: string, make: () => Promise<TF.Tensor[]>): Promise<Float32Array> {
  await tf.setBackend(backend);
  const out = await make();
  const values = await read(out);
  tf.dispose(out);
  return values;
}

async function maxError(make: () => Promise<TF.Tensor[]>): Promise<number> {
  const cpu = await on('cpu', make);
  const gpu = await on('webgpu', make);
  if (cpu.length !== gpu.length) return Infinity;
  return cpu.reduce((m, v, i) => Math.max(m, Math.abs(v - gpu[i])), 0);
}

const one = (f: () => TF.Tensor) => async () => [tf.tidy(f)];

// CollectiveKVAttention with weights made from a seed (the same on both backends): input [2, 5, 6].
const LAYER_X = floats(2 * 5 * 6, 13);
const LAYER_MASK = [1, 1, 1, 1, 0, 1, 1, 1, 1, 1];

function seededLayer(): { layer: Package.CollectiveKVAttention; x: TF.Tensor; mask: TF.Tensor } {
  const layer = new collectivekv.CollectiveKVAttention({ numHeads: 2, keyDim: 4, valueDim: 3, poolSize: 33, userDim: 2, causal: true });
  const x = tf.tensor3d(LAYER_X, [2, 5, 6]);
  const mask = tf.tensor2d(LAYER_MASK, [2, 5]);
  tf.dispose(layer.apply([x, mask]) as TF.Tensor);
  const weights = layer.getWeights().map((w, i) => tf.tensor(floats(w.size, 100 + i), w.shape));
  layer.setWeights(weights);
  tf.dispose(weights);
  return { layer, x, mask };
}

/** Forward in training mode (gated pool rows) and at inference. */
async function layerForward(): Promise<TF.Tensor[]> {
  const { layer, x, mask } = seededLayer();
  const out = [layer.apply([x, mask], { training: true }) as TF.Tensor, layer.apply([x, mask]) as TF.Tensor];
  tf.dispose([x, mask]);
  layer.dispose();
  return out;
}

/** One SGD step on sum(out^2) + the auxiliary losses; returns the loss and the updated weights. */
async function layerTrainStep(): Promise<TF.Tensor[]> {
  const { layer, x, mask } = seededLayer();
  const optimizer = tf.train.sgd(0.1);
  const variables = layer.trainableWeights.map((w) => w.read() as TF.Variable);
  const loss = optimizer.minimize(() => tf.add(tf.mean(tf.square(layer.apply([x, mask], { training: true }) as TF.Tensor)),
    layer.auxiliaryLoss()) as TF.Scalar, true, variables) as TF.Scalar;
  const weights = layer.getWeights().map((w) => tf.clone(w));
  tf.dispose([x, mask]);
  optimizer.dispose();
  layer.dispose();
  return [loss, ...weights];
}

async function run(): Promise<BrowserResult> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  const adapter = gpu != null && (await gpu.requestAdapter()) != null;
  if (!adapter || !(await tf.setBackend('webgpu'))) return { adapter, backend: tf.getBackend(), maxErrors: {} };
  const { collectiveAttention, gatherRows, routeTop1, scatterAddRows } = collectivekv;
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
    routeTop1Index: await maxError(one(() => routeTop1(tf.tensor(logits, [70, 257])).index)),
    routeTop1Gate: await maxError(one(() => routeTop1(tf.tensor(logits, [70, 257])).gate)),
    gatherRows: await maxError(one(() => gatherRows(tf.tensor(table, [257, 9]), tf.tensor(index, [300], 'int32')))),
    scatterAddRows: await maxError(one(() => scatterAddRows(tf.tensor(floats(300 * 9, 12), [300, 9]), tf.tensor(index, [300], 'int32'), 257))),
    collectiveAttention: await maxError(one(attention)),
    layerForward: await maxError(layerForward),
    layerTrainStep: await maxError(layerTrainStep),
  };
  return { adapter, backend: 'webgpu', maxErrors };
}

const target = window as unknown as { __RESULT__?: BrowserResult };
run().then((r) => { target.__RESULT__ = r; }, (e: Error) => { target.__RESULT__ = { adapter: false, backend: '', maxErrors: {}, error: String(e && e.stack || e) }; });
