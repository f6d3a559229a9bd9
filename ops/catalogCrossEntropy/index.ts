// Mean cross-entropy of a target item against the whole catalog: the next-item models' softmax loss.
//
// Written as one customGrad over row chunks instead of matMul + logSumExp because (1) the logits
// [rows, catalog] are the largest tensors of a training step (20k x 3.4k on ML-1M at window 200)
// and the tape would keep several copies of them until the backward pass (wasm's heap is 4 GB);
// here they live one chunk at a time; (2) tfjs's matMul gradient multiplies with transpose flags,
// which wasm runs 10x slower than pre-transposed operands (4.5 s vs 0.46 s for [20000, 64] x
// [64, 3417] here).
//
// Under a tape the gradients are computed in the same pass as the value, while each chunk's
// softmax is at hand, and the gradient function only scales them: recomputing the logits and the
// softmax in the backward pass cost as much as the forward pass. The softmax is the backends'
// fused Softmax kernel (one pass on wasm instead of max, sub, exp, sum and div: 80 vs 264 ms for
// [6400, 3417]), and each row's logSumExp comes from it: the largest probability is
// exp(max logit - logSumExp) >= 1 / catalog, so logSumExp = max logit - log(max probability) never
// takes the log of an underflowed number.
import * as tf from '@tensorflow/tfjs-core';
import { scatterAddRows } from '../scatterAddRows/index';
import { TRANSPOSE_MATRIX } from '../kernelNames';
import { transposeMatrix } from '../transposeMatrix/index';
import { ArgumentError, assertFloatDtype, assertIntDtype, assertRank, dim, hasKernel } from '../util/validate';
import { keepForGradient, tapeIsRecording } from '../util/tape';

const OP = 'catalogCrossEntropy';

/** Elements of one chunk's logits: 32M floats (128 MB) bounds the transient memory. */
const CHUNK_ELEMENTS = 1 << 25;

export interface CatalogCrossEntropyOptions {
  /** Rows per chunk (bounds the transient [rows, catalog] memory). Default: 32M logits per chunk. */
  chunkRows?: number;
  /**
   * When a taped call computes its gradients: 'forward' (in the same pass as the value, read back
   * into host arrays until the backward pass; one softmax per chunk) or 'backward' (from kept
   * references to the inputs, with the softmax again; no read-back). Default: 'forward' on cpu
   * and wasm, whose data are in host memory, 'backward' elsewhere (a read-back stalls a GPU).
   */
  gradients?: 'forward' | 'backward';
}

/**
 * mean over rows r of  logSumExp_v(hidden[r] . table[v]) - hidden[r] . table[targets[r]].
 * hidden: float32 [rows, d]; table: float32 [catalog, d]; targets: int32 [rows] in [0, catalog).
 * Differentiable in hidden and table; nothing of size [rows, catalog] outlives the call.
 */
export function catalogCrossEntropy(hidden: tf.Tensor2D, table: tf.Tensor2D, targets: tf.Tensor1D,
  options: CatalogCrossEntropyOptions = {}): tf.Scalar {
  checkInputs(hidden, table, targets);
  const chunk = chunkRowsOf(options, dim(table, 0));
  if (options.gradients != null && options.gradients !== 'forward' && options.gradients !== 'backward') {
    throw new ArgumentError(OP, 'options.gradients', "'forward' or 'backward'", `'${String(options.gradients)}'`);
  }
  // No rows: 0, with zero gradients (the products below would have an empty inner dimension, which
  // XNNPACK refuses, leaving wasm's outputs unwritten).
  if (dim(hidden, 0) === 0) return noRows(hidden, table);
  if (!tapeIsRecording()) return tf.tidy(() => lossAndGradients(hidden, table, targets, chunk, false).loss);
  const loss = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [h, t] = inputs as [tf.Tensor2D, tf.Tensor2D];
    const when = options.gradients ?? (HOST_BACKENDS.includes(tf.getBackend()) ? 'forward' : 'backward');
    return when === 'forward' ? gradientsNow(h, t, targets, chunk) : gradientsLater(h, t, targets, chunk);
  });
  return loss(hidden, table) as tf.Scalar;
}

