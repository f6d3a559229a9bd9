// The nearest-product router: each token takes the row of a product-quantized pool nearest to a
// learned encoding enc(x) = x W + b, trained as a VQ-VAE codebook; inference routes with the
// equivalent product-key router, so the cache holds a row index as with the dense router.
// Why this router and its defaults: docs/routing.md.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { SubRouterLogits, gatherRows, linearGradients, productRouteTop1, productSubKeys } from '../../ops/index';
import { dim } from '../../ops/util/validate';
import { keepForGradient, tapeIsRecording } from '../../ops/util/tape';
import { BalanceSampler, dense, zeros } from '../common';
import type { NearestProductRouterConfig } from './config';
import { built } from './dense';
import type { RoutedRows, Router, RouterBuildContext, RouterSetup, Routing } from './router';

/** The weights of a nearest-product side: the two sub-pools and the encoder enc(x) = x kernel (+ bias). */
export interface NearestProductWeights {
  /** [s, dgA]: the first dgA = ceil(dg / 2) columns of the rows. */
  a: tf.Tensor;
  /** [s, dg - dgA]: the rest. */
  b: tf.Tensor;
  /** [de, dg] */
  kernel: tf.Tensor;
  /** [dg] or null */
  bias: tf.Tensor | null;
}

/** Weights of the VQ loss (see vqTrainingRows). */
export interface VQLossWeights {
  /** Weight of the whole loss. */
  quantizationWeight: number;
  /** Weight of the commitment term, relative to the row's own term. */
  commitmentWeight: number;
}

/**
 * Weights (named by the pool layer's prefix): `pool_a` [s, dgA], `pool_b` [s, dg - dgA],
 * `encoder_kernel` [inputDim, dg], `encoder_bias` [dg] (with useBias) and `pool_ready` [1], not
 * trainable: 1 once the pool was set from data. The pool starts as encodings of random valid
 * tokens of the first training call (normal rows would sit far from enc(x), and nearly every token
 * would go to the few nearest), and the flag keeps a loaded model's pool.
 */
export class NearestProductRouter implements Router {
  readonly kind = 'nearest-product';
  /** s: rows per sub-pool. */
  readonly subKeys: number;
  private readonly widthA: number;
  private readonly sampler: BalanceSampler;
  private a: tfl.LayerVariable | null = null;
  private b: tfl.LayerVariable | null = null;
  private kernel: tfl.LayerVariable | null = null;
  private bias: tfl.LayerVariable | null = null;
  private ready: tfl.LayerVariable | null = null;
  /**
   * The flag's data when it was last read as set (saves reading it each call): a write of the
   * flag (setWeights, or a model load writing the variable) gives it new data, and the next
   * training call reads it again.
   */
  private readyData: object | null = null;

  constructor(readonly config: Required<NearestProductRouterConfig>, private readonly setup: RouterSetup) {
    const s = productSubKeys(setup.poolSize);
    if (s == null) throw new Error(`nearest-product router: poolSize ${setup.poolSize} is not a perfect square`);
    this.subKeys = s;
    this.widthA = Math.ceil(setup.units / 2);
    this.sampler = new BalanceSampler(config.lossTokens, setup.name);
  }

  inputColumns(): Array<[string, number]> {
    // Inference routes with the equivalent product-key router [inputDim, 2s], computed per call.
    return [['equivalent_router', 2 * this.subKeys], ['encoder_kernel', this.setup.units]];
  }

  build(c: RouterBuildContext): void {
    const { units } = this.setup;
    this.a = c.addWeight('pool_a', [this.subKeys, this.widthA], c.poolInitializer(0));
    this.b = c.addWeight('pool_b', [this.subKeys, units - this.widthA], c.poolInitializer(2));
    this.kernel = c.addWeight('encoder_kernel', [c.inputDim, units], c.kernelInitializer);
    if (c.useBias) this.bias = c.addWeight('encoder_bias', [units], zeros());
    this.ready = c.addWeight('pool_ready', [1], zeros(), false);
  }

  pool(): tf.Tensor {
    return productPool(built(this.a).read(), built(this.b).read());
  }

  route(x: tf.Tensor): Routing {
    return tf.tidy(() => {
      const sub = subRouterLogits(x, this.weights());
      const { index, gate } = productRouteTop1(sub);
      return { index, gate, logits: tf.concat([sub.a, sub.b], -1) };
    });
  }

  index(x: tf.Tensor): tf.Tensor {
    return nearestProductIndex(x, this.weights());
  }

