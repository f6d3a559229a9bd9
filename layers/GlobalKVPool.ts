// The global pool of collective K (or V) rows and its top-1 router (DESIGN.md section 1).
// The math lives in plain exported functions so CollectiveKVAttention shares it without nesting
// this layer (tfjs drops nested layers' weights from trainableWeights).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import type { DisposeResult, LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';
import { SubRouterLogits, fusedRoutingLoss, gatherRows, linearGradients, productRouteTop1, productRouteWithLoss, productSubKeys, routeTop1, routeWithLoss } from '../ops/index';
import { ArgumentError, describeShape, dim } from '../ops/util/validate';
import { keepForGradient, tapeIsRecording } from '../ops/util/tape';
import {
  BalanceSampler, DEFAULT_BALANCE_TOKENS, InitializerSpec, PACKAGE, PendingLosses, checkBoolean, checkFits, checkLayerArgs, checkMask,
  checkNonNegative, checkNonNegativeInt, checkOneOf, checkPositiveInt, dense, glorotUniform, resolveInitializer, serializeInitializer, zeros,
} from './common';

// ---------------------------------------------------------------- shared math

export interface PoolWeights {
  /** [poolSize, width] */
  pool: tf.Tensor;
  /** [inputDim, poolSize] */
  router: tf.Tensor;
  /** [poolSize] or null */
  routerBias: tf.Tensor | null;
  /**
   * Set for a product-key router: s with s * s = poolSize; router is then [inputDim, 2s] (two
   * sub-routers, see ops/productRoute) and routerBias [2s].
   */
  subKeys?: number | null;
}

export interface Routing {
  /** int32 [...]: chosen pool row per token. */
  index: tf.Tensor;
  /** float32 [...]: sigmoid of the winning logit. */
  gate: tf.Tensor;
  /** float32 [..., poolSize]: router logits ([..., 2s], the two sub-routers', for a product-key router). */
  logits: tf.Tensor;
}

export interface RoutingLossWeights {
  peakWeight: number;
  balanceWeight: number;
}

/**
 * Default weight of the whole VQ loss of nearest-row routing. Small: on SIM (ML-1M, 4 epochs,
 * nearest-product) test AUC rose as the weight fell: 0.8345 at 1, 0.8372 at 1/4, 0.8477 at 1/16,
 * 0.8488 at 1/64 and 0.8489 at 0 (weights 4 and 16 trailed 1 after two epochs). The task's
 * straight-through gradient trains rows and projections; a strong pull between them holds the
 * projection back.
 */
export const DEFAULT_QUANTIZATION_WEIGHT = 1 / 64;

/** Weights of the VQ loss of nearest-row routing (see nearestTrainingRows). */
export interface VQLossWeights {
  /** Weight of the whole loss. */
  quantizationWeight: number;
  /** Weight of the commitment term, relative to the row's own term. */
  commitmentWeight: number;
}

/**
 * How the gate enters the training forward. 'scaled' (the paper's): rows are gate * pool[index],
 * while inference reads pool[index], so training and inference differ until the peak loss drives
 * the gate to 1. 'straight-through': the forward reads pool[index] as inference does, and the
 * gradient reaches the gate as if the rows had been multiplied by it (a straight-through estimator).
 */
export type GateMode = 'scaled' | 'straight-through';
export const GATE_MODES = ['scaled', 'straight-through'] as const;

/** 'dense' (the paper's): one router column per pool row. 'product': product keys (ops/productRoute). */
export type RouterKind = 'dense' | 'product';
export const ROUTER_KINDS = ['dense', 'product'] as const;

/** s = sqrt(poolSize) for a product-key router (poolSize must be a perfect square), null for a dense one. */
export function routerSubKeys(layer: string, router: RouterKind, poolSize: number): number | null {
  if (router === 'dense') return null;
  const s = productSubKeys(poolSize);
  if (s == null) throw new ArgumentError(layer, 'poolSize', "a perfect square with router 'product' (e.g. 256, 1024, 4096)", String(poolSize));
  return s;
}

/** Router columns: one per pool row, or the two sub-routers' 2s with product keys (subKeys from routerSubKeys). */
export function routerColumns(poolSize: number, subKeys: number | null): number {
  return subKeys == null ? poolSize : 2 * subKeys;
}

