// SASRec (Kang & McAuley, 2018) on collectivekv's attention layers: the zoo's reference
// next-item model. `attention: 'mha' | 'collectivekv'` is the single layer swap.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import { CollectiveKVAttention, CollectiveKVAttentionArgs, KVCacheBlock, MultiHeadAttention, MultiHeadAttentionArgs, dim, linear } from 'collectivekv';

/**
 * CollectiveKVAttention's own arguments (everything beyond MultiHeadAttention's: poolSize, userDim,
 * share, router, ...; see CollectiveKVAttentionArgs). The zoo seeds the pools itself (poolSeed).
 */
export type CollectiveOptions = Omit<CollectiveKVAttentionArgs, keyof MultiHeadAttentionArgs | 'poolSeed'>;

export interface SasrecOptions {
  numItems: number;
  /** Positions per sequence (the window); longer histories keep their most recent items. */
  maxLength: number;
  hiddenDim?: number;
  numBlocks?: number;
  numHeads?: number;
  dropout?: number;
  attention?: 'mha' | 'collectivekv';
  collective?: CollectiveOptions;
  /** Seeds the weight initializers (CollectiveKV pools included), so two builds with one seed start from the same weights. */
  seed?: number;
}

export type ResolvedSasrecOptions = Required<Omit<SasrecOptions, 'collective' | 'seed'>> & { collective: CollectiveOptions; seed?: number };

export type AttentionLayer = MultiHeadAttention | CollectiveKVAttention;

interface SasrecBlock {
  /** Normalizes the query side only (SASRec's reference: Q = LN(x), K/V from x). */
  queryNorm: tfl.layers.Layer;
  attention: AttentionLayer;
  residual1: tfl.layers.Layer;
  norm1: tfl.layers.Layer;
  ffnIn: tfl.layers.Layer;
  ffnDropout: tfl.layers.Layer;
  ffnOut: tfl.layers.Layer;
  outDropout: tfl.layers.Layer;
  residual2: tfl.layers.Layer;
}

/** The layers of a SASRec model, so that training, the full forward and the cached decode share them. */
export interface SasrecParts extends SequenceInputParts {
  blocks: SasrecBlock[];
  finalNorm: tfl.layers.Layer;
}

export interface Sasrec {
  /** ids [B, maxLength] int32 (0 = padding, left-padded) -> hidden states [B, maxLength, hiddenDim]. */
  model: tfl.LayersModel;
  parts: SasrecParts;
  options: ResolvedSasrecOptions;
}

// ---------------------------------------------------------------- helper layers

/** ids [B, T] -> float32 mask [B, T]: 1 for an item, 0 for padding. */
export class PaddingMask extends tfl.layers.Layer {
  static className = 'SasrecPaddingMask';

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const ids = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.tidy(() => tf.cast(tf.notEqual(ids, 0), 'float32'));
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return inputShape as tfl.Shape;
  }
}

interface PositionEmbeddingArgs {
  maxLength: number;
  width: number;
  seed?: number;
  name?: string;
}

/**
 * Adds a learned position vector per slot. Slots are absolute in the left-padded window, so the
 * most recent item always has slot maxLength - 1. By default inputs are the window's last T slots;
 * kwargs.start places them elsewhere (the cached decode embeds the prefix at 0 and the step at the end).
 */
export class PositionEmbedding extends tfl.layers.Layer {
  static className = 'SasrecPositionEmbedding';
  readonly maxLength: number;
  readonly width: number;
  private readonly seed?: number;
  private table: tfl.LayerVariable | null = null;

  constructor(args: PositionEmbeddingArgs) {
    super({ name: args.name });
    this.maxLength = args.maxLength;
    this.width = args.width;
    this.seed = args.seed;
  }

