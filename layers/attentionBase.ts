// What MultiHeadAttention and CollectiveKVAttention share: arguments (Keras 3's MultiHeadAttention's,
// docs/keras.md), input parsing and call options, the query and output projections, the forward
// skeleton and the cache API skeleton. Subclasses supply how K/V are produced, cached and read back.
// Not registered itself (it is never instantiated).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Constraint } from '@tensorflow/tfjs-layers/dist/constraints';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import type { LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology';
import type { Regularizer } from '@tensorflow/tfjs-layers/dist/regularizers';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';
import { AttentionKind, dotProductAttention, gatherRows } from '../ops/index';
import { ArgumentError, describeShape, dim } from '../ops/util/validate';
import { CacheSide, KVCacheBlock, concatBlocks } from './KVCacheBlock';
import {
  ConstraintSpec, InitializerSpec, PendingLosses, RegularizerSpec, checkBoolean, checkFits, checkLayerArgs, checkMask, checkNonNegativeInt,
  checkOneOf, checkPositiveInt, checkRate, checkSequence, dense, describeValue, glorotUniform, resolveConstraint, resolveInitializer,
  resolveRegularizer, serializeInitializer, serializeObject, streamSeed, tensorValueLimit, zeros,
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
  /**
   * The output's shape besides batch and time: a width or a list of dimensions (the output is then
   * [B, Tq, ...outputShape]). Default: the query's width.
   */
  outputShape?: number | number[] | null;
  /** Axes attention runs over. Inputs are [batch, time, features], so only 1 (or -2): the default. */
  attentionAxes?: number | number[] | null;
  /** Keras's flash attention switch: tfjs has no flash kernel, so only false or null (the standard computation). */
  flashAttention?: boolean | null;
  /** Query t sees keys i <= t + (Tk - Tq). Default false. (Keras's call option useCausalMask is the start-aligned i <= t.) */
  causal?: boolean;
  /** 'softmax' (scaled dot product) or 'hstu' (SiLU scores / number of valid keys). Default 'softmax'. */
  attention?: AttentionKind;
  /** Projection kernels' initializer. Default glorotUniform. */
  kernelInitializer?: InitializerSpec;
  /** Projection biases' initializer. Default zeros. */
  biasInitializer?: InitializerSpec;
  /** Penalty on every projection kernel (and, in CollectiveKVAttention, pool and router), added to the training loss. */
  kernelRegularizer?: RegularizerSpec | null;
  /** Penalty on every projection bias, added to the training loss. */
  biasRegularizer?: RegularizerSpec | null;
  /** Penalty on the query, key, value and output projections' outputs of each training call (Keras's per-sublayer activity regularizer). */
  activityRegularizer?: RegularizerSpec | null;
  /** Projection applied to the kernels after each update (before the weights are next used). */
  kernelConstraint?: ConstraintSpec | null;
  /** Projection applied to the biases after each update (before the weights are next used). */
  biasConstraint?: ConstraintSpec | null;
  /** Seeds the attention dropout: layers with one seed draw the same masks call after call. Default: unseeded. */
  seed?: number | null;
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
  numHeads: true, keyDim: true, valueDim: true, dropout: true, useBias: true, outputShape: true, attentionAxes: true, flashAttention: true,
  causal: true, attention: true, kernelInitializer: true, biasInitializer: true, kernelRegularizer: true, biasRegularizer: true,
  activityRegularizer: true, kernelConstraint: true, biasConstraint: true, seed: true, relativePositions: true,
} satisfies Record<Exclude<keyof MultiHeadAttentionArgs, keyof LayerArgs>, true>);

/**
 * Keras 3's call arguments, for `layer.apply(query, options)` (or `call`). Tensors given here join
 * the layer's inputs (so a functional model may pass symbolic ones). Masks: 1 (or true) attends.
 */
export interface AttentionCallOptions {
  /** [B, Tv, dv]; default the query (self-attention). */
  value?: tf.Tensor | tfl.SymbolicTensor;
  /** [B, Tv, dk]; default the value. */
  key?: tf.Tensor | tfl.SymbolicTensor;
  /** [B, Tq]: a masked query attends to nothing (its attention output is zero). */
  queryMask?: tf.Tensor | tfl.SymbolicTensor;
  /** [B, Tv]: masked keys/values are not attended. */
  valueMask?: tf.Tensor | tfl.SymbolicTensor;
  /** [B, Tv]: as valueMask. */
  keyMask?: tf.Tensor | tfl.SymbolicTensor;
  /** [B, Tq, Tv] or [Tq, Tv]: which query attends to which key; ANDed with the other masks. */
  attentionMask?: tf.Tensor | tfl.SymbolicTensor;
  /** Also return the attention weights [B, numHeads, Tq, Tv] (after masking, before dropout). */
  returnAttentionScores?: boolean;
  /** Keras's causal mask: query t attends to keys i <= t (start-aligned). */
  useCausalMask?: boolean;
  training?: boolean;
  /** tfjs's propagated mask, taken as the padding mask of the keys. */
  mask?: tf.Tensor | tf.Tensor[];
}

