// CollectiveKV attention (DESIGN.md section 1): the drop-in replacement for MultiHeadAttention whose
// keys/values are concat(pool row chosen by a top-1 router, small user-specific part), so the cache
// stores one index and userDim numbers per token and side.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { DisposeResult } from '@tensorflow/tfjs-layers/dist/engine/topology';
import { collectiveAttention, dotProductAttention, gatherRows } from '../ops/index';
import { ArgumentError, dim } from '../ops/util/validate';
import { ATTENTION_OPTION_KEYS, AttentionLayerBase, MultiHeadAttentionArgs, ProjectedKV } from './attentionBase';
import { CacheSide, KVCacheBlock } from './KVCacheBlock';
import {
  BalanceSampler, DEFAULT_BALANCE_TOKENS, PACKAGE, PendingLosses, checkFits, checkNonNegative, checkNonNegativeInt, checkPositive, checkOneOf,
  checkPositiveInt, dense, resolveActivation, zeros,
} from './common';
import {
  ATTENTION_ROUTER_KINDS, AttentionRouterKind, DEFAULT_QUANTIZATION_WEIGHT, GATE_MODES, GateMode, NearestWeights, PoolWeights, Routing, isNearestRouter, nearestRouter, nearestTrainingRows, productPool,
  routerColumns, routerSubKeys,
  routeTokens, scaleRouterInit, trainingRows,
} from './GlobalKVPool';
import { userProjection } from './UserKVProjector';

export type ShareMode = 'kv' | 'k' | 'v';

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
  /** Weight of the peak loss (per routed pool); 0 turns it off. Default 0.01. */
  peakWeight?: number;
  /** Weight of the balance loss (per routed pool); 0 turns it off. Default 1.0. */
  balanceWeight?: number;
  /**
   * Tokens per training call whose router softmax the balance loss averages: a seeded sample when
   * a call has more (an estimate of the mean over all tokens; the peak loss and the gate still see
   * every token); 0 = all. The balance term is the routing step's dense [tokens, poolSize] work,
   * so this bounds it. Default 2048. With a product-key router the balance term is an [s, s]
   * matmul over the tokens, N * poolSize work that the sample bounds just as well at large pools.
   * With router 'nearest' the sample is the VQ loss's.
   */
  balanceTokens?: number;
  /** Activation of the user part, any tfjs activation id. Default 'swish' (SiLU). */
  userActivation?: string;
  /**
   * r > 0 makes each router low-rank: logits = (x P) R + b with P [de, r] and R [r, poolSize]
   * (still linear in x). The full router costs de * poolSize per token, several K/V projections at
   * a large pool; r = 32 at de = 256, poolSize = 1024 costs 1/6.4 of it. Default 0: the full
   * [de, poolSize] router of the paper.
   */
  routerDim?: number;
  /**
   * Seeds the pools' normal(0, 1) init (the key pool with poolSeed, the value pool with
   * poolSeed + 1), so two builds start from the same pools. Default: unseeded.
   */
  poolSeed?: number;
  /**
   * Standard deviation of the pools' normal init. Default 1 (the paper's reference). Rows of
   * std 1 are far wider than a glorot projection of small embeddings (~0.05 per column), so the
   * pooled K/V start ~20x the scale of the MultiHeadAttention they replace and Adam (steps ~lr)
   * needs about 1/lr steps to move them; a host model with small embeddings may match its scale.
   */
  poolStddev?: number;
  /**
   * Loss-free load balancing (as DeepSeek-V3 balances its experts): a per-row routing bias, not
   * trained by gradients, is added to the router logits, and after every training call each row's
   * bias moves by this much toward equal use (up for a row chosen by fewer than its share of the
   * call's valid tokens, down for one chosen by more). The paper's balance loss evens the mean
   * softmax, which argmax routing can satisfy while most tokens crowd onto a few rows. Default 0:
   * off (the paper's).
   */
  routingBiasRate?: number;
  /**
   * How the gate enters training: 'scaled' (the paper's: rows are gate * pool[index] in training,
   * pool[index] at inference) or 'straight-through' (pool[index] in both; the router still learns
   * through the gate's gradient). Default 'scaled'.
   */
  gate?: GateMode;
  /**
   * 'dense' (default, the paper's): one router column per pool row. 'product': product keys, two
   * sub-routers of s = sqrt(poolSize) columns each, row i*s + j scored a[i] + b[j] (poolSize must
   * be a perfect square). Per token the router then costs 2s columns instead of poolSize (64 vs
   * 1024), and the cache is unchanged (a row index). Not with
   * routingBiasRate. The s_router weight is [de, 2s] and s_router_bias [2s].
   *
   * 'nearest': each token takes the pool row nearest to a learned projection enc(x) = x W + b of
   * width H*d - userDim (s_encoder_kernel, s_encoder_bias), trained as a VQ-VAE codebook: the
   * forward reads the row, its gradient reaches the row and, straight through, enc(x); a loss
   * pulls rows and projections together (commitmentWeight). No gate, no peak or balance loss (their
   * weights are unused). The pool starts as enc(x) of random valid tokens of the first training call
   * (s_pool_ready, not trainable, records that it happened, so a loaded model keeps its pool).
   * Inference routes with the equivalent dense router (2 W P^T, 2 b P^T - ||P_j||^2), so the cache
   * is unchanged. Not with routerDim, routingBiasRate or gate.
   *
   * 'nearest-product': 'nearest' over a product-quantized pool: row i*s + j (s = sqrt(poolSize), a
   * perfect square) is concat(a[i], b[j]) of two sub-pools of s rows (s_pool_a [s, dgA], s_pool_b
   * [s, dg - dgA], dgA = ceil(dg / 2)), so the nearest row is found per half: 2s distances per token
   * instead of poolSize (the cost of a 'product' router), for a pool with 2s free half-rows. The
   * cache is unchanged (a row index).
   */
  router?: AttentionRouterKind;
  /**
   * With router 'nearest' or 'nearest-product': weight of the commitment term ||sg(row) - enc(x)||^2 (the row's own term
   * ||row - sg(enc(x))||^2 has weight 1). Default 0.25 (VQ-VAE's).
   */
  commitmentWeight?: number;
  /**
   * With router 'nearest' or 'nearest-product': weight of the whole VQ loss (both terms), which is
   * relative to the encodings' mean squared norm (see nearestTrainingRows). Larger keeps rows and
   * projections closer. Default 1/64 (DEFAULT_QUANTIZATION_WEIGHT; see there why small).
   */
  quantizationWeight?: number;
}