  override build(): void {
    this.table = this.addWeight('positions', [this.maxLength, this.width], 'float32',
      tfl.initializers.randomNormal({ mean: 0, stddev: 0.05, seed: this.seed }));
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { start?: number }): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const length = dim(x, 1);
    return tf.tidy(() => tf.add(x, this.slots(kwargs.start ?? this.maxLength - length, length)));
  }

  /** Position vectors of slots [start, start + length): [length, width]. */
  slots(start: number, length: number): tf.Tensor {
    if (this.table == null) throw new Error('PositionEmbedding: call the model once before reading positions');
    if (start < 0 || start + length > this.maxLength) {
      throw new Error(`PositionEmbedding: slots [${start}, ${start + length}) fall outside the window of ${this.maxLength}`);
    }
    return tf.slice(this.table.read(), [start, 0], [length, this.width]);
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return inputShape as tfl.Shape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), maxLength: this.maxLength, width: this.width };
  }
}

/**
 * Layer normalization over the last axis with learned scale and offset, written with broadcasting
 * ops. Why not tfjs's LayerNormalization: its gradient goes through FusedBatchNorm's, which tiles
 * gamma/beta to the input shape, and tfjs's Tile gradient issues one Slice + Add per tiled copy:
 * 2 x B x T kernels per norm (about 50,000 per training step at batch 128, length 40), which made
 * a training step take seconds. Here the broadcast gradient is one Sum.
 */
export class LayerNorm extends tfl.layers.Layer {
  static className = 'SasrecLayerNorm';
  readonly width: number;
  readonly epsilon: number;
  private gamma: tfl.LayerVariable | null = null;
  private beta: tfl.LayerVariable | null = null;

  constructor(args: { width: number; epsilon?: number; name?: string }) {
    super({ name: args.name });
    this.width = args.width;
    this.epsilon = args.epsilon ?? 1e-6;
  }

  override build(): void {
    this.gamma = this.addWeight('gamma', [this.width], 'float32', tfl.initializers.ones());
    this.beta = this.addWeight('beta', [this.width], 'float32', tfl.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const gamma = (this.gamma as tfl.LayerVariable).read();
    const beta = (this.beta as tfl.LayerVariable).read();
    return tf.tidy(() => {
      const centered = tf.sub(x, tf.mean(x, -1, true));
      const variance = tf.mean(tf.square(centered), -1, true);
      return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, this.epsilon))), gamma), beta);
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return inputShape as tfl.Shape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), width: this.width, epsilon: this.epsilon };
  }
}

/**
 * x [..., in] -> act(x W + b) [..., units] with plain matMul + add. Why not tfjs's Dense: on
 * 3-D inputs it runs fusedMatMul, and tfjs-backend-wasm's FusedMatMul under a gradient tape trips
 * tfjs's kernel leak check ("internal memory leak (4 data ids)") whenever IS_TEST is set (tests).
 */
export class PointwiseDense extends tfl.layers.Layer {
  static className = 'SasrecPointwiseDense';
  readonly units: number;
  readonly activation: 'relu' | 'linear';
  private readonly kernelInitializer: Initializer;
  private kernel: tfl.LayerVariable | null = null;
  private bias: tfl.LayerVariable | null = null;

