/** @jest-environment ./test/util/webgpuEnvironment.js */
// The model zoo on the webgpu backend: SASRec (mha and collectivekv) forward and one training step,
// CollectiveKVAttention forward/backward and its cache API, and a CTR model's forward, each against
// the cpu backend with the same weights. Every kernel a step executes (recorded with tf.profile)
// must be registered for webgpu, and the custom ops must run their kernels, not their composites.
//
// Tolerances: both backends compute in float32; they differ only in summation order and in WGSL's
// exp/log/inverseSqrt (a few ulp). Through two SASRec blocks of LayerNorm (outputs O(1)) that is
// ~1e-6 (measured: see the logged figures), so 1e-4 leaves headroom without hiding a wrong kernel,
// whose error is O(0.1..1) at these scales. Top-1 routing is discontinuous: a near-tie could pick
// another pool row on each backend; with random float logits a tie within 1e-6 is improbable, and
// the routed indices are compared exactly (a flip would show up as an index mismatch first).
import * as tf from '@tensorflow/tfjs-core';
import { describeWebGPU, maxAbs, randomFloats } from '../util/webgpu';
import { CollectiveKVAttention, ctrBatch, ctrSamples, generateSynthetic, withSyntheticEventFeatures } from 'collectivekv/internal';
import { Sasrec, buildSasrec, forward, scoreHidden } from '../../src/zoo/sequential/sasrec';
import { disposeInputs, toInputs } from '../../src/zoo/ctr/common';
import { buildDin } from '../../src/zoo/ctr/din';
import {
  COLLECTIVE_ATTENTION as ATTEND, GATHER_ROWS as GATHER, ROUTE_TOP1 as ROUTE, ROUTING_LOSS, ROUTING_LOSS_GRAD, SCATTER_ADD_ROWS as SCATTER,
} from '../../ops/kernelNames';

const TOL = 1e-4;
type Backend = 'cpu' | 'webgpu';

// ---------------------------------------------------------------- weights across backends

interface Snapshot { values: Float32Array; shape: number[] }

/** Reads tensors asynchronously (webgpu has no readSync in Node); does not dispose them. */
async function snapshot(tensors: tf.Tensor[]): Promise<Snapshot[]> {
  return Promise.all(tensors.map(async (t) => ({ values: Float32Array.from(await t.data()), shape: t.shape.slice() })));
}

/** Fresh tensors on the current backend; the caller disposes them after setWeights. */
function restore(snap: Snapshot[]): tf.Tensor[] {
  return snap.map((s) => tf.tensor(s.values, s.shape));
}

function maxError(a: Snapshot[], b: Snapshot[]): number {
  expect(b.map((s) => s.shape)).toEqual(a.map((s) => s.shape));
  return Math.max(0, ...a.map((s, i) => maxAbs(s.values, b[i].values)));
}

// ---------------------------------------------------------------- fallback detection

// Custom kernels of this package (imported above); each must appear in the profile where the op is used.

/** Runs `f` under tf.profile and returns the distinct kernel names it executed. */
async function kernelsOf(f: () => Promise<void>): Promise<string[]> {
  const info = await tf.profile(async () => { await f(); });
  return [...new Set(info.kernelNames)].sort();
}

/**
 * Kernels in `names` that cpu has and webgpu lacks. The profile also lists customGrad scopes such
 * as `logSoftmax__op`: composites by design, registered nowhere, so they are not gaps.
 */
function missingOnWebGPU(names: string[]): string[] {
  return names.filter((name) => tf.getKernel(name, 'webgpu') == null && tf.getKernel(name, 'cpu') != null);
}

/** Asserts the step ran only webgpu kernels and that every expected custom kernel ran (no composite fallback). */
function expectNoFallback(names: string[], customKernels: string[]): void {
  expect(missingOnWebGPU(names)).toEqual([]);
  expect(customKernels.filter((k) => !names.includes(k))).toEqual([]);
}

async function onBackend<T>(backend: Backend, f: () => Promise<T>): Promise<T> {
  const before = tf.getBackend();
  await tf.setBackend(backend);
  try {
    return await f();
  } finally {
    await tf.setBackend(before);
  }
}

// ---------------------------------------------------------------- SASRec