/** The options of CollectiveKVAttentionArgs beyond MultiHeadAttentionArgs'. */
const COLLECTIVE_OPTION_KEYS: readonly string[] = Object.keys({
  poolSize: true, userDim: true, share: true, peakWeight: true, balanceWeight: true, balanceTokens: true, userActivation: true,
  routerDim: true, poolSeed: true, poolStddev: true, routingBiasRate: true, gate: true, router: true, commitmentWeight: true,
  quantizationWeight: true,
} satisfies Record<Exclude<keyof CollectiveKVAttentionArgs, keyof MultiHeadAttentionArgs>, true>);

type Side = 'key' | 'value';

/** The weights of one side: a full projection, or pool + router + user projection. */
type SideWeights =
  | { kind: 'full'; kernel: tfl.LayerVariable; bias: tfl.LayerVariable | null }
  | { kind: 'pooled'; pool: PoolVariables; router: tfl.LayerVariable | null; routerBias: tfl.LayerVariable | null;
      routerProjection: tfl.LayerVariable | null; routingBias: tfl.LayerVariable | null; userKernel: tfl.LayerVariable;
      userBias: tfl.LayerVariable | null; encoder: NearestEncoder | null };

/** One pool variable [poolSize, dg], or the two sub-pools of a product-quantized pool ('nearest-product'). */
type PoolVariables = { kind: 'table'; table: tfl.LayerVariable } | { kind: 'product'; a: tfl.LayerVariable; b: tfl.LayerVariable };