/**
 * Variance an initializer gives a [fanIn, fanOut] kernel's entries, up to a factor common to all
 * shapes: the VarianceScaling family (glorot, he, lecun) by its mode; any other (a fixed normal or
 * uniform) the same for every shape.
 */
function initVariance(init: Initializer, fanIn: number, fanOut: number): number {
  const config = init.getConfig() as { scale?: number; mode?: string };
  const fan = config.mode === 'fanIn' ? fanIn : config.mode === 'fanOut' ? fanOut : config.mode === 'fanAvg' ? (fanIn + fanOut) / 2 : 1;
  return (config.scale ?? 1) / fan;
}

/**
 * Factor that gives a product-key router's joint logits a[i] + b[j] the initial variance a dense
 * router's logits get from the same initializer. Unscaled, a glorot product router ([de, 2s], so a
 * far smaller fan than the dense [de, poolSize]) sums two logits each ~sqrt(poolSize / 2s) times
 * larger: at de 32, poolSize 1024 the joint logits start ~5x the dense ones, the router softmaxes
 * are peaky, the routing loss at init was 17x the dense router's, and HSTU-CTR did not learn.
 * 1 for a dense router.
 */
export function routerInitScale(init: Initializer, inputDim: number, poolSize: number, subKeys: number | null): number {
  if (subKeys == null) return 1;
  return Math.sqrt(initVariance(init, inputDim, poolSize) / (2 * initVariance(init, inputDim, 2 * subKeys)));
}

/** Initializes a router kernel with `init`, rescaled by routerInitScale (a product-key router's). */
export function scaleRouterInit(router: tfl.LayerVariable, init: Initializer, poolSize: number, subKeys: number | null): void {
  const scale = routerInitScale(init, router.shape[0] as number, poolSize, subKeys);
  if (scale !== 1) router.write(tf.tidy(() => tf.mul(router.read(), scale)));
}

/** Ones shaped like gate whose gradient passes unchanged to gate (the straight-through gate). */
const straightThroughOnes = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
  value: tf.onesLike(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => dy,
})) as (gate: tf.Tensor) => tf.Tensor;

/** Router logits x R (+ b) and the top-1 route. */
export function routeTokens(x: tf.Tensor, w: PoolWeights): Routing {
  return tf.tidy(() => {
    if (w.subKeys != null) {
      const sub = subRouterLogits(x, w, w.subKeys);
      const { index, gate } = productRouteTop1(sub);
      return { index, gate, logits: tf.concat([sub.a, sub.b], -1) };
    }
    const logits = dense(x, w.router, w.routerBias);
    const { index, gate } = routeTop1(logits);
    return { index, gate, logits };
  });
}

/** The two sub-routers' logits of a product-key router (router [de, 2s]: columns 0..s-1 then s..2s-1). */
function subRouterLogits(x: tf.Tensor, w: PoolWeights, s: number): SubRouterLogits {
  // Slicing the small router, not the token-sized logits (see ops/productRoute).
  const half = (i: number) => dense(x, tf.slice(w.router, [0, i * s], [-1, s]), w.routerBias == null ? null : tf.slice(w.routerBias, [i * s], [s]));
  return { a: half(0), b: half(1) };
}

/**
 * Collective part of each token: gate * pool[index] in training (so the router learns through the
 * gate), plain pool[index] at inference (the cache stores no gate).
 */
export function collectiveRows(pool: tf.Tensor, routing: Routing, training: boolean): tf.Tensor {
  return training ? gatherRows(pool, routing.index, routing.gate) : gatherRows(pool, routing.index);
}

/** What trainingRows may add to the routed rows. */
export interface TrainingRowsOptions {
  /** Which rows the balance term averages (null = all). */
  sampler?: BalanceSampler | null;
  gateMode?: GateMode;
  /** User-specific part joined after each row ([..., userDim], x's leading shape): one gather, no concat. */
  tail?: tf.Tensor;
}