  constructor(args: { units: number; activation?: 'relu' | 'linear'; kernelInitializer?: Initializer; name?: string }) {
    super({ name: args.name });
    this.units = args.units;
    this.activation = args.activation ?? 'linear';
    this.kernelInitializer = args.kernelInitializer ?? tfl.initializers.glorotUniform({});
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const inputDim = shape[shape.length - 1] as number;
    this.kernel = this.addWeight('kernel', [inputDim, this.units], 'float32', this.kernelInitializer);
    this.bias = this.addWeight('bias', [this.units], 'float32', tfl.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const kernel = (this.kernel as tfl.LayerVariable).read();
    const bias = (this.bias as tfl.LayerVariable).read();
    return tf.tidy(() => {
      // collectivekv's linear: its gradient avoids wasm's slow transposed products.
      const y = linear(x, kernel, bias);
      return this.activation === 'relu' ? tf.relu(y) : y;
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [...shape.slice(0, -1), this.units];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units, activation: this.activation };
  }
}

tf.serialization.registerClass(PointwiseDense);
tf.serialization.registerClass(LayerNorm);
tf.serialization.registerClass(PaddingMask);
tf.serialization.registerClass(PositionEmbedding);

// ---------------------------------------------------------------- builder

export function resolveSasrecOptions(options: SasrecOptions): ResolvedSasrecOptions {
  const hiddenDim = options.hiddenDim ?? 64;
  const o: ResolvedSasrecOptions = {
    numItems: options.numItems,
    maxLength: options.maxLength,
    hiddenDim,
    numBlocks: options.numBlocks ?? 2,
    numHeads: options.numHeads ?? (hiddenDim % 2 === 0 ? 2 : 1),
    dropout: options.dropout ?? 0.2,
    attention: options.attention ?? 'mha',
    collective: options.collective ?? {},
    seed: options.seed,
  };
  for (const key of ['numItems', 'maxLength', 'hiddenDim', 'numBlocks', 'numHeads'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new Error(`buildSasrec: ${key} must be a positive integer, received ${o[key]}`);
  }
  if (o.hiddenDim % o.numHeads !== 0) throw new Error(`buildSasrec: numHeads ${o.numHeads} must divide hiddenDim ${o.hiddenDim}`);
  if (!(o.dropout >= 0 && o.dropout < 1)) throw new Error(`buildSasrec: dropout must be in [0, 1), received ${o.dropout}`);
  if (o.attention !== 'mha' && o.attention !== 'collectivekv') {
    throw new Error(`buildSasrec: attention must be 'mha' or 'collectivekv', received ${JSON.stringify(o.attention)}`);
  }
  return o;
}

/**
 * SASRec as a tfjs-layers functional model: item embedding + learned positions, then per block
 * causal self-attention (padding mask as the third input), residual + LayerNorm, point-wise
 * feed-forward, residual + LayerNorm. Scores are dot products with the (shared) item embedding table.
 */
export function buildSasrec(options: SasrecOptions): Sasrec {
  const o = resolveSasrecOptions(options);
  const parts = makeParts(o);
  const ids = tfl.input({ shape: [o.maxLength], dtype: 'int32', name: 'item_ids' });
  const hidden = forward(parts, ids, {});
  const model = tfl.model({ inputs: ids, outputs: hidden, name: `sasrec_${o.attention}` });
  return { model, parts, options: o };
}

/** Seeds drawn one after another from `seed` (none when it is undefined), and glorot kernels that draw from them. */
export function seedStream(seed: number | undefined): { nextSeed: () => number | undefined; kernel: () => Initializer } {
  let next = seed;
  const nextSeed = () => (next == null ? undefined : next++);
  return { nextSeed, kernel: () => tfl.initializers.glorotUniform({ seed: nextSeed() }) };
}

/** The input layers of the zoo's next-item models: item embedding (`itemRows` rows, normal(0, 0.05)), learned positions, padding mask, embedding dropout. */
export interface SequenceInputParts {
  itemEmbedding: tfl.layers.Layer;
  positions: PositionEmbedding;
  paddingMask: tfl.layers.Layer;
  embeddingDropout: tfl.layers.Layer;
}

export function sequenceInputs(o: { hiddenDim: number; maxLength: number; dropout: number }, nextSeed: () => number | undefined,
  itemRows: number): SequenceInputParts {
  const d = o.hiddenDim;
  return {
    itemEmbedding: tfl.layers.embedding({ inputDim: itemRows, outputDim: d, name: 'item_embedding',
      embeddingsInitializer: tfl.initializers.randomNormal({ mean: 0, stddev: 0.05, seed: nextSeed() }) }),
    positions: new PositionEmbedding({ maxLength: o.maxLength, width: d, seed: nextSeed(), name: 'positions' }),
    paddingMask: new PaddingMask({ name: 'padding_mask' }),
    embeddingDropout: tfl.layers.dropout({ rate: o.dropout, seed: nextSeed(), name: 'embedding_dropout' }),
  };
}

function makeParts(o: ResolvedSasrecOptions): SasrecParts {
  const d = o.hiddenDim;
  const { nextSeed, kernel } = seedStream(o.seed);
  const blocks: SasrecBlock[] = [];
  for (let b = 0; b < o.numBlocks; b++) {
    blocks.push({
      queryNorm: new LayerNorm({ width: d, name: `block${b}_query_norm` }),
      attention: makeAttention(o, b, kernel()),
      residual1: tfl.layers.add({ name: `block${b}_residual1` }),
      norm1: new LayerNorm({ width: d, name: `block${b}_norm1` }),
      ffnIn: new PointwiseDense({ units: d, activation: 'relu', kernelInitializer: kernel(), name: `block${b}_ffn_in` }),
      ffnDropout: tfl.layers.dropout({ rate: o.dropout, seed: nextSeed(), name: `block${b}_ffn_dropout` }),
      ffnOut: new PointwiseDense({ units: d, kernelInitializer: kernel(), name: `block${b}_ffn_out` }),
      outDropout: tfl.layers.dropout({ rate: o.dropout, seed: nextSeed(), name: `block${b}_out_dropout` }),
      residual2: tfl.layers.add({ name: `block${b}_residual2` }),
    });
  }
  return {
    ...sequenceInputs(o, nextSeed, o.numItems + 1),
    blocks,
    finalNorm: new LayerNorm({ width: d, name: 'final_norm' }),
  };
}

/** How a zoo model's blocks attend: SASRec causal softmax, BERT4Rec bidirectional, HSTU causal SiLU. */
export interface BlockAttention {
  causal: boolean;
  attention?: 'softmax' | 'hstu';
  /** The layers' relativePositions (HSTU's relative position bias). */
  relativePositions?: number;
}

/**
 * Block `block`'s attention layer: the one place where a zoo model's `attention` option picks the
 * class (the swap changes nothing else).
 */
export function makeAttention(o: ResolvedSasrecOptions, block: number, kernelInitializer: Initializer,
  kind: BlockAttention = { causal: true }): AttentionLayer {
  const common = { numHeads: o.numHeads, keyDim: o.hiddenDim / o.numHeads, dropout: o.dropout, ...kind, kernelInitializer };
  if (o.attention === 'mha') return new MultiHeadAttention({ ...common, name: `block${block}_attention` });
  // Seeded pools (when the model is seeded) so that a run repeats; derived, not drawn from the
  // model's seed stream, so mha models keep their weights.
  const poolSeed = o.seed == null ? undefined : (o.seed * 7919 + block * 104729) % 2147483647;
  return new CollectiveKVAttention({ ...common, ...o.collective, poolSeed, name: `block${block}_attention` });
}

// ---------------------------------------------------------------- forward passes

type Flow = tf.Tensor | tfl.SymbolicTensor;

interface ForwardKwargs {
  training?: boolean;
}

/** layer.apply typed for one flow kind: symbolic in, symbolic out; concrete in, concrete out. */
function call<X extends Flow>(layer: tfl.layers.Layer, inputs: X | X[], kwargs: Record<string, unknown> = {}): X {
  return layer.apply(inputs as tf.Tensor | tf.Tensor[], kwargs) as X;
}

/**
 * The whole model on ids [B, L]: symbolic (to build the functional model) or concrete (the
 * training forward, which passes `training` to every layer; tfjs's model.apply does not).
 *
 * Block layout follows SASRec's reference code: q = LN(x); x' = q + Attention(q, x, mask); then
 * LN, point-wise feed-forward with its residual; a final LN. Besides matching SASRec, it keeps the
 * query and the K/V source distinct tensors: tfjs's graph executor (predict, apply) decrements a
 * tensor's reference count once per occurrence in a node's inputs but counts each consuming layer
 * once, so feeding [x, x, mask] disposes x before the residual reads it ("Tensor is disposed").
 */
export function forward<X extends Flow>(parts: SasrecParts, ids: X, kwargs: ForwardKwargs): X {
  const mask = call(parts.paddingMask, ids);
  let x = embed(parts, ids, kwargs);
  for (const block of parts.blocks) {
    const q = call(block.queryNorm, x);
    x = blockTail(block, q, call(block.attention, [q, x, mask], { ...kwargs }), kwargs);
  }
  return call(parts.finalNorm, x);
}

function embed<X extends Flow>(parts: SasrecParts, ids: X, kwargs: ForwardKwargs, start?: number): X {
  const items = call(parts.itemEmbedding, ids);
  const placed = call(parts.positions, items, start == null ? {} : { start });
  return call(parts.embeddingDropout, placed, { ...kwargs });
}

/** Everything of a block after its attention: residual on the query, norm, feed-forward with residual. */
function blockTail<X extends Flow>(block: SasrecBlock, q: X, attended: X, kwargs: ForwardKwargs): X {
  const h = call(block.norm1, call(block.residual1, [q, attended]));
  const inner = call(block.ffnDropout, call(block.ffnIn, h), { ...kwargs });
  const f = call(block.outDropout, call(block.ffnOut, inner), { ...kwargs });
  return call(block.residual2, [h, f]);
}

/** The item embedding table [numItems + 1, d] (the live variable: gradients flow through it). */
export function itemTable(sasrec: Sasrec): tf.Tensor {
  return sasrec.parts.itemEmbedding.getWeights()[0];
}

/** hidden [..., d] -> scores [..., numItems + 1] against the shared item table. */
export function scoreHidden(sasrec: Sasrec, hidden: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = dim(hidden, -1);
    const flat = tf.reshape(hidden, [-1, d]) as tf.Tensor2D;
    const scores = tf.matMul(flat, tf.transpose(itemTable(sasrec) as tf.Tensor2D));
    return tf.reshape(scores, [...hidden.shape.slice(0, -1), sasrec.options.numItems + 1]);
  });
}

/** Sequences (oldest first) or ids [B, maxLength] -> int32 ids [B, maxLength], left-padded. */
export function toIds(sasrec: Sasrec, sequences: readonly (readonly number[])[] | tf.Tensor): tf.Tensor2D {
  if (sequences instanceof tf.Tensor) return tf.cast(sequences, 'int32') as tf.Tensor2D;
  const L = sasrec.options.maxLength;
  const flat = new Int32Array(sequences.length * L);
  sequences.forEach((seq, row) => {
    const kept = seq.slice(-L);
    flat.set(kept, row * L + L - kept.length);
  });
  return tf.tensor2d(flat, [sequences.length, L], 'int32');
}

/** Next-item scores [B, numItems + 1] from the full forward of the functional model (last position). */
export function scoreNext(sasrec: Sasrec, sequences: readonly (readonly number[])[] | tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const ids = toIds(sasrec, sequences);
    const hidden = sasrec.model.apply(ids) as tf.Tensor;
    return scoreHidden(sasrec, lastPosition(hidden)) as tf.Tensor2D;
  });
}