/** The pool [poolSize, dg]: the variable's value, or the product pool of the sub-pools (a new tensor). */
function readPool(pool: PoolVariables): tf.Tensor {
  return pool.kind === 'table' ? pool.table.read() : productPool(pool.a.read(), pool.b.read());
}

/** The collective projection of a nearest-routed side and the flag of its pool's data init. */
interface NearestEncoder {
  kernel: tfl.LayerVariable;
  bias: tfl.LayerVariable | null;
  /** [1], not trainable: 1 once the pool was set from data. */
  poolReady: tfl.LayerVariable;
}

/**
 * Multi-head attention whose shared side(s) take their first H*d - userDim columns from a global
 * pool (row picked per token by a linear top-1 router, scaled by the sigmoid gate in training unless
 * the gate is straight-through) and
 * the last userDim columns from act(x W + b); heads are split after the concat.
 *
 * Weights: query_kernel/_bias, output_kernel/_bias, and per shared side s in {key, value}:
 * s_pool [poolSize, H*d - userDim] (init normal(0, poolStddev)), s_router [de, poolSize], s_router_bias,
 * s_user_kernel [de, userDim], s_user_bias (with routerDim r > 0: s_router_projection [de, r] and
 * s_router [r, poolSize]; with router 'product': 2 sqrt(poolSize) router columns instead of poolSize;
 * with routingBiasRate > 0: s_routing_bias [poolSize], not trainable); an
 * unshared side has s_kernel, s_bias like MultiHeadAttention. Biases (router biases included) exist
 * only with useBias.
 *
 * Auxiliary losses (peak + balance per routed pool, over valid tokens) are computed in training
 * calls from that call's batch. They reach `model.fit` through `addLoss` (fit calls
 * `model.calculateLosses()` inside its gradient tape). In a custom loop, add
 * `layer.auxiliaryLoss()` or `tf.addN(model.calculateLosses())` to the loss inside the function
 * given to `optimizer.minimize`. Reading returns the sum over the training calls since the last read
 * and clears it; losses of calls whose tidy/tape has ended are dropped, never carried over.
 */
export class CollectiveKVAttention extends AttentionLayerBase {
  static className = 'CollectiveKVAttention';
  readonly poolSize: number;
  readonly userDim: number;
  readonly share: ShareMode;
  readonly peakWeight: number;
  readonly balanceWeight: number;
  readonly balanceTokens: number;
  readonly userActivation: string;
  readonly poolSeed: number | null;
  readonly poolStddev: number;
  readonly routerDim: number;
  readonly routingBiasRate: number;
  readonly gate: GateMode;
  readonly router: AttentionRouterKind;
  readonly commitmentWeight: number;
  readonly quantizationWeight: number;
  /** s = sqrt(poolSize) for a product-key router or a product-quantized pool ('nearest-product'), else null. */
  private readonly subKeys: number | null;
  private readonly samplers: { key: BalanceSampler; value: BalanceSampler };
  private readonly act: (t: tf.Tensor) => tf.Tensor;
  private readonly auxLosses = new PendingLosses();
  private sides: { key: SideWeights; value: SideWeights } | null = null;
  /**
   * Nearest-routed sides whose pool is known to be set from data (saves reading the flag each call),
   * with the flag's data as read then: a write of the flag (setWeights, or a model-level load that
   * writes the variable directly) gives it new data, and the next training call reads it again.
   */
  private readonly poolsReady = new Map<Side, object>();

