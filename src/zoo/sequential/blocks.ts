// The blocks the zoo's sequential models share (SASRec, BERT4Rec, HSTU, and the CTR models' target
// attention): the model options and their checks, LayerNorm, point-wise dense, learned positions,
// the padding mask, the seeded input layers, and `makeAttention`, the one place where a model's
// `attention: 'mha' | 'collectivekv'` option picks the attention class (the layer swap).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import {
  StreamDropout, CollectiveKVAttention, CollectiveKVAttentionArgs, MultiHeadAttention, MultiHeadAttentionArgs, claimClasses, dim, linear,
} from '../../internal';

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

/** @inline */
export type AttentionLayer = MultiHeadAttention | CollectiveKVAttention;

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
// With two copies of the package in one process, the first copy's classes stay registered.
claimClasses([PointwiseDense, LayerNorm, PaddingMask, PositionEmbedding]);

// ---------------------------------------------------------------- options and inputs

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
    embeddingDropout: new StreamDropout({ rate: o.dropout, seed: nextSeed(), name: 'embedding_dropout' }),
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
  // The attention dropout's stream: derived from the model's seed like the pools', so runs repeat.
  const seed = o.seed == null ? undefined : (o.seed * 3571 + block * 7907) % 2147483647;
  const common = { numHeads: o.numHeads, keyDim: o.hiddenDim / o.numHeads, dropout: o.dropout, ...kind, kernelInitializer, seed };
  if (o.attention === 'mha') return new MultiHeadAttention({ ...common, name: `block${block}_attention` });
  // Seeded pools (when the model is seeded) so that a run repeats; derived, not drawn from the
  // model's seed stream, so mha models keep their weights.
  const poolSeed = o.seed == null ? undefined : (o.seed * 7919 + block * 104729) % 2147483647;
  return new CollectiveKVAttention({ ...common, ...o.collective, poolSeed, name: `block${block}_attention` });
}