export interface AttendCachedOptions {
  /** Defaults to the layer's `causal`. Queries are taken as the last Tq positions of the cache. */
  causal?: boolean;
}

/** What each input of a call is: an index into the input list per role ('mask' is the padding mask of the positional forms). */
export type InputRoles = Partial<Record<InputRole, number>>;
type InputRole = 'query' | 'value' | 'key' | 'mask' | 'queryMask' | 'valueMask' | 'keyMask' | 'attentionMask';
const INPUT_ROLES: readonly InputRole[] = ['query', 'value', 'key', 'mask', 'queryMask', 'valueMask', 'keyMask', 'attentionMask'];
const TENSOR_OPTIONS = ['value', 'key', 'queryMask', 'valueMask', 'keyMask', 'attentionMask'] as const;
/** The keys a call's kwargs may hold: the call options, tfjs's `training` and `mask`, and `inputRoles` (set by apply). */
const CALL_OPTION_KEYS: readonly string[] = [...TENSOR_OPTIONS, 'returnAttentionScores', 'useCausalMask', 'training', 'mask', 'inputRoles'];

/** How a call reads its input list, and its flags. */
interface CallPlan {
  roles: InputRoles;
  inputs: number;
  useCausalMask: boolean;
  returnAttentionScores: boolean;
}