  constructor(args: CollectiveKVAttentionArgs) {
    const name = CollectiveKVAttention.className;
    super(args, name, [...ATTENTION_OPTION_KEYS, ...COLLECTIVE_OPTION_KEYS]);
    this.poolSize = checkPositiveInt(name, 'poolSize', args.poolSize ?? 1024);
    this.userDim = checkPositiveInt(name, 'userDim', args.userDim ?? 1);
    this.share = checkOneOf(name, 'share', args.share ?? 'kv', ['kv', 'k', 'v'] as const);
    this.peakWeight = checkNonNegative(name, 'peakWeight', args.peakWeight ?? 0.01);
    this.balanceWeight = checkNonNegative(name, 'balanceWeight', args.balanceWeight ?? 1.0);
    this.balanceTokens = checkNonNegativeInt(name, 'balanceTokens', args.balanceTokens ?? DEFAULT_BALANCE_TOKENS);
    this.samplers = { key: new BalanceSampler(this.balanceTokens, `${this.name}/key`), value: new BalanceSampler(this.balanceTokens, `${this.name}/value`) };
    this.userActivation = args.userActivation ?? 'swish';
    this.poolSeed = args.poolSeed == null ? null : checkNonNegativeInt(name, 'poolSeed', args.poolSeed);
    this.poolStddev = checkPositive(name, 'poolStddev', args.poolStddev ?? 1);
    this.routerDim = checkNonNegativeInt(name, 'routerDim', args.routerDim ?? 0);
    this.routingBiasRate = checkNonNegative(name, 'routingBiasRate', args.routingBiasRate ?? 0);
    this.gate = checkOneOf(name, 'gate', args.gate ?? 'scaled', GATE_MODES);
    this.router = checkOneOf(name, 'router', args.router ?? 'dense', ATTENTION_ROUTER_KINDS);
    this.subKeys = this.router === 'product' || this.router === 'nearest-product' ? routerSubKeys(name, 'product', this.poolSize) : null;
    this.commitmentWeight = checkNonNegative(name, 'commitmentWeight', args.commitmentWeight ?? 0.25);
    this.quantizationWeight = checkNonNegative(name, 'quantizationWeight', args.quantizationWeight ?? DEFAULT_QUANTIZATION_WEIGHT);
    if (this.router === 'product' && this.routingBiasRate > 0) {
      throw new ArgumentError(name, 'routingBiasRate', "0 with router 'product' (the routing bias is per pool row)", String(this.routingBiasRate));
    }
    if (this.nearest) this.checkNearestArgs(args);
    this.act = resolveActivation(name, 'userActivation', this.userActivation);
    if (this.isShared('key')) this.checkUserDim('keyDim', this.keyDim);
    if (this.isShared('value')) this.checkUserDim('valueDim', this.valueDim);
    this.checkPoolSizes();
    this.addLoss(() => this.auxLosses.take());
  }

  /** Whether rows are chosen by distance ('nearest', 'nearest-product'). */
  get nearest(): boolean {
    return isNearestRouter(this.router);
  }

  /** Options that have no meaning with nearest-row routing (it has no router weights and no gate). */
  private checkNearestArgs(args: CollectiveKVAttentionArgs): void {
    const name = CollectiveKVAttention.className;
    const unused: Array<[string, unknown, unknown]> = [['routerDim', args.routerDim, 0], ['routingBiasRate', args.routingBiasRate, 0], ['gate', args.gate, undefined]];
    for (const [arg, value, neutral] of unused) {
      if (value != null && value !== neutral) {
        throw new ArgumentError(name, arg, `${neutral === undefined ? 'unset' : neutral} with router '${this.router}' (it routes by distance, without router weights or a gate)`, String(value));
      }
    }
  }

  private checkUserDim(dimName: string, headDim: number): void {
    const width = this.numHeads * headDim;
    if (this.userDim > width) {
      throw new ArgumentError(CollectiveKVAttention.className, 'userDim',
        `at most numHeads*${dimName} = ${width} (userDim = ${width} leaves a zero-width pool)`, String(this.userDim));
    }
  }

  /**
   * The pools (and a low-rank router) fit the backend; the weights whose rows are the K/V source's
   * features are checked by build, once its width is known (sourceWeightColumns).
   */
  private checkPoolSizes(): void {
    const name = CollectiveKVAttention.className;
    checkFits(name, 'poolSize', this.poolSize, 1, 'a [poolSize] vector (routing)');
    for (const side of ['key', 'value'] as const) {
      const width = this.poolWidth(side);
      if (width > 0) checkFits(name, 'poolSize', this.poolSize, width, `the ${side} pool [poolSize, numHeads*${side}Dim - userDim = ${width}]`);
    }
    const columns = routerColumns(this.poolSize, this.subKeys);
    if (this.routerDim > 0) checkFits(name, 'routerDim', this.routerDim, columns, `the router [routerDim, ${columns}]`);
  }

