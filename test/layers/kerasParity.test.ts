// Keras 3 MultiHeadAttention parity (docs/keras.md): one test per argument and call option. Each
// either matches a reference computation written here with plain tf ops (Keras's formulas), or is
// rejected with an ArgumentError naming it. CollectiveKVAttention shares the base: it is checked in
// its full-width form (userDim = numHeads*keyDim, linear user part: K/V are plain projections, so
// the same reference applies).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { CollectiveKVAttention, MultiHeadAttention } from '../../layers/index';
import { ATTENTION_OPTION_KEYS, MultiHeadAttentionArgs } from '../../layers/attentionBase';
import { maxAbsDiff, randomTensor, useBackend } from '../util/backends';
import { weightBySuffix } from './helpers';

const H = 2;
const DK = 3;
type Layer = MultiHeadAttention | CollectiveKVAttention;
type Extra = Partial<MultiHeadAttentionArgs>;

const makers: Record<string, (extra?: Extra) => Layer> = {
  MultiHeadAttention: (extra = {}) => new MultiHeadAttention({ numHeads: H, keyDim: DK, ...extra }),
  CollectiveKVAttention: (extra = {}) => new CollectiveKVAttention({
    numHeads: H, keyDim: DK, userDim: H * DK, userActivation: 'linear', poolSize: 4, ...extra,
  }),
};

/** The projections' weights by role (CollectiveKVAttention's full-width K/V are its user parts). */
function projections(layer: Layer): Record<'q' | 'k' | 'v' | 'o', { kernel: tf.Tensor; bias: tf.Tensor | null }> {
  const ckv = layer instanceof CollectiveKVAttention;
  const get = (prefix: string) => {
    const bias = layer.weights.find((w) => w.name.endsWith(`/${prefix}_bias`));
    return { kernel: weightBySuffix(layer, `${prefix}_kernel`).read(), bias: bias == null ? null : bias.read() };
  };
  return { q: get('query'), k: get(ckv ? 'key_user' : 'key'), v: get(ckv ? 'value_user' : 'value'), o: get('output') };
}

interface RefOptions {
  /** [B or 1, Tq, Tk], 1 attends (Keras's combined attention mask). */
  mask?: tf.Tensor;
  heads?: number;
  keyDim?: number;
  outputShape?: number[];
}

/** Keras 3's MultiHeadAttention forward (inference), from the layer's weights. */
function reference(layer: Layer, query: tf.Tensor, value: tf.Tensor, key: tf.Tensor, o: RefOptions = {}): { out: tf.Tensor; scores: tf.Tensor } {
  return tf.tidy(() => {
    const w = projections(layer);
    const h = o.heads ?? H;
    const dk = o.keyDim ?? DK;
    const dense = (x: tf.Tensor, p: { kernel: tf.Tensor; bias: tf.Tensor | null }) => {
      const y = tf.matMul(tf.reshape(x, [-1, x.shape[x.rank - 1] as number]), p.kernel);
      return p.bias == null ? y : tf.add(y, p.bias);
    };
    const [b, tq, tk] = [query.shape[0], query.shape[1], value.shape[1]] as number[];
    const heads = (x: tf.Tensor, t: number) => tf.transpose(tf.reshape(x, [b, t, h, -1]), [0, 2, 1, 3]);
    const q = heads(tf.mul(dense(query, w.q), 1 / Math.sqrt(dk)), tq);
    const k = heads(dense(key, w.k), tk);
    const v = heads(dense(value, w.v), tk);
    let logits = tf.matMul(q, k, false, true);
    if (o.mask != null) logits = tf.add(logits, tf.mul(tf.sub(1, tf.expandDims(tf.cast(o.mask, 'float32'), 1)), -1e9));
    const scores = tf.softmax(logits);
    const attended = tf.reshape(tf.transpose(tf.matMul(scores, v), [0, 2, 1, 3]), [b * tq, -1]);
    const out = dense(attended, w.o);
    return { out: tf.reshape(out, [b, tq, ...(o.outputShape ?? [out.shape[1] as number])]), scores };
  });
}

function expectArgumentError(f: () => unknown, message: RegExp): void {
  let error: Error | null = null;
  try {
    tf.tidy(() => { f(); });
  } catch (e) {
    error = e as Error;
  }
  expect(error?.name).toBe('ArgumentError');
  expect(error?.message).toMatch(message);
}

