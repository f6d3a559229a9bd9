// What the zoo's CTR models share: options, the batch as tensors, embeddings with per-event
// features, the DIN-style target-attention block (the single layer swap: MultiHeadAttention or
// CollectiveKVAttention), an MLP head and weight bookkeeping. Models are plain objects with a
// custom forward rather than tfjs-layers functional models: their retrieval stages (top-k,
// hashing) are not differentiable graph ops, and a custom loop is needed for the aux losses anyway.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  CollectiveKVAttention, CtrBatch, MultiHeadAttention, POSITION_BUCKETS, RATING_VALUES, TIME_BUCKETS, dim, gatherRows,
} from '../../internal';
import { BlockAttention, CollectiveOptions, PointwiseDense } from '../sequential/blocks';

export type { CollectiveOptions } from '../sequential/blocks';
export type CtrAttention = 'mha' | 'collectivekv';
/** @inline */
export type AttentionLayer = MultiHeadAttention | CollectiveKVAttention;

/** Options every CTR model takes. `attention` is the swap; nothing else changes between variants. */
export interface CtrModelOptions {
  /** Item ids run 1..numItems (0 = padding). */
  numItems: number;
  attention?: CtrAttention;
  /** CollectiveKVAttention's own arguments (poolSize, userDim, share, ...). */
  collective?: CollectiveOptions;
  /** Also swap the long-term exact-search attention (SIM, ETA, TWIN). Default false. */
  collectiveExact?: boolean;
  /** Width of item and feature embeddings (the query and K/V source width). Default 32. */
  embeddingDim?: number;
  /** Attention width numHeads * keyDim. Default 64. */
  attentionWidth?: number;
  numHeads?: number;
  /** Short-term behaviours (the most recent). Default 50. */
  shortLength?: number;
  /** Long history for the retrieval models (most recent events). Default 1000. */
  longLength?: number;
  /** Behaviours the retrieval keeps. Default 50 (TWIN 100). */
  topK?: number;
  /** Hidden widths of the MLP head. Default [128, 64]. */
  mlpUnits?: number[];
  /** Seeds every initializer and hash plane. Default 1. */
  seed?: number;
}

export interface ResolvedCtrModelOptions {
  numItems: number;
  attention: CtrAttention;
  collective: CollectiveOptions;
  collectiveExact: boolean;
  embeddingDim: number;
  attentionWidth: number;
  numHeads: number;
  shortLength: number;
  longLength: number;
  topK: number;
  mlpUnits: number[];
  seed: number;
}

export function resolveCtrModelOptions(model: string, o: CtrModelOptions, defaultTopK = 50): ResolvedCtrModelOptions {
  const r: ResolvedCtrModelOptions = {
    numItems: o.numItems,
    attention: o.attention ?? 'mha',
    collective: o.collective ?? {},
    collectiveExact: o.collectiveExact ?? false,
    embeddingDim: o.embeddingDim ?? 32,
    attentionWidth: o.attentionWidth ?? 64,
    numHeads: o.numHeads ?? 4,
    shortLength: o.shortLength ?? 50,
    longLength: o.longLength ?? 1000,
    topK: o.topK ?? defaultTopK,
    mlpUnits: o.mlpUnits ?? [128, 64],
    seed: o.seed ?? 1,
  };
  for (const key of ['numItems', 'embeddingDim', 'attentionWidth', 'numHeads', 'shortLength', 'longLength', 'topK'] as const) {
    if (!Number.isInteger(r[key]) || r[key] < 1) throw new Error(`${model}: ${key} must be a positive integer, received ${r[key]}`);
  }
  if (r.attentionWidth % r.numHeads !== 0) {
    throw new Error(`${model}: numHeads must divide attentionWidth ${r.attentionWidth}, received ${r.numHeads}`);
  }
  if (r.attention !== 'mha' && r.attention !== 'collectivekv') {
    throw new Error(`${model}: attention must be 'mha' or 'collectivekv', received ${JSON.stringify(r.attention)}`);
  }
  if (r.shortLength > r.longLength) throw new Error(`${model}: shortLength ${r.shortLength} must not exceed longLength ${r.longLength}`);
  if (!r.mlpUnits.every((u) => Number.isInteger(u) && u >= 1)) {
    throw new Error(`${model}: mlpUnits must be positive integers, received ${JSON.stringify(r.mlpUnits)}`);
  }
  return r;
}