function lastPosition(hidden: tf.Tensor): tf.Tensor {
  const [b, t, d] = [dim(hidden, 0), dim(hidden, 1), dim(hidden, 2)];
  return tf.reshape(tf.slice(hidden, [0, t - 1, 0], [b, 1, d]), [b, d]);
}

// ---------------------------------------------------------------- cached decode

/** Per-block caches of a batch of users' prefixes; `length` = window slots already filled. */
export interface SasrecCache {
  blocks: KVCacheBlock[];
  length: number;
}

export function disposeCache(cache: SasrecCache): void {
  for (const block of cache.blocks) block.dispose();
}

/**
 * Prefill: runs the prefix ids [B, T] (window slots 0..T-1) through the model and caches every
 * block's K/V source with `computeCache` (compressed for CollectiveKV). Inference mode.
 */
export function prefill(sasrec: Sasrec, prefix: tf.Tensor2D): SasrecCache {
  const length = dim(prefix, 1);
  const blocks: KVCacheBlock[] = [];
  tf.tidy(() => {
    const mask = call(sasrec.parts.paddingMask, prefix as tf.Tensor);
    let x = embed(sasrec.parts, prefix as tf.Tensor, {}, 0);
    for (const block of sasrec.parts.blocks) {
      const cache = block.attention.computeCache(x, mask);
      cache.tensors().forEach((t) => tf.keep(t));
      blocks.push(cache);
      const q = call(block.queryNorm, x);
      x = blockTail(block, q, block.attention.attendCached(q, cache, { causal: true }), {});
    }
  });
  return { blocks, length };
}

