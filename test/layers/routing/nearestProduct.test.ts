// The nearest-product router (layers/routing/nearestProduct.ts): each token takes the row of a
// product-quantized pool nearest to a learned projection of it; the sub-pools start from the data;
// the training forward reads the rows with a straight-through gradient to the projection and a VQ
// loss; inference routes with the equivalent product-key router; the config is validated and
// round-trips with the pool's state.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../../util/backends';
import {
  CollectiveKVAttention, DEFAULT_QUANTIZATION_WEIGHT, GlobalKVPool, NearestProductRouterConfig, nearestProductIndex, productKeyRouter, productPool, vqTrainingRows,
} from '../../../layers/index';
import { weightBySuffix } from '../helpers';

const TOL = 2e-5;

/** key dg = 2*4 - 2 = 6 (halves 3 + 3), value dg = 2*3 - 2 = 4 (2 + 2), 3 rows per sub-pool. */
function layer(router: Partial<NearestProductRouterConfig> = {}, extra: Record<string, unknown> = {}): CollectiveKVAttention {
  return new CollectiveKVAttention({ numHeads: 2, keyDim: 4, valueDim: 3, poolSize: 9, userDim: 2, router: { kind: 'nearest-product', ...router }, poolSeed: 3,
    kernelInitializer: { className: 'GlorotUniform', config: { seed: 9 } }, ...extra });
}

/** enc(x) = x W + b of a side, [tokens, dg]. */
function encoded(l: CollectiveKVAttention, side: 'key' | 'value', x: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const w = weightBySuffix(l, `${side}_encoder_kernel`).read();
    const b = weightBySuffix(l, `${side}_encoder_bias`).read();
    return tf.add(tf.matMul(tf.reshape(x, [-1, w.shape[0]]), w), b) as tf.Tensor2D;
  });
}

/** argmin_j ||e_i - P_j||^2 per row of e, by brute force in float64. */
function bruteNearest(e: tf.Tensor2D, pool: tf.Tensor): number[] {
  const [n, d] = e.shape;
  const m = pool.shape[0] as number;
  const ev = e.dataSync();
  const pv = pool.dataSync();
  return Array.from({ length: n }, (_, i) => {
    let best = 0;
    let bestDistance = Infinity;
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += (ev[i * d + c] - pv[j * d + c]) ** 2;
      if (s < bestDistance) { bestDistance = s; best = j; }
    }
    return best;
  });
}

/** out[j] = sum of the rows i with index[i] = j (wasm has no UnsortedSegmentSum kernel). */
function segmentSum(rows: tf.Tensor, index: number[], m: number): tf.Tensor {
  const values = rows.arraySync() as number[][];
  const out = Array.from({ length: m }, () => new Array<number>(values[0].length).fill(0));
  values.forEach((row, i) => row.forEach((v, c) => { out[index[i]][c] += v; }));
  return tf.tensor2d(out);
}

/**
 * Each side routes `probe` to the brute-force nearest row of its pool (poolTable: the product
 * pool); inference, training and the cache give the same outputs; no tensor leaks.
 */
function expectNearestRoutesAgree(l: CollectiveKVAttention, probe: tf.Tensor, mask: tf.Tensor): void {
  for (const side of ['key', 'value'] as const) {
    const route = l.route(side, probe);
    const e = encoded(l, side, probe);
    const table = tf.tidy(() => tf.clone(l.poolTable(side)));
    expect(table.shape[0]).toBe(l.poolSize);
    expect(Array.from(route.index.dataSync())).toEqual(bruteNearest(e, table));
    tf.dispose([route.index, route.gate, route.logits, e, table]);
  }
  const before = tf.memory().numTensors;
  const y = l.apply([probe, mask]) as tf.Tensor;
  const train = l.apply([probe, mask], { training: true }) as tf.Tensor;
  const loss = l.auxiliaryLoss();
  expect(maxAbsDiff(train, y)).toBeLessThan(TOL);
  const block = l.computeCache(probe, mask);
  const cached = l.attendCached(probe, block);
  expect(maxAbsDiff(cached, y)).toBeLessThan(TOL);
  tf.dispose([y, train, loss, cached]);
  block.dispose();
  expect(tf.memory().numTensors).toBe(before);
}