// ---------------------------------------------------------------- inputs

/** A CtrBatch as tensors (int32 ids [B, L], float mask [B, L], candidates [B]); `extra` holds a model's retrieval results. */
export interface CtrInputs {
  items: tf.Tensor2D;
  positions: tf.Tensor2D;
  timeGaps: tf.Tensor2D;
  ratings: tf.Tensor2D;
  eventLabels: tf.Tensor2D;
  mask: tf.Tensor2D;
  candidates: tf.Tensor1D;
  extra: tf.Tensor[];
}

/** Tensors of a batch; the caller disposes them with `disposeInputs`. */
export function toInputs(batch: CtrBatch): CtrInputs {
  const shape: [number, number] = [batch.batchSize, batch.historyLength];
  const ids = (a: Int32Array) => tf.tensor2d(a, shape, 'int32');
  const items = ids(batch.items);
  return {
    items, positions: ids(batch.positions), timeGaps: ids(batch.timeGaps), ratings: ids(batch.ratings), eventLabels: ids(batch.eventLabels),
    mask: tf.tidy(() => tf.cast(tf.notEqual(items, 0), 'float32')) as tf.Tensor2D,
    candidates: tf.tensor1d(batch.candidates, 'int32'), extra: [],
  };
}

export function disposeInputs(inputs: CtrInputs): void {
  tf.dispose([inputs.items, inputs.positions, inputs.timeGaps, inputs.ratings, inputs.eventLabels, inputs.mask, inputs.candidates, ...inputs.extra]);
}

/** The last `length` history slots of every per-event tensor (the short-term window). Scope-owned. */
export function lastSlots(inputs: CtrInputs, length: number): CtrInputs {
  const L = dim(inputs.items, 1);
  if (length >= L) return inputs;
  const cut = <T extends tf.Tensor2D>(t: T) => tf.slice(t, [0, L - length], [-1, length]) as T;
  return {
    items: cut(inputs.items), positions: cut(inputs.positions), timeGaps: cut(inputs.timeGaps), ratings: cut(inputs.ratings),
    eventLabels: cut(inputs.eventLabels), mask: cut(inputs.mask), candidates: inputs.candidates, extra: inputs.extra,
  };
}

// ---------------------------------------------------------------- weights

/** Seeded variables owned by a model (embeddings, hash planes) next to the tfjs layers it calls. */
export class WeightStore {
  private readonly variables: tf.Variable[] = [];
  private readonly layers: tfl.layers.Layer[] = [];
  private seed: number;

  constructor(seed: number) {
    this.seed = seed;
  }

  nextSeed(): number {
    return this.seed++;
  }

  /** A trainable normal(0, stddev) variable. */
  normal(shape: number[], stddev: number): tf.Variable {
    return this.seededVariable(shape, stddev, true);
  }

  /** A fixed (not trained) tensor, such as random hash planes; part of the weights so a round trip keeps it. */
  constant(shape: number[]): tf.Variable {
    return this.seededVariable(shape, 1, false);
  }

  private seededVariable(shape: number[], stddev: number, trainable: boolean): tf.Variable {
    const init = tf.randomNormal(shape, 0, stddev, 'float32', this.nextSeed());
    const v = tf.variable(init, trainable, undefined, 'float32');
    // The variable holds its own reference to the data; the initial tensor would otherwise outlive the model.
    init.dispose();
    this.variables.push(v);
    return v;
  }