  /** Columns of a shared side's pool rows (H*d - userDim; 0 for an unshared side). */
  private poolWidth(side: Side): number {
    return this.isShared(side) ? this.numHeads * (side === 'key' ? this.keyDim : this.valueDim) - this.userDim : 0;
  }

  isShared(side: Side): boolean {
    return this.share === 'kv' || this.share === side.charAt(0);
  }

  /** Sum of the auxiliary losses of the training calls since the last read; reading clears it. Caller owns it. */
  auxiliaryLoss(): tf.Scalar {
    return this.auxLosses.take();
  }

  /** Router logits and top-1 route of kvSource [B, T, de] for a shared side (analysis, conversion). */
  route(side: Side, kvSource: tf.Tensor): Routing {
    const [index, gate, logits] = tf.tidy(() => {
      const r = routeTokens(this.routerInput(side, kvSource), this.routingWeights(side));
      return [r.index, r.gate, r.logits];
    });
    return { index, gate, logits };
  }

  /** What the router multiplies: kvSource, or its low-rank projection x P when routerDim > 0. */
  private routerInput(side: Side, source: tf.Tensor): tf.Tensor {
    const s = this.side(side);
    return s.kind === 'pooled' && s.routerProjection != null ? dense(source, s.routerProjection.read(), null) : source;
  }

  /**
   * What routing uses (inside a tidy): the pool and router, and the router bias plus the routing
   * bias when there is one.
   */
  private routingWeights(side: Side): PoolWeights {
    const w = this.poolWeights(side);
    const s = this.side(side);
    const extra = s.kind === 'pooled' ? s.routingBias?.read() ?? null : null;
    if (extra == null) return w;
    return { ...w, routerBias: w.routerBias == null ? extra : tf.add(w.routerBias, extra) };
  }

  /**
   * Current pool, router ([routerDim or de, poolSize]) and router bias of a shared side (not copies;
   * without the routing bias). With router 'nearest' the router and its bias are the equivalent
   * dense router, computed from the encoder and the pool (new tensors: call inside a tidy).
   */
  poolWeights(side: Side): PoolWeights {
    const s = this.pooledSide(side);
    if (s.encoder != null) {
      const w = this.nearestWeights(s.pool, s.encoder);
      return { pool: w.pool, ...nearestRouter(w) };
    }
    return { pool: readPool(s.pool), router: (s.router as tfl.LayerVariable).read(), routerBias: s.routerBias?.read() ?? null, subKeys: this.subKeys };
  }

  /**
   * The pool [poolSize, H*d - userDim] of a shared side: the variable (not a copy), or with router
   * 'nearest-product' the product of the sub-pools (a new tensor: call inside a tidy).
   */
  poolTable(side: Side): tf.Tensor {
    return readPool(this.pooledSide(side).pool);
  }

  private nearestWeights(pool: PoolVariables, encoder: NearestEncoder): NearestWeights {
    return {
      pool: readPool(pool), kernel: encoder.kernel.read(), bias: encoder.bias?.read() ?? null,
      subPools: pool.kind === 'product' ? { a: pool.a.read(), b: pool.b.read() } : null,
    };
  }

  private pooledSide(side: Side): Extract<SideWeights, { kind: 'pooled' }> {
    const s = this.side(side);
    if (s.kind !== 'pooled') {
      throw new ArgumentError(CollectiveKVAttention.className, 'side', `a shared side (share is '${this.share}')`, `'${side}'`);
    }
    return s;
  }

  // ------------------------------------------------------------ hooks

  protected override buildKeyValue(sourceDim: number): void {
    this.sides = {
      key: this.buildSide('key', sourceDim, this.numHeads * this.keyDim),
      value: this.buildSide('value', sourceDim, this.numHeads * this.valueDim),
    };
  }