  train(x: tf.Tensor, mask: tf.Tensor | null, tail?: tf.Tensor): RoutedRows {
    if (this.readyData !== built(this.ready).read().dataId) {
      const isReady = () => built(this.ready).read().dataSync()[0] > 0;
      if (!isReady()) this.initializeFromData(x, mask);
      if (isReady()) this.readyData = built(this.ready).read().dataId;
    }
    const lossRows = this.sampler.sample(x.size / dim(x, x.rank - 1));
    const [rows, index, loss] = tf.tidy(() => {
      const w = this.weights();
      const chosen = nearestProductIndex(x, w);
      const r = vqTrainingRows(x, productPool(w.a, w.b), chosen, w, mask, this.config, { tail, lossRows });
      return [r.rows, chosen, r.loss];
    });
    return { rows, index, loss: loss as tf.Scalar };
  }

  /** The VQ loss over every valid token. */
  loss(x: tf.Tensor, mask: tf.Tensor | null): tf.Scalar {
    return tf.tidy(() => {
      const w = this.weights();
      const rows = gatherRows(productPool(w.a, w.b), nearestProductIndex(x, w));
      return vqLoss(rows, dense(x, w.kernel, w.bias), mask, this.config);
    });
  }

  getConfig(): Required<NearestProductRouterConfig> {
    return { ...this.config };
  }

  private weights(): NearestProductWeights {
    return { a: built(this.a).read(), b: built(this.b).read(), kernel: built(this.kernel).read(), bias: this.bias?.read() ?? null };
  }

  /**
   * Each sub-pool: its columns of enc(x) of distinct random valid tokens of this call (seeded);
   * with fewer valid tokens than rows, tokens repeat with a small seeded jitter so no two rows
   * coincide. No valid token: nothing to learn from yet, the next call tries again.
   */
  private initializeFromData(x: tf.Tensor, mask: tf.Tensor | null): void {
    const { name, seed } = this.setup;
    const tokens = x.size / dim(x, x.rank - 1);
    const validFlags = mask?.dataSync() ?? null;
    const valid: number[] = [];
    for (let i = 0; i < tokens; i++) if (validFlags == null || validFlags[i] > 0) valid.push(i);
    if (valid.length === 0) return;
    tf.tidy(() => {
      const w = this.weights();
      const encoded = dense(x, w.kernel, w.bias);
      const flat = tf.reshape(encoded, [tokens, dim(encoded, encoded.rank - 1)]);
      const columns = (start: number, width: number) => tf.slice(flat, [0, start], [tokens, width]);
      built(this.a).write(sampledRows(columns(0, this.widthA), valid, this.subKeys, `${name}/pool-init-a/${seed}`, seed));
      built(this.b).write(sampledRows(columns(this.widthA, dim(flat, 1) - this.widthA), valid, this.subKeys, `${name}/pool-init-b/${seed}`, seed + 2));
      built(this.ready).write(tf.ones([1]));
    });
  }
}

/**
 * `rows` rows of `flat` [tokens, width] at distinct random valid tokens (a seeded stream named by
 * `stream`); with fewer valid tokens than rows, tokens repeat with a small seeded jitter.
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

// ---------------------------------------------------------------- the math

/**
 * The [s*s, dgA + dgB] pool whose row i*s + j is concat(a[i], b[j]): two row gathers joined in
 * one pass (gatherRows' tail), whose backward is a scatter-add per sub-pool.
 */
export function productPool(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const s = dim(a, 0);
    const rowOf = (f: (k: number) => number) => tf.tensor1d(Int32Array.from({ length: s * s }, (_, k) => f(k)), 'int32');
    return gatherRows(a, rowOf((k) => Math.floor(k / s)), undefined, gatherRows(b, rowOf((k) => k % s)));
  });
}

/**
 * The product-key router that routes exactly as the nearest row: ||enc - concat(a_i, b_j)||^2 is
 * the sum of the halves' distances, so the nearest row is the nearest a_i to enc's first dgA
 * columns joined to the nearest b_j to the rest; and argmin_i ||e - P_i||^2 = argmax_i (x R + r)_i
 * with R = 2 W P^T, r_i = 2 b.P_i - ||P_i||^2. Returns both halves' [de, s] routers and [s] biases.
 */
export function productKeyRouter(w: NearestProductWeights): { a: { router: tf.Tensor; bias: tf.Tensor }; b: { router: tf.Tensor; bias: tf.Tensor } } {
  return tf.tidy(() => {
    const widthA = dim(w.a, 1);
    const widthB = dim(w.kernel, 1) - widthA;
    const half = (start: number, width: number, pool: tf.Tensor) =>
      nearestRouter(sliceLast(w.kernel, start, width), w.bias == null ? null : sliceLast(w.bias, start, width), pool);
    return { a: half(0, widthA, w.a), b: half(widthA, widthB, w.b) };
  });
}