  layer<T extends tfl.layers.Layer>(layer: T): T {
    this.layers.push(layer);
    return layer;
  }

  trainable(): tf.Variable[] {
    const own = this.variables.filter((v) => v.trainable);
    const fromLayers = this.layers.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
    return [...own, ...fromLayers];
  }

  /** Copies of every weight, variables first, then each layer's in order. */
  getWeights(): tf.Tensor[] {
    return [...this.variables.map((v) => tf.clone(v)), ...this.layers.flatMap((l) => l.getWeights().map((w) => tf.clone(w)))];
  }

  setWeights(weights: readonly tf.Tensor[]): void {
    const expected = this.variables.length + this.layers.reduce((n, l) => n + l.weights.length, 0);
    if (weights.length !== expected) throw new Error(`setWeights: expected ${expected} tensors (this model's getWeights()), received ${weights.length}`);
    this.variables.forEach((v, i) => v.assign(weights[i]));
    let k = this.variables.length;
    for (const l of this.layers) {
      l.setWeights(weights.slice(k, k + l.weights.length) as tf.Tensor[]);
      k += l.weights.length;
    }
  }

  /**
   * Copies `source`'s weights into this store's, variables and layers by position (a store filled
   * by the same builder with the same options), except the layers `skip` picks in this store.
   */
  copyFrom(source: WeightStore, skip: (layer: tfl.layers.Layer) => boolean): void {
    if (source.variables.length !== this.variables.length || source.layers.length !== this.layers.length) {
      throw new Error(`copyFrom: expected a store of ${this.variables.length} variables and ${this.layers.length} layers (same builder), `
        + `received ${source.variables.length} and ${source.layers.length}`);
    }
    this.variables.forEach((v, i) => {
      const from = source.variables[i];
      if (!tf.util.arraysEqual(v.shape, from.shape)) throw new Error(`copyFrom: variable ${i} has shape [${v.shape}], the source's [${from.shape}]`);
      v.assign(from);
    });
    this.layers.forEach((layer, i) => {
      if (skip(layer)) return;
      const from = source.layers[i];
      if (from.getClassName() !== layer.getClassName()) {
        throw new Error(`copyFrom: layer ${i} ('${layer.name}') is a ${layer.getClassName()}, the source's a ${from.getClassName()}`);
      }
      layer.setWeights(from.getWeights());
    });
  }

  dispose(): void {
    tf.dispose(this.variables);
    for (const l of this.layers) if (l.built) l.dispose();
  }
}

// ---------------------------------------------------------------- embeddings

/** Item table plus per-event feature tables; the K/V source of an event is their sum. */
export class EventEmbeddings {
  readonly items: tf.Variable;
  private readonly positions: tf.Variable;
  private readonly timeGaps: tf.Variable;
  private readonly ratings: tf.Variable;

  constructor(store: WeightStore, numItems: number, width: number) {
    this.items = store.normal([numItems + 1, width], 0.05);
    this.positions = store.normal([POSITION_BUCKETS, width], 0.05);
    this.timeGaps = store.normal([TIME_BUCKETS, width], 0.05);
    this.ratings = store.normal([RATING_VALUES, width], 0.05);
  }

  /** ids [...] -> [..., width] (gatherRows: its gradient is a scatter-add, fast on cpu and wasm). */
  item(ids: tf.Tensor): tf.Tensor {
    return gatherRows(this.items, ids);
  }

  /** K/V source of each history event [B, L, width]: item + position + time gap + rating embeddings. */
  events(inputs: CtrInputs): tf.Tensor3D {
    return tf.tidy(() => tf.addN([
      gatherRows(this.items, inputs.items), gatherRows(this.positions, inputs.positions),
      gatherRows(this.timeGaps, inputs.timeGaps), gatherRows(this.ratings, inputs.ratings),
    ])) as tf.Tensor3D;
  }
}

// ---------------------------------------------------------------- target attention (DIN block)

