// CollectiveKV attention (docs/design.md section 2): the drop-in replacement for MultiHeadAttention whose
// keys/values are concat(pool row chosen by a top-1 router, small user-specific part), so the cache
// stores one index and userDim numbers per token and side. Built from the design card's blocks:
// per shared side a GlobalKVPool (pool + router) and a UserKVProjector, as sublayers.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { DisposeResult } from '@tensorflow/tfjs-layers/dist/engine/topology';
import { collectiveAttention, dotProductAttention, gatherRows } from '../ops/index';
import { ArgumentError } from '../ops/util/validate';
import { ATTENTION_OPTION_KEYS, AttentionLayerBase, MultiHeadAttentionArgs, ProjectedKV } from './attentionBase';
import { CacheSide, KVCacheBlock } from './KVCacheBlock';
import {
  PACKAGE, PendingLosses, checkBoolean, checkFits, checkNonNegativeInt, checkOneOf, checkPositive, checkPositiveInt, dense, resolveActivation,
} from './common';
import { GlobalKVPool } from './GlobalKVPool';
import { UserKVProjector } from './UserKVProjector';
import { KVSourceRecorder, RecordedKVSources } from './KVSourceRecorder';
import { ResolvedRouterConfig, RouterSpec, Routing, checkRouterPoolSize, resolveRouterConfig, upgradeRouterArgs } from './routing/index';

export type ShareMode = 'kv' | 'k' | 'v';

/**
 * Where a shared side's first numHeads*d - userDim columns come from: 'pooled', the pool row the
 * router picks (what the compact cache stores), or 'full', a full projection (the recipe's warm-up,
 * cached in full). docs/recipe.md.
 */
export const KV_PHASES = ['pooled', 'full'] as const;
/** Where a shared side's pool columns come from, one of KV_PHASES. @useDeclaredType */
export type KVPhase = (typeof KV_PHASES)[number];

export interface CollectiveKVAttentionArgs extends MultiHeadAttentionArgs {
  /** Rows per pool (m). Default 1024. */
  poolSize?: number;
  /**
   * Width of the user-specific part (du), per shared side. Default 1. At most numHeads*keyDim (and
   * *valueDim); equal to it leaves a zero-width pool, i.e. K/V = the user projection alone (the
   * full-width case: conversion's sanity check that a swapped model can reproduce the original).
   */
  userDim?: number;
  /** Which sides go through a pool: 'kv' (default), 'k' or 'v'; the other side is a full projection. */
  share?: ShareMode;
  /** Activation of the user part, any tfjs activation id. Default 'swish' (SiLU). */
  userActivation?: string;
  /**
   * Seeds the pools' normal(0, poolStddev) init (the key pool with poolSeed, the value pool with
   * poolSeed + 1) and what a router draws from data, so two builds start from the same pools.
   * Default: unseeded.
   */
  poolSeed?: number;
  /**
   * Standard deviation of the pools' normal init. Default 1 (the paper's reference). Rows of
   * std 1 are far wider than a glorot projection of small embeddings (~0.05 per column), so the
   * pooled K/V start ~20x the scale of the MultiHeadAttention they replace; a host model with
   * small embeddings may match its scale.
   */
  poolStddev?: number;
  /**
   * The router of every pool: 'dense' (default, the paper's: one router column per pool row, a
   * gate, peak + balance losses) or 'nearest-product' (the nearest row of a product-quantized pool
   * by a learned encoder, a VQ loss), or a config with the router's own options, e.g.
   * `{ kind: 'dense', gate: 'straight-through', peakWeight: 0.01 }` or
   * `{ kind: 'nearest-product', quantizationWeight: 1 / 64 }` (see RouterConfig). Either way the
   * cache holds a row index. Which to pick and why: docs/routing.md.
   */
  router?: RouterSpec;
  /**
   * 'pooled' (default) or 'full' (see KVPhase). collectiveKVRecipe / the zoo's recipe start a layer
   * in 'full' and switch it to 'pooled' at the validation plateau, building the pool from the K/V
   * the trained model produces (switchToPool).
   */
  kvPhase?: KVPhase;
  /**
   * Whether the layer has the 'full' phase's projection weights (`key_warmup_kernel`, ...). Default
   * true. Models saved by 0.1 have none and load with false; such a layer cannot enter 'full'.
   */
  warmupWeights?: boolean;
}