/**
 * Decode one step: the next item ids [B] at the next window slot. Appends its K/V source to each
 * block's cache and attends from the cache (no K/V recompute for the prefix). Returns the hidden
 * state [B, d] and the extended cache; `cache` itself is disposed (its blocks are replaced).
 */
export function decodeStep(sasrec: Sasrec, cache: SasrecCache, nextIds: tf.Tensor): { hidden: tf.Tensor2D; cache: SasrecCache } {
  const batch = dim(nextIds, 0);
  const blocks: KVCacheBlock[] = [];
  const hidden = tf.tidy(() => {
    const ids = tf.reshape(tf.cast(nextIds, 'int32'), [batch, 1]);
    const mask = call(sasrec.parts.paddingMask, ids);
    let x = embed(sasrec.parts, ids, {}, cache.length);
    sasrec.parts.blocks.forEach((block, b) => {
      const grown = block.attention.appendToCache(cache.blocks[b], x, mask);
      grown.tensors().forEach((t) => tf.keep(t));
      blocks.push(grown);
      const q = call(block.queryNorm, x);
      x = blockTail(block, q, block.attention.attendCached(q, grown, { causal: true }), {});
    });
    const out = call(sasrec.parts.finalNorm, x);
    return tf.reshape(out, [batch, dim(out, 2)]) as tf.Tensor2D;
  });
  disposeCache(cache);
  return { hidden, cache: { blocks, length: cache.length + 1 } };
}