/**
 * Training forward of one routed pool: the gated rows gate * pool[index] (pool[index] with a
 * straight-through gate; joined to options.tail), the chosen rows and the routing loss
 * (null when both weights are 0). Unlike routeTokens + routingLoss it keeps no router logits for
 * the backward pass (ops/routerStep recomputes them), which is what fits a training step in the
 * wasm heap. mask: x's leading shape or null.
 */
export function trainingRows(x: tf.Tensor, w: PoolWeights, mask: tf.Tensor | null, weights: RoutingLossWeights,
  options: TrainingRowsOptions = {}): { rows: tf.Tensor; index: tf.Tensor; loss: tf.Scalar | null } {
  const { sampler = null, gateMode = 'scaled', tail } = options;
  const [rows, index, loss] = tf.tidy(() => {
    const subKeys = w.subKeys;
    const sample = weights.balanceWeight === 0 ? null : sampler?.sample(x.size / x.shape[x.rank - 1]) ?? null;
    const balanceRows = sample == null ? null : tf.tensor1d(sample, 'int32');
    if (subKeys != null) {
      // Product keys: the logits are [N, 2s], small enough to keep for autodiff; the balance term
      // is an [s, s] matmul over the (sampled) tokens.
      const route = productRouteWithLoss(subRouterLogits(x, w, subKeys), mask, weights, balanceRows);
      const gated = gatherRows(w.pool, route.index, gateMode === 'scaled' ? route.gate : straightThroughOnes(route.gate), tail);
      return route.loss == null ? [gated, route.index] : [gated, route.index, route.loss];
    }
    const { index: chosen, gate, loss: l } = routeWithLoss(x, w.router, w.routerBias, mask, weights, balanceRows);
    const gated = gatherRows(w.pool, chosen, gateMode === 'scaled' ? gate : straightThroughOnes(gate), tail);
    return l == null ? [gated, chosen] : [gated, chosen, l];
  });
  return { rows, index, loss: (loss as tf.Scalar | undefined) ?? null };
}

// ---------------------------------------------------------------- nearest-row routing

/**
 * Router kinds of CollectiveKVAttention: the pool's own ('dense', 'product') plus 'nearest', where
 * a token takes the pool row nearest to a learned projection of it (see nearestTrainingRows), and
 * 'nearest-product', the same over a product-quantized pool (see productPool).
 */
export type AttentionRouterKind = RouterKind | 'nearest' | 'nearest-product';
export const ATTENTION_ROUTER_KINDS = [...ROUTER_KINDS, 'nearest', 'nearest-product'] as const;

/** Whether a router kind routes by distance (no router weights; a VQ loss instead of peak/balance). */
export function isNearestRouter(kind: AttentionRouterKind | undefined): boolean {
  return kind === 'nearest' || kind === 'nearest-product';
}

/**
 * `{ quantizationWeight }` a layer with this router runs at (the given weight, else the default),
 * `{}` for routers without a VQ loss: for options that record the weight even when defaulted.
 */
export function recordedQuantizationWeight(kind: AttentionRouterKind | undefined, given?: number): { quantizationWeight?: number } {
  return isNearestRouter(kind) ? { quantizationWeight: given ?? DEFAULT_QUANTIZATION_WEIGHT } : {};
}

/** A nearest-routed side: the pool and the collective projection enc(x) = x W (+ b) whose nearest row is chosen. */
export interface NearestWeights {
  /** [poolSize, dg] (with subPools: productPool(a, b)) */
  pool: tf.Tensor;
  /** [de, dg] */
  kernel: tf.Tensor;
  /** [dg] or null */
  bias: tf.Tensor | null;
  /**
   * Product quantization: row i*s + j of the pool is concat(a[i], b[j]) with a [s, dgA], b [s, dg - dgA],
   * so the nearest row is the nearest a to enc's first dgA columns joined to the nearest b to the rest.
   */
  subPools?: { a: tf.Tensor; b: tf.Tensor } | null;
}

/**
 * The [s*s, dgA + dgB] pool whose row i*s + j is concat(a[i], b[j]): two row gathers joined in
 * one pass (gatherRows' tail), whose backward is a scatter-add per sub-pool (tf.tile's gradient
 * slices and adds once per repeat).
 */