/** The options of CollectiveKVAttentionArgs beyond MultiHeadAttentionArgs'. */
const COLLECTIVE_OPTION_KEYS: readonly string[] = Object.keys({
  poolSize: true, userDim: true, share: true, userActivation: true, poolSeed: true, poolStddev: true, router: true, kvPhase: true, warmupWeights: true,
} satisfies Record<Exclude<keyof CollectiveKVAttentionArgs, keyof MultiHeadAttentionArgs>, true>);

/** @inline */
type Side = 'key' | 'value';

/** The building blocks of one shared side. */
export interface CollectiveSide {
  pool: GlobalKVPool;
  user: UserKVProjector;
}

/**
 * getWeights()/setWeights() order of a shared side's weights (by name after the side prefix), as
 * 0.1 built them: pool, router, user part, then the nearest-product encoder.
 */
const SIDE_WEIGHT_ORDER = ['pool', 'pool_a', 'pool_b', 'router', 'router_bias', 'user_kernel', 'user_bias', 'encoder_kernel', 'encoder_bias', 'pool_ready'];

/**
 * Multi-head attention whose shared side(s) take their first H*d - userDim columns from a global
 * pool (a row picked per token by the router) and the last userDim columns from act(x W + b);
 * heads are split after the concat.
 *
 * Weights: query_kernel/_bias, output_kernel/_bias, and per shared side s in {key, value} its
 * GlobalKVPool's, named s_pool, s_router, s_router_bias (dense router) or s_pool_a, s_pool_b,
 * s_encoder_kernel, s_encoder_bias, s_pool_ready (nearest-product), and its UserKVProjector's,
 * s_user_kernel, s_user_bias; an unshared side has s_kernel, s_bias like MultiHeadAttention.
 * Biases exist only with useBias. `side(s)` gives a side's blocks.
 *
 * Routing losses (over valid tokens) are computed in training calls from that call's batch. They
 * reach `model.fit` through `addLoss` (fit calls `model.calculateLosses()` inside its gradient
 * tape). In a custom loop, add `layer.auxiliaryLoss()` or `tf.addN(model.calculateLosses())` to the
 * loss inside the function given to `optimizer.minimize`. Reading returns the sum over the
 * training calls since the last read and clears it; losses of calls whose tidy/tape has ended are
 * dropped, never carried over.
 */
export class CollectiveKVAttention extends AttentionLayerBase {
  static className = 'CollectiveKVAttention';
  readonly poolSize: number;
  readonly userDim: number;
  readonly share: ShareMode;
  readonly userActivation: string;
  readonly poolSeed: number | null;
  readonly poolStddev: number;
  /** The router's config, every option set. */
  readonly router: ResolvedRouterConfig;
  private readonly sides: { key: CollectiveSide | null; value: CollectiveSide | null };
  private readonly auxLosses = new PendingLosses();
  /** This layer's own weights and its shared sides, in build order: what `weights` lists, in order. */
  private readonly parts: Array<tfl.LayerVariable | CollectiveSide> = [];
  private phase: KVPhase;
  readonly warmupWeights: boolean;
  private recorder: KVSourceRecorder | null = null;