/**
 * Next-item scores [B, numItems + 1] through the cache path: prefill slots 0..L-2, decode slot L-1.
 * Equals `scoreNext` up to float rounding.
 */
export function scoreNextCached(sasrec: Sasrec, sequences: readonly (readonly number[])[] | tf.Tensor): tf.Tensor2D {
  const ids = toIds(sasrec, sequences);
  const L = sasrec.options.maxLength;
  const b = dim(ids, 0);
  const prefix = tf.slice(ids, [0, 0], [b, L - 1]);
  const last = tf.tidy(() => tf.reshape(tf.slice(ids, [0, L - 1], [b, 1]), [b]));
  const step = decodeStep(sasrec, prefill(sasrec, prefix), last);
  const scores = scoreHidden(sasrec, step.hidden) as tf.Tensor2D;
  tf.dispose([ids, prefix, last, step.hidden]);
  disposeCache(step.cache);
  return scores;
}

/** Stored bytes per cached token, summed over the attention blocks, read from real cache blocks. */
export function cacheBytesPerToken(sasrec: Sasrec, format: 'fp32' | 'fp16' = 'fp32'): number {
  const probe = tf.tensor2d([[1, 1]], [1, 2], 'int32');
  const cache = prefill(sasrec, probe);
  const bytes = cache.blocks.reduce((sum, block) => sum + block.bytesPerToken(format), 0);
  disposeCache(cache);
  probe.dispose();
  return bytes;
}
