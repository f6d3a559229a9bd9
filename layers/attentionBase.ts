// What MultiHeadAttention and CollectiveKVAttention share: arguments, input parsing, the query and
// output projections, the forward skeleton and the cache API skeleton. Subclasses supply how K/V
// are produced, cached and read back. Not registered itself (it is never instantiated).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import type { LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';
import { AttentionKind, dotProductAttention, gatherRows } from '../ops/index';
import { ArgumentError, describeShape, dim } from '../ops/util/validate';
import { CacheSide, KVCacheBlock, concatBlocks } from './KVCacheBlock';
import {
  InitializerSpec, checkBoolean, checkFits, checkLayerArgs, checkMask, checkNonNegativeInt, checkOneOf, checkPositiveInt, checkRate, checkSequence,
  dense, describeValue, glorotUniform, resolveInitializer, serializeInitializer, tensorValueLimit, zeros,
} from './common';

export interface MultiHeadAttentionArgs extends LayerArgs {
  numHeads: number;
  /** Width of each head's queries and keys. */
  keyDim: number;
  /** Width of each head's values. Default keyDim. */
  valueDim?: number;
  /** Dropout rate on the attention weights, training only. Default 0. */
  dropout?: number;
  /** Biases on all projections. Default true. */
  useBias?: boolean;
  /** Query t sees keys i <= t + (Tk - Tq). Default false. */
  causal?: boolean;
  /** 'softmax' (scaled dot product) or 'hstu' (SiLU scores / number of valid keys). Default 'softmax'. */
  attention?: AttentionKind;
  /** Projection kernels' initializer. Default glorotUniform. */
  kernelInitializer?: InitializerSpec;
  /**
   * R > 0 adds a learned bias per head and relative position to the attention scores (HSTU's
   * relative position bias): query position - key position, clipped to [-(R-1), R-1]. Positions
   * are slots of the sequence (queries are the last Tq of the keys), so the bias needs nothing
   * cached. Default 0 (none).
   */
  relativePositions?: number;
}

/** The options of MultiHeadAttentionArgs beyond tfjs's LayerArgs (a constructor rejects other keys by name). */
export const ATTENTION_OPTION_KEYS: readonly string[] = Object.keys({
  numHeads: true, keyDim: true, valueDim: true, dropout: true, useBias: true, causal: true, attention: true, kernelInitializer: true,
  relativePositions: true,
} satisfies Record<Exclude<keyof MultiHeadAttentionArgs, keyof LayerArgs>, true>);

export interface AttendCachedOptions {
  /** Defaults to the layer's `causal`. Queries are taken as the last Tq positions of the cache. */
  causal?: boolean;
}

/** Inputs of one forward call, validated (mask: float32 [B, Tk] or null = all valid). */
export interface AttentionInputs {
  query: tf.Tensor;
  source: tf.Tensor;
  mask: tf.Tensor | null;
}

/** What a subclass returns for the forward pass: K [B,Tk,H*dk], V [B,Tk,H*dv], optional aux loss. */
export interface ProjectedKV {
  k: tf.Tensor;
  v: tf.Tensor;
  aux: tf.Scalar | null;
}

export abstract class AttentionLayerBase extends tfl.layers.Layer {
  readonly numHeads: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly dropout: number;
  readonly useBias: boolean;
  readonly causal: boolean;
  readonly attention: AttentionKind;
  readonly relativePositions: number;
  protected readonly kernelInit: Initializer;
  /** Width of the query input (= output width), known once built. */
  protected queryDim = -1;
  /** Width of the key/value source, known once built. */
  protected sourceDim = -1;
  private queryKernel: tfl.LayerVariable | null = null;
  private queryBias: tfl.LayerVariable | null = null;
  private outputKernel: tfl.LayerVariable | null = null;
  private outputBias: tfl.LayerVariable | null = null;
  /** [numHeads, 2 * relativePositions - 1] when relativePositions > 0. */
  private relativeBias: tfl.LayerVariable | null = null;