  constructor(args: CollectiveKVAttentionArgs) {
    const name = CollectiveKVAttention.className;
    const a = upgradeRouterArgs(name, args);
    super(a, name, [...ATTENTION_OPTION_KEYS, ...COLLECTIVE_OPTION_KEYS]);
    this.poolSize = checkPositiveInt(name, 'poolSize', a.poolSize ?? 1024);
    this.userDim = checkPositiveInt(name, 'userDim', a.userDim ?? 1);
    this.share = checkOneOf(name, 'share', a.share ?? 'kv', ['kv', 'k', 'v'] as const);
    this.userActivation = a.userActivation ?? 'swish';
    this.poolSeed = a.poolSeed == null ? null : checkNonNegativeInt(name, 'poolSeed', a.poolSeed);
    this.poolStddev = checkPositive(name, 'poolStddev', a.poolStddev ?? 1);
    this.router = resolveRouterConfig(name, a.router);
    this.warmupWeights = checkBoolean(name, 'warmupWeights', a.warmupWeights ?? true);
    this.phase = 'pooled';
    this.setKVPhase(a.kvPhase ?? 'pooled', 'kvPhase');
    checkRouterPoolSize(name, this.router, this.poolSize);
    resolveActivation(name, 'userActivation', this.userActivation);
    if (this.isShared('key')) this.checkUserDim('keyDim', this.keyDim);
    if (this.isShared('value')) this.checkUserDim('valueDim', this.valueDim);
    this.checkPoolSizes();
    this.sides = { key: this.makeSide('key'), value: this.makeSide('value') };
    this.addLoss(() => this.auxLosses.take());
  }

  private checkUserDim(dimName: string, headDim: number): void {
    const width = this.numHeads * headDim;
    if (this.userDim > width) {
      throw new ArgumentError(CollectiveKVAttention.className, 'userDim',
        `at most numHeads*${dimName} = ${width} (userDim = ${width} leaves a zero-width pool)`, String(this.userDim));
    }
  }

  /** The pools fit the backend; the weights whose rows are the K/V source's features are checked by build (sourceWeightColumns). */
  private checkPoolSizes(): void {
    const name = CollectiveKVAttention.className;
    checkFits(name, 'poolSize', this.poolSize, 1, 'a [poolSize] vector (routing)');
    for (const side of ['key', 'value'] as const) {
      const width = this.poolWidth(side);
      if (width > 0) checkFits(name, 'poolSize', this.poolSize, width, `the ${side} pool [poolSize, numHeads*${side}Dim - userDim = ${width}]`);
    }
  }

  /** A shared side's blocks (unbuilt): weights named `${side}_...` under this layer, seeded from poolSeed (+1 for values). */
  private makeSide(side: Side): CollectiveSide | null {
    if (!this.isShared(side)) return null;
    const offset = side === 'key' ? 0 : 1;
    const seed = this.poolSeed == null ? undefined : this.poolSeed + offset;
    const common = { useBias: this.useBias, trainable: this.trainable };
    return {
      pool: new GlobalKVPool({
        ...common, name: `${this.name}/${side}`, units: this.poolWidth(side), poolSize: this.poolSize, router: this.router,
        routerInitializer: this.kernelInit, poolInitializer: tfl.initializers.randomNormal({ mean: 0, stddev: this.poolStddev, seed }),
        seed: (this.poolSeed ?? 0) + offset, weightPrefix: `${side}_`,
      }),
      user: new UserKVProjector({
        ...common, name: `${this.name}/${side}_user`, units: this.userDim, activation: this.userActivation, kernelInitializer: this.kernelInit,
        weightPrefix: `${side}_user_`,
      }),
    };
  }

  /** Columns of a shared side's pool rows (H*d - userDim; 0 for an unshared side). */
  private poolWidth(side: Side): number {
    return this.isShared(side) ? this.numHeads * (side === 'key' ? this.keyDim : this.valueDim) - this.userDim : 0;
  }

  isShared(side: Side): boolean {
    return this.share === 'kv' || this.share === side.charAt(0);
  }

  /** The GlobalKVPool and UserKVProjector of a shared side (built with this layer). */
  side(side: Side): CollectiveSide {
    const s = side === 'key' || side === 'value' ? this.sides[side] : null;
    if (s == null) {
      throw new ArgumentError(CollectiveKVAttention.className, 'side', `a shared side (share is '${this.share}')`, JSON.stringify(side));
    }
    return s;
  }

  /** Sum of the auxiliary losses of the training calls since the last read; reading clears it. Caller owns it. */
  auxiliaryLoss(): tf.Scalar {
    return this.auxLosses.take();
  }

  /** Where the shared sides' pool columns come from now (see KVPhase). */
  get kvPhase(): KVPhase {
    return this.phase;
  }

