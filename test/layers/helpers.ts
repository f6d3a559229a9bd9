// Shared fixtures for the layer tests: weight lookup/overwrite, weight finite differences, and a
// router set-up whose top-1 choices are far from ties (argmax is piecewise constant, so a
// finite-difference step must not flip a route).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { seededRandom } from '../util/backends';

type AnyLayer = { weights: tfl.LayerVariable[] };

export function weightBySuffix(layer: AnyLayer, suffix: string): tfl.LayerVariable {
  const found = layer.weights.filter((w) => w.name.endsWith(`/${suffix}`));
  if (found.length !== 1) throw new Error(`expected one weight '${suffix}', found ${found.map((w) => w.name).join(', ')}`);
  return found[0];
}

export function setWeight(layer: AnyLayer, suffix: string, value: number[] | Float32Array): void {
  const w = weightBySuffix(layer, suffix);
  const t = tf.tensor(value, w.shape as number[]);
  w.write(t);
  t.dispose();
}

/**
 * Max relative error between tf.variableGrads and central differences of `loss` w.r.t. one layer
 * weight, over (at most) `maxEntries` evenly spread entries.
 */
export function weightGradError(layer: AnyLayer, suffix: string, loss: () => tf.Scalar, eps = 1e-2, maxEntries = 16): number {
  const w = weightBySuffix(layer, suffix);
  const variable = w.read() as tf.Variable;
  const { value, grads } = tf.variableGrads(loss, [variable]);
  const analytic = grads[variable.name].dataSync().slice();
  tf.dispose([value, grads[variable.name]]);
  const base = Float32Array.from(variable.dataSync());
  const stride = Math.max(1, Math.floor(base.length / maxEntries));
  const evalAt = (data: Float32Array) => {
    const t = tf.tensor(data, w.shape as number[]);
    w.write(t);
    t.dispose();
    return tf.tidy(() => loss().dataSync()[0]);
  };
  let worst = 0;
  for (let i = 0; i < base.length; i += stride) {
    const plus = base.slice(); plus[i] += eps;
    const minus = base.slice(); minus[i] -= eps;
    const numeric = (evalAt(plus) - evalAt(minus)) / (2 * eps);
    worst = Math.max(worst, Math.abs(numeric - analytic[i]) / Math.max(1, Math.abs(numeric), Math.abs(analytic[i])));
  }
  evalAt(base);
  return worst;
}

/**
 * Token features whose entries are a shuffle of {-0.9, -0.3, 0.3, 0.9} (+ noise <= 0.05): with a
 * router kernel of 4 * a permutation matrix, the top-1 logit leads the runner-up by >= 2, far
 * more than any finite-difference step of 1e-2 can change.
 */
export function separatedTokens(batch: number, time: number, seed: number): tf.Tensor {
  const rand = seededRandom(seed);
  const levels = [-0.9, -0.3, 0.3, 0.9];
  const data: number[] = [];
  for (let n = 0; n < batch * time; n++) {
    const perm = [...levels].sort(() => rand() - 0.5);
    for (const v of perm) data.push(v + (rand() - 0.5) * 0.1);
  }
  return tf.tensor(data, [batch, time, 4]);
}

/** 4 * the permutation matrix that sends input feature i to pool row perm[i] ([4, 4]). */
export function permutationRouter(perm: number[]): number[] {
  const out = new Array<number>(16).fill(0);
  perm.forEach((row, i) => { out[i * 4 + row] = 4; });
  return out;
}

/** Smallest gap between the best and second-best logit over all tokens of logits [..., m]. */
export function routeMargin(logits: tf.Tensor): number {
  const m = logits.shape[logits.shape.length - 1];
  const data = logits.dataSync();
  let worst = Infinity;
  for (let i = 0; i < data.length; i += m) {
    const row = Array.from(data.slice(i, i + m)).sort((a, b) => b - a);
    worst = Math.min(worst, row[0] - row[1]);
  }
  return worst;
}

/** peak and balance of one router, by hand, over the given tokens. */
export function handLosses(tokens: number[][], router: number[][], bias: number[]): { peak: number; balance: number } {
  const m = bias.length;
  const logits = tokens.map((x) => bias.map((b, j) => b + x.reduce((s, xi, i) => s + xi * router[i][j], 0)));
  const peak = -logits.reduce((s, l) => s + Math.log(1 / (1 + Math.exp(-Math.max(...l)))), 0) / tokens.length;
  const mean = new Array<number>(m).fill(0);
  for (const l of logits) {
    const z = l.reduce((s, v) => s + Math.exp(v), 0);
    l.forEach((v, j) => { mean[j] += Math.exp(v) / z / tokens.length; });
  }
  const balance = mean.reduce((s, p) => s + p * Math.log(p * m), 0);
  return { peak, balance };
}