  protected override sourceWeightColumns(): Array<[string, number]> {
    const columns = routerColumns(this.poolSize, this.subKeys);
    return (['key', 'value'] as const).flatMap((side): Array<[string, number]> => {
      const width = this.numHeads * (side === 'key' ? this.keyDim : this.valueDim);
      if (!this.isShared(side)) return [[`${side}_kernel`, width]];
      return [
        [`${side}_user_kernel`, this.userDim],
        // 'nearest' routes with the equivalent dense router [de, columns], computed at inference.
        this.routerDim > 0 ? [`${side}_router_projection`, this.routerDim] : [this.nearest ? `${side} equivalent router` : `${side}_router`, columns],
        ...(this.nearest ? [[`${side}_encoder_kernel`, this.poolWidth(side)] as [string, number]] : []),
      ];
    });
  }

  private buildSide(side: Side, sourceDim: number, width: number): SideWeights {
    if (!this.isShared(side)) {
      return { kind: 'full', kernel: this.addKernel(`${side}_kernel`, [sourceDim, width]), bias: this.addBias(`${side}_bias`, width) };
    }
    const poolWidth = width - this.userDim;
    const poolInit = (offset: number) => tfl.initializers.randomNormal({ mean: 0, stddev: this.poolStddev,
      seed: this.poolSeed == null ? undefined : this.poolSeed + (side === 'key' ? 0 : 1) + offset });
    const s = this.subKeys;
    const widthA = Math.ceil(poolWidth / 2);
    const pool: PoolVariables = this.router === 'nearest-product' && s != null
      ? { kind: 'product', a: this.addWeight(`${side}_pool_a`, [s, widthA], 'float32', poolInit(0)),
        b: this.addWeight(`${side}_pool_b`, [s, poolWidth - widthA], 'float32', poolInit(2)) }
      : { kind: 'table', table: this.addWeight(`${side}_pool`, [this.poolSize, poolWidth], 'float32', poolInit(0)) };
    const nearest = this.nearest;
    const router = nearest ? null
      : this.addKernel(`${side}_router`, [this.routerDim > 0 ? this.routerDim : sourceDim, routerColumns(this.poolSize, this.subKeys)]);
    const weights: SideWeights = {
      kind: 'pooled',
      pool,
      routerProjection: this.routerDim > 0 ? this.addKernel(`${side}_router_projection`, [sourceDim, this.routerDim]) : null,
      router,
      routerBias: nearest ? null : this.addBias(`${side}_router_bias`, routerColumns(this.poolSize, this.subKeys)),
      routingBias: this.routingBiasRate > 0
        ? this.addWeight(`${side}_routing_bias`, [this.poolSize], 'float32', zeros(), undefined, false) : null,
      userKernel: this.addKernel(`${side}_user_kernel`, [sourceDim, this.userDim]),
      userBias: this.addBias(`${side}_user_bias`, this.userDim),
      encoder: nearest ? {
        kernel: this.addKernel(`${side}_encoder_kernel`, [sourceDim, poolWidth]),
        bias: this.addBias(`${side}_encoder_bias`, poolWidth),
        poolReady: this.addWeight(`${side}_pool_ready`, [1], 'float32', zeros(), undefined, false),
      } : null,
    };
    if (router != null) scaleRouterInit(router, this.kernelInit, this.poolSize, this.subKeys);
    return weights;
  }

  protected override projectKeyValue(source: tf.Tensor, mask: tf.Tensor | null, training: boolean): ProjectedKV {
    const k = this.sideForward('key', source, mask, training);
    const v = this.sideForward('value', source, mask, training);
    const losses = [k.loss, v.loss].filter((l): l is tf.Scalar => l != null);
    const aux = losses.length === 0 ? null : (losses.length === 1 ? losses[0] : tf.add(losses[0], losses[1]) as tf.Scalar);
    return { k: k.values, v: v.values, aux };
  }