const close = (a: tf.Tensor, b: tf.Tensor, tol = 1e-5) => expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(tol);
const out = (y: tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[]) => y as tf.Tensor;
const pair = (y: tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[]) => y as tf.Tensor[];

describe('Keras 3 MultiHeadAttention parity', () => {
  let x: tf.Tensor;
  let value: tf.Tensor;
  beforeAll(async () => {
    await useBackend('cpu');
    x = randomTensor([2, 4, 5], 1);
    value = randomTensor([2, 6, 5], 2);
  });
  afterAll(() => tf.dispose([x, value]));

  for (const [name, make] of Object.entries(makers)) {
    describe(name, () => {
      test('numHeads, keyDim, valueDim: self- and cross-attention match the reference', () => {
        const layer = make();
        close(out(layer.apply(x)), reference(layer, x, x, x).out);
        close(out(layer.apply(x, { value })), reference(layer, x, value, value).out);
        if (layer instanceof MultiHeadAttention) {
          const wide = new MultiHeadAttention({ numHeads: 3, keyDim: 2, valueDim: 4 });
          expect(out(wide.apply(x, { value })).shape).toEqual([2, 4, 5]);
          close(out(wide.apply(x, { value })), reference(wide, x, value, value, { heads: 3, keyDim: 2 }).out);
        }
      });

      test('useBias: false creates no bias and matches the reference', () => {
        const layer = make({ useBias: false });
        const y = out(layer.apply(x, { value }));
        expect(layer.weights.filter((w) => w.name.endsWith('_bias'))).toHaveLength(0);
        close(y, reference(layer, x, value, value).out);
      });

      test('outputShape: a width or a list of dimensions', () => {
        const layer = make({ outputShape: 7 });
        close(out(layer.apply(x, { value })), reference(layer, x, value, value).out);
        expect(weightBySuffix(layer, 'output_kernel').shape).toEqual([H * DK, 7]);
        const grid = make({ outputShape: [2, 3] });
        const y = out(grid.apply(x, { value }));
        expect(y.shape).toEqual([2, 4, 2, 3]);
        close(y, reference(grid, x, value, value, { outputShape: [2, 3] }).out);
        const symbolic = make({ outputShape: [2, 3] }).apply(tfl.input({ shape: [4, 5] })) as tfl.SymbolicTensor;
        expect(symbolic.shape).toEqual([null, 4, 2, 3]);
        expectArgumentError(() => make({ outputShape: 0 }), /argument 'outputShape' must be a positive integer or a non-empty list of positive integers.*received 0$/);
      });

      test('attentionAxes: 1, [1] and -2 are the default; other axes are rejected by name', () => {
        const layer = make();
        const expected = out(layer.apply(x, { value }));
        for (const axes of [1, [1], -2]) {
          const other = make({ attentionAxes: axes });
          other.apply(x, { value });
          other.setWeights(layer.getWeights());
          close(out(other.apply(x, { value })), expected, 0);
          expect(other.getConfig().attentionAxes).toEqual([1]);
        }
        expectArgumentError(() => make({ attentionAxes: [2] }), /argument 'attentionAxes' must be null, 1 or \[1\].*received an array of 1 items$/);
        expectArgumentError(() => make({ attentionAxes: [1, 2] }), /'attentionAxes'/);
      });

      test('flashAttention: false and null compute as usual; true is rejected by name', () => {
        expect(() => make({ flashAttention: false })).not.toThrow();
        expect(() => make({ flashAttention: null })).not.toThrow();
        expectArgumentError(() => make({ flashAttention: true }), /argument 'flashAttention' must be false or null \(tfjs has no flash attention kernel.*received true$/);
      });

      test('kernelInitializer and biasInitializer: every projection kernel and bias', () => {
        const layer = make({ kernelInitializer: 'ones', biasInitializer: tfl.initializers.constant({ value: 0.5 }) });
        layer.apply(x);
        const trainable = layer.weights.filter((w) => w.trainable);
        const biases = trainable.filter((w) => w.name.endsWith('_bias'));
        expect(biases.length).toBeGreaterThanOrEqual(4);
        for (const b of biases) expect(Array.from(b.read().dataSync()).every((v) => v === 0.5)).toBe(true);
        for (const k of ['query', 'output'].map((p) => weightBySuffix(layer, `${p}_kernel`))) {
          expect(Array.from(k.read().dataSync()).every((v) => v === 1)).toBe(true);
        }
        expectArgumentError(() => make({ biasInitializer: 'noSuchInitializer' }), /argument 'biasInitializer' must be a tfjs initializer/);
      });

      test('kernelRegularizer and biasRegularizer: a penalty per weight, in the model losses', () => {
        const layer = make({ kernelRegularizer: tfl.regularizers.l2({ l2: 0.1 }), biasRegularizer: 'l1', biasInitializer: 'ones' });
        layer.apply(x);
        const trainable = layer.weights.filter((w) => w.trainable && !w.name.endsWith('relative_position_bias'));
        const expected = tf.tidy(() => tf.addN(trainable.map((w) => (w.name.endsWith('_bias')
          ? tf.mul(0.01, tf.sum(tf.abs(w.read()))) : tf.mul(0.1, tf.sum(tf.square(w.read()))))))).dataSync()[0];
        const losses = layer.calculateLosses();
        // One per weight (CollectiveKVAttention adds its routing losses' entry, zero outside training).
        expect(losses).toHaveLength(trainable.length + (layer instanceof CollectiveKVAttention ? 1 : 0));
        const total = tf.addN(losses).dataSync()[0];
        expect(Math.abs(total - expected)).toBeLessThan(1e-3 * Math.max(1, expected));
        tf.dispose(losses);
        expectArgumentError(() => make({ kernelRegularizer: 'l3' }), /argument 'kernelRegularizer' must be a tfjs regularizer.*received "l3"$/);
      });

      test('activityRegularizer: L2 of the query, key, value and output projections of a training call', () => {
        const layer = make({ activityRegularizer: tfl.regularizers.l2({ l2: 0.5 }) });
        layer.apply(x);
        const none = layer.calculateLosses();
        expect(tf.addN(none).dataSync()[0]).toBe(0);
        tf.dispose(none);
        const w = projections(layer);
        const expected = tf.tidy(() => {
          const proj = (t: tf.Tensor, p: { kernel: tf.Tensor; bias: tf.Tensor | null }) => {
            const y = tf.matMul(tf.reshape(t, [-1, 5]), p.kernel);
            return p.bias == null ? y : tf.add(y, p.bias);
          };
          const sq = (t: tf.Tensor) => tf.sum(tf.square(t));
          const y = reference(layer, x, value, value).out;
          return tf.mul(0.5, tf.addN([sq(proj(x, w.q)), sq(proj(value, w.k)), sq(proj(value, w.v)), sq(y)])).dataSync()[0];
        });
        const total = tf.tidy(() => {
          layer.apply(x, { value, training: true });
          return tf.addN(layer.calculateLosses()).dataSync()[0];
        });
        if (layer instanceof MultiHeadAttention) {
          expect(Math.abs(total - expected)).toBeLessThan(1e-3 * expected);
        } else {
          // Plus the routing losses of its (unused, zero-width) pools' routers.
          expect(total).toBeGreaterThanOrEqual(expected * (1 - 1e-3));
        }
      });

      test('kernelConstraint and biasConstraint: applied after each update, before the weights are used', () => {
        const layer = make({ kernelConstraint: 'nonNeg', biasConstraint: tfl.constraints.maxNorm({ maxValue: 0.1, axis: 0 }) });
        layer.apply(x, { value });
        // An SGD step that drives every weight negative.
        const optimizer = tf.train.sgd(10);
        optimizer.minimize(() => tf.sum(out(layer.apply(x, { value, training: true }))) as tf.Scalar);
        const y = out(layer.apply(x, { value }));
        for (const weight of layer.weights.filter((v) => v.trainable)) {
          const data = Array.from(weight.read().dataSync());
          if (weight.name.endsWith('_bias')) expect(Math.hypot(...data)).toBeLessThanOrEqual(0.1 + 1e-5);
          else expect(data.every((v) => v >= 0)).toBe(true);
        }
        close(y, reference(layer, x, value, value).out, 1e-4);
        expectArgumentError(() => make({ kernelConstraint: 'positive' }), /argument 'kernelConstraint' must be a tfjs constraint.*received "positive"$/);
      });

      test('seed: two layers with one seed draw the same dropout masks, call after call', () => {
        const [a, b, c] = [make({ dropout: 0.5, seed: 7 }), make({ dropout: 0.5, seed: 7 }), make({ dropout: 0.5, seed: 8 })];
        a.apply(x);
        for (const other of [b, c]) {
          other.apply(x);
          other.setWeights(a.getWeights());
        }
        const run = (l: Layer) => out(l.apply(x, { training: true }));
        const [a1, b1, c1, a2, b2] = [run(a), run(b), run(c), run(a), run(b)];
        close(a1, b1, 0);
        close(a2, b2, 0);
        expect(maxAbsDiff(a1, a2)).toBeGreaterThan(1e-3);
        expect(maxAbsDiff(a1, c1)).toBeGreaterThan(1e-3);
        expect(a.getConfig().seed).toBe(7);
        expectArgumentError(() => make({ seed: -1 }), /argument 'seed' must be an integer >= 0/);
      });

      test('dropout and training: dropout only in training calls, on the attention weights', () => {
        const layer = make({ dropout: 0.5, seed: 1 });
        layer.apply(x);
        const ref = reference(layer, x, x, x).out;
        close(out(layer.apply(x)), ref);
        close(out(layer.apply(x, { training: false })), ref);
        expect(maxAbsDiff(out(layer.apply(x, { training: true })), ref)).toBeGreaterThan(1e-3);
        // The returned scores are the weights before dropout (Keras's).
        const [, scores] = pair(layer.apply(x, { training: true, returnAttentionScores: true }));
        close(scores, reference(layer, x, x, x).scores);
      });

      test('value and key: call options, or Keras\'s [query, value, key] list', () => {
        const layer = make();
        const y = out(layer.apply(x, { value }));
        close(y, reference(layer, x, value, value).out);
        close(out(layer.apply([x, value])), y, 0);
        const key = randomTensor([2, 6, 5], 3);
        if (layer instanceof MultiHeadAttention) {
          close(out(layer.apply(x, { value, key })), reference(layer, x, value, key).out);
          close(out(layer.apply([x, value, key])), reference(layer, x, value, key).out);
          // A key of its own width.
          const separate = new MultiHeadAttention({ numHeads: H, keyDim: DK });
          const narrow = randomTensor([2, 6, 3], 4);
          close(out(separate.apply(x, { value, key: narrow })), reference(separate, x, value, narrow).out);
          expect(weightBySuffix(separate, 'key_kernel').shape).toEqual([3, H * DK]);
        } else {
          expectArgumentError(() => layer.apply(x, { value, key }), /argument 'key' must be the value tensor or absent/);
        }
        close(out(layer.apply(x, { value, key: value })), y, 0);
        expectArgumentError(() => layer.apply([x, value], { value }), /argument 'value' must be absent when the inputs are a list/);
        key.dispose();
      });

      test('queryMask: a masked query attends to nothing; the others match the reference', () => {
        const layer = make();
        const queryMask = tf.tensor2d([[1, 1, 0, 1], [0, 1, 1, 1]]);
        const y = out(layer.apply(x, { value, queryMask }));
        const ref = reference(layer, x, value, value).out;
        const bias = projections(layer).o.bias as tf.Tensor;
        const rows = y.arraySync() as number[][][];
        const refRows = ref.arraySync() as number[][][];
        const biasRow = Array.from(bias.dataSync());
        (queryMask.arraySync() as number[][]).forEach((m, bi) => m.forEach((valid, t) => {
          // Keras's fused path gives uniform weights to such a row; this layer gives zero weights (docs/keras.md).
          const expected = valid ? refRows[bi][t] : biasRow;
          rows[bi][t].forEach((v, j) => expect(Math.abs(v - expected[j])).toBeLessThan(1e-5));
        }));
        queryMask.dispose();
      });

      test('valueMask and keyMask: masked keys are not attended; both are ANDed', () => {
        const layer = make();
        const valueMask = tf.tensor2d([[1, 1, 0, 1, 1, 0], [1, 0, 1, 1, 1, 1]]);
        const keyMask = tf.tensor2d([[1, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 1]], undefined, 'bool');
        const both = tf.mul(valueMask, tf.cast(keyMask, 'float32'));
        const asMask = (m: tf.Tensor) => tf.tile(tf.expandDims(tf.cast(m, 'float32'), 1), [1, 4, 1]);
        close(out(layer.apply(x, { value, valueMask })), reference(layer, x, value, value, { mask: asMask(valueMask) }).out);
        close(out(layer.apply(x, { value, keyMask })), reference(layer, x, value, value, { mask: asMask(keyMask) }).out);
        close(out(layer.apply(x, { value, valueMask, keyMask })), reference(layer, x, value, value, { mask: asMask(both) }).out);
        expectArgumentError(() => layer.apply(x, { value, valueMask: tf.ones([2, 4]) }),
          /argument 'valueMask' must be a tensor of shape \[2, 6\].*received shape \[2, 4\]$/);
        tf.dispose([valueMask, keyMask, both]);
      });

      test('attentionMask: [B, Tq, Tk] or [Tq, Tk]; an all-zero row attends to nothing', () => {
        const layer = make();
        const attentionMask = tf.tensor3d(Array.from({ length: 48 }, (_, i) => ((i * 7) % 3 === 0 || i % 6 === 0 ? 1 : 0)), [2, 4, 6]);
        close(out(layer.apply(x, { value, attentionMask })), reference(layer, x, value, value, { mask: attentionMask }).out);
        const shared = tf.tensor2d(Array.from({ length: 24 }, (_, i) => (i % 5 === 0 || i % 6 === 1 ? 1 : 0)), [4, 6], 'bool');
        close(out(layer.apply(x, { value, attentionMask: shared })), reference(layer, x, value, value, { mask: tf.expandDims(shared, 0) }).out);
        // The case of the issue: an all-zero mask changes the output (every query attends to nothing).
        const y = out(layer.apply(x, { value, attentionMask: tf.zeros([2, 4, 6]) }));
        close(y, tf.broadcastTo(projections(layer).o.bias as tf.Tensor, [2, 4, 5]));
        expectArgumentError(() => layer.apply(x, { value, attentionMask: tf.ones([2, 6]) }),
          /argument 'attentionMask' must be a tensor of shape \[2, 4, 6\] or \[1, 4, 6\] or \[4, 6\].*received shape \[2, 6\]$/);
        tf.dispose([attentionMask, shared]);
      });

      test('useCausalMask: Keras\'s start-aligned lower triangle, ANDed with the other masks', () => {
        const layer = make();
        const tril = tf.linalg.bandPart(tf.ones([4, 6]), -1, 0);
        close(out(layer.apply(x, { value, useCausalMask: true })), reference(layer, x, value, value, { mask: tf.expandDims(tril, 0) }).out);
        const valueMask = tf.tensor2d([[1, 0, 1, 1, 1, 1], [1, 1, 1, 0, 1, 1]]);
        const attentionMask = tf.tensor3d(Array.from({ length: 48 }, (_, i) => (i % 4 === 3 ? 0 : 1)), [2, 4, 6]);
        const combined = tf.mul(tf.mul(attentionMask, tf.expandDims(valueMask, 1)), tril);
        close(out(layer.apply(x, { value, valueMask, attentionMask, useCausalMask: true })),
          reference(layer, x, value, value, { mask: combined }).out);
        // Self-attention: the layer's `causal` (end-aligned) is the same triangle when Tq = Tk.
        const causal = make({ causal: true });
        causal.apply(x);
        causal.setWeights((() => { layer.apply(x); return layer.getWeights(); })());
        close(out(layer.apply(x, { useCausalMask: true })), out(causal.apply(x)));
        expectArgumentError(() => layer.apply(x, { use_causal_mask: true }), /argument 'use_causal_mask' must be a call option of \w+ \(did you mean 'useCausalMask'\?\)/);
        expectArgumentError(() => layer.apply(x, { useCausalMask: 1 }), /argument 'useCausalMask' must be a boolean/);
        tf.dispose([tril, valueMask, attentionMask, combined]);
      });

      test('returnAttentionScores: [output, scores [B, H, Tq, Tk]], eager and in a functional model', () => {
        const layer = make();
        const [y, scores] = pair(layer.apply(x, { value, returnAttentionScores: true }));
        const ref = reference(layer, x, value, value);
        close(y, ref.out);
        expect(scores.shape).toEqual([2, H, 4, 6]);
        close(scores, ref.scores);
        // The scores are tracked like any output: a tidy frees them.
        const before = tf.memory().numTensors;
        tf.tidy(() => { layer.apply(x, { value, returnAttentionScores: true }); });
        expect(tf.memory().numTensors).toBe(before);
        const q = tfl.input({ shape: [4, 5] });
        const v = tfl.input({ shape: [6, 5] });
        const outputs = pair(layer.apply(q, { value: v, returnAttentionScores: true })) as unknown as tfl.SymbolicTensor[];
        expect(outputs.map((t) => t.shape)).toEqual([[null, 4, 5], [null, H, 4, 6]]);
        const model = tfl.model({ inputs: [q, v], outputs });
        const [my, ms] = model.predict([x, value]) as tf.Tensor[];
        close(my, ref.out);
        close(ms, ref.scores);
      });

      test('a functional model keeps its call options in predict and through save/load', async () => {
        const layer = make();
        const q = tfl.input({ shape: [4, 5] });
        const v = tfl.input({ shape: [6, 5] });
        const m = tfl.input({ shape: [4, 6] });
        const y = layer.apply(q, { value: v, attentionMask: m, useCausalMask: true }) as tfl.SymbolicTensor;
        const model = tfl.model({ inputs: [q, v, m], outputs: y });
        const attentionMask = tf.tensor3d(Array.from({ length: 48 }, (_, i) => (i % 5 === 2 ? 0 : 1)), [2, 4, 6]);
        const tril = tf.linalg.bandPart(tf.ones([4, 6]), -1, 0);
        const expected = reference(layer, x, value, value, { mask: tf.mul(attentionMask, tril) }).out;
        close(model.predict([x, value, attentionMask]) as tf.Tensor, expected);
        const artifacts: tf.io.ModelArtifacts[] = [];
        await model.save(tf.io.withSaveHandler(async (a) => { artifacts.push(a); return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
        const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts[0]));
        close(loaded.predict([x, value, attentionMask]) as tf.Tensor, expected);
        // One set of call options per layer in a model (tfjs's executor passes none to the layer).
        expectArgumentError(() => layer.apply(q, { value: v }), /argument 'call options' must be the same inputs and call options at every application/);
        tf.dispose([attentionMask, tril]);
      });

      test('getConfig/fromConfig round trip of every Keras option', () => {
        const args: Extra = {
          outputShape: [3, 2], attentionAxes: 1, biasInitializer: 'ones', kernelInitializer: 'glorotNormal',
          kernelRegularizer: 'l2', biasRegularizer: tfl.regularizers.l1l2({ l1: 0.1, l2: 0.2 }), activityRegularizer: 'l1',
          kernelConstraint: 'nonNeg', biasConstraint: tfl.constraints.maxNorm({ maxValue: 2 }), seed: 3, dropout: 0.25, valueDim: 4,
        };
        const layer = make(args);
        const config = layer.getConfig();
        expect(config).toMatchObject({
          outputShape: [3, 2], attentionAxes: [1], seed: 3, dropout: 0.25, valueDim: 4,
          biasInitializer: { className: 'Ones' },
          kernelRegularizer: { className: 'L1L2', config: { l1: 0, l2: 0.01 } },
          biasRegularizer: { className: 'L1L2', config: { l1: 0.1, l2: 0.2 } },
          activityRegularizer: { className: 'L1L2', config: { l1: 0.01, l2: 0 } },
          kernelConstraint: { className: 'NonNeg' },
          biasConstraint: { className: 'MaxNorm', config: { maxValue: 2 } },
        });
        const cls = layer.constructor as typeof MultiHeadAttention;
        const copy = tf.serialization.SerializationMap.getMap().classNameMap[cls.className][1](cls, JSON.parse(JSON.stringify(config))) as Layer;
        expect(copy.getConfig()).toEqual(config);
        expect(copy).toBeInstanceOf(cls);
      });
    });
  }

  test('the Keras masks combine with the layer\'s own options as its padding mask does (softmax and hstu, causal, relative positions)', () => {
    const mask = tf.tensor2d([[1, 1, 0, 1], [0, 1, 1, 1]]);
    for (const attention of ['softmax', 'hstu'] as const) {
      const layer = new MultiHeadAttention({ numHeads: H, keyDim: DK, attention, causal: true, relativePositions: 3 });
      const viaOp = out(layer.apply([x, mask]));
      close(out(layer.apply(x, { valueMask: mask })), viaOp);
      close(out(layer.apply(x, { valueMask: mask, attentionMask: tf.ones([2, 4, 4]) })), viaOp);
    }
    mask.dispose();
  });

  test('every Keras argument is an option of both layers (or rejected by name)', () => {
    // Keras 3's MultiHeadAttention arguments, camelCase (tfjs's naming).
    const keras = ['numHeads', 'keyDim', 'valueDim', 'dropout', 'useBias', 'outputShape', 'attentionAxes', 'flashAttention', 'kernelInitializer',
      'biasInitializer', 'kernelRegularizer', 'biasRegularizer', 'activityRegularizer', 'kernelConstraint', 'biasConstraint', 'seed'];
    for (const key of keras) expect(ATTENTION_OPTION_KEYS).toContain(key);
    for (const make of Object.values(makers)) {
      expectArgumentError(() => make({ output_shape: 4 } as Extra), /argument 'output_shape' must be an option of/);
    }
  });
});