  /**
   * `optionKeys`: the keys args may have beyond LayerArgs (a subclass's own added to
   * ATTENTION_OPTION_KEYS). Nothing here allocates a tensor: weights are created by `build`.
   */
  constructor(args: MultiHeadAttentionArgs, private readonly layerType: string, optionKeys: readonly string[] = ATTENTION_OPTION_KEYS) {
    super(checkLayerArgs(layerType, args, { required: ['numHeads', 'keyDim'], example: '{ numHeads: 4, keyDim: 16 }', options: optionKeys }));
    this.numHeads = checkPositiveInt(layerType, 'numHeads', args.numHeads);
    this.keyDim = checkPositiveInt(layerType, 'keyDim', args.keyDim);
    this.valueDim = checkPositiveInt(layerType, 'valueDim', args.valueDim ?? args.keyDim);
    checkFits(layerType, 'numHeads', this.numHeads, 1, 'numHeads');
    checkFits(layerType, 'keyDim', this.keyDim, this.numHeads, `numHeads x keyDim (numHeads = ${this.numHeads})`);
    checkFits(layerType, 'valueDim', this.valueDim, this.numHeads, `numHeads x valueDim (numHeads = ${this.numHeads})`);
    this.dropout = checkRate(layerType, 'dropout', args.dropout ?? 0);
    this.useBias = checkBoolean(layerType, 'useBias', args.useBias ?? true);
    this.causal = checkBoolean(layerType, 'causal', args.causal ?? false);
    this.attention = checkOneOf(layerType, 'attention', args.attention ?? 'softmax', ['softmax', 'hstu'] as const);
    this.kernelInit = resolveInitializer(layerType, 'kernelInitializer', args.kernelInitializer, glorotUniform);
    this.relativePositions = checkNonNegativeInt(layerType, 'relativePositions', args.relativePositions ?? 0);
    const biasValues = this.numHeads * (2 * this.relativePositions - 1);
    const limit = tensorValueLimit();
    if (biasValues > limit.values) {
      throw new ArgumentError(layerType, 'relativePositions',
        `at most ${Math.floor((limit.values / this.numHeads + 1) / 2)} so that relative_position_bias [numHeads, 2 relativePositions - 1] fits ${limit.text}`,
        `${this.relativePositions} (${biasValues} values)`);
    }
  }

  // ------------------------------------------------------------ subclass hooks

  /** Creates the K/V weights for a source of width `sourceDim`. */
  protected abstract buildKeyValue(sourceDim: number): void;
  /** K and V of the full forward (inside a tidy). `mask` is only for auxiliary losses. */
  protected abstract projectKeyValue(source: tf.Tensor, mask: tf.Tensor | null, training: boolean): ProjectedKV;
  /** The cached form of each side for `source` (inside a tidy). */
  protected abstract encodeCache(source: tf.Tensor): { keys: CacheSide; values: CacheSide };
  /** Throws unless `block` was made by a layer of this configuration. */
  protected abstract checkBlock(block: KVCacheBlock): void;
  /** The K/V weights `buildKeyValue` creates whose rows are the source's features: [name, columns] of each. */
  protected abstract sourceWeightColumns(): Array<[string, number]>;
  /** Attention of projected queries over a cache block (inside a tidy); [B, Tq, H*dv]. `scoreBias` as in dotProductAttention. */
  protected abstract attendBlock(q: tf.Tensor, block: KVCacheBlock, causal: boolean, scoreBias: tf.Tensor | undefined): tf.Tensor;

