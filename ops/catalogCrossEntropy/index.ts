// Mean cross-entropy of a target item against the whole catalog: the next-item models' softmax loss.
//
// Written as one customGrad over row chunks instead of matMul + logSumExp because (1) the logits
// [rows, catalog] are the largest tensors of a training step (20k x 3.4k on ML-1M at window 200)
// and the tape would keep several copies of them until the backward pass (wasm's heap is 4 GB);
// here they live one chunk at a time and the backward pass recomputes them; (2) tfjs's matMul
// gradient multiplies with transpose flags, which wasm runs 10x slower than pre-transposed
// operands (4.5 s vs 0.46 s for [20000, 64] x [64, 3417] here).
import * as tf from '@tensorflow/tfjs-core';
import { scatterAddRows } from '../scatterAddRows/index';
import { ArgumentError, assertFloatDtype, assertIntDtype, assertRank, dim } from '../util/validate';
import { keepForGradient, tapeIsRecording } from '../util/tape';

const OP = 'catalogCrossEntropy';

/** Elements of one chunk's logits: 32M floats (128 MB) bounds the transient memory. */
const CHUNK_ELEMENTS = 1 << 25;

/**
 * mean over rows r of  logSumExp_v(hidden[r] . table[v]) - hidden[r] . table[targets[r]].
 * hidden: float32 [rows, d]; table: float32 [catalog, d]; targets: int32 [rows] in [0, catalog).
 * Differentiable in hidden and table; nothing of size [rows, catalog] outlives the call.
 */
export function catalogCrossEntropy(hidden: tf.Tensor2D, table: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  checkInputs(hidden, table, targets);
  const chunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / Math.max(1, dim(table, 0))));
  if (!tapeIsRecording()) return lossValue(hidden, table, targets, chunk);
  const loss = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [h, t] = inputs as [tf.Tensor2D, tf.Tensor2D];
    // The backward pass needs h and t (see keepForGradient); the gradient releases them.
    const kept = keepForGradient<[tf.Tensor2D, tf.Tensor2D]>([h, t]);
    return {
      value: lossValue(h, t, targets, chunk),
      gradFunc: (dy: tf.Tensor) => {
        const grads = gradients(dy, kept.refs, targets, chunk);
        kept.release();
        return grads;
      },
    };
  });
  return loss(hidden, table) as tf.Scalar;
}

function lossValue(h: tf.Tensor2D, t: tf.Tensor2D, targets: tf.Tensor1D, chunk: number): tf.Scalar {
  const rows = dim(h, 0);
  return tf.tidy(() => {
    const tableT = tf.transpose(t);
    const total = chunks(rows, chunk).map(([start, size]) => tf.tidy(() => tf.sum(rowLogSumExp(tf.slice(h, [start, 0], [size, -1]), tableT))));
    const picked = tf.sum(tf.mul(h, tf.gather(t, targets)));
    return tf.div(tf.sub(tf.addN(total), picked), Math.max(1, rows)) as tf.Scalar;
  });
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
  if (out.length === 0) out.push([0, 0]);
  return out;
}

/** logSumExp of h tableT per row. The shift is read back as a constant: it only keeps exp in range. */
function rowLogSumExp(h: tf.Tensor2D, tableT: tf.Tensor2D): tf.Tensor1D {
  const logits = tf.matMul(h, tableT);
  const top = tf.max(logits, -1, true);
  return tf.add(tf.log(tf.sum(tf.exp(tf.sub(logits, top)), -1)), tf.reshape(top, [-1])) as tf.Tensor1D;
}

/**
 * d/dh = (softmax - onehot) table / rows, d/dtable = (softmax - onehot)^T h / rows, with the softmax
 * recomputed per chunk. The one-hot part is a row gather / scatter-add.
 */
function gradients(dy: tf.Tensor, saved: [tf.Tensor2D, tf.Tensor2D], targets: tf.Tensor1D, chunk: number): tf.Tensor[] {
  const [h, t] = saved;
  const rows = dim(h, 0);
  return tf.tidy(() => {
    const scale = tf.div(dy, Math.max(1, rows));
    const tableT = tf.transpose(t);
    const hParts: tf.Tensor2D[] = [];
    let tableGradT: tf.Tensor2D = tf.zeros([dim(t, 1), dim(t, 0)]);
    for (const [start, size] of chunks(rows, chunk)) {
      const [dh, dtT] = tf.tidy(() => {
        const hc = tf.slice(h, [start, 0], [size, -1]);
        const logits = tf.matMul(hc, tableT);
        const shifted = tf.exp(tf.sub(logits, tf.max(logits, -1, true)));
        const probs = tf.div(shifted, tf.sum(shifted, -1, true));
        return [tf.matMul(probs, t), tf.matMul(tf.transpose(hc), probs)];
      });
      hParts.push(dh as tf.Tensor2D);
      const next = tf.add(tableGradT, dtT) as tf.Tensor2D;
      tf.dispose([tableGradT, dtT]);
      tableGradT = next;
    }
    const dh = tf.mul(tf.sub(tf.concat(hParts), tf.gather(t, targets)), scale);
    const dt = tf.mul(tf.sub(tf.transpose(tableGradT), scatterAddRows(h, targets, dim(t, 0))), scale);
    return [dh, dt];
  });
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