describeEachBackend('nearest-row router', () => {
  test('the first training call sets each sub-pool to its columns of enc(x) of distinct valid tokens, once', () => {
    const l = layer();
    const x = randomTensor([2, 5, 5], 1, 1);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]);
    (l.apply([x, mask]) as tf.Tensor).dispose(); // inference: builds, no init
    expect(weightBySuffix(l, 'value_pool_ready').read().dataSync()[0]).toBe(0);
    (l.apply([x, mask], { training: true }) as tf.Tensor).dispose();
    l.auxiliaryLoss().dispose();
    for (const side of ['key', 'value'] as const) {
      expect(weightBySuffix(l, `${side}_pool_ready`).read().dataSync()[0]).toBe(1);
      const ev = encoded(l, side, x).arraySync();
      const widthA = weightBySuffix(l, `${side}_pool_a`).shape[1] as number;
      for (const [sub, start] of [['a', 0], ['b', widthA]] as const) {
        const rows = weightBySuffix(l, `${side}_pool_${sub}`).read().arraySync() as number[][];
        const validTokens = [0, 1, 2, 3, 4, 7, 8, 9];
        const matched = rows.map((row) => validTokens.findIndex((t) => Math.max(...row.map((v, c) => Math.abs(v - ev[t][start + c]))) < 1e-6));
        expect(matched.every((t) => t >= 0)).toBe(true);
        expect(new Set(matched).size).toBe(rows.length); // distinct tokens (8 valid >= 3 rows)
      }
    }
    // A second training call leaves the pool alone (no optimizer step in between).
    const before = weightBySuffix(l, 'key_pool_a').read().clone();
    const other = randomTensor([2, 5, 5], 2, 1);
    (l.apply([other, mask], { training: true }) as tf.Tensor).dispose();
    l.auxiliaryLoss().dispose();
    expect(maxAbsDiff(before, weightBySuffix(l, 'key_pool_a').read())).toBe(0);
    tf.dispose([x, mask, before, other]);
    l.dispose();
  });

  test('with fewer valid tokens than rows, rows repeat tokens with a small jitter and stay distinct', () => {
    const l = layer();
    const x = randomTensor([1, 4, 5], 3, 1);
    const mask = tf.tensor2d([[0, 0, 1, 1]]);
    (l.apply([x, mask], { training: true }) as tf.Tensor).dispose();
    l.auxiliaryLoss().dispose();
    const e = encoded(l, 'key', x).arraySync().map((row) => row.slice(0, 3)); // pool_a's columns
    const rows = weightBySuffix(l, 'key_pool_a').read().arraySync() as number[][];
    const scale = Math.sqrt(e.slice(2).flat().reduce((s, v) => s + v * v, 0) / (2 * e[0].length));
    for (const row of rows) {
      const nearest = Math.min(...[2, 3].map((t) => Math.max(...row.map((v, c) => Math.abs(v - e[t][c])))));
      expect(nearest).toBeLessThan(0.1 * scale);
    }
    const keys = new Set(rows.map((r) => r.map((v) => v.toFixed(7)).join(',')));
    expect(keys.size).toBe(rows.length);
    tf.dispose([x, mask]);
    l.dispose();
  });

  test('routes to the nearest row of the product pool: inference, training and the cache read the same rows, no gate', () => {
    const l = layer();
    const x = randomTensor([2, 6, 5], 29, 1);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]);
    (l.apply([x, mask], { training: true }) as tf.Tensor).dispose();
    l.auxiliaryLoss().dispose();
    // dg = 2 * 3 - 2 = 4 for values (valueDim 3), 6 for keys: halves of 2 + 2 and 3 + 3.
    expect(weightBySuffix(l, 'value_pool_a').shape).toEqual([3, 2]);
    expect(weightBySuffix(l, 'value_pool_b').shape).toEqual([3, 2]);
    expect(weightBySuffix(l, 'key_pool_a').shape).toEqual([3, 3]);
    expect(l.weights.some((w) => w.name.endsWith('/key_pool'))).toBe(false);
    for (const side of ['key', 'value'] as const) {
      // Each sub-pool row is its columns of some valid token's encoding.
      const e = encoded(l, side, x).arraySync();
      const a = weightBySuffix(l, `${side}_pool_a`).read().arraySync() as number[][];
      const validTokens = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11];
      expect(a.every((row) => validTokens.some((t) => row.every((v, c) => Math.abs(v - e[t][c]) < 1e-6)))).toBe(true);
      for (const sub of ['a', 'b']) {
        const pool = weightBySuffix(l, `${side}_pool_${sub}`);
        const moved = tf.tidy(() => tf.add(pool.read(), randomTensor(pool.shape as number[], sub === 'a' ? 30 : 31, 0.3)));
        pool.write(moved);
        moved.dispose();
      }
    }
    const probe = randomTensor([2, 6, 5], 32, 1);
    expectNearestRoutesAgree(l, probe, mask);
    expect((l.getConfig().router as unknown as NearestProductRouterConfig).kind).toBe('nearest-product');
    tf.dispose([x, mask, probe]);
    l.dispose();
  });

  test("productPool: row i*s + j joins a[i] and b[j]; gradients reach both sub-pools", () => {
    const a = randomTensor([2, 3], 33, 1);
    const b = randomTensor([2, 1], 34, 1);
    const pool = productPool(a, b);
    const [av, bv] = [a.arraySync() as number[][], b.arraySync() as number[][]];
    expect(pool.arraySync()).toEqual([[...av[0], ...bv[0]], [...av[0], ...bv[1]], [...av[1], ...bv[0]], [...av[1], ...bv[1]]]);
    const [ga, gb] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(productPool(p, q)))([a, b]);
    expect(Array.from(ga.dataSync())).toEqual(new Array(6).fill(2));
    expect(Array.from(gb.dataSync())).toEqual([2, 2]);
    tf.dispose([a, b, pool, ga, gb]);
  });

  test('productKeyRouter routes as the nearest row of the product pool; nearestProductIndex agrees with brute force', () => {
    const x = randomTensor([30, 4], 8, 1);
    const w = { a: randomTensor([3, 2], 9, 1), b: randomTensor([3, 1], 10, 1), kernel: randomTensor([4, 3], 11, 1), bias: randomTensor([3], 12, 1) };
    const pool = productPool(w.a, w.b);
    const e = tf.tidy(() => tf.add(tf.matMul(x, w.kernel), w.bias)) as tf.Tensor2D;
    const want = bruteNearest(e, pool);
    expect(new Set(want).size).toBeGreaterThan(2); // a real choice
    const index = nearestProductIndex(x, w);
    expect(Array.from(index.dataSync())).toEqual(want);
    const r = productKeyRouter(w);
    const viaRouter = tf.tidy(() => tf.add(tf.mul(tf.argMax(tf.add(tf.matMul(x, r.a.router), r.a.bias), -1), 3), tf.argMax(tf.add(tf.matMul(x, r.b.router), r.b.bias), -1)));
    expect(Array.from(viaRouter.dataSync())).toEqual(want);
    const noBias = nearestProductIndex(x, { ...w, bias: null });
    const eNoBias = tf.matMul(x, w.kernel) as tf.Tensor2D;
    expect(Array.from(noBias.dataSync())).toEqual(bruteNearest(eNoBias, pool));
    tf.dispose([x, w.a, w.b, w.kernel, w.bias, pool, e, index, r.a.router, r.a.bias, r.b.router, r.b.bias, viaRouter, noBias, eNoBias]);
  });

  test('vqTrainingRows: value, VQ loss and its straight-through gradients against hand formulas', () => {
    const [n, de, dg, du, m, beta, q] = [9, 4, 3, 2, 5, 0.4, 1.7];
    const lossWeights = { quantizationWeight: q, commitmentWeight: beta };
    const x = randomTensor([n, de], 12, 1);
    const pool = randomTensor([m, dg], 13, 1);
    const kernel = randomTensor([de, dg], 14, 1);
    const bias = randomTensor([dg], 15, 1);
    const tail = randomTensor([n, du], 16, 1);
    const probe = randomTensor([n, dg + du], 17, 1);
    const maskValues = [1, 1, 0, 1, 1, 1, 0, 1, 1];
    const mask = tf.tensor1d(maskValues);
    // By hand: idx = argmin ||e - P_j||, w_i = mask_i / count, diff = P_idx - e.
    const e = tf.tidy(() => tf.add(tf.matMul(x, kernel), bias)) as tf.Tensor2D;
    const idx = bruteNearest(e, pool);
    const index = tf.tensor1d(idx, 'int32');
    const before = tf.memory().numTensors;
    const f = (p: tf.Tensor, k: tf.Tensor, b: tf.Tensor, t: tf.Tensor, input: tf.Tensor) => {
      const { rows, loss } = vqTrainingRows(input, p, index, { kernel: k, bias: b }, mask, lossWeights, { tail: t });
      return tf.add(tf.sum(tf.mul(rows, probe)), loss) as tf.Scalar;
    };
    const got = tf.grads(f)([pool, kernel, bias, tail, x]);
    const { rows, loss } = vqTrainingRows(x, pool, index, { kernel, bias }, mask, lossWeights, { tail });
    const count = maskValues.reduce((a, b) => a + b, 0);
    const want = tf.tidy(() => {
      const chosen = tf.gather(pool, tf.tensor1d(idx, 'int32'));
      const diff = tf.sub(chosen, e);
      const w = tf.div(mask, count);
      const norm = tf.sum(tf.mul(tf.sum(tf.square(e), -1), w)); // the relative loss's constant scale
      const lossValue = tf.div(tf.mul(q * (1 + beta), tf.sum(tf.mul(tf.sum(tf.square(diff), -1), w))), norm);
      const twice = tf.div(tf.mul(diff, tf.expandDims(tf.mul(w, 2 * q), -1)), norm);
      const g = tf.slice(probe, [0, 0], [n, dg]);
      const toRows = tf.add(g, twice);
      const toEncoded = tf.sub(g, tf.mul(beta, twice));
      return {
        rows: tf.concat([chosen, tail], -1), loss: lossValue,
        pool: segmentSum(toRows, idx, m),
        kernel: tf.matMul(x, toEncoded, true, false), bias: tf.sum(toEncoded, 0), tail: tf.slice(probe, [0, dg], [n, du]),
        x: tf.matMul(toEncoded, kernel, false, true),
      };
    });
    expect(maxAbsDiff(rows, want.rows)).toBe(0);
    expect(Math.abs(loss.dataSync()[0] - want.loss.dataSync()[0])).toBeLessThan(1e-5);
    expect(loss.dataSync()[0]).toBeGreaterThan(0.01);
    expect(maxAbsDiff(got[0], want.pool)).toBeLessThan(1e-4);
    expect(maxAbsDiff(got[1], want.kernel)).toBeLessThan(1e-4);
    expect(maxAbsDiff(got[2], want.bias)).toBeLessThan(1e-4);
    expect(maxAbsDiff(got[3], want.tail)).toBeLessThan(1e-4);
    expect(maxAbsDiff(got[4], want.x)).toBeLessThan(1e-4);
    tf.dispose([...got, rows, loss, ...Object.values(want)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, pool, kernel, bias, tail, probe, mask, e, index]);
  });

  test('references kept for a gradient that never runs (frozen inputs and weights) are released by the next step', () => {
    const x = randomTensor([6, 4], 50, 1);
    const w = { pool: randomTensor([5, 3], 51, 1), kernel: randomTensor([4, 3], 52, 1), bias: randomTensor([3], 53, 1) };
    const index = tf.tensor1d([0, 1, 2, 3, 4, 0], 'int32');
    const other = tf.variable(tf.scalar(1));
    const step = () => {
      const { value, grads } = tf.variableGrads(() => {
        const { rows, loss } = vqTrainingRows(x, w.pool, index, w, null, { quantizationWeight: 1, commitmentWeight: 0.25 });
        // Only `other` is asked for a gradient, and neither the rows nor the loss depend on it.
        return tf.add(tf.mul(other, tf.sum(rows)), loss) as tf.Scalar;
      }, [other]);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const afterOne = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(afterOne);
    tf.dispose([x, w.pool, w.kernel, w.bias, index, other]);
  });

  test('the VQ loss is relative: scaling the encodings and the pool together leaves it unchanged', () => {
    const x = randomTensor([2, 5, 3], 25, 1);
    const base = { a: randomTensor([2, 3], 26, 1), b: randomTensor([2, 3], 27, 1), kernel: randomTensor([3, 6], 28, 1), bias: randomTensor([6], 29, 1) };
    const lossAt = (c: number) => tf.tidy(() => {
      const scaled = { a: tf.mul(base.a, c), b: tf.mul(base.b, c), kernel: tf.mul(base.kernel, c), bias: tf.mul(base.bias, c) };
      const index = nearestProductIndex(x, scaled);
      return vqTrainingRows(x, productPool(scaled.a, scaled.b), index, scaled, null, { quantizationWeight: 1, commitmentWeight: 0.25 }).loss.dataSync()[0];
    });
    const [small, large] = [lossAt(0.01), lossAt(100)];
    expect(small).toBeGreaterThan(0.01);
    expect(Math.abs(large - small) / small).toBeLessThan(1e-4);
    tf.dispose([x, ...Object.values(base)]);
  });

  test('vqTrainingRows with lossRows: the loss and its gradients over the sampled tokens only', () => {
    const [n, de, dg, m, beta] = [8, 3, 4, 5, 0.25];
    const x = randomTensor([2, n / 2, de], 22, 1);
    const w = { pool: randomTensor([m, dg], 23, 1), kernel: randomTensor([de, dg], 24, 1), bias: null };
    const mask = tf.tensor2d([[1, 1, 0, 1], [1, 1, 1, 1]]);
    const lossRows = Int32Array.from([0, 2, 5, 7]);
    const e = tf.tidy(() => tf.matMul(tf.reshape(x, [n, de]), w.kernel)) as tf.Tensor2D;
    const idx = bruteNearest(e, w.pool);
    const index = tf.tensor2d(idx, [2, n / 2], 'int32');
    const f = (p: tf.Tensor, k: tf.Tensor) => {
      const r = vqTrainingRows(x, p, index, { kernel: k, bias: null }, mask, { quantizationWeight: 1, commitmentWeight: beta }, { lossRows });
      r.rows.dispose();
      return r.loss;
    };
    const got = tf.grads(f)([w.pool, w.kernel]);
    const lossValue = tf.tidy(() => f(w.pool, w.kernel));
    // Sampled rows 0, 2, 5, 7; row 2 is padding, so the mean runs over 3 tokens.
    const used = [0, 5, 7];
    const want = tf.tidy(() => {
      const rows = tf.tensor1d(used, 'int32');
      const diff = tf.sub(tf.gather(w.pool, tf.tensor1d(used.map((i) => idx[i]), 'int32')), tf.gather(e, rows));
      const norm = tf.div(tf.sum(tf.square(tf.gather(e, rows))), used.length);
      const twice = tf.div(tf.mul(diff, 2 / used.length), norm);
      const full = tf.scatterND(tf.reshape(rows, [-1, 1]), tf.mul(twice, -beta), [n, dg]);
      return {
        loss: tf.div(tf.mul((1 + beta) / used.length, tf.sum(tf.square(diff))), norm),
        pool: segmentSum(twice, used.map((i) => idx[i]), m),
        kernel: tf.matMul(tf.reshape(x, [n, de]), full, true, false),
      };
    });
    expect(Math.abs(lossValue.dataSync()[0] - want.loss.dataSync()[0])).toBeLessThan(1e-5);
    expect(maxAbsDiff(got[0], want.pool)).toBeLessThan(1e-4);
    expect(maxAbsDiff(got[1], want.kernel)).toBeLessThan(1e-4);
    tf.dispose([x, w.pool, w.kernel, mask, index, ...got, lossValue, e, ...Object.values(want)]);
  });

  test('GlobalKVPool with nearest-product: routingLoss() is the training call\'s VQ loss (no sample); index() and route() agree', () => {
    const pool = new GlobalKVPool({ units: 5, poolSize: 16, router: { kind: 'nearest-product', lossTokens: 0, quantizationWeight: 0.5 }, seed: 4 });
    const x = randomTensor([2, 6, 3], 40, 1);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]);
    tf.tidy(() => { pool.apply(x, { training: true, mask }); pool.auxiliaryLoss(); }); // sets the pool from data
    expect(pool.weights.map((w) => w.name.split('/').pop())).toEqual(['pool_a', 'pool_b', 'encoder_kernel', 'encoder_bias', 'pool_ready']);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const train = pool.lookup(x, { training: true, mask });
      expect(Math.abs((train.loss as tf.Scalar).dataSync()[0] - (pool.routingLoss(x, mask) as tf.Scalar).dataSync()[0])).toBeLessThan(1e-6);
      expect(Array.from(pool.index(x).dataSync())).toEqual(Array.from(train.index.dataSync()));
      expect(Array.from(pool.route(x).index.dataSync())).toEqual(Array.from(train.index.dataSync()));
      expect(maxAbsDiff(train.rows, pool.apply(x) as tf.Tensor)).toBe(0); // no gate: training reads what inference reads
    });
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, mask]);
    pool.dispose();
  });

  test('training moves the rows toward their tokens and learns a target (loss falls; VQ loss over a token sample)', () => {
    const l = layer({ lossTokens: 10 }, { userDim: 1 });
    const x = randomTensor([4, 6, 5], 18, 1);
    const target = randomTensor([4, 6, 5], 19, 1);
    const optimizer = tf.train.adam(0.02);
    (l.apply(x) as tf.Tensor).dispose(); // built, so minimize sees its variables
    const step = () => {
      const value = optimizer.minimize(() => tf.add(tf.mean(tf.square(tf.sub(l.apply(x, { training: true }) as tf.Tensor, target))),
        l.auxiliaryLoss()) as tf.Scalar, true) as tf.Scalar;
      const v = value.dataSync()[0];
      value.dispose();
      return v;
    };
    const first = step();
    let last = first;
    for (let i = 0; i < 40; i++) last = step();
    expect(last).toBeLessThan(0.8 * first);
    optimizer.dispose();
    tf.dispose([x, target]);
    l.dispose();
  });

  test('round-trips through getConfig and a weight copy (the pool is not set from data again)', () => {
    const l = layer({ commitmentWeight: 0.5, quantizationWeight: 3 });
    const config = l.getConfig();
    expect(config.router).toEqual({ kind: 'nearest-product', commitmentWeight: 0.5, quantizationWeight: 3, lossTokens: 2048 });
    expect((layer().getConfig().router as unknown as NearestProductRouterConfig).quantizationWeight).toBe(DEFAULT_QUANTIZATION_WEIGHT); // written even when defaulted
    const x = randomTensor([2, 4, 5], 20, 1);
    (l.apply(x, { training: true }) as tf.Tensor).dispose();
    l.auxiliaryLoss().dispose();
    const copy = CollectiveKVAttention.fromConfig(CollectiveKVAttention, { ...config, name: `${l.name}_copy` }) as CollectiveKVAttention;
    (copy.apply(x) as tf.Tensor).dispose();
    copy.setWeights(l.getWeights());
    const pool = weightBySuffix(copy, 'value_pool_a').read().clone();
    const other = randomTensor([2, 4, 5], 21, 1);
    const y = copy.apply(other, { training: true }) as tf.Tensor;
    copy.auxiliaryLoss().dispose();
    expect(maxAbsDiff(pool, weightBySuffix(copy, 'value_pool_a').read())).toBe(0);
    expect(copy.weights.map((w) => w.name.split('/').pop())).toEqual(expect.arrayContaining(['key_encoder_kernel', 'value_pool_ready']));
    expect(copy.weights.some((w) => w.name.endsWith('_router'))).toBe(false);
    // Weights of an untrained layer (flags 0) loaded into the trained copy: the next training call sets the pool from data again.
    const fresh = layer({ commitmentWeight: 0.5 });
    (fresh.apply(x) as tf.Tensor).dispose();
    copy.setWeights(fresh.getWeights());
    expect(weightBySuffix(copy, 'value_pool_ready').read().dataSync()[0]).toBe(0);
    (copy.apply(other, { training: true }) as tf.Tensor).dispose();
    copy.auxiliaryLoss().dispose();
    expect(weightBySuffix(copy, 'value_pool_ready').read().dataSync()[0]).toBe(1);
    // A model-level load writes the variables directly (no layer.setWeights): the flag is read again too.
    const trainedPool = weightBySuffix(copy, 'value_pool_a').read().clone();
    const zero = tf.zeros([1]);
    weightBySuffix(copy, 'value_pool_ready').write(zero);
    const third = randomTensor([2, 4, 5], 33, 1);
    (copy.apply(third, { training: true }) as tf.Tensor).dispose();
    copy.auxiliaryLoss().dispose();
    expect(weightBySuffix(copy, 'value_pool_ready').read().dataSync()[0]).toBe(1);
    expect(maxAbsDiff(trainedPool, weightBySuffix(copy, 'value_pool_a').read())).toBeGreaterThan(1e-3);
    tf.dispose([trainedPool, zero, third]);
    fresh.dispose();
    tf.dispose([x, pool, other, y]);
    l.dispose();
    copy.dispose();
  });
});