export function productPool(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const s = dim(a, 0);
    const rowOf = (f: (k: number) => number) => tf.tensor1d(Int32Array.from({ length: s * s }, (_, k) => f(k)), 'int32');
    return gatherRows(a, rowOf((k) => Math.floor(k / s)), undefined, gatherRows(b, rowOf((k) => k % s)));
  });
}

/**
 * The router that routes exactly as nearest-row routing: argmin_j ||x W + b - P_j||^2 =
 * argmax_j (x R + r)_j with R = 2 W P^T [de, poolSize] and r_j = 2 b.P_j - ||P_j||^2. So at
 * inference (and in the cache) a nearest-routed side is an ordinary linear top-1 router. With
 * subPools it is a product-key router: the same for a over W's first dgA columns and for b over
 * the rest, R [de, 2s] (subKeys s).
 */
export function nearestRouter(w: NearestWeights): { router: tf.Tensor; routerBias: tf.Tensor; subKeys: number | null } {
  const subKeys = w.subPools == null ? null : dim(w.subPools.a, 0);
  const { router, routerBias } = tf.tidy(() => {
    if (w.subPools == null) return denseNearestRouter(w.kernel, w.bias, w.pool);
    const widthA = dim(w.subPools.a, 1);
    const widthB = dim(w.kernel, 1) - widthA;
    const a = denseNearestRouter(sliceLast(w.kernel, 0, widthA), w.bias == null ? null : sliceLast(w.bias, 0, widthA), w.subPools.a);
    const b = denseNearestRouter(sliceLast(w.kernel, widthA, widthB), w.bias == null ? null : sliceLast(w.bias, widthA, widthB), w.subPools.b);
    return { router: tf.concat([a.router, b.router], 1), routerBias: tf.concat([a.routerBias, b.routerBias]) };
  });
  return { router, routerBias, subKeys };
}

function denseNearestRouter(kernel: tf.Tensor, bias: tf.Tensor | null, pool: tf.Tensor): { router: tf.Tensor; routerBias: tf.Tensor } {
  // An explicit transpose: wasm's matMul with a transposed operand is ~3x slower here.
  const poolT = tf.transpose(pool);
  const router = tf.mul(2, tf.matMul(kernel, poolT));
  const norms = tf.sum(tf.square(pool), 1);
  const routerBias = bias == null ? tf.neg(norms)
    : tf.sub(tf.mul(2, tf.reshape(tf.matMul(tf.reshape(bias, [1, -1]), poolT), [-1])), norms);
  return { router, routerBias };
}

/**
 * Index [...] of the pool row nearest to enc(x) for x [..., de], off the gradient tape (a
 * customGrad forward records nothing): the [tokens, poolSize] logits are freed at once instead of
 * being kept for a backward pass that has nothing to send through an index.
 */
export function nearestIndex(x: tf.Tensor, w: NearestWeights): tf.Tensor {
  const offTape = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    const index = tf.tidy(() => {
      const { router, routerBias, subKeys } = nearestRouter(w);
      // The index alone: routeTokens would also join the logits and compute the gates, unread here.
      if (subKeys == null) return routeTop1(dense(input, router, routerBias)).index;
      return productRouteTop1(subRouterLogits(input, { pool: w.pool, router, routerBias }, subKeys)).index;
    });
    return { value: index, gradFunc: () => tf.zerosLike(input) };
  }) as (input: tf.Tensor) => tf.Tensor;
  return offTape(x);
}

/**
 * Value of `rows`; the gradient goes unchanged to `rows` and, straight through, to enc = x kernel
 * (+ bias), of rows' shape: to x, kernel and bias as linear's gradient sends it. enc itself is
 * never computed (nothing reads its value), which saves a [tokens, width] product per side. The
 * value is a reshape, not a clone (on wasm a clone is a copy of [tokens, width]).
 */
function straightThroughLinear(rows: tf.Tensor, x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
  if (!tapeIsRecording()) return tf.reshape(rows, rows.shape);
  // The gradient reads x and kernel from views that outlive the caller's tidy (see keepForGradient) and releases them.
  const kept = keepForGradient([x, kernel]);
  const inputs = bias == null ? [rows, x, kernel] : [rows, x, kernel, bias];
  return tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const r = args[0] as tf.Tensor;
    return {
      value: tf.reshape(r, r.shape),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const d = dy as tf.Tensor;
        const encoded = linearGradients(d, kept.refs[0], kept.refs[1]);
        const grads = tf.tidy(() => [tf.reshape(d, d.shape), encoded.x(), encoded.kernel(), ...(bias == null ? [] : [encoded.bias()])]);
        kept.release();
        return grads;
      },
    };
  })(...inputs);
}