const NUM_ITEMS = 20;
const L = 6;
// Two users, the second left-padded (padding must be masked identically on both backends).
const IDS = [[3, 7, 1, 20, 5, 9], [0, 0, 4, 4, 11, 2]];
const TARGETS = [[7, 1, 20, 5, 9, 13], [0, 0, 4, 11, 2, 6]];

function tinySasrec(attention: 'mha' | 'collectivekv'): Sasrec {
  return buildSasrec({ numItems: NUM_ITEMS, maxLength: L, hiddenDim: 8, numBlocks: 2, numHeads: 2, dropout: 0, attention, seed: 5,
    collective: { poolSize: 17, userDim: 1 } });
}

/**
 * The objective of sasrecTraining's trainStep with loss 'softmax': masked next-item cross-entropy
 * over the catalog plus the layers' auxiliary losses. Re-stated here because trainStep reads the
 * loss with dataSync(), and tfjs-backend-webgpu's readSync needs OffscreenCanvas (absent in Node).
 */
function objective(s: Sasrec, ids: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  const hidden = forward(s.parts, ids, { training: true });
  const logProbs = tf.logSoftmax(scoreHidden(s, hidden));
  const picked = tf.sum(tf.mul(logProbs, tf.oneHot(targets as tf.Tensor2D, NUM_ITEMS + 1)), -1);
  const valid = tf.cast(tf.notEqual(targets, 0), 'float32');
  const main = tf.div(tf.sum(tf.mul(tf.neg(picked), valid)), tf.maximum(tf.sum(valid), 1));
  const aux = s.model.calculateLosses();
  return (aux.length === 0 ? main : tf.add(main, tf.addN(aux))) as tf.Scalar;
}

interface SasrecRun { hidden: Snapshot[]; loss: number; after: Snapshot[]; kernels: string[] }

/**
 * On `backend`: a SASRec with `weights`, its inference forward, then one SGD step (plain SGD so the
 * updated weights are the gradients scaled, not Adam's normalized ones that amplify tiny diffs).
 */
async function runSasrec(backend: Backend, attention: 'mha' | 'collectivekv', weights: Snapshot[]): Promise<SasrecRun> {
  return onBackend(backend, async () => {
    const s = tinySasrec(attention);
    const initial = restore(weights);
    s.model.setWeights(initial);
    tf.dispose(initial);
    const ids = tf.tensor2d(IDS, [2, L], 'int32');
    const targets = tf.tensor2d(TARGETS, [2, L], 'int32');
    const optimizer = tf.train.sgd(0.5);
    let hidden: Snapshot[] = [];
    let loss = NaN;
    const kernels = await kernelsOf(async () => {
      const h = s.model.apply(ids) as tf.Tensor;
      hidden = await snapshot([h]);
      h.dispose();
      const variables = s.model.trainableWeights.map((w) => w.read() as tf.Variable);
      const cost = optimizer.minimize(() => objective(s, ids, targets), true, variables) as tf.Scalar;
      loss = (await cost.data())[0];
      cost.dispose();
    });
    const after = await snapshot(s.model.getWeights());
    optimizer.dispose();
    tf.dispose([ids, targets]);
    s.model.dispose();
    return { hidden, loss, after, kernels };
  });
}