  /**
   * Sets the phase. 'full' starts (or restarts) the warm-up; 'pooled' reads the pool as it is, so
   * switch a trained warm-up with switchToPool, which builds the pool from the warm-up's K/V first.
   */
  setKVPhase(phase: KVPhase, arg = 'phase'): void {
    const name = CollectiveKVAttention.className;
    const checked = checkOneOf(name, arg, phase, KV_PHASES);
    if (checked === 'full' && !this.warmupWeights) {
      throw new ArgumentError(name, arg, "'pooled' (this layer has no warm-up weights: warmupWeights is false, e.g. a model saved by 0.1)", "'full'");
    }
    this.phase = checked;
  }

  /** Changes router options in place (every shared side; the kind cannot change), e.g. the recipe's balanceWeight after the switch. */
  setRouterOptions(options: Partial<ResolvedRouterConfig>): void {
    for (const s of [this.sides.key, this.sides.value]) s?.pool.setRouterOptions(options);
    Object.assign(this.router, (this.sides.key ?? this.sides.value)?.pool.router ?? {});
  }

  /**
   * Starts recording the K/V source rows of the valid tokens of this layer's inference calls (at
   * most maxRows; later rows are dropped): what switchToPool clusters. Any recording in progress is discarded.
   */
  startRecording(maxRows: number): void {
    this.recorder = new KVSourceRecorder(checkPositiveInt(CollectiveKVAttention.className, 'maxRows', maxRows));
  }

  /** Stops recording and returns what was recorded (null when no recording was started). */
  stopRecording(): RecordedKVSources | null {
    const recorded = this.recorder?.result() ?? null;
    this.recorder = null;
    return recorded;
  }

  /** The inference route of kvSource [B, T, de] for a shared side (analysis, conversion). The caller owns it. */
  route(side: Side, kvSource: tf.Tensor): Routing {
    this.assertBuilt('route');
    return this.side(side).pool.route(kvSource);
  }

  /**
   * The pool [poolSize, H*d - userDim] of a shared side: the variable (not a copy), or with the
   * nearest-product router the product of the sub-pools (a new tensor: call inside a tidy).
   */
  poolTable(side: Side): tf.Tensor {
    this.assertBuilt('poolTable');
    return this.side(side).pool.poolTable();
  }

  // ------------------------------------------------------------ weights (own and the sides')

  /** Records this layer's own weights in build order (the sides are recorded by buildKeyValue). */
  protected override addWeight(...args: Parameters<tfl.layers.Layer['addWeight']>): tfl.LayerVariable {
    const weight = super.addWeight(...args);
    this.parts.push(weight);
    return weight;
  }

  /** Every weight, trainable or not, in 0.1's order (a side's where its weights were created). */
  private allWeights(): tfl.LayerVariable[] {
    return this.parts.flatMap((p) => (p instanceof tfl.LayerVariable ? [p] : sideWeights(p)));
  }

  override get trainableWeights(): tfl.LayerVariable[] {
    return this.trainable ? this.allWeights().filter((w) => w.trainable) : [];
  }

  override set trainableWeights(weights: tfl.LayerVariable[]) {
    super.trainableWeights = weights;
  }

  override get nonTrainableWeights(): tfl.LayerVariable[] {
    const all = this.allWeights();
    return this.trainable ? all.filter((w) => !w.trainable) : all;
  }

  override set nonTrainableWeights(weights: tfl.LayerVariable[]) {
    super.nonTrainableWeights = weights;
  }

  override get trainable(): boolean {
    return super.trainable;
  }

  override set trainable(trainable: boolean) {
    super.trainable = trainable;
    for (const s of [this.sides?.key, this.sides?.value]) {
      if (s == null) continue;
      s.pool.trainable = trainable;
      s.user.trainable = trainable;
    }
  }

  override setFastWeightInitDuringBuild(value: boolean): void {
    super.setFastWeightInitDuringBuild(value);
    for (const s of [this.sides.key, this.sides.value]) {
      s?.pool.setFastWeightInitDuringBuild(value);
      s?.user.setFastWeightInitDuringBuild(value);
    }
  }

  // ------------------------------------------------------------ hooks