function nearestRouter(kernel: tf.Tensor, bias: tf.Tensor | null, pool: tf.Tensor): { router: tf.Tensor; bias: tf.Tensor } {
  // An explicit transpose: wasm's matMul with a transposed operand is ~3x slower here.
  const poolT = tf.transpose(pool);
  const router = tf.mul(2, tf.matMul(kernel, poolT));
  const norms = tf.sum(tf.square(pool), 1);
  const routerBias = bias == null ? tf.neg(norms)
    : tf.sub(tf.mul(2, tf.reshape(tf.matMul(tf.reshape(bias, [1, -1]), poolT), [-1])), norms);
  return { router, bias: routerBias };
}

function subRouterLogits(x: tf.Tensor, w: NearestProductWeights): SubRouterLogits {
  const r = productKeyRouter(w);
  return { a: dense(x, r.a.router, r.a.bias), b: dense(x, r.b.router, r.b.bias) };
}

/**
 * Index [...] of the pool row nearest to enc(x) for x [..., de], off the gradient tape (a
 * customGrad forward records nothing): the [tokens, s] logits are freed at once instead of being
 * kept for a backward pass that has nothing to send through an index.
 */
export function nearestProductIndex(x: tf.Tensor, w: NearestProductWeights): tf.Tensor {
  const offTape = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    const index = tf.tidy(() => productRouteTop1(subRouterLogits(input, w)).index);
    return { value: index, gradFunc: () => tf.zerosLike(input) };
  }) as (input: tf.Tensor) => tf.Tensor;
  return offTape(x);
}

/**
 * Training forward of a nearest-routed side (vector quantization, as VQ-VAE trains its codebook),
 * given the chosen rows `index` of `pool` [m, dg]: the forward reads pool[index] (what inference
 * and the cache read), and the gradient of the rows reaches both the rows and, straight through,
 * enc(x) = x kernel (+ bias), so the encoder and the embeddings under it learn from the task. The
 * loss, over valid tokens, pulls each chosen row toward its tokens and the tokens toward it:
 *   quantizationWeight mean_valid ( ||P_j - sg(enc)||^2 + commitmentWeight ||sg(P_j) - enc||^2 ) / mean_valid ||enc||^2
 * Returns the rows (joined to options.tail, the user part, when given) and the loss (0 when no
 * token is valid). options.lossRows: rows of the flattened tokens the loss averages over (a
 * sample), null = all.
 */
export function vqTrainingRows(x: tf.Tensor, pool: tf.Tensor, index: tf.Tensor, encoder: { kernel: tf.Tensor; bias: tf.Tensor | null },
  mask: tf.Tensor | null, lossWeights: VQLossWeights, options: { tail?: tf.Tensor; lossRows?: Int32Array | null } = {}): { rows: tf.Tensor; loss: tf.Scalar } {
  const { tail, lossRows = null } = options;
  const { kernel, bias } = encoder;
  const [rows, loss] = tf.tidy(() => {
    const joined = gatherRows(pool, index, undefined, tail);
    // The straight-through path reads enc(x) with zero columns under the tail, so the gradient of
    // the joined rows passes as it is (no slice of a [tokens, width] tensor; the kernel's gradient
    // drops the padding's columns, and zero columns send nothing to x).
    const tailWidth = tail == null ? 0 : dim(tail, tail.rank - 1);
    const padded = (t: tf.Tensor | null) => (t == null ? null : padColumns(t, tailWidth));
    const out = straightThroughLinear(joined, x, padded(kernel) as tf.Tensor, padded(bias));
    if (lossRows == null) return [out, vqLoss(gatherRows(pool, index), dense(x, kernel, bias), mask, lossWeights)];
    // The loss over sampled tokens only (rows [S] of the flattened tokens), their encodings
    // computed anew from their inputs, so its gradient stays [S]-sized.
    const sample = tf.tensor1d(lossRows, 'int32');
    const sampledIndex = gatherIndexOffTape(tf.reshape(index, [-1]), sample);
    const sampledMask = mask == null ? null : tf.gather(tf.reshape(mask, [-1]), sample);
    const sampledEncoded = dense(gatherRows(tf.reshape(x, [-1, dim(x, x.rank - 1)]), sample), kernel, bias);
    return [out, vqLoss(gatherRows(pool, sampledIndex), sampledEncoded, sampledMask, lossWeights)];
  });
  return { rows, loss: loss as tf.Scalar };
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
 * so its size is the relative quantization error whatever the scale of the K/V source (small
 * embeddings and layer-normed hidden states differ by 10^4 in ||enc||^2). All of it is multiplied
 * by weights.quantizationWeight. One customGrad: the two terms share their value, and only their
 * gradients differ (2 (rows - enc) / s to the rows, -2 commitment (rows - enc) / s to enc).
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