describeWebGPU('model zoo on webgpu', () => {
  describe.each(['mha', 'collectivekv'] as const)('SASRec with %s', (attention) => {
    it('forward and one training step match cpu, with webgpu kernels only', async () => {
      const weights = await onBackend('cpu', async () => {
        const s = tinySasrec(attention);
        const w = await snapshot(s.model.getWeights());
        s.model.dispose();
        return w;
      });
      const cpu = await runSasrec('cpu', attention, weights);
      const gpu = await runSasrec('webgpu', attention, weights);
      const figures = { hidden: maxError(cpu.hidden, gpu.hidden), loss: Math.abs(cpu.loss - gpu.loss), weightsAfterStep: maxError(cpu.after, gpu.after) };
      console.log(`SASRec ${attention} webgpu vs cpu max abs error`, JSON.stringify(figures), 'loss', cpu.loss, 'kernels', gpu.kernels.join(' '));
      expect(Number.isFinite(cpu.loss)).toBe(true);
      // The step must have changed the weights, or comparing them after it would prove nothing.
      expect(maxError(weights, cpu.after)).toBeGreaterThan(1e-3);
      expect(figures.hidden).toBeLessThan(TOL);
      expect(figures.loss).toBeLessThan(TOL * Math.max(1, Math.abs(cpu.loss)));
      expect(figures.weightsAfterStep).toBeLessThan(TOL);
      const custom = attention === 'collectivekv' ? [ROUTE, GATHER, SCATTER, ROUTING_LOSS, ROUTING_LOSS_GRAD] : [];
      expectNoFallback(gpu.kernels, custom);
      // The Embedding gradient: tfjs's own webgpu UnsortedSegmentSum (webgpu has one; see the report).
      expect(gpu.kernels).toContain('UnsortedSegmentSum');
    });
  });

  describe('CollectiveKVAttention alone', () => {
    const B = 2;
    const T = 5;
    const DE = 6;
    const x = randomFloats(B * T * DE, 21);
    const mask = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1]; // the first user's last slot is padding
    const outWeights = randomFloats(B * T * 2 * 3, 22);

    function makeLayer(): CollectiveKVAttention {
      // Pool 257 rows: past the 256 a single workgroup pass covers; dv = 3, userDim 2.
      return new CollectiveKVAttention({ numHeads: 2, keyDim: 4, valueDim: 3, poolSize: 257, userDim: 2, causal: true, name: 'ckv' });
    }

    /** A built layer on the current backend with the given weights (or its own, when null). */
    function layerWith(weights: Snapshot[] | null): { layer: CollectiveKVAttention; xs: tf.Tensor; m: tf.Tensor } {
      const layer = makeLayer();
      const xs = tf.tensor3d(x, [B, T, DE]);
      const m = tf.tensor2d(mask, [B, T]);
      tf.dispose(layer.apply([xs, m]) as tf.Tensor);
      if (weights != null) {
        const w = restore(weights);
        layer.setWeights(w);
        tf.dispose(w);
      }
      return { layer, xs, m };
    }

    interface LayerRun { out: Snapshot[]; grads: Snapshot[]; cache: Snapshot[]; kernels: string[] }

    async function runLayer(backend: Backend, weights: Snapshot[]): Promise<LayerRun> {
      return onBackend(backend, async () => {
        const { layer, xs, m } = layerWith(weights);
        let out: Snapshot[] = [];
        let grads: Snapshot[] = [];
        let cache: Snapshot[] = [];
        const kernels = await kernelsOf(async () => {
          const training = tf.tidy(() => layer.apply([xs, m], { training: true }) as tf.Tensor);
          const inference = tf.tidy(() => layer.apply([xs, m]) as tf.Tensor);
          out = await snapshot([training, inference]);
          tf.dispose([training, inference]);
          // Backward: sum(out * W) + aux losses, w.r.t. the input and every weight (gates, pools, routers).
          // The pooled phase's weights (the full phase's warm-up projection takes no part in its forward).
          const variables = layer.trainableWeights.filter((w) => !w.name.includes('_warmup_')).map((w) => w.read() as tf.Variable);
          const { value, grads: g } = tf.variableGrads(() => {
            const y = layer.apply([xs, m], { training: true }) as tf.Tensor;
            return tf.add(tf.sum(tf.mul(y, tf.tensor(outWeights, y.shape))), layer.auxiliaryLoss()) as tf.Scalar;
          }, variables);
          const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.apply([input, m]) as tf.Tensor, tf.tensor(outWeights, [B, T, 6]))))(xs);
          grads = await snapshot([value, dx, ...variables.map((v) => g[v.name])]);
          tf.dispose([value, dx, ...Object.values(g)]);
          cache = await cacheRun(layer, xs, m);
        });
        tf.dispose([xs, m]);
        layer.dispose();
        return { out, grads, cache, kernels };
      });
    }

    /** Prefill 3 slots, append 2, decode the last one; also the full forward it must equal. */
    async function cacheRun(layer: CollectiveKVAttention, xs: tf.Tensor, m: tf.Tensor): Promise<Snapshot[]> {
      const head = layer.computeCache(tf.slice(xs, [0, 0, 0], [-1, 3, -1]), tf.slice(m, [0, 0], [-1, 3]));
      const grown = layer.appendToCache(head, tf.slice(xs, [0, 3, 0], [-1, 2, -1]), tf.slice(m, [0, 3], [-1, 2]));
      const last = tf.slice(xs, [0, T - 1, 0], [-1, 1, -1]);
      const decoded = layer.attendCached(last, grown);
      const full = tf.tidy(() => tf.slice(layer.apply([xs, m]) as tf.Tensor, [0, T - 1, 0], [-1, 1, -1]));
      const values = await snapshot([decoded, full, ...grown.tensors().map((t) => tf.cast(t, 'float32'))]);
      tf.dispose([last, decoded, full]);
      head.dispose();
      grown.dispose();
      return values;
    }

    it('forward, backward and the cache API match cpu, with webgpu kernels only', async () => {
      const weights = await onBackend('cpu', async () => {
        const { layer, xs, m } = layerWith(null);
        const w = await snapshot(layer.getWeights());
        tf.dispose([xs, m]);
        layer.dispose();
        return w;
      });
      const cpu = await runLayer('cpu', weights);
      const gpu = await runLayer('webgpu', weights);
      const figures = { forward: maxError(cpu.out, gpu.out), gradients: maxError(cpu.grads, gpu.grads), cache: maxError(cpu.cache, gpu.cache) };
      console.log('CollectiveKVAttention webgpu vs cpu max abs error', JSON.stringify(figures), 'kernels', gpu.kernels.join(' '));
      expect(figures.forward).toBeLessThan(TOL);
      expect(figures.gradients).toBeLessThan(TOL);
      expect(figures.cache).toBeLessThan(TOL); // includes the routed indices: exact, or the error would be >= 1
      // The decode from the cache equals the full forward's last position on webgpu itself.
      expect(maxAbs(gpu.cache[0].values, gpu.cache[1].values)).toBeLessThan(TOL);
      expectNoFallback(gpu.kernels, [ROUTE, GATHER, SCATTER, ATTEND, ROUTING_LOSS, ROUTING_LOSS_GRAD]);
    });
  });

  describe('CTR zoo: DIN with collectivekv', () => {
    const data = withSyntheticEventFeatures(generateSynthetic({ numUsers: 12, numItems: 30, numTopics: 3, minLength: 6, maxLength: 12, seed: 5 }), 5);
    const samples = ctrSamples(data, { seed: 5 }).train.slice(0, 8);
    const options = { numItems: data.numItems, attention: 'collectivekv' as const, embeddingDim: 8, attentionWidth: 8, numHeads: 2,
      shortLength: 6, mlpUnits: [8], collective: { poolSize: 16, userDim: 1 }, seed: 3 };

    async function dinLogits(backend: Backend, weights: Snapshot[] | null): Promise<{ logits: Snapshot[]; weights: Snapshot[]; kernels: string[] }> {
      return onBackend(backend, async () => {
        const model = buildDin(options);
        if (weights != null) {
          const w = restore(weights);
          model.setWeights(w);
          tf.dispose(w);
        }
        const own = model.getWeights();
        const snap = await snapshot(own);
        tf.dispose(own);
        const inputs = toInputs(ctrBatch(data, samples, { historyLength: model.historyLength }));
        let logits: Snapshot[] = [];
        const kernels = await kernelsOf(async () => {
          model.prepare(inputs);
          const out = model.logits(inputs, false);
          logits = await snapshot([out]);
          out.dispose();
        });
        disposeInputs(inputs);
        model.dispose();
        return { logits, weights: snap, kernels };
      });
    }

    it('forward matches cpu, with webgpu kernels only', async () => {
      const cpu = await dinLogits('cpu', null);
      const gpu = await dinLogits('webgpu', cpu.weights);
      const error = maxError(cpu.logits, gpu.logits);
      console.log('DIN collectivekv webgpu vs cpu max abs error', error, 'kernels', gpu.kernels.join(' '));
      expect(error).toBeLessThan(TOL);
      expectNoFallback(gpu.kernels, [ROUTE, GATHER]);
    });
  });
});