describe('nearest-product router config', () => {
  test('options of the other router, bad values and a pool that is no square are refused by name', () => {
    const base = { numHeads: 1, keyDim: 2, poolSize: 4 };
    expect(() => new CollectiveKVAttention({ ...base, router: { kind: 'nearest-product', gate: 'straight-through' } as never }))
      .toThrow(/'router\.gate' must be an option of the 'nearest-product' router: commitmentWeight, quantizationWeight, lossTokens \('gate' belongs to the 'dense' router\)/);
    expect(() => new CollectiveKVAttention({ ...base, router: { kind: 'nearest-product', commitmentWeight: -1 } })).toThrow(/router\.commitmentWeight.*-1/s);
    expect(() => new CollectiveKVAttention({ ...base, router: { kind: 'nearest-product', quantizationWeight: -2 } })).toThrow(/router\.quantizationWeight.*-2/s);
    expect(() => new CollectiveKVAttention({ ...base, router: { kind: 'nearest-product', lossTokens: 0.5 } })).toThrow(/router\.lossTokens.*integer >= 0.*0\.5/s);
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolSize: 8, router: 'nearest-product' }))
      .toThrow(/^CollectiveKVAttention: argument 'poolSize' must be a perfect square with router 'nearest-product'.*received 8$/);
    expect(() => new GlobalKVPool({ units: 2, poolSize: 8, router: 'nearest-product' })).toThrow(/^GlobalKVPool: argument 'poolSize' must be a perfect square/);
  });

  test("0.1's flat options map to the nested config (the ones 0.1 ignored dropped); a flat gate is refused as 0.1 did", () => {
    const base = { numHeads: 1, keyDim: 2, poolSize: 4, router: 'nearest-product' };
    const l = new CollectiveKVAttention({ ...base, quantizationWeight: 0.5, balanceTokens: 7, peakWeight: 0.3, balanceWeight: 1 } as never);
    expect(l.router).toEqual({ kind: 'nearest-product', commitmentWeight: 0.25, quantizationWeight: 0.5, lossTokens: 7 });
    expect(() => new CollectiveKVAttention({ ...base, gate: 'scaled' } as never))
      .toThrow(/^CollectiveKVAttention: argument 'gate' must be unset with router 'nearest-product' \(it routes by distance, without a gate\), received "scaled"$/);
  });
});