/** t [..., width] with `extra` zero columns after its last one. */
function padColumns(t: tf.Tensor, extra: number): tf.Tensor {
  if (extra === 0) return t;
  return tf.concat([t, tf.zeros([...t.shape.slice(0, -1), extra])], -1);
}

/** Columns [start, start + width) of the last axis. */
function sliceLast(t: tf.Tensor, start: number, width: number): tf.Tensor {
  const begin = t.shape.map((_, i) => (i === t.rank - 1 ? start : 0));
  const size = t.shape.map((n, i) => (i === t.rank - 1 ? width : n));
  return tf.slice(t, begin, size);
}

/**
 * The VQ loss of chosen pool rows [..., dg] against the encodings [..., dg] they stand for,
 * averaged over valid tokens and relative to the encodings' mean squared norm (a constant of the
 * call, no gradient through it):
 *   mean_valid ( ||rows - sg(enc)||^2 + commitment ||sg(rows) - enc||^2 ) / mean_valid ||enc||^2
 * so its size is the relative quantization error whatever the scale of the K/V source: small
 * embeddings (SIM's, ~0.05) and layer-normed hidden states (HSTU's) differ by 10^4 in ||enc||^2,
 * and an absolute loss is negligible for one and drowns the task for the other.
 * All of it is multiplied by weights.quantizationWeight. One customGrad: the two terms share their
 * value, and only their gradients differ (2 (rows - enc) / s to the rows, -2 commitment (rows - enc) / s to enc).
 */
function vqLoss(rows: tf.Tensor, encoded: tf.Tensor, mask: tf.Tensor | null, weights: VQLossWeights): tf.Scalar {
  const { quantizationWeight: scale, commitmentWeight: commitment } = weights;
  const value = (r: tf.Tensor, e: tf.Tensor, w: tf.Tensor) => tf.tidy(() =>
    tf.mul(scale * (1 + commitment), tf.sum(tf.mul(tf.sum(tf.square(tf.sub(r, e)), -1), w))) as tf.Scalar);
  // Per-token weights of the valid mean, divided by the mean squared norm of the encodings.
  const relativeWeights = () => tf.tidy(() => {
    const w = validWeights(mask, encoded.shape.slice(0, -1));
    const norm = tf.sum(tf.mul(tf.sum(tf.square(encoded), -1), w));
    return tf.div(w, tf.maximum(norm, 1e-12));
  });
  if (!tapeIsRecording()) return tf.tidy(() => value(rows, encoded, relativeWeights()));
  // The gradient recomputes the difference from views of the inputs and reads the token weights
  // (see keepForGradient); it releases all three.
  const tokenWeights = relativeWeights();
  const kept = keepForGradient([rows, encoded, tokenWeights]);
  tokenWeights.dispose();
  return tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [r, e] = args as tf.Tensor[];
    const [rowsRef, encodedRef, weightsRef] = kept.refs;
    return {
      value: value(r, e, weightsRef),
      gradFunc: (dy: tf.Tensor) => {
        const grads = tf.tidy(() => {
          const scaled = tf.mul(tf.sub(rowsRef, encodedRef), tf.expandDims(tf.mul(weightsRef, tf.mul(dy, 2 * scale)), -1));
          return [scaled, tf.mul(scaled, -commitment)];
        });
        kept.release();
        return grads;
      },
    };
  })(rows, encoded) as tf.Scalar;
}

/** tf.gather of int rows with no gradient (wasm has no kernel for gather's gradient; an index has none anyway). */
const gatherIndexOffTape = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [index, rows] = args as tf.Tensor[];
  // tfjs wants float32 gradients, even for int inputs.
  return { value: tf.gather(index, rows), gradFunc: () => [tf.zeros(index.shape), tf.zeros(rows.shape)] };
}) as (index: tf.Tensor, rows: tf.Tensor) => tf.Tensor;