  protected override buildKeyValue(sourceDim: number): void {
    for (const side of ['key', 'value'] as const) {
      const s = this.sides[side];
      if (s == null) {
        const width = this.numHeads * (side === 'key' ? this.keyDim : this.valueDim);
        this.fullSides[side] = { kernel: this.addKernel(`${side}_kernel`, [sourceDim, width]), bias: this.addBias(`${side}_bias`, width) };
        continue;
      }
      s.pool.build([null, sourceDim]);
      s.user.build([null, sourceDim]);
      this.parts.push(s);
      const width = this.poolWidth(side);
      if (width > 0 && this.warmupWeights) {
        this.warmupSides[side] = { kernel: this.addKernel(`${side}_warmup_kernel`, [sourceDim, width]), bias: this.addBias(`${side}_warmup_bias`, width) };
      }
    }
  }

  /** The full projections of the pool columns in the 'full' phase (shared sides with a pool). */
  private readonly warmupSides: { key?: FullSide; value?: FullSide } = {};

  /** The warm-up projection of a shared side's pool columns: kernel [sourceDim, H*d - userDim] and bias (null without useBias, or for an empty pool). */
  warmupProjection(side: Side): { kernel: tf.Tensor; bias: tf.Tensor | null } | null {
    this.assertBuilt('warmupProjection');
    this.side(side);
    const w = this.warmupSides[side];
    return w == null ? null : { kernel: w.kernel.read(), bias: w.bias?.read() ?? null };
  }

  /** The projections of unshared sides. */
  private readonly fullSides: { key?: FullSide; value?: FullSide } = {};

  protected override sourceWeightColumns(): Array<[string, number]> {
    return (['key', 'value'] as const).flatMap((side): Array<[string, number]> => {
      const s = this.sides[side];
      if (s == null) return [[`${side}_kernel`, this.numHeads * (side === 'key' ? this.keyDim : this.valueDim)]];
      const warmup: Array<[string, number]> = this.poolWidth(side) > 0 && this.warmupWeights ? [[`${side}_warmup_kernel`, this.poolWidth(side)]] : [];
      return [[`${side}_user_kernel`, this.userDim], ...s.pool.inputColumns(), ...warmup];
    });
  }

  protected override projectKeyValue(source: tf.Tensor, mask: tf.Tensor | null, training: boolean): ProjectedKV {
    if (!training) this.recorder?.add(source, mask);
    const k = this.sideForward('key', source, mask, training);
    const v = this.sideForward('value', source, mask, training);
    const losses = [k.loss, v.loss].filter((l): l is tf.Scalar => l != null);
    const aux = losses.length === 0 ? null : (losses.length === 1 ? losses[0] : tf.add(losses[0], losses[1]) as tf.Scalar);
    return { k: k.values, v: v.values, aux };
  }

  /** One side of the full forward; the routing loss only in training (it needs the gradient tape). */
  private sideForward(side: Side, source: tf.Tensor, mask: tf.Tensor | null, training: boolean): { values: tf.Tensor; loss: tf.Scalar | null } {
    const s = this.sides[side];
    if (s == null) return { values: this.fullProjection(side, source), loss: null };
    if (this.phase === 'full') return { values: this.warmupValues(side, s, source), loss: null };
    const { rows, loss } = s.pool.lookup(source, { training, mask, tail: s.user.call(source, {}) as tf.Tensor });
    return { values: rows, loss };
  }

  /** The 'full' phase's K/V of a shared side: the warm-up projection joined to the user part, the pooled layout. */
  private warmupValues(side: Side, s: CollectiveSide, source: tf.Tensor): tf.Tensor {
    const user = s.user.call(source, {}) as tf.Tensor;
    const warmup = this.warmupSides[side];
    if (warmup == null) return user;
    return tf.concat([dense(source, warmup.kernel.read(), warmup.bias?.read() ?? null), user], -1);
  }

  private fullProjection(side: Side, source: tf.Tensor): tf.Tensor {
    const full = this.fullSides[side];
    if (full == null) throw new ArgumentError(CollectiveKVAttention.className, 'this', 'a built layer', 'an unbuilt layer');
    return dense(source, full.kernel.read(), full.bias?.read() ?? null);
  }