  /** One side of the full forward; the routing loss only in training (it needs the gradient tape). */
  private sideForward(side: Side, source: tf.Tensor, mask: tf.Tensor | null, training: boolean): { values: tf.Tensor; loss: tf.Scalar | null } {
    const s = this.side(side);
    if (s.kind === 'full') return { values: dense(source, s.kernel.read(), s.bias?.read() ?? null), loss: null };
    const routed = this.routerInput(side, source);
    if (!training) {
      const weights = this.routingWeights(side);
      const { index } = routeTokens(routed, weights);
      return { values: gatherRows(weights.pool, index, undefined, this.userPart(s, source)), loss: null };
    }
    if (s.encoder != null) return this.nearestForward(side, s.pool, s.encoder, source, mask, this.userPart(s, source));
    // Training keeps no router logits for the backward pass (see trainingRows).
    const { rows, index, loss } = trainingRows(routed, this.routingWeights(side), mask, this,
      { sampler: this.samplers[side], gateMode: this.gate, tail: this.userPart(s, source) });
    if (s.routingBias != null) updateRoutingBias(s.routingBias, index, mask, this.routingBiasRate);
    return { values: rows, loss };
  }

  /** Training forward of a nearest-routed side; the first call sets the pool from the data. */
  private nearestForward(side: Side, pool: PoolVariables, encoder: NearestEncoder, source: tf.Tensor, mask: tf.Tensor | null,
    tail: tf.Tensor): { values: tf.Tensor; loss: tf.Scalar } {
    if (this.poolsReady.get(side) !== encoder.poolReady.read().dataId) {
      const ready = () => encoder.poolReady.read().dataSync()[0] > 0;
      if (!ready()) this.initializePoolFromData(side, pool, encoder, source, mask);
      if (ready()) this.poolsReady.set(side, encoder.poolReady.read().dataId);
    }
    const lossRows = this.samplers[side].sample(source.size / (source.shape[source.rank - 1] as number));
    const { rows, loss } = nearestTrainingRows(source, this.nearestWeights(pool, encoder), mask, this, { tail, lossRows });
    return { values: rows, loss };
  }

  /**
   * Pool rows = enc(x) of distinct random valid tokens of this call (seeded by poolSeed); with
   * fewer valid tokens than rows, tokens repeat with a small seeded jitter so no two rows coincide.
   * Random normal rows would sit far from enc(x) (a different scale and a subspace of it), and
   * nearest-row routing would send nearly every token to the few rows that happen to be closest.
   */
  private initializePoolFromData(side: Side, pool: PoolVariables, encoder: NearestEncoder, source: tf.Tensor, mask: tf.Tensor | null): void {
    const seed = (this.poolSeed ?? 0) + (side === 'key' ? 0 : 1);
    const tokens = source.size / (source.shape[source.rank - 1] as number);
    const validFlags = mask?.dataSync() ?? null;
    const valid: number[] = [];
    for (let i = 0; i < tokens; i++) if (validFlags == null || validFlags[i] > 0) valid.push(i);
    if (valid.length === 0) return; // nothing to learn from yet: the next call tries again
    tf.tidy(() => {
      const encoded = dense(source, encoder.kernel.read(), encoder.bias?.read() ?? null);
      const flat = tf.reshape(encoded, [tokens, dim(encoded, encoded.rank - 1)]);
      if (pool.kind === 'table') {
        pool.table.write(sampledRows(flat, valid, this.poolSize, `${this.name}/${side}/pool-init/${seed}`, seed));
      } else {
        // Each sub-pool: its columns of the encodings of its own token sample.
        const widthA = pool.a.shape[1] as number;
        const columns = (start: number, width: number) => tf.slice(flat, [0, start], [tokens, width]);
        const rows = pool.a.shape[0] as number;
        pool.a.write(sampledRows(columns(0, widthA), valid, rows, `${this.name}/${side}/pool-init-a/${seed}`, seed));
        pool.b.write(sampledRows(columns(widthA, dim(flat, 1) - widthA), valid, rows, `${this.name}/${side}/pool-init-b/${seed}`, seed + 2));
      }
      encoder.poolReady.write(tf.ones([1]));
    });
  }

  private userPart(s: Extract<SideWeights, { kind: 'pooled' }>, source: tf.Tensor): tf.Tensor {
    return userProjection(source, s.userKernel.read(), s.userBias?.read() ?? null, this.act);
  }

  protected override encodeCache(source: tf.Tensor): { keys: CacheSide; values: CacheSide } {
    return { keys: this.encodeSide('key', source), values: this.encodeSide('value', source) };
  }

