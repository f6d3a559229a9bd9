/** @jest-environment ./test/util/webgpuEnvironment.js */
// Gradients are registered backend-independently (ops/*/grad.ts) and call the ops, so on webgpu
// they run these kernels: scatterAddRows for gatherRows' table gradient (webgpu has no fused
// backward kernels, so the composite gradient runs), gatherRows for scatterAddRows' gradient,
// routeTop1's saved index for its own.
import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from '../../ops/gatherRows/index';
import { routeTop1 } from '../../ops/routeTop1/index';
import { routeWithLoss } from '../../ops/routerStep/index';
import { productRouteTop1, productRoutingLoss } from '../../ops/productRoute/index';
import { scatterAddRows } from '../../ops/scatterAddRows/index';
import { catalogCrossEntropy } from '../../ops/catalogCrossEntropy/index';
import { compareWithCpu, describeWebGPU, finiteDifferenceErrorAsync, leakAcrossRepeats, randomFloats, randomInts } from '../util/webgpu';

const NUM_ROWS = 257;
const WIDTH = 5;
const POSITIONS = 300; // > NUM_ROWS: duplicate indices, so the table gradient really accumulates
const table = randomFloats(NUM_ROWS * WIDTH, 1);
const index = randomInts(POSITIONS, NUM_ROWS, 2);
const gate = randomFloats(POSITIONS, 3);
const weights = randomFloats(POSITIONS * WIDTH, 4);

/** sum(gatherRows(table, index, gate) * W): linear in table and in gate, so finite differences are exact-ish. */
function gatherLoss(t: tf.Tensor, g: tf.Tensor | null): tf.Scalar {
  const idx = tf.tensor(index, [POSITIONS], 'int32');
  const out = g == null ? gatherRows(t, idx) : gatherRows(t, idx, g);
  return tf.sum(tf.mul(out, tf.tensor(weights, [POSITIONS, WIDTH])));
}