  // ------------------------------------------------------------ building

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shapes = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as tfl.Shape[];
    this.queryDim = this.lastDim(shapes[0], 'query');
    this.sourceDim = this.lastDim(attentionInputRoles(shapes, (shape) => shape.length).source, 'kvSource');
    this.checkWeightSizes();
    const dq = this.numHeads * this.keyDim;
    this.queryKernel = this.addWeight('query_kernel', [this.queryDim, dq], 'float32', this.kernelInit);
    if (this.useBias) this.queryBias = this.addWeight('query_bias', [dq], 'float32', zeros());
    this.buildKeyValue(this.sourceDim);
    this.outputKernel = this.addWeight('output_kernel', [this.numHeads * this.valueDim, this.queryDim], 'float32', this.kernelInit);
    if (this.useBias) this.outputBias = this.addWeight('output_bias', [this.queryDim], 'float32', zeros());
    if (this.relativePositions > 0) {
      this.relativeBias = this.addWeight('relative_position_bias', [this.numHeads, 2 * this.relativePositions - 1], 'float32', zeros());
    }
    this.built = true;
  }

  /** Every [input width, columns] weight `build` creates fits the backend: checked before any is created. */
  private checkWeightSizes(): void {
    const weights: Array<[string, number, string, number]> = [
      ['query', this.queryDim, 'query_kernel', this.numHeads * this.keyDim],
      ['query', this.queryDim, 'output_kernel', this.numHeads * this.valueDim],
      ...this.sourceWeightColumns().map(([name, columns]): [string, number, string, number] => ['kvSource', this.sourceDim, name, columns]),
    ];
    // Widest first: the first one too large gives the tightest bound on its input's width.
    for (const [arg, width, name, columns] of weights.sort((a, b) => b[3] - a[3])) {
      checkFits(this.layerType, arg, width, columns, `${name} [${arg} width, ${columns}]`, true);
    }
  }

  private lastDim(shape: tfl.Shape, arg: string): number {
    const last = shape.length === 3 ? shape[2] : null;
    if (last == null) {
      throw new ArgumentError(this.layerType, arg, 'a rank-3 input [batch, time, features] with a known feature size',
        `shape ${describeShape(shape.map((d) => d ?? -1))}`);
    }
    return last;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const query = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [...query];
  }

  // ------------------------------------------------------------ forward

  /**
   * inputs: x or [x, mask] (self-attention), [query, kvSource] or [query, kvSource, mask]; mask
   * [B, Tk] (1 valid, 0 padding) may also come as kwargs.mask. Returns [B, Tq, queryWidth].
   * Prefer [x, mask] to [x, x, mask] in functional models: tfjs's executor disposes a tensor fed
   * twice to one layer too early ("Tensor is disposed" in predict).
   */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const training = kwargs.training === true;
    const [out, aux] = tf.tidy(() => {
      const x = this.parseInputs(inputs, kwargs);
      const q = dense(x.query, this.w(this.queryKernel), this.b(this.queryBias));
      const { k, v, aux: loss } = this.projectKeyValue(x.source, x.mask, training);
      const rate = this.dropout;
      const attended = dotProductAttention(q, k, v, {
        numHeads: this.numHeads, attention: this.attention, causal: this.causal, mask: x.mask ?? undefined,
        scoreBias: this.scoreBias(dim(q, 1), dim(k, 1)),
        transformWeights: training && rate > 0 ? (weights) => tf.dropout(weights, rate) : undefined,
      });
      const y = dense(attended, this.w(this.outputKernel), this.b(this.outputBias));
      return loss == null ? [y] : [y, loss];
    });
    if (aux != null) this.onAuxiliaryLoss(aux as tf.Scalar);
    return out;
  }

  /** Receives the aux loss of a training call (kept alive outside the call's tidy). */
  protected onAuxiliaryLoss(loss: tf.Scalar): void {
    loss.dispose();
  }

  /** Validates and unpacks the call inputs (inside a tidy: the cast mask is scope-owned). */
  protected parseInputs(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): AttentionInputs {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    if (list.length < 1 || list.length > 3) {
      throw new ArgumentError(this.layerType, 'inputs', 'a tensor, [x, mask], [query, kvSource] or [query, kvSource, mask]',
        `an array of ${list.length} tensors`);
    }
    const roles = attentionInputRoles(list, (t) => t.rank);
    const { query, source } = roles;
    this.checkSequenceInputs(query, source);
    const rawMask = roles.mask ?? kwargsMask(kwargs);
    const mask = rawMask == null ? null : checkMask(this.layerType, 'mask', rawMask, dim(source, 0), dim(source, 1));
    return { query, source, mask };
  }

  private checkSequenceInputs(query: tf.Tensor, source: tf.Tensor): void {
    checkSequence(this.layerType, 'query', query, this.built ? this.queryDim : undefined);
    checkSequence(this.layerType, 'kvSource', source, this.built ? this.sourceDim : undefined);
    if (dim(source, 0) !== dim(query, 0)) {
      throw new ArgumentError(this.layerType, 'kvSource', `batch size ${dim(query, 0)} (the query's)`, `shape ${describeShape(source.shape)}`);
    }
  }

  // ------------------------------------------------------------ cache API

  /**
   * Prefill: the cache of kvSource [B, Tk, de] (mask [B, Tk], default all ones). The caller owns
   * the block (dispose it). The layer must be built (called once, or `build` with the shapes).
   */
  computeCache(kvSource: tf.Tensor, mask?: tf.Tensor): KVCacheBlock {
    this.assertBuilt('computeCache');
    checkSequence(this.layerType, 'kvSource', kvSource, this.sourceDim);
    const parts = tf.tidy(() => {
      const [b, t] = [dim(kvSource, 0), dim(kvSource, 1)];
      const m = mask == null ? tf.ones([b, t]) : checkMask(this.layerType, 'mask', mask, b, t);
      return { ...this.encodeCache(kvSource), mask: m };
    });
    return new KVCacheBlock(parts.keys, parts.values, parts.mask);
  }

  /**
   * Decode: attention of the raw query input [B, Tq, queryWidth] (projected here) over a cache
   * block; the K/V projections are not re-run. Causal offsets treat the queries as the last Tq
   * positions of the block. Returns [B, Tq, queryWidth].
   */
  attendCached(query: tf.Tensor, block: KVCacheBlock, options: AttendCachedOptions = {}): tf.Tensor {
    this.assertBuilt('attendCached');
    this.checkLiveBlock(block, 'block');
    checkSequence(this.layerType, 'query', query, this.queryDim);
    if (dim(query, 0) !== block.batchSize) {
      throw new ArgumentError(this.layerType, 'query', `batch size ${block.batchSize} (the cache block's)`, `shape ${describeShape(query.shape)}`);
    }
    this.checkBlock(block);
    const causal = this.attendOptions(options).causal ?? this.causal;
    return tf.tidy(() => {
      const q = dense(query, this.w(this.queryKernel), this.b(this.queryBias));
      const attended = this.attendBlock(q, block, causal, this.scoreBias(dim(q, 1), block.length));
      return dense(attended, this.w(this.outputKernel), this.b(this.outputBias));
    });
  }

  /**
   * A new block: `block`'s tokens followed by those of kvSourceStep [B, Ts, de] (maskStep [B, Ts],
   * default ones). `block` is NOT disposed (it may still be in use); dispose it when done.
   */
  appendToCache(block: KVCacheBlock, kvSourceStep: tf.Tensor, maskStep?: tf.Tensor): KVCacheBlock {
    this.checkLiveBlock(block, 'block');
    this.checkBlock(block);
    const step = this.computeCache(kvSourceStep, maskStep);
    try {
      return concatBlocks(block, step);
    } finally {
      step.dispose();
    }
  }

  // ------------------------------------------------------------ helpers

  /**
   * The relative position bias [1, H, Tq, Tk] (undefined without relativePositions), inside a tidy:
   * entry (h, i, j) = bias[h, clip(i + Tk - Tq - j, -(R-1), R-1) + R - 1].
   */
  protected scoreBias(tq: number, tk: number): tf.Tensor | undefined {
    if (this.relativeBias == null) return undefined;
    const r = this.relativePositions;
    const index = new Int32Array(tq * tk);
    for (let i = 0; i < tq; i++) {
      for (let j = 0; j < tk; j++) index[i * tk + j] = Math.min(r - 1, Math.max(1 - r, i + tk - tq - j)) + r - 1;
    }
    // gatherRows, not tf.gather: wasm has no kernel for tf.gather's gradient (UnsortedSegmentSum).
    const rows = gatherRows(tf.transpose(this.relativeBias.read()), tf.tensor1d(index, 'int32'));
    return tf.reshape(tf.transpose(rows), [1, this.numHeads, tq, tk]);
  }

  /** `block` is a cache block none of whose tensors was disposed. */
  protected checkLiveBlock(block: KVCacheBlock, arg: string): void {
    if (block == null || typeof (block as Partial<KVCacheBlock>).tensors !== 'function') {
      throw new ArgumentError(this.layerType, arg, 'a KVCacheBlock (from computeCache or appendToCache)', describeValue(block));
    }
    if (block.isDisposed) {
      throw new ArgumentError(this.layerType, arg, 'a cache block that is not disposed',
        'a disposed block (the block was disposed, or one of its tensors was, before this call)');
    }
  }

  /** attendCached's options, checked: an object with no key but `causal`, a boolean when set. */
  private attendOptions(options: AttendCachedOptions): AttendCachedOptions {
    if (options == null || typeof options !== 'object' || Array.isArray(options)) {
      throw new ArgumentError(this.layerType, 'options', 'an options object ({ causal?: boolean })', describeValue(options));
    }
    for (const [key, value] of Object.entries(options)) {
      if (key !== 'causal' && value !== undefined) {
        throw new ArgumentError(this.layerType, `options.${key}`, 'absent (attendCached\'s only option is causal)', describeValue(value));
      }
    }
    if (options.causal != null) checkBoolean(this.layerType, 'options.causal', options.causal);
    return options;
  }

  protected assertBuilt(method: string): void {
    if (!this.built) {
      throw new ArgumentError(this.layerType, 'this', `a built layer before ${method} (call it once, or build it with the input shapes)`,
        'an unbuilt layer');
    }
  }

  /** Checks one side of a block against the expected kind and widths. */
  protected checkSide(side: CacheSide, which: 'keys' | 'values', expected: CacheSide['kind'], width: number, poolSize?: number): void {
    const arg = `block.${which}`;
    if (side.kind !== expected) {
      throw new ArgumentError(this.layerType, arg, `a '${expected}' cache side (this layer's)`, `a '${side.kind}' side`);
    }
    const got = side.kind === 'full' ? dim(side.values, 2) : dim(side.user, 2);
    if (got !== width) {
      throw new ArgumentError(this.layerType, arg, `width ${width}`, `width ${got}`);
    }
    if (side.kind === 'pooled' && side.poolSize !== poolSize) {
      throw new ArgumentError(this.layerType, arg, `poolSize ${poolSize}`, `poolSize ${side.poolSize}`);
    }
  }

  /** A required weight's current value. */
  protected w(v: tfl.LayerVariable | null): tf.Tensor {
    if (v == null) throw new ArgumentError(this.layerType, 'this', 'a built layer', 'an unbuilt layer');
    return v.read();
  }

  /** An optional weight (biases when useBias is false). */
  protected b(v: tfl.LayerVariable | null): tf.Tensor | null {
    return v == null ? null : v.read();
  }

  protected addKernel(name: string, shape: number[]): tfl.LayerVariable {
    return this.addWeight(name, shape, 'float32', this.kernelInit);
  }

  protected addBias(name: string, width: number): tfl.LayerVariable | null {
    return this.useBias ? this.addWeight(name, [width], 'float32', zeros()) : null;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      numHeads: this.numHeads,
      keyDim: this.keyDim,
      valueDim: this.valueDim,
      dropout: this.dropout,
      useBias: this.useBias,
      causal: this.causal,
      attention: this.attention,
      kernelInitializer: serializeInitializer(this.kernelInit),
      ...(this.relativePositions > 0 ? { relativePositions: this.relativePositions } : {}),
    };
  }
}

/**
 * Which of an attention call's inputs is the query, the K/V source and the mask: x, [x, mask]
 * (self-attention: a second input of rank 2, or below, is the mask, not a kvSource), [query, kvSource] or
 * [query, kvSource, mask]. Works on tensors, symbolic tensors or shapes through `rank`.
 */
export function attentionInputRoles<T>(list: readonly T[], rank: (input: T) => number): { query: T; source: T; mask: T | null } {
  const query = list[0];
  // A second input of rank < 3 is a mask (rank 1 is a bad one, which the mask check then names).
  if (list.length === 2 && rank(list[1]) < 3) return { query, source: query, mask: list[1] };
  return { query, source: list[1] ?? query, mask: list[2] ?? null };
}

/** kwargs.mask from tfjs's executor: a tensor, or one per input (then the kvSource's, else the first). */
export function kwargsMask(kwargs: Kwargs): tf.Tensor | null {
  const m: unknown = kwargs.mask;
  if (m instanceof tf.Tensor) return m;
  if (Array.isArray(m)) {
    const pick: unknown = m[1] ?? m[0];
    return pick instanceof tf.Tensor ? pick : null;
  }
  return null;
}