  protected override encodeCache(source: tf.Tensor): { keys: CacheSide; values: CacheSide } {
    return { keys: this.encodeSide('key', source), values: this.encodeSide('value', source) };
  }

  private encodeSide(side: Side, source: tf.Tensor): CacheSide {
    const s = this.sides[side];
    if (s == null) return { kind: 'full', values: this.fullProjection(side, source) };
    if (this.phase === 'full') return { kind: 'full', values: this.warmupValues(side, s, source) };
    return { kind: 'pooled', index: s.pool.index(source), user: s.user.call(source, {}) as tf.Tensor, poolSize: this.poolSize };
  }

  protected override checkBlock(block: KVCacheBlock): void {
    const pooled = (side: Side) => this.isShared(side) && this.phase === 'pooled';
    const kind = (side: Side) => (pooled(side) ? 'pooled' : 'full');
    const width = (side: Side, headDim: number) => (pooled(side) ? this.userDim : this.numHeads * headDim);
    this.checkSide(block.keys, 'keys', kind('key'), width('key', this.keyDim), this.poolSize);
    this.checkSide(block.values, 'values', kind('value'), width('value', this.valueDim), this.poolSize);
  }

  /**
   * Fused collectiveAttention when both sides are pooled and there is no score bias (the fused
   * kernels take none); otherwise materialize the pooled sides.
   */
  protected override attendBlock(q: tf.Tensor, block: KVCacheBlock, causal: boolean, scoreBias: tf.Tensor | undefined): tf.Tensor {
    const options = { numHeads: this.numHeads, attention: this.attention, causal };
    const { keys, values } = block;
    if (keys.kind === 'pooled' && values.kind === 'pooled' && scoreBias == null) {
      return collectiveAttention(q,
        { indexK: keys.index, userK: keys.user, indexV: values.index, userV: values.user, mask: block.mask },
        { poolK: this.poolTable('key'), poolV: this.poolTable('value') }, options);
    }
    const k = this.materialize('key', keys);
    const v = this.materialize('value', values);
    return dotProductAttention(q, k, v, { ...options, mask: block.mask, scoreBias });
  }

  private materialize(side: Side, cached: CacheSide): tf.Tensor {
    if (cached.kind === 'full') return cached.values;
    return gatherRows(this.poolTable(side), cached.index, undefined, cached.user);
  }

  protected override onAuxiliaryLoss(loss: tf.Scalar): void {
    this.auxLosses.push(loss);
  }

  override dispose(): DisposeResult {
    this.auxLosses.clear();
    this.recorder = null;
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      poolSize: this.poolSize,
      userDim: this.userDim,
      share: this.share,
      userActivation: this.userActivation,
      ...(this.poolSeed == null ? {} : { poolSeed: this.poolSeed }),
      ...(this.poolStddev === 1 ? {} : { poolStddev: this.poolStddev }),
      // Every option of the router, defaults included: a saved model keeps them if a default changes.
      router: { ...this.router },
      // Always written: a config without it is 0.1's (see fromConfig).
      kvPhase: this.phase,
      ...(this.warmupWeights ? {} : { warmupWeights: false }),
    };
  }

  /** Configs saved before the recipe existed (no kvPhase) describe layers without warm-up weights. */
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict): T {
    return new cls('kvPhase' in config ? config : { ...config, warmupWeights: false });
  }
}

interface FullSide {
  kernel: tfl.LayerVariable;
  bias: tfl.LayerVariable | null;
}

/** A side's weights in SIDE_WEIGHT_ORDER (by the name after `${side}_`). */
function sideWeights(s: CollectiveSide): tfl.LayerVariable[] {
  const prefix = s.pool.weightPrefix;
  const rank = (w: tfl.LayerVariable) => SIDE_WEIGHT_ORDER.indexOf(w.originalName.slice(w.originalName.lastIndexOf('/') + 1).slice(prefix.length));
  return [...s.pool.weights, ...s.user.weights].sort((a, b) => rank(a) - rank(b));
}

tf.serialization.registerClass(CollectiveKVAttention, PACKAGE);