/** Per-token weights of a mean over the valid tokens (mask 1 valid / 0 padding, or null = all); all 0 when none is valid. */
function validWeights(mask: tf.Tensor | null, shape: number[]): tf.Tensor {
  if (mask == null) return tf.fill(shape, 1 / shape.reduce((a, b) => a * b, 1));
  const m = tf.cast(mask, 'float32');
  return tf.div(m, tf.maximum(tf.sum(m), 1));
}

/**
 * Training forward of a nearest-routed side (vector quantization, as VQ-VAE trains its codebook):
 * each token takes the pool row P_j nearest to enc(x); the forward reads P_j (what inference and
 * the cache read), and the gradient of the rows reaches both P_j and, straight through, enc(x),
 * so the projection and the embeddings under it learn from the task as in MultiHeadAttention.
 * The loss, over valid tokens, pulls each chosen row toward its tokens and the tokens toward it:
 *   quantizationWeight mean_valid ( ||P_j - sg(enc)||^2 + commitmentWeight ||sg(P_j) - enc||^2 ) / mean_valid ||enc||^2
 * Returns the rows (joined to options.tail, the user part, when given), the index and the loss (0
 * when no token is valid). options.lossRows: rows of the flattened tokens the loss averages over
 * (a sample, as the balance term's), null = all.
 */
export function nearestTrainingRows(x: tf.Tensor, w: NearestWeights, mask: tf.Tensor | null, lossWeights: VQLossWeights,
  options: { tail?: tf.Tensor; lossRows?: Int32Array | null } = {}): { rows: tf.Tensor; index: tf.Tensor; loss: tf.Scalar } {
  const { tail, lossRows = null } = options;
  const [rows, index, loss] = tf.tidy(() => {
    const chosenIndex = nearestIndex(x, w);
    const joined = gatherRows(w.pool, chosenIndex, undefined, tail);
    // The straight-through path reads enc(x) with zero columns under the tail, so the gradient of
    // the joined rows passes as it is (no slice of a [tokens, width] tensor; the kernel's gradient
    // drops the padding's columns, and zero columns send nothing to x).
    const tailWidth = tail == null ? 0 : dim(tail, tail.rank - 1);
    const padded = (t: tf.Tensor | null) => (t == null ? null : padColumns(t, tailWidth));
    const out = straightThroughLinear(joined, x, padded(w.kernel) as tf.Tensor, padded(w.bias));
    if (lossRows == null) return [out, chosenIndex, vqLoss(gatherRows(w.pool, chosenIndex), dense(x, w.kernel, w.bias), mask, lossWeights)];
    // The loss over sampled tokens only (rows [S] of the flattened tokens), their encodings
    // computed anew from their inputs, so its gradient stays [S]-sized.
    const sample = tf.tensor1d(lossRows, 'int32');
    const sampledIndex = gatherIndexOffTape(tf.reshape(chosenIndex, [-1]), sample);
    const sampledMask = mask == null ? null : tf.gather(tf.reshape(mask, [-1]), sample);
    const sampledEncoded = dense(gatherRows(tf.reshape(x, [-1, dim(x, x.rank - 1)]), sample), w.kernel, w.bias);
    const loss = vqLoss(gatherRows(w.pool, sampledIndex), sampledEncoded, sampledMask, lossWeights);
    return [out, chosenIndex, loss];
  });
  return { rows, index, loss: loss as tf.Scalar };
}

/**
 * weighted peak + balance loss of one routed pool, averaged over valid tokens only:
 *   peak    = -mean_valid log sigmoid(max logit)
 *   balance = KL(mean_valid softmax(logits) || uniform(poolSize))
 * logits [..., m]; mask of logits' leading shape (1 valid, 0 padding) or null (all valid).
 * Returns null when both weights are 0 (the losses are then not computed at all).
 */
export function routingLoss(logits: tf.Tensor, mask: tf.Tensor | null, weights: RoutingLossWeights): tf.Scalar | null {
  if (weights.peakWeight === 0 && weights.balanceWeight === 0) return null;
  // One fused kernel on cpu/wasm (no logits-sized intermediates), the tfjs-op composite elsewhere.
  return fusedRoutingLoss(logits, mask, weights);
}