function noRows(hidden: tf.Tensor2D, table: tf.Tensor2D): tf.Scalar {
  const zero = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [h, t] = inputs as [tf.Tensor, tf.Tensor];
    return { value: tf.scalar(0), gradFunc: () => [tf.zerosLike(h), tf.zerosLike(t)] };
  });
  return zero(hidden, table) as tf.Scalar;
}

/** What a customGrad function returns. */
interface CustomGradResult {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor) => tf.Tensor[];
}

/** Backends whose data live in host memory: reading a tensor back is a copy, not a device sync. */
const HOST_BACKENDS = ['cpu', 'wasm'];

/**
 * The gradients from the forward pass, read back as arrays: kept as tensors they would be new
 * backend data outliving the customGrad's forward, which tfjs's kernel leak check (IS_TEST) rejects.
 */
function gradientsNow(h: tf.Tensor2D, t: tf.Tensor2D, targets: tf.Tensor1D, chunk: number): CustomGradResult {
  const { loss: value, dh, dt } = lossAndGradients(h, t, targets, chunk, true);
  const dhData = (dh as tf.Tensor).dataSync();
  const dtData = (dt as tf.Tensor).dataSync();
  return {
    value,
    gradFunc: (dy: tf.Tensor) => [tf.mul(tf.tensor(dhData, h.shape), dy), tf.mul(tf.tensor(dtData, t.shape), dy)],
  };
}

/**
 * Other backends (a read-back would stall the device): keep references to h and t and compute the
 * gradients in the backward pass, with the softmax again.
 */
function gradientsLater(h: tf.Tensor2D, t: tf.Tensor2D, targets: tf.Tensor1D, chunk: number): CustomGradResult {
  // The targets too: a caller's tidy around the forward pass (tf.grads has one) may dispose them.
  // The gradient releases them (see keepForGradient).
  const kept = keepForGradient<[tf.Tensor2D, tf.Tensor2D, tf.Tensor1D]>([h, t, targets]);
  return {
    value: lossAndGradients(h, t, targets, chunk, false).loss,
    gradFunc: (dy: tf.Tensor) => {
      const grads = tf.tidy(() => {
        const { dh, dt } = lossAndGradients(kept.refs[0], kept.refs[1], kept.refs[2], chunk, true);
        return [tf.mul(dh as tf.Tensor, dy), tf.mul(dt as tf.Tensor, dy)];
      });
      kept.release();
      return grads;
    },
  };
}

function chunkRowsOf(options: CatalogCrossEntropyOptions, catalog: number): number {
  const rows = options.chunkRows ?? Math.max(1, Math.floor(CHUNK_ELEMENTS / Math.max(1, catalog)));
  if (!Number.isInteger(rows) || rows < 1) throw new ArgumentError(OP, 'options.chunkRows', 'a positive integer', String(rows));
  return rows;
}

/** The reference: plain tfjs ops and autodiff (and the check in the tests). */
export function catalogCrossEntropyComposite(hidden: tf.Tensor2D, table: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  checkInputs(hidden, table, targets);
  return tf.tidy(() => {
    const logits = tf.matMul(hidden, table, false, true);
    const picked = tf.sum(tf.mul(hidden, tf.gather(table, targets)), -1);
    return tf.mean(tf.sub(tf.logSumExp(logits, -1), picked)) as tf.Scalar;
  });
}

/** [start, size] of consecutive row chunks. */
function chunks(rows: number, chunk: number): [number, number][] {
  const out: [number, number][] = [];
  for (let start = 0; start < rows; start += chunk) out.push([start, Math.min(chunk, rows - start)]);
  return out;
}