  private encodeSide(side: Side, source: tf.Tensor): CacheSide {
    const s = this.side(side);
    if (s.kind === 'full') return { kind: 'full', values: dense(source, s.kernel.read(), s.bias?.read() ?? null) };
    const { index } = routeTokens(this.routerInput(side, source), this.routingWeights(side));
    return { kind: 'pooled', index, user: this.userPart(s, source), poolSize: this.poolSize };
  }

  protected override checkBlock(block: KVCacheBlock): void {
    const kind = (side: Side) => (this.isShared(side) ? 'pooled' : 'full');
    const width = (side: Side, headDim: number) => (this.isShared(side) ? this.userDim : this.numHeads * headDim);
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

  private side(side: Side): SideWeights {
    if (this.sides == null) {
      throw new ArgumentError(CollectiveKVAttention.className, 'this', 'a built layer', 'an unbuilt layer');
    }
    return this.sides[side];
  }

  override dispose(): DisposeResult {
    this.auxLosses.clear();
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      poolSize: this.poolSize,
      userDim: this.userDim,
      share: this.share,
      peakWeight: this.peakWeight,
      balanceWeight: this.balanceWeight,
      balanceTokens: this.balanceTokens,
      userActivation: this.userActivation,
      ...(this.poolSeed == null ? {} : { poolSeed: this.poolSeed }),
      ...(this.poolStddev === 1 ? {} : { poolStddev: this.poolStddev }),
      ...(this.routerDim > 0 ? { routerDim: this.routerDim } : {}),
      ...(this.routingBiasRate > 0 ? { routingBiasRate: this.routingBiasRate } : {}),
      ...(this.gate === 'scaled' ? {} : { gate: this.gate }),
      ...(this.router === 'dense' ? {} : { router: this.router }),
      ...(this.nearest && this.commitmentWeight !== 0.25 ? { commitmentWeight: this.commitmentWeight } : {}),
      // Always written for nearest routers: a saved model keeps its weight if the default changes.
      ...(this.nearest ? { quantizationWeight: this.quantizationWeight } : {}),
    };
  }
}

tf.serialization.registerClass(CollectiveKVAttention, PACKAGE);

/**
 * `rows` rows of `flat` [tokens, width] at distinct random valid tokens (a seeded stream named by
 * `stream`); with fewer valid tokens than rows, tokens repeat with a small seeded jitter so no two
 * rows coincide.
 */
function sampledRows(flat: tf.Tensor, valid: number[], rows: number, stream: string, seed: number): tf.Tensor {
  const distinct = new BalanceSampler(rows, stream).sample(valid.length);
  const pick = Int32Array.from({ length: rows }, (_, j) => valid[distinct == null ? j % valid.length : distinct[j]]);
  return tf.tidy(() => {
    const chosen = tf.gather(flat, tf.tensor1d(pick, 'int32'));
    if (distinct != null) return chosen;
    const scale = tf.mul(tf.sqrt(tf.mean(tf.square(chosen))), 1e-2);
    return tf.add(chosen, tf.mul(tf.randomNormal(chosen.shape, 0, 1, 'float32', seed), scale));
  });
}

/**
 * One step of the loss-free balancing: every row's routing bias moves by `rate` toward its share of
 * the valid tokens (index: the rows chosen, mask: 1 valid / 0 padding, or null = all valid).
 */
export function updateRoutingBias(bias: tfl.LayerVariable, index: tf.Tensor, mask: tf.Tensor | null, rate: number): void {
  const chosen = index.dataSync();
  const valid = mask?.dataSync() ?? null;
  const counts = new Float64Array(bias.shape[0] as number);
  let total = 0;
  for (let i = 0; i < chosen.length; i++) {
    if (valid != null && !(valid[i] > 0)) continue;
    counts[chosen[i]] += 1;
    total += 1;
  }
  if (total === 0) return;
  const share = total / counts.length;
  const next = Float32Array.from(bias.read().dataSync());
  for (let j = 0; j < counts.length; j++) next[j] += rate * Math.sign(share - counts[j]);
  const value = tf.tensor1d(next);
  bias.write(value);
  value.dispose();
}