// ---------------------------------------------------------------- the layer

export interface GlobalKVPoolArgs extends LayerArgs {
  /** Rows in the pool (m). Default 1024. */
  poolSize?: number;
  /** Width of one pool row (the collective width dg). */
  units: number;
  /** Router bias. Default true. */
  useBias?: boolean;
  /** Weight of the peak loss; 0 turns it off. Default 0.01. */
  peakWeight?: number;
  /** Weight of the balance loss; 0 turns it off. Default 1.0. */
  balanceWeight?: number;
  /**
   * Tokens per training call whose router softmax the balance loss averages: a seeded sample when
   * a call has more (the loss is then an estimate; the peak loss and the gate still see every
   * token); 0 = all. Default 2048.
   */
  balanceTokens?: number;
  /** How the gate enters training (see GateMode). Default 'scaled', the paper's. */
  gate?: GateMode;
  /** 'dense' (default) or 'product' (product keys; poolSize a perfect square): see CollectiveKVAttentionArgs.router. */
  router?: RouterKind;
  /** Router kernel initializer. Default glorotUniform. */
  routerInitializer?: InitializerSpec;
  /** Pool initializer. Default normal(0, 1). */
  poolInitializer?: InitializerSpec;
}

/** The options of GlobalKVPoolArgs beyond tfjs's LayerArgs (the constructor rejects other keys by name). */
const POOL_OPTION_KEYS: readonly string[] = Object.keys({
  poolSize: true, units: true, useBias: true, peakWeight: true, balanceWeight: true, balanceTokens: true, gate: true, router: true,
  routerInitializer: true, poolInitializer: true,
} satisfies Record<Exclude<keyof GlobalKVPoolArgs, keyof LayerArgs>, true>);

/**
 * A global pool with its top-1 router, on its own. Input [..., inputDim] -> [..., units]:
 * gate * pool[argmax(x R + b)] in training, pool[argmax(...)] at inference. Weights `pool`
 * [poolSize, units], `router` [inputDim, poolSize], `routerBias` [poolSize].
 * In training the routing losses go through `addLoss` (see `auxiliaryLoss()`); `kwargs.mask`
 * (x's leading shape, 1 valid) restricts them to valid tokens.
 */
export class GlobalKVPool extends tfl.layers.Layer {
  static className = 'GlobalKVPool';
  readonly poolSize: number;
  readonly units: number;
  readonly useBias: boolean;
  readonly peakWeight: number;
  readonly balanceWeight: number;
  readonly balanceTokens: number;
  readonly gate: GateMode;
  readonly router: RouterKind;
  private readonly subKeys: number | null;
  private readonly sampler: BalanceSampler;
  private readonly routerInit: Initializer;
  private readonly poolInit: Initializer;
  private poolVar: tfl.LayerVariable | null = null;
  private routerVar: tfl.LayerVariable | null = null;
  private routerBiasVar: tfl.LayerVariable | null = null;
  private readonly auxLosses = new PendingLosses();