/** Inputs of one forward call, validated (masks float32, 1 attends). */
export interface AttentionInputs {
  query: tf.Tensor;
  /** The value (the K/V source of the positional forms). */
  source: tf.Tensor;
  /** The key input: `source` itself unless a separate key was given. */
  key: tf.Tensor;
  /** Padding of the keys [B, Tk] (mask, valueMask and keyMask combined) or null = all valid. */
  mask: tf.Tensor | null;
  /** [B or 1, 1, Tq, Tk] from queryMask, attentionMask and useCausalMask, or null when none is given. */
  pairMask: tf.Tensor | null;
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
  /** The output's dimensions besides batch and time (Keras's outputShape), or null: the query's width. */
  private readonly outputDims: number[] | null;
  /** [1] when given (the only axis of rank-3 inputs), else null. */
  readonly attentionAxes: number[] | null;
  readonly causal: boolean;
  readonly attention: AttentionKind;
  readonly relativePositions: number;
  readonly seed: number | null;
  protected readonly kernelInit: Initializer;
  protected readonly biasInit: Initializer;
  private readonly biasInitGiven: boolean;
  private readonly kernelRegularizer: Regularizer | null;
  private readonly biasRegularizer: Regularizer | null;
  private readonly activityRegularizer_: Regularizer | null;
  private readonly kernelConstraint: Constraint | null;
  private readonly biasConstraint: Constraint | null;
  /** Width of the query input, known once built. */
  protected queryDim = -1;
  /** Width of the value (K/V source), known once built. */
  protected sourceDim = -1;
  /** Width of the key input (= sourceDim unless a separate key was given at build), known once built. */
  protected keySourceDim = -1;
  private queryKernel: tfl.LayerVariable | null = null;
  private queryBias: tfl.LayerVariable | null = null;
  private outputKernel: tfl.LayerVariable | null = null;
  private outputBias: tfl.LayerVariable | null = null;
  /** [numHeads, 2 * relativePositions - 1] when relativePositions > 0. */
  private relativeBias: tfl.LayerVariable | null = null;
  /** Biases created with biasInit (the others, a subclass's sublayers', are re-initialized when biasInitializer is given). */
  private readonly ownBiases = new Set<tfl.LayerVariable>();
  /** Constrained weights and the data their last projection wrote (projected again only after an update). */
  private readonly constrained: Array<{ weight: tfl.LayerVariable; constraint: Constraint; projected: object | null }> = [];
  private readonly activityLosses = new PendingLosses();
  /** Training calls with dropout so far: the position in the seeded dropout stream. */
  private dropoutCalls = 0;
  /** The plan of the apply in progress (build and computeOutputShape read it). */
  private pendingPlan: CallPlan | null = null;
  /** The plan of this layer's applications in a functional model (tfjs's executor passes none back). */
  private graphPlan: CallPlan | null = null;

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
    this.outputDims = checkOutputShape(layerType, args.outputShape);
    if (this.outputDims != null) {
      checkFits(layerType, 'outputShape', this.outputDims.reduce((a, b) => a * b, 1), this.numHeads * this.valueDim,
        `output_kernel [numHeads x valueDim, product of outputShape] (numHeads x valueDim = ${this.numHeads * this.valueDim})`);
    }
    this.attentionAxes = checkAttentionAxes(layerType, args.attentionAxes);
    if (args.flashAttention != null && args.flashAttention !== false) {
      throw new ArgumentError(layerType, 'flashAttention', 'false or null (tfjs has no flash attention kernel; Keras raises too where none exists)',
        describeValue(args.flashAttention));
    }
    this.causal = checkBoolean(layerType, 'causal', args.causal ?? false);
    this.attention = checkOneOf(layerType, 'attention', args.attention ?? 'softmax', ['softmax', 'hstu'] as const);
    this.kernelInit = resolveInitializer(layerType, 'kernelInitializer', args.kernelInitializer, glorotUniform);
    this.biasInitGiven = args.biasInitializer != null;
    this.biasInit = resolveInitializer(layerType, 'biasInitializer', args.biasInitializer, zeros);
    this.kernelRegularizer = resolveRegularizer(layerType, 'kernelRegularizer', args.kernelRegularizer);
    this.biasRegularizer = resolveRegularizer(layerType, 'biasRegularizer', args.biasRegularizer);
    this.activityRegularizer_ = resolveRegularizer(layerType, 'activityRegularizer', args.activityRegularizer);
    this.kernelConstraint = resolveConstraint(layerType, 'kernelConstraint', args.kernelConstraint);
    this.biasConstraint = resolveConstraint(layerType, 'biasConstraint', args.biasConstraint);
    this.seed = args.seed == null ? null : checkNonNegativeInt(layerType, 'seed', args.seed);
    this.relativePositions = checkNonNegativeInt(layerType, 'relativePositions', args.relativePositions ?? 0);
    const biasValues = this.numHeads * (2 * this.relativePositions - 1);
    const limit = tensorValueLimit();
    if (biasValues > limit.values) {
      throw new ArgumentError(layerType, 'relativePositions',
        `at most ${Math.floor((limit.values / this.numHeads + 1) / 2)} so that relative_position_bias [numHeads, 2 relativePositions - 1] fits ${limit.text}`,
        `${this.relativePositions} (${biasValues} values)`);
    }
    if (this.activityRegularizer_ != null) this.addLoss(() => this.activityLosses.take());
  }

  // ------------------------------------------------------------ subclass hooks

  /** Creates the K/V weights for a value (and key) of width `sourceDim` (keySourceDim for the key side). */
  protected abstract buildKeyValue(sourceDim: number): void;
  /**
   * K and V of the full forward (inside a tidy). `mask` is only for auxiliary losses. `key` is a
   * separate key input (only passed when supportsSeparateKey()); keys come from `source` otherwise.
   */
  protected abstract projectKeyValue(source: tf.Tensor, mask: tf.Tensor | null, training: boolean, key?: tf.Tensor): ProjectedKV;
  /** The cached form of each side for `source` (inside a tidy). */
  protected abstract encodeCache(source: tf.Tensor): { keys: CacheSide; values: CacheSide };
  /** Throws unless `block` was made by a layer of this configuration. */
  protected abstract checkBlock(block: KVCacheBlock): void;
  /** The K/V weights `buildKeyValue` creates whose rows are the source's features: [name, columns] of each. */
  protected abstract sourceWeightColumns(): Array<[string, number]>;
  /** Attention of projected queries over a cache block (inside a tidy); [B, Tq, H*dv]. `scoreBias` as in dotProductAttention. */
  protected abstract attendBlock(q: tf.Tensor, block: KVCacheBlock, causal: boolean, scoreBias: tf.Tensor | undefined): tf.Tensor;

  /** Whether projectKeyValue takes a key input apart from the value (Keras's `key`). */
  protected supportsSeparateKey(): boolean {
    return false;
  }

  // ------------------------------------------------------------ building

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shapes = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as tfl.Shape[];
    const roles = this.pendingPlan?.roles ?? positionalRoles(this.layerType, shapes, (shape) => shape.length);
    const query = shapes[roles.query ?? 0];
    const value = roles.value == null ? query : shapes[roles.value];
    const key = roles.key == null ? value : shapes[roles.key];
    this.queryDim = this.lastDim(query, 'query');
    this.sourceDim = this.lastDim(value, 'kvSource');
    this.keySourceDim = this.lastDim(key, 'key');
    if (this.keySourceDim !== this.sourceDim && !this.supportsSeparateKey()) {
      throw new ArgumentError(this.layerType, 'key', `the value's width ${this.sourceDim}, or no key (${this.layerType} projects keys and values from one source)`,
        `shape ${describeShape(key.map((d) => d ?? -1))}`);
    }
    this.checkWeightSizes();
    const dq = this.numHeads * this.keyDim;
    this.queryKernel = this.addKernel('query_kernel', [this.queryDim, dq]);
    this.queryBias = this.addBias('query_bias', dq);
    this.buildKeyValue(this.sourceDim);
    this.outputKernel = this.addKernel('output_kernel', [this.numHeads * this.valueDim, this.outputWidth()]);
    this.outputBias = this.addBias('output_bias', this.outputWidth());
    if (this.relativePositions > 0) {
      this.relativeBias = this.addWeight('relative_position_bias', [this.numHeads, 2 * this.relativePositions - 1], 'float32', zeros());
    }
    this.applyWeightOptions();
    this.built = true;
  }

  /** Columns of the output projection: the product of outputShape, else the query's width. */
  protected outputWidth(): number {
    return this.outputDims == null ? this.queryDim : this.outputDims.reduce((a, b) => a * b, 1);
  }

  /**
   * biasInitializer on the biases a subclass's sublayers created; regularizers (as losses) and
   * constraints on every kernel (every trainable weight matrix: projections, pools, routers) and bias.
   */
  private applyWeightOptions(): void {
    for (const weight of this.weights) {
      const kind = weightKind(weight);
      if (kind == null) continue;
      if (kind === 'bias' && this.biasInitGiven && !this.ownBiases.has(weight)) {
        const value = this.biasInit.apply(weight.shape);
        weight.write(value);
        value.dispose();
      }
      const regularizer = kind === 'kernel' ? this.kernelRegularizer : this.biasRegularizer;
      if (regularizer != null) this.addLoss(() => regularizer.apply(weight.read()));
      const constraint = kind === 'kernel' ? this.kernelConstraint : this.biasConstraint;
      if (constraint != null) this.constrained.push({ weight, constraint, projected: null });
    }
  }

  /**
   * Applies the constraints to the weights updated since their last projection. tfjs's optimizers
   * never apply a LayerVariable's constraint, so the layer does before each use: every forward sees
   * the weights Keras's would (projected once per update).
   */
  protected applyConstraints(): void {
    for (const c of this.constrained) {
      if (c.weight.read().dataId === c.projected) continue;
      const value = tf.tidy(() => c.constraint.apply(c.weight.read()));
      c.weight.write(value);
      value.dispose();
      c.projected = c.weight.read().dataId;
    }
  }

  /** Every [input width, columns] weight `build` creates fits the backend: checked before any is created. */
  private checkWeightSizes(): void {
    const weights: Array<[string, number, string, number]> = [
      ['query', this.queryDim, 'query_kernel', this.numHeads * this.keyDim],
      ...this.sourceWeightColumns().map(([name, columns]): [string, number, string, number] => ['kvSource', this.sourceDim, name, columns]),
    ];
    if (this.outputDims == null) weights.push(['query', this.queryDim, 'output_kernel', this.numHeads * this.valueDim]);
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

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    const shapes = (Array.isArray(inputShape[0]) ? inputShape : [inputShape]) as tfl.Shape[];
    const plan = this.pendingPlan;
    const roles = plan?.roles ?? positionalRoles(this.layerType, shapes, (shape) => shape.length);
    const query = shapes[roles.query ?? 0];
    const out = this.outputDims == null ? [...query] : [...query.slice(0, -1), ...this.outputDims];
    if (plan?.returnAttentionScores !== true) return out;
    const value = roles.value == null ? query : shapes[roles.value];
    return [out, [query[0], this.numHeads, query[1], value[1]]];
  }

  // ------------------------------------------------------------ forward

  /**
   * tfjs's entry point. Keras's `layer(query, value, key, ...)` is `apply(query, { value, key, ... })`
   * (AttentionCallOptions): the tensors among the options join the input list (each once), their
   * roles go to `call` in kwargs.inputRoles. The positional forms stay: see `call`.
   */
  override apply(inputs: tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[],
    kwargs?: Kwargs): tf.Tensor | tf.Tensor[] | tfl.SymbolicTensor | tfl.SymbolicTensor[] {
    const { list, rest, plan } = this.planCall(inputs, kwargs ?? {});
    if (list.some((t) => t instanceof tfl.SymbolicTensor)) this.recordGraphPlan(plan);
    this.pendingPlan = plan;
    try {
      return super.apply(list.length === 1 ? list[0] : list as tf.Tensor[], rest);
    } finally {
      this.pendingPlan = null;
    }
  }

  /**
   * inputs: x or [x, mask] (self-attention), [query, kvSource], [query, kvSource, mask],
   * [query, value, key] or [query, value, key, mask] (Keras's order; mask [B, Tk] 1 valid, 0
   * padding, rank < 3), or query with AttentionCallOptions in kwargs. tfjs's kwargs.mask is taken
   * as the keys' padding mask. Returns [B, Tq, ...outputShape] (default [B, Tq, queryWidth]), and the
   * attention weights [B, H, Tq, Tk] too with returnAttentionScores.
   * Prefer [x, mask] to [x, x, mask] in functional models: tfjs's executor disposes a tensor fed
   * twice to one layer too early ("Tensor is disposed" in predict); the options form feeds each once.
   */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const { list, plan } = this.planCall(inputs, kwargs ?? {});
    const training = kwargs?.training === true;
    this.applyConstraints();
    const result = tf.tidy(() => {
      const x = this.parseInputs(list as tf.Tensor[], plan, kwargs ?? {});
      const q = dense(x.query, this.w(this.queryKernel), this.b(this.queryBias));
      const separateKey = x.key !== x.source;
      const { k, v, aux } = this.projectKeyValue(x.source, x.mask, training, separateKey ? x.key : undefined);
      let scores: tf.Tensor | null = null;
      const attended = dotProductAttention(q, k, v, this.attentionOptions(x, dim(q, 1), dim(k, 1), training, (weights) => {
        // Kept past the op's tidy; call() hands back a tracked copy.
        if (plan.returnAttentionScores) scores = tf.keep(weights);
      }));
      const y = this.reshapeOutput(dense(attended, this.w(this.outputKernel), this.b(this.outputBias)));
      const activity = training && this.activityRegularizer_ != null
        ? tf.addN([q, k, v, y].map((t) => (this.activityRegularizer_ as Regularizer).apply(t))) as tf.Scalar : null;
      const out: Record<string, tf.Tensor> = { y };
      if (scores != null) out.scores = scores;
      if (aux != null) out.aux = aux;
      if (activity != null) out.activity = activity;
      return out;
    }) as { y: tf.Tensor; scores?: tf.Tensor; aux?: tf.Scalar; activity?: tf.Scalar };
    if (result.aux != null) this.onAuxiliaryLoss(result.aux);
    if (result.activity != null) this.activityLosses.push(result.activity);
    if (result.scores == null) return result.y;
    const scores = tf.clone(result.scores);
    result.scores.dispose();
    return [result.y, scores];
  }

  /** dotProductAttention's options for one call: masks, score bias, dropout; `seen` receives the weights before dropout. */
  private attentionOptions(x: AttentionInputs, tq: number, tk: number, training: boolean, seen: (weights: tf.Tensor) => void) {
    const rate = training ? this.dropout : 0;
    const dropout = (weights: tf.Tensor) => {
      seen(weights);
      return rate > 0 ? tf.dropout(weights, rate, undefined, this.dropoutSeed()) : weights;
    };
    const relative = this.scoreBias(tq, tk);
    const base = { numHeads: this.numHeads, attention: this.attention };
    if (x.pairMask == null) {
      return { ...base, causal: this.causal, mask: x.mask ?? undefined, scoreBias: relative, transformWeights: dropout };
    }
    // A [B, 1, Tq, Tk] mask, which the op does not take: its arithmetic done here (the op's own for [B, Tk]).
    let valid = x.pairMask;
    if (x.mask != null) valid = tf.mul(valid, tf.reshape(x.mask, [dim(x.mask, 0), 1, 1, tk]));
    if (this.causal) valid = tf.mul(valid, endAlignedCausal(tq, tk));
    if (this.attention === 'hstu') {
      // The op divides by Tk without a mask; by the number of valid keys with one.
      const norm = tf.div(tf.mul(valid, tk), tf.maximum(tf.sum(valid, -1, true), 1));
      return { ...base, scoreBias: relative, transformWeights: (w: tf.Tensor) => dropout(tf.mul(w, norm)) };
    }
    const masking = tf.mul(tf.sub(1, valid), -1e9);
    return {
      ...base, scoreBias: relative == null ? masking : tf.add(relative, masking),
      transformWeights: (w: tf.Tensor) => dropout(tf.mul(w, valid)),
    };
  }

  /** The next seed of this layer's dropout stream (undefined when unseeded). */
  private dropoutSeed(): number | undefined {
    if (this.seed == null) return undefined;
    // Keras's Dropout draws each call's seed from a generator seeded once: one stream per layer.
    return streamSeed(this.seed, this.dropoutCalls++);
  }

  /** [B, Tq, width] to [B, Tq, ...outputShape] when outputShape has several dimensions. */
  private reshapeOutput(y: tf.Tensor): tf.Tensor {
    if (this.outputDims == null || this.outputDims.length === 1) return y;
    return tf.reshape(y, [dim(y, 0), dim(y, 1), ...this.outputDims]);
  }

  /** Receives the aux loss of a training call (kept alive outside the call's tidy). */
  protected onAuxiliaryLoss(loss: tf.Scalar): void {
    loss.dispose();
  }

  /** The input list, kwargs without the tensor options (roles in inputRoles) and the plan of one call. */
  private planCall<T extends tf.Tensor | tfl.SymbolicTensor>(inputs: T | T[], kwargs: Kwargs): { list: T[]; rest: Kwargs; plan: CallPlan } {
    checkCallKwargs(this.layerType, kwargs);
    const list = Array.isArray(inputs) ? [...inputs] : [inputs];
    if (list.length === 0) {
      throw new ArgumentError(this.layerType, 'inputs', 'a tensor or a list of 1 to 4 tensors', 'an empty array');
    }
    const given = TENSOR_OPTIONS.filter((key) => kwargs[key] != null);
    const rest: Kwargs = { ...kwargs };
    for (const key of TENSOR_OPTIONS) delete rest[key];
    const flags = { useCausalMask: kwargs.useCausalMask === true, returnAttentionScores: kwargs.returnAttentionScores === true };
    let roles: InputRoles;
    if (kwargs.inputRoles != null) {
      if (given.length > 0) {
        throw new ArgumentError(this.layerType, given[0], 'absent when kwargs.inputRoles is given (pass the tensors as options or as a list, not both)',
          describeValue(kwargs[given[0]]));
      }
      roles = checkRoles(this.layerType, kwargs.inputRoles, list.length);
    } else if (given.length > 0) {
      if (list.length !== 1) {
        throw new ArgumentError(this.layerType, given[0], `absent when the inputs are a list (pass [query, value, key] or query with { ${given.join(', ')} })`,
          describeValue(kwargs[given[0]]));
      }
      roles = { query: 0 };
      for (const key of given) {
        const t = kwargs[key] as unknown;
        if (!(t instanceof tf.Tensor) && !(t instanceof tfl.SymbolicTensor)) {
          throw new ArgumentError(this.layerType, key, 'a tensor (or a symbolic tensor in a functional model)', describeValue(t));
        }
        const at = list.indexOf(t as T);
        roles[key] = at >= 0 ? at : list.push(t as T) - 1;
      }
      rest.inputRoles = roles;
    } else if (kwargs.useCausalMask == null && kwargs.returnAttentionScores == null && this.graphPlan?.inputs === list.length) {
      // tfjs's executor calls the layer with the node's inputs and no call options: the model's plan.
      const plan = this.graphPlan;
      return { list, rest: { ...rest, inputRoles: plan.roles, useCausalMask: plan.useCausalMask, returnAttentionScores: plan.returnAttentionScores }, plan };
    } else {
      roles = positionalRoles(this.layerType, list, (t) => t.shape.length);
    }
    return { list, rest, plan: { roles, inputs: list.length, ...flags } };
  }

  /** One plan per layer in functional models (the executor cannot tell the layer which application runs). */
  private recordGraphPlan(plan: CallPlan): void {
    const plain = plan.roles.key == null && !TENSOR_OPTIONS.some((r) => r !== 'value' && plan.roles[r] != null)
      && !plan.useCausalMask && !plan.returnAttentionScores;
    const recorded = this.graphPlan;
    if (recorded == null && plain && this.inboundNodes.length === 0) return;
    if (recorded == null && this.inboundNodes.length === 0) {
      this.graphPlan = plan;
      return;
    }
    if (recorded == null ? !plain : JSON.stringify(recorded) !== JSON.stringify(plan)) {
      throw new ArgumentError(this.layerType, 'call options',
        'the same inputs and call options at every application of this layer in a model (tfjs\'s executor passes a layer no call options, so the layer keeps those of its first application)',
        `${JSON.stringify(plan)} after ${JSON.stringify(recorded ?? 'none')}`);
    }
  }

  /** Validates and unpacks the call inputs (inside a tidy: the cast masks are scope-owned). */
  protected parseInputs(list: tf.Tensor[], plan: CallPlan, kwargs: Kwargs): AttentionInputs {
    const { roles } = plan;
    const query = list[roles.query ?? 0];
    const source = roles.value == null ? query : list[roles.value];
    const key = roles.key == null ? source : list[roles.key];
    this.checkSequenceInputs(query, source, key);
    const [b, tq, tk] = [dim(query, 0), dim(query, 1), dim(source, 1)];
    const padding = roles.mask != null ? list[roles.mask] : (roles.valueMask == null ? kwargsMask(kwargs) : null);
    const keyMasks = [
      padding == null ? null : checkMask(this.layerType, 'mask', padding, b, tk),
      ...(['valueMask', 'keyMask'] as const).map((r) => (roles[r] == null ? null : booleanMask(this.layerType, r, list[roles[r] as number], [[b, tk]]))),
    ].filter((m): m is tf.Tensor => m != null);
    const mask = keyMasks.length === 0 ? null : keyMasks.reduce((a, m) => tf.mul(a, m));
    const pair: tf.Tensor[] = [];
    if (roles.queryMask != null) pair.push(tf.reshape(booleanMask(this.layerType, 'queryMask', list[roles.queryMask], [[b, tq]]), [b, 1, tq, 1]));
    if (roles.attentionMask != null) {
      const m = booleanMask(this.layerType, 'attentionMask', list[roles.attentionMask], [[b, tq, tk], [1, tq, tk], [tq, tk]]);
      pair.push(tf.reshape(m, [m.rank === 3 ? dim(m, 0) : 1, 1, tq, tk]));
    }
    if (plan.useCausalMask) pair.push(startAlignedCausal(tq, tk));
    const pairMask = pair.length === 0 ? null : pair.reduce((a, m) => tf.mul(a, m));
    return { query, source, key, mask, pairMask };
  }

  private checkSequenceInputs(query: tf.Tensor, source: tf.Tensor, key: tf.Tensor): void {
    checkSequence(this.layerType, 'query', query, this.built ? this.queryDim : undefined);
    checkSequence(this.layerType, 'kvSource', source, this.built ? this.sourceDim : undefined);
    if (dim(source, 0) !== dim(query, 0)) {
      throw new ArgumentError(this.layerType, 'kvSource', `batch size ${dim(query, 0)} (the query's)`, `shape ${describeShape(source.shape)}`);
    }
    if (key === source) return;
    if (!this.supportsSeparateKey()) {
      throw new ArgumentError(this.layerType, 'key', `the value tensor or absent (${this.layerType} projects keys and values from one source)`,
        `a separate tensor of shape ${describeShape(key.shape)}`);
    }
    checkSequence(this.layerType, 'key', key, this.built ? this.keySourceDim : undefined);
    if (dim(key, 0) !== dim(source, 0) || dim(key, 1) !== dim(source, 1)) {
      throw new ArgumentError(this.layerType, 'key', `batch and time ${describeShape(source.shape.slice(0, 2))} (the value's)`, `shape ${describeShape(key.shape)}`);
    }
  }

  // ------------------------------------------------------------ cache API

  /**
   * Prefill: the cache of kvSource [B, Tk, de] (mask [B, Tk], default all ones). The caller owns
   * the block (dispose it). The layer must be built (called once, or `build` with the shapes).
   */
  computeCache(kvSource: tf.Tensor, mask?: tf.Tensor): KVCacheBlock {
    this.assertBuilt('computeCache');
    if (this.keySourceDim !== this.sourceDim) {
      throw new ArgumentError(this.layerType, 'this', 'a layer built with one K/V source (the cache API takes no separate key)',
        `a layer built with a key of width ${this.keySourceDim} and a value of width ${this.sourceDim}`);
    }
    checkSequence(this.layerType, 'kvSource', kvSource, this.sourceDim);
    this.applyConstraints();
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
   * positions of the block. Returns [B, Tq, ...outputShape] (default [B, Tq, queryWidth]).
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
    this.applyConstraints();
    return tf.tidy(() => {
      const q = dense(query, this.w(this.queryKernel), this.b(this.queryBias));
      const attended = this.attendBlock(q, block, causal, this.scoreBias(dim(q, 1), block.length));
      return this.reshapeOutput(dense(attended, this.w(this.outputKernel), this.b(this.outputBias)));
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
    if (!this.useBias) return null;
    const bias = this.addWeight(name, [width], 'float32', this.biasInit);
    this.ownBiases.add(bias);
    return bias;
  }

  override dispose(): ReturnType<tfl.layers.Layer['dispose']> {
    this.activityLosses.clear();
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    const optional = (key: string, value: tf.serialization.ConfigDictValue | null | undefined) => (value == null ? {} : { [key]: value });
    const object = (x: Regularizer | Constraint | null) => (x == null ? null : serializeObject(x));
    return {
      ...super.getConfig(),
      numHeads: this.numHeads,
      keyDim: this.keyDim,
      valueDim: this.valueDim,
      dropout: this.dropout,
      useBias: this.useBias,
      ...optional('outputShape', this.outputDims),
      ...optional('attentionAxes', this.attentionAxes),
      causal: this.causal,
      attention: this.attention,
      kernelInitializer: serializeInitializer(this.kernelInit),
      ...optional('biasInitializer', this.biasInitGiven ? serializeInitializer(this.biasInit) : null),
      ...optional('kernelRegularizer', object(this.kernelRegularizer)),
      ...optional('biasRegularizer', object(this.biasRegularizer)),
      ...optional('activityRegularizer', object(this.activityRegularizer_)),
      ...optional('kernelConstraint', object(this.kernelConstraint)),
      ...optional('biasConstraint', object(this.biasConstraint)),
      ...optional('seed', this.seed),
      ...(this.relativePositions > 0 ? { relativePositions: this.relativePositions } : {}),
    };
  }
}

/**
 * Which of an attention call's positional inputs is the query, the value (K/V source), the key
 * and the padding mask: x, [x, mask] (self-attention: a second input of rank below 3 is the mask),
 * [query, value], [query, value, mask], [query, value, key] (a third input of rank 3) or
 * [query, value, key, mask]. Works on tensors, symbolic tensors or shapes through `rank`.
 */
function positionalRoles<T>(layer: string, list: readonly T[], rank: (input: T) => number): InputRoles {
  switch (list.length) {
    case 1: return { query: 0 };
    case 2: return rank(list[1]) < 3 ? { query: 0, mask: 1 } : { query: 0, value: 1 };
    case 3: return rank(list[2]) < 3 ? { query: 0, value: 1, mask: 2 } : { query: 0, value: 1, key: 2 };
    case 4: if (rank(list[2]) >= 3 && rank(list[3]) < 3) return { query: 0, value: 1, key: 2, mask: 3 };
    // falls through: four inputs are [query, value, key, mask] only
    default:
      throw new ArgumentError(layer, 'inputs',
        'a tensor, [x, mask], [query, kvSource], [query, kvSource, mask], [query, value, key] or [query, value, key, mask]',
        `an array of ${list.length} tensors`);
  }
}

/**
 * The query, K/V source (the value) and padding mask of a call's positional inputs (see `call`).
 * Works on tensors, symbolic tensors or shapes through `rank`.
 */
export function attentionInputRoles<T>(list: readonly T[], rank: (input: T) => number): { query: T; source: T; mask: T | null } {
  const roles = list.length >= 1 && list.length <= 4 ? positionalRoles('attention', list, rank) : { query: 0, value: 1, mask: 2 };
  const query = list[roles.query ?? 0];
  return { query, source: roles.value == null ? query : list[roles.value] ?? query, mask: roles.mask == null ? null : list[roles.mask] ?? null };
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

/** Rejects kwargs a call does not know (Keras's snake_case names get the camelCase one suggested) and non-boolean flags. */
function checkCallKwargs(layer: string, kwargs: Kwargs): void {
  for (const [key, value] of Object.entries(kwargs)) {
    if (value === undefined || CALL_OPTION_KEYS.includes(key)) continue;
    const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const near = CALL_OPTION_KEYS.find((k) => k.toLowerCase() === camel.toLowerCase());
    throw new ArgumentError(layer, key, near != null ? `a call option of ${layer} (did you mean '${near}'?)`
      : `a call option of ${layer}: ${CALL_OPTION_KEYS.filter((k) => k !== 'inputRoles').join(', ')}`, describeValue(value));
  }
  for (const flag of ['useCausalMask', 'returnAttentionScores']) {
    if (kwargs[flag] != null) checkBoolean(layer, flag, kwargs[flag]);
  }
}

function checkRoles(layer: string, roles: unknown, inputs: number): InputRoles {
  const expected = `an object mapping ${INPUT_ROLES.join(', ')} to indices below ${inputs} (the number of inputs), with a query`;
  if (roles == null || typeof roles !== 'object' || Array.isArray(roles)) throw new ArgumentError(layer, 'inputRoles', expected, describeValue(roles));
  for (const [role, index] of Object.entries(roles)) {
    if (!(INPUT_ROLES as readonly string[]).includes(role) || !Number.isInteger(index) || (index as number) < 0 || (index as number) >= inputs) {
      throw new ArgumentError(layer, 'inputRoles', expected, describeValue(roles));
    }
  }
  if ((roles as InputRoles).query == null) throw new ArgumentError(layer, 'inputRoles', expected, describeValue(roles));
  return roles as InputRoles;
}

/** A Keras mask (bool or numeric, nonzero attends) of one of `shapes`, as float32 0/1 (a new tensor). */
function booleanMask(layer: string, arg: string, m: tf.Tensor, shapes: number[][]): tf.Tensor {
  const expected = `a tensor of shape ${shapes.map((s) => describeShape(s)).join(' or ')} (1 or true attends)`;
  if (!(m instanceof tf.Tensor)) throw new ArgumentError(layer, arg, expected, describeValue(m));
  if (!shapes.some((s) => s.length === m.rank && s.every((d, i) => d === m.shape[i]))) {
    throw new ArgumentError(layer, arg, expected, `shape ${describeShape(m.shape)}`);
  }
  return tf.cast(m.dtype === 'bool' ? m : tf.notEqual(m, 0), 'float32');
}

/** [1, 1, Tq, Tk]: query i attends to keys j <= i (Keras's use_causal_mask). */
function startAlignedCausal(tq: number, tk: number): tf.Tensor {
  return causalBand(tq, tk, 0);
}

/** [1, 1, Tq, Tk]: query i attends to keys j <= i + Tk - Tq (the layer's `causal`, as the op's). */
function endAlignedCausal(tq: number, tk: number): tf.Tensor {
  return causalBand(tq, tk, tk - tq);
}

function causalBand(tq: number, tk: number, offset: number): tf.Tensor {
  const rows = tf.reshape(tf.range(0, tq, 1, 'int32'), [tq, 1]);
  const cols = tf.reshape(tf.range(0, tk, 1, 'int32'), [1, tk]);
  return tf.reshape(tf.cast(tf.lessEqual(cols, tf.add(rows, offset)), 'float32'), [1, 1, tq, tk]);
}

function checkOutputShape(layer: string, x: unknown): number[] | null {
  if (x == null) return null;
  const list = typeof x === 'number' ? [x] : x;
  if (!Array.isArray(list) || list.length === 0 || !list.every((d) => Number.isInteger(d) && d > 0)) {
    throw new ArgumentError(layer, 'outputShape', 'a positive integer or a non-empty list of positive integers (or null: the query\'s width)',
      describeValue(x));
  }
  return [...list] as number[];
}

/** Keras normalizes a negative axis a to rank - 1 + a with rank 4 (the projected query): only axis 1 exists for rank-3 inputs. */
function checkAttentionAxes(layer: string, x: unknown): number[] | null {
  if (x == null) return null;
  const list = typeof x === 'number' ? [x] : x;
  const axes = Array.isArray(list) ? list.map((a) => (typeof a === 'number' && a < 0 ? 3 + a : a)) : null;
  if (axes == null || axes.length !== 1 || axes[0] !== 1) {
    throw new ArgumentError(layer, 'attentionAxes',
      'null, 1 or [1] (or -2): inputs are [batch, time, features], whose only attention axis is 1 (time); other axes need inputs of rank > 3',
      describeValue(x));
  }
  return [1];
}

/** Which of Keras's weight options a weight takes: 'bias' (a projection's bias), 'kernel' (every other trainable matrix), or none. */
function weightKind(weight: tfl.LayerVariable): 'kernel' | 'bias' | null {
  const name = weight.originalName.slice(weight.originalName.lastIndexOf('/') + 1);
  if (!weight.trainable || name === 'relative_position_bias') return null;
  return name.endsWith('_bias') ? 'bias' : 'kernel';
}