describeWebGPU('gradients through the kernels', () => {
  it('gatherRows: d/dtable (scatter-add) and d/dgate match cpu', async () => {
    const diffs = await compareWithCpu(() => {
      const grads = tf.grads((t: tf.Tensor, g: tf.Tensor) => gatherLoss(t, g));
      return grads([tf.tensor(table, [NUM_ROWS, WIDTH]), tf.tensor(gate, [POSITIONS])]);
    });
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it('gatherRows joining a tail: d/dtable, d/dgate and d/dtail match cpu (whose gradient runs fused kernels)', async () => {
    const tailWidth = 2;
    const tail = randomFloats(POSITIONS * tailWidth, 7);
    const w = randomFloats(POSITIONS * (WIDTH + tailWidth), 8);
    const diffs = await compareWithCpu(() => {
      const idx = tf.tensor(index, [POSITIONS], 'int32');
      const loss = (t: tf.Tensor, g: tf.Tensor, u: tf.Tensor) =>
        tf.sum(tf.mul(gatherRows(t, idx, g, u), tf.tensor(w, [POSITIONS, WIDTH + tailWidth])));
      return tf.grads(loss)([tf.tensor(table, [NUM_ROWS, WIDTH]), tf.tensor(gate, [POSITIONS]), tf.tensor(tail, [POSITIONS, tailWidth])]);
    });
    expect(diffs).toHaveLength(3);
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it('gatherRows without gate: d/dtable matches cpu', async () => {
    const [diff] = await compareWithCpu(() => tf.grad((t: tf.Tensor) => gatherLoss(t, null))(tf.tensor(table, [NUM_ROWS, WIDTH])));
    expect(diff).toBeLessThan(1e-4);
  });

  it('gatherRows: finite differences on webgpu', async () => {
    const g = tf.tensor(gate, [POSITIONS]);
    const t = tf.tensor(table, [NUM_ROWS, WIDTH]);
    expect(await finiteDifferenceErrorAsync((x) => gatherLoss(x, g), t)).toBeLessThan(1e-3);
    expect(await finiteDifferenceErrorAsync((x) => gatherLoss(t, x), g)).toBeLessThan(1e-3);
    tf.dispose([g, t]);
  });

  it('scatterAddRows: d/drows (a gather) matches cpu and finite differences', async () => {
    const rows = randomFloats(POSITIONS * WIDTH, 5);
    const outWeights = randomFloats(NUM_ROWS * WIDTH, 6);
    const loss = (r: tf.Tensor): tf.Scalar =>
      tf.sum(tf.mul(scatterAddRows(r, tf.tensor(index, [POSITIONS], 'int32'), NUM_ROWS), tf.tensor(outWeights, [NUM_ROWS, WIDTH])));
    const [diff] = await compareWithCpu(() => tf.grad(loss)(tf.tensor(rows, [POSITIONS, WIDTH])));
    expect(diff).toBeLessThan(1e-4);
    const r = tf.tensor(rows, [POSITIONS, WIDTH]);
    expect(await finiteDifferenceErrorAsync(loss, r)).toBeLessThan(1e-3);
    r.dispose();
  });

  it('routeTop1: d/dlogits through the gate matches cpu and finite differences', async () => {
    // Well separated logits (spacing >> eps), so the finite-difference step never flips the argmax.
    const logits = Float32Array.from(randomInts(4 * 7, 1000, 7), (v, i) => v / 100 + (i % 7) * 0.001);
    const w = randomFloats(4, 8);
    const loss = (x: tf.Tensor): tf.Scalar => tf.sum(tf.mul(routeTop1(x).gate, tf.tensor(w, [4])));
    const [diff] = await compareWithCpu(() => tf.grad(loss)(tf.tensor(logits, [4, 7])));
    expect(diff).toBeLessThan(1e-4);
    const x = tf.tensor(logits, [4, 7]);
    expect(await finiteDifferenceErrorAsync(loss, x, 1e-3, 28)).toBeLessThan(1e-2);
    x.dispose();
  });

  it('a routed pool lookup end to end (router -> routeTop1 -> gated gatherRows) matches cpu', async () => {
    const tokens = 70;
    const de = 6;
    const poolRows = 65;
    const x = randomFloats(tokens * de, 9);
    const router = randomFloats(de * poolRows, 10);
    const pool = randomFloats(poolRows * WIDTH, 11);
    const target = randomFloats(tokens * WIDTH, 12);
    const loss = (r: tf.Tensor, p: tf.Tensor): tf.Scalar => {
      const { index: idx, gate: g } = routeTop1(tf.matMul(tf.tensor(x, [tokens, de]), r));
      return tf.mean(tf.square(tf.sub(gatherRows(p, idx, g), tf.tensor(target, [tokens, WIDTH]))));
    };
    const diffs = await compareWithCpu(() => tf.grads(loss)([tf.tensor(router, [de, poolRows]), tf.tensor(pool, [poolRows, WIDTH])]));
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it('routeWithLoss with balance rows (the sampled balance loss): value and gradients match cpu (fused kernel there)', async () => {
    const [tokens, de, poolRows] = [40, 6, 33];
    const x = randomFloats(tokens * de, 13);
    const router = randomFloats(de * poolRows, 14);
    const pool = randomFloats(poolRows * WIDTH, 15);
    const rows = [1, 4, 9, 16, 25, 36, 39];
    const mask = Array.from({ length: tokens }, (_, i) => (i % 5 === 3 ? 0 : 1));
    const objective = (xx: tf.Tensor, r: tf.Tensor): tf.Scalar => {
      const out = routeWithLoss(xx, r, null, tf.tensor(mask, [tokens]), { peakWeight: 0.2, balanceWeight: 1.3 }, tf.tensor1d(rows, 'int32'));
      return tf.add(tf.sum(gatherRows(tf.tensor(pool, [poolRows, WIDTH]), out.index, out.gate)), tf.mul(out.loss!, 3)) as tf.Scalar;
    };
    const diffs = await compareWithCpu(() => {
      const [xx, r] = [tf.tensor(x, [tokens, de]), tf.tensor(router, [de, poolRows])];
      return [objective(xx, r), ...tf.grads(objective)([xx, r])];
    });
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it('productRoute (product-key router): index, loss and gradients through the gate match cpu', async () => {
    const [tokens, s] = [50, 6];
    const a = randomFloats(tokens * s, 16);
    const b = randomFloats(tokens * s, 17);
    const pool = randomFloats(s * s * WIDTH, 18);
    const mask = Array.from({ length: tokens }, (_, i) => (i % 7 === 2 ? 0 : 1));
    const objective = (ta: tf.Tensor, tb: tf.Tensor): tf.Scalar => {
      const route = productRouteTop1({ a: ta, b: tb });
      const loss = productRoutingLoss({ a: ta, b: tb }, tf.tensor(mask, [tokens]), { peakWeight: 0.2, balanceWeight: 1.3 }) as tf.Scalar;
      return tf.add(tf.sum(gatherRows(tf.tensor(pool, [s * s, WIDTH]), route.index, route.gate)), tf.mul(loss, 3)) as tf.Scalar;
    };
    const diffs = await compareWithCpu(() => {
      const [ta, tb] = [tf.tensor(a, [tokens, s]), tf.tensor(b, [tokens, s])];
      return [tf.cast(productRouteTop1({ a: ta, b: tb }).index, 'float32'), objective(ta, tb), ...tf.grads(objective)([ta, tb])];
    });
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it('catalogCrossEntropy: value and gradients match cpu (webgpu computes them in the backward pass)', async () => {
    const [rows, catalog] = [40, 23];
    const h = randomFloats(rows * WIDTH, 19);
    const targets = randomInts(rows, catalog, 20);
    const diffs = await compareWithCpu(() => {
      const objective = (a: tf.Tensor, b: tf.Tensor) =>
        tf.mul(catalogCrossEntropy(a as tf.Tensor2D, b as tf.Tensor2D, tf.tensor1d(targets, 'int32'), { chunkRows: 16 }), 2) as tf.Scalar;
      const inputs = [tf.tensor(h, [rows, WIDTH]), tf.tensor(table.slice(0, catalog * WIDTH), [catalog, WIDTH])];
      return [objective(inputs[0], inputs[1]), ...tf.grads(objective)(inputs)];
    });
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it('a training step does not leak tensors or GPU buffers', async () => {
    const t = tf.variable(tf.tensor(table, [NUM_ROWS, WIDTH]));
    const g = tf.tensor(gate, [POSITIONS]);
    const optimizer = tf.train.sgd(0.1);
    const growth = await leakAcrossRepeats(async () => {
      const cost = optimizer.minimize(() => gatherLoss(t, g), true, [t]);
      await cost?.data();
      cost?.dispose();
    });
    expect(growth).toEqual({ tensors: 0, buffers: 0 });
    optimizer.dispose();
    tf.dispose([t, g]);
  });
});