  constructor(args: GlobalKVPoolArgs) {
    super(checkLayerArgs(GlobalKVPool.className, args, { required: ['units'], example: '{ units: 16, poolSize: 1024 }', options: POOL_OPTION_KEYS }));
    const name = GlobalKVPool.className;
    this.poolSize = checkPositiveInt(name, 'poolSize', args.poolSize ?? 1024);
    this.units = checkPositiveInt(name, 'units', args.units);
    checkFits(name, 'units', this.units, 1, 'units');
    checkFits(name, 'poolSize', this.poolSize, this.units, `the pool [poolSize, units = ${this.units}]`);
    this.useBias = checkBoolean(name, 'useBias', args.useBias ?? true);
    this.peakWeight = checkNonNegative(name, 'peakWeight', args.peakWeight ?? 0.01);
    this.balanceWeight = checkNonNegative(name, 'balanceWeight', args.balanceWeight ?? 1.0);
    this.balanceTokens = checkNonNegativeInt(name, 'balanceTokens', args.balanceTokens ?? DEFAULT_BALANCE_TOKENS);
    this.sampler = new BalanceSampler(this.balanceTokens, this.name);
    this.gate = checkOneOf(name, 'gate', args.gate ?? 'scaled', GATE_MODES);
    this.router = checkOneOf(name, 'router', args.router ?? 'dense', ROUTER_KINDS);
    this.subKeys = routerSubKeys(name, this.router, this.poolSize);
    this.routerInit = resolveInitializer(name, 'routerInitializer', args.routerInitializer, glorotUniform);
    this.poolInit = resolveInitializer(name, 'poolInitializer', args.poolInitializer, standardNormal);
    this.addLoss(() => this.auxLosses.take());
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const inputDim = shape[shape.length - 1];
    if (inputDim == null) {
      throw new ArgumentError(GlobalKVPool.className, 'inputs', 'a known last dimension', describeShape(shape.map((d) => d ?? -1)));
    }
    const columns = routerColumns(this.poolSize, this.subKeys);
    checkFits(GlobalKVPool.className, 'inputs', inputDim, columns, `the router [input width, ${columns}]`, true);
    this.poolVar = this.addWeight('pool', [this.poolSize, this.units], 'float32', this.poolInit);
    this.routerVar = this.addWeight('router', [inputDim, columns], 'float32', this.routerInit);
    scaleRouterInit(this.routerVar, this.routerInit, this.poolSize, this.subKeys);
    if (this.useBias) this.routerBiasVar = this.addWeight('routerBias', [columns], 'float32', zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [...shape.slice(0, -1), this.units];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const training = kwargs.training === true;
    const mask = kwargs.mask instanceof tf.Tensor ? kwargs.mask : null;
    const [out, aux] = tf.tidy(() => {
      if (!training) return [collectiveRows(this.weightsNow().pool, this.route(x), false)];
      const valid = mask == null ? null : this.checkedMask(mask, x);
      const { rows, loss } = trainingRows(x, this.weightsNow(), valid, this, { sampler: this.sampler, gateMode: this.gate });
      return loss == null ? [rows] : [rows, loss];
    });
    if (aux != null) this.auxLosses.push(aux as tf.Scalar);
    return out;
  }

  /** Router logits and the top-1 route of x [..., inputDim] (the layer must be built). */
  route(x: tf.Tensor): Routing {
    return routeTokens(x, this.weightsNow());
  }

  /** Sum of the routing losses of the training calls since the last read; reading clears it. */
  auxiliaryLoss(): tf.Scalar {
    return this.auxLosses.take();
  }

  /** The current weight tensors (not copies). */
  weightsNow(): PoolWeights {
    if (this.poolVar == null || this.routerVar == null) {
      throw new ArgumentError(GlobalKVPool.className, 'this', 'a built layer (call it once, or build it)', 'an unbuilt layer');
    }
    return { pool: this.poolVar.read(), router: this.routerVar.read(), routerBias: this.routerBiasVar?.read() ?? null, subKeys: this.subKeys };
  }

  override dispose(): DisposeResult {
    this.auxLosses.clear();
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      poolSize: this.poolSize,
      units: this.units,
      useBias: this.useBias,
      peakWeight: this.peakWeight,
      balanceTokens: this.balanceTokens,
      balanceWeight: this.balanceWeight,
      ...(this.gate === 'scaled' ? {} : { gate: this.gate }),
      ...(this.router === 'dense' ? {} : { router: this.router }),
      routerInitializer: serializeInitializer(this.routerInit),
      poolInitializer: serializeInitializer(this.poolInit),
    };
  }

  private checkedMask(mask: tf.Tensor, x: tf.Tensor): tf.Tensor {
    const lead = x.shape.slice(0, -1);
    if (mask.rank !== lead.length || !lead.every((n, i) => mask.shape[i] === n)) {
      throw new ArgumentError(GlobalKVPool.className, 'mask', `of shape ${describeShape(lead)}`, `shape ${describeShape(mask.shape)}`);
    }
    return lead.length === 2 ? checkMask(GlobalKVPool.className, 'mask', mask, lead[0], lead[1]) : tf.cast(mask, 'float32');
  }
}

/** normal(0, 1), the reference's pool init. */
export function standardNormal(): Initializer {
  return tfl.initializers.randomNormal({ mean: 0, stddev: 1 });
}

tf.serialization.registerClass(GlobalKVPool, PACKAGE);