/** One attention layer of the model's kind: MultiHeadAttention, or CollectiveKVAttention when `collective`. */
export function makeAttention(o: ResolvedCtrModelOptions, collective: boolean, name: string, seed: number,
  extra: Partial<BlockAttention> = {}): AttentionLayer {
  const common = {
    numHeads: o.numHeads, keyDim: o.attentionWidth / o.numHeads, name, ...extra,
    kernelInitializer: tfl.initializers.glorotUniform({ seed }),
  };
  // poolSeed: the pools start from the same values in every run of one seed (reproducible runs).
  return collective ? new CollectiveKVAttention({ ...common, ...o.collective, poolSeed: seed + 1 }) : new MultiHeadAttention(common);
}

/**
 * DIN-style target attention: the candidate embedding [B, de] is the query, the events [B, T, de]
 * (masked) the keys/values; returns the attended interest [B, de].
 */
export class TargetAttention {
  constructor(readonly layer: AttentionLayer) {}

  call(query: tf.Tensor, events: tf.Tensor, mask: tf.Tensor, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const [b, d] = [dim(query, 0), dim(query, 1)];
      const q = tf.reshape(query, [b, 1, d]);
      const out = this.layer.apply([q, events, mask], { training }) as tf.Tensor;
      return tf.reshape(out, [b, d]) as tf.Tensor2D;
    });
  }
}

// ---------------------------------------------------------------- MLP head

/** relu MLP over the concatenated features, then one logit. */
export class MlpHead {
  private readonly hidden: PointwiseDense[];
  private readonly out: PointwiseDense;

  constructor(store: WeightStore, units: number[], name: string) {
    this.hidden = units.map((u, i) => store.layer(new PointwiseDense({
      units: u, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: store.nextSeed() }), name: `${name}_dense${i}` })));
    this.out = store.layer(new PointwiseDense({ units: 1, kernelInitializer: tfl.initializers.glorotUniform({ seed: store.nextSeed() }), name: `${name}_logit` }));
  }

  /** features [B, F] -> logits [B]. */
  call(features: tf.Tensor): tf.Tensor1D {
    return tf.tidy(() => {
      let x = features;
      for (const layer of this.hidden) x = layer.apply(x) as tf.Tensor;
      return tf.reshape(this.out.apply(x) as tf.Tensor, [-1]) as tf.Tensor1D;
    });
  }
}

// ---------------------------------------------------------------- the model contract

/** What the CTR training loop, the benchmark and the tests need from a model. */
export interface CtrModel {
  readonly name: string;
  readonly options: ResolvedCtrModelOptions;
  /** History slots a batch must carry. */
  readonly historyLength: number;
  /**
   * Runs the model's non-differentiable retrieval stage (top-k, hashing) with the current weights
   * and stores its results in `inputs.extra`; call before `logits` (outside the gradient tape).
   */
  prepare(inputs: CtrInputs): void;
  /** Click logits [B]. */
  logits(inputs: CtrInputs, training: boolean): tf.Tensor1D;
  trainableVariables(): tf.Variable[];
  /** Sum of the CollectiveKV layers' auxiliary losses of the last training forward (0 for MHA). */
  auxiliaryLoss(): tf.Scalar;
  attentionLayers(): AttentionLayer[];
  /** Width of each attention layer's K/V source (to probe cache sizes). */
  readonly kvSourceWidth: number;
  getWeights(): tf.Tensor[];
  setWeights(weights: readonly tf.Tensor[]): void;
  dispose(): void;
}

/** Shared plumbing of the zoo's CTR models; subclasses add their layers and the forward. */
export abstract class CtrModelBase implements CtrModel {
  protected readonly store: WeightStore;
  readonly embeddings: EventEmbeddings;
  protected readonly attentions: AttentionLayer[] = [];

  constructor(readonly name: string, readonly options: ResolvedCtrModelOptions, readonly historyLength: number) {
    this.store = new WeightStore(options.seed);
    this.embeddings = new EventEmbeddings(this.store, options.numItems, options.embeddingDim);
  }