interface LossAndGradients {
  loss: tf.Scalar;
  /** d loss / d hidden and d loss / d table (with `withGradients`). */
  dh?: tf.Tensor;
  dt?: tf.Tensor;
}

/**
 * The loss and, with `withGradients`, d/dh = (softmax - onehot) table / rows and
 * d/dtable = (softmax - onehot)^T h / rows; the one-hot parts are a row gather and a scatter-add.
 * Chunks of rows keep one [chunk, catalog] softmax alive at a time.
 */
function lossAndGradients(h: tf.Tensor2D, t: tf.Tensor2D, targets: tf.Tensor1D, chunk: number, withGradients: boolean): LossAndGradients {
  const rows = dim(h, 0);
  return tf.tidy(() => {
    const tableT = tf.transpose(t);
    const sums: tf.Tensor[] = [];
    const hParts: tf.Tensor[] = [];
    let tableGrad: tf.Tensor | null = null;
    for (const [start, size] of chunks(rows, chunk)) {
      const part = tf.tidy(() => {
        const hc = tf.slice(h, [start, 0], [size, -1]);
        const logits = tf.matMul(hc, tableT);
        const probs = tf.softmax(logits) as tf.Tensor2D;
        const logSumExp = tf.sub(tf.max(logits, -1), tf.log(tf.max(probs, -1)));
        return withGradients ? [tf.sum(logSumExp), tf.matMul(probs, t), transposedProduct(probs, hc)] : [tf.sum(logSumExp)];
      });
      sums.push(part[0]);
      if (!withGradients) continue;
      hParts.push(part[1]);
      const next: tf.Tensor = tableGrad == null ? part[2] : tf.add(tableGrad, part[2]);
      if (tableGrad != null) tf.dispose([tableGrad, part[2]]);
      tableGrad = next;
    }
    const targetRows = tf.gather(t, targets);
    const picked = tf.sum(tf.mul(h, targetRows));
    // rows > 0: catalogCrossEntropy answers an empty batch itself.
    const scale = 1 / rows;
    const loss = tf.mul(tf.sub(tf.addN(sums), picked), scale) as tf.Scalar;
    if (!withGradients) return { loss };
    const dh = tf.mul(tf.sub(tf.concat(hParts), targetRows), scale);
    const dt = tf.mul(tf.sub(tableGrad as tf.Tensor, scatterAddRows(h, targets, dim(t, 0))), scale);
    return { loss, dh, dt };
  });
}

/**
 * a^T b for a wide a [rows, catalog] and a narrow b [rows, d]. On cpu and wasm: a blocked transpose,
 * then a plain product with the narrow operand on the right (wasm's product with a transpose flag
 * runs a scalar loop, 1.1 s here for [6400, 3417]; b^T a puts the wide matrix on the right, where
 * XNNPACK repacks it: 335 ms; this: ~160 ms). Elsewhere the backend's transposed product.
 */
function transposedProduct(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return hasKernel(TRANSPOSE_MATRIX) ? tf.matMul(transposeMatrix(a), b) : tf.matMul(a, b, true, false);
}

function checkInputs(hidden: tf.Tensor, table: tf.Tensor, targets: tf.Tensor): void {
  assertRank(OP, 'hidden', hidden, [2]);
  assertFloatDtype(OP, 'hidden', hidden);
  assertRank(OP, 'table', table, [2]);
  assertFloatDtype(OP, 'table', table);
  if (dim(table, 1) !== dim(hidden, 1)) {
    throw new ArgumentError(OP, 'table', `of width ${dim(hidden, 1)} (hidden's last axis)`, `width ${dim(table, 1)}`);
  }
  assertRank(OP, 'targets', targets, [1]);
  assertIntDtype(OP, 'targets', targets);
  if (dim(targets, 0) !== dim(hidden, 0)) {
    throw new ArgumentError(OP, 'targets', `of length ${dim(hidden, 0)} (one per hidden row)`, `length ${dim(targets, 0)}`);
  }
}
