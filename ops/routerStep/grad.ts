// Gradient of the router step, rows flattened; z = x R + b (recomputed here, never saved), l the
// loss's upstream gradient, s_i = dgate_i g_i (1 - g_i) the gate's, at the winning column j_i only:
//   dz = l * routingLossGrad(z) + s one-hot(j)
//   dx = dz R^T,  dR = x^T dz,  db = sum_rows dz
// The one-hot part never becomes [N, m]: its dx is s_i R^T[j_i] (a row gather), its dR and db are
// scatter-adds into the m columns. z is freed as soon as the loss gradient is written.
// With attrs.sampled, the loss's dense part is the balance term on the rows in balanceRows only
// (z recomputed for those rows), and the peak term, which has one nonzero per row like the gate,
// joins the sparse part: s_i -= l * peakWeight * (v_i / C) (1 - g_i), C = max(sum_i v_i, 1).
import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from '../gatherRows/index';
import { ROUTER_STEP, ROUTING_LOSS_GRAD } from '../kernelNames';
import { linear } from '../linear/index';
import { scatterAddRows } from '../scatterAddRows/index';

export const routerStepGradientConfig: tf.GradConfig = {
  kernelName: ROUTER_STEP,
  inputsToSave: ['x', 'router', 'bias', 'mask', 'balanceRows'],
  outputsToSave: [true, true, false, true],
  gradFunc: (dys, saved, attrs) => {
    const [x, router, bias, mask, balanceRows, index, gate, meanProb] = saved;
    const [, dgate, dloss] = dys as (tf.Tensor | null)[];
    // Computed now, not in the thunks: all three share dz, and the engine calls only the thunks of
    // inputs on the gradient path (the backward pass's scope frees the rest).
    const rows = attrs.sampled === true ? balanceRows : null;
    const [dx, dRouter, db] = routerStepGrad({ x, router, bias, mask, balanceRows: rows, index, gate, meanProb, dgate, dloss }, attrs);
    return { x: () => dx, router: () => dRouter, bias: () => db, mask: () => tf.zeros(mask.shape, 'float32'),
      balanceRows: () => tf.zeros(balanceRows.shape, 'float32') };
  },
};

interface GradInputs {
  x: tf.Tensor; router: tf.Tensor; bias: tf.Tensor; mask: tf.Tensor; balanceRows: tf.Tensor | null; index: tf.Tensor; gate: tf.Tensor;
  meanProb: tf.Tensor; dgate: tf.Tensor | null; dloss: tf.Tensor | null;
}

function routerStepGrad(g: GradInputs, attrs: tf.NamedAttrMap): tf.Tensor[] {
  return tf.tidy(() => {
    const [de, m] = g.router.shape as [number, number];
    const n = g.index.size;
    const x2 = tf.reshape(g.x, [n, de]) as tf.Tensor2D;
    // Explicit transposes: wasm's matMul with transpose flags is 10-30x slower.
    const routerT = tf.transpose(g.router as tf.Tensor2D);
    const mask = tf.reshape(g.mask, [n]);
    const [peakWeight, balanceWeight] = [Number(attrs.peakWeight), Number(attrs.balanceWeight)];
    const hasLoss = g.dloss != null && (peakWeight !== 0 || balanceWeight !== 0);
    let dx: tf.Tensor = tf.zeros([n, de]);
    let dRT: tf.Tensor = tf.zeros([m, de]);
    let db: tf.Tensor = tf.zeros([m]);
    const s = sparseGrad(g, n, hasLoss && g.balanceRows != null ? peakWeight : 0, mask);
    if (s != null) {
      const index = tf.reshape(g.index, [n]);
      dx = gatherRows(routerT, index, s);
      dRT = scatterAddRows(tf.mul(x2, tf.expandDims(s, 1)), index, m);
      db = tf.reshape(scatterAddRows(tf.expandDims(s, 1), index, m), [m]);
    }
    if (hasLoss && g.balanceRows == null) {
      const dz = lossLogitsGrad(g.dloss as tf.Tensor, x2, g.router, g.bias, mask, g.meanProb, attrs);
      dx = tf.add(dx, tf.matMul(dz, routerT));
      dRT = tf.add(dRT, tf.transpose(tf.matMul(tf.transpose(x2), dz)));
      db = tf.add(db, tf.sum(dz, 0));
    } else if (hasLoss && balanceWeight !== 0 && g.balanceRows != null) {
      const xs = tf.gather(x2, g.balanceRows) as tf.Tensor2D;
      const dz = lossLogitsGrad(g.dloss as tf.Tensor, xs, g.router, g.bias, tf.gather(mask, g.balanceRows), g.meanProb,
        { ...attrs, peakWeight: 0 });
      dx = tf.add(dx, scatterAddRows(tf.matMul(dz, routerT), g.balanceRows, n));
      dRT = tf.add(dRT, tf.transpose(tf.matMul(tf.transpose(xs), dz)));
      db = tf.add(db, tf.sum(dz, 0));
    }
    return [tf.reshape(dx, g.x.shape), tf.transpose(dRT), db];
  });
}

/**
 * The per-row coefficient at the winning column: the gate's d gate/dz = g (1 - g) times its
 * upstream gradient, plus (sampled case) the peak term's -l peakWeight v_i / C (1 - g_i).
 * null when neither applies.
 */
function sparseGrad(g: GradInputs, n: number, peakWeight: number, mask: tf.Tensor): tf.Tensor | null {
  const gate = tf.reshape(g.gate, [n]);
  let s: tf.Tensor | null = g.dgate == null ? null : tf.mul(tf.reshape(g.dgate, [n]), tf.mul(gate, tf.sub(1, gate)));
  if (peakWeight !== 0 && g.dloss != null) {
    const count = tf.maximum(tf.sum(mask), 1);
    const peak = tf.mul(tf.div(tf.mul(tf.mul(g.dloss, -peakWeight), mask), count), tf.sub(1, gate));
    s = s == null ? peak : tf.add(s, peak);
  }
  return s;
}

/** dloss * d loss / d z at z = x R + b recomputed ([N, m]); z is freed before returning. */
function lossLogitsGrad(dloss: tf.Tensor, x2: tf.Tensor2D, router: tf.Tensor, bias: tf.Tensor, mask: tf.Tensor,
  meanProb: tf.Tensor, attrs: tf.NamedAttrMap): tf.Tensor2D {
  const logits = linear(x2, router, bias);
  const dz = tf.engine().runKernel(ROUTING_LOSS_GRAD, { dy: dloss, logits, mask, meanProb }, attrs) as tf.Tensor2D;
  logits.dispose();
  return dz;
}