  get kvSourceWidth(): number {
    return this.options.embeddingDim;
  }

  protected attentionLayer(collective: boolean, name: string, extra: Partial<BlockAttention> = {}): AttentionLayer {
    const layer = this.store.layer(makeAttention(this.options, collective, name, this.store.nextSeed(), extra));
    this.attentions.push(layer);
    return layer;
  }

  /** Builds every layer with a one-row forward (tfjs layers create weights on first call). */
  protected buildLayers(): void {
    const L = this.historyLength;
    const batch: CtrBatch = {
      batchSize: 1, historyLength: L, items: new Int32Array(L).fill(1), positions: new Int32Array(L).fill(1), timeGaps: new Int32Array(L),
      ratings: new Int32Array(L), eventLabels: new Int32Array(L).fill(1), candidates: Int32Array.of(1), labels: Float32Array.of(1),
      users: Int32Array.of(0),
    };
    const inputs = toInputs(batch);
    this.prepare(inputs);
    tf.dispose(this.logits(inputs, false));
    disposeInputs(inputs);
  }

  prepare(inputs: CtrInputs): void {
    void inputs;
  }

  abstract logits(inputs: CtrInputs, training: boolean): tf.Tensor1D;

  trainableVariables(): tf.Variable[] {
    return this.store.trainable();
  }

  auxiliaryLoss(): tf.Scalar {
    const losses = this.attentions.filter((l): l is CollectiveKVAttention => l instanceof CollectiveKVAttention).map((l) => l.auxiliaryLoss());
    if (losses.length === 0) return tf.scalar(0);
    if (losses.length === 1) return losses[0];
    const sum = tf.addN(losses) as tf.Scalar;
    tf.dispose(losses);
    return sum;
  }

  attentionLayers(): AttentionLayer[] {
    return this.attentions.slice();
  }

  getWeights(): tf.Tensor[] {
    return this.store.getWeights();
  }

  /**
   * Copies every weight of `source` (a model of the same builder and options but for the attention
   * kind) into this one, except into this model's CollectiveKVAttention layers: their weights are
   * the conversion's (see convertCtrModel).
   */
  copyWeightsFrom(source: CtrModelBase): void {
    this.store.copyFrom(source.store, (layer) => layer instanceof CollectiveKVAttention);
  }

  setWeights(weights: readonly tf.Tensor[]): void {
    this.store.setWeights(weights);
  }

  dispose(): void {
    this.store.dispose();
  }
}

/**
 * Stored bytes per cached history token, summed over the model's attention modules, read from real
 * cache blocks (`computeCache` on a one-token probe), in fp32.
 */
export function cacheBytesPerToken(model: CtrModel): number {
  return tf.tidy(() => {
    const probe = tf.ones([1, 1, model.kvSourceWidth]);
    let bytes = 0;
    for (const layer of model.attentionLayers()) {
      const block = layer.computeCache(probe);
      bytes += block.bytesPerToken('fp32');
      block.dispose();
    }
    return bytes;
  });
}

/** Row-wise gather: rows [B, T, d] at indices [B, k] -> [B, k, d] (flattened so the gradient is a scatter-add). */
export function gatherPerRow(rows: tf.Tensor, indices: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [b, t] = [dim(rows, 0), dim(rows, 1)];
    const k = dim(indices, 1);
    const offsets = tf.mul(tf.reshape(tf.range(0, b, 1, 'int32'), [b, 1]), tf.scalar(t, 'int32'));
    const flatIdx = tf.add(indices, offsets);
    if (rows.rank === 2) return tf.reshape(tf.gather(tf.reshape(rows, [b * t]), flatIdx), [b, k]);
    const d = dim(rows, 2);
    return tf.reshape(gatherRows(tf.reshape(rows, [b * t, d]), flatIdx), [b, k, d]);
  });
}
