// The straight-through gate: the training forward reads pool[index] as inference does, the router
// gets the scaled gate's gradient, and the pool the unscaled one. Checked on GlobalKVPool against
// hand-computed gradients and on CollectiveKVAttention against its own inference forward.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';
import { CollectiveKVAttention, GlobalKVPool, GateMode } from '../../layers/index';
import { weightBySuffix } from './helpers';

/** A built pool layer (no routing losses, so only the rows carry gradient) and its weights. */
function poolLayer(gate: GateMode): GlobalKVPool {
  const layer = new GlobalKVPool({ poolSize: 5, units: 3, peakWeight: 0, balanceWeight: 0, gate,
    routerInitializer: tfl.initializers.randomNormal({ mean: 0, stddev: 1, seed: 4 }),
    poolInitializer: tfl.initializers.randomNormal({ mean: 0, stddev: 1, seed: 5 }) });
  tf.tidy(() => { layer.apply(tf.zeros([2, 6, 4])); });
  return layer;
}

/** Gradients of sum(rows * weights) w.r.t. the layer's pool and router. */
function gradients(layer: GlobalKVPool, x: tf.Tensor, weights: tf.Tensor): { pool: Float32Array; router: Float32Array } {
  const pool = weightBySuffix(layer, 'pool').read() as tf.Variable;
  const router = weightBySuffix(layer, 'router').read() as tf.Variable;
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, weights)), [pool, router]);
  const out = { pool: grads[pool.name].dataSync() as Float32Array, router: grads[router.name].dataSync() as Float32Array };
  tf.dispose([value, grads[pool.name], grads[router.name]]);
  return out;
}

describeEachBackend('straight-through gate', () => {
  test('GlobalKVPool: training rows equal inference rows; pool gradient unscaled; router gradient equals the scaled gate\'s', () => {
    const before = tf.memory().numTensors;
    const x = randomTensor([2, 6, 4], 1);
    const weights = randomTensor([2, 6, 3], 2);
    const straight = poolLayer('straight-through');
    const scaled = poolLayer('scaled');
    const inference = straight.apply(x) as tf.Tensor;
    const training = straight.apply(x, { training: true }) as tf.Tensor;
    const scaledTraining = scaled.apply(x, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(training, inference)).toBe(0);
    expect(maxAbsDiff(scaledTraining, inference)).toBeGreaterThan(1e-3); // the scaled gate does differ

    const st = gradients(straight, x, weights);
    const sc = gradients(scaled, x, weights);
    // Pool: each row gets the sum of the weights of the tokens routed to it (no gate factor).
    const routing = straight.route(x);
    const index = routing.index.dataSync();
    const w = weights.dataSync();
    const expected = new Float32Array(5 * 3);
    for (let t = 0; t < index.length; t++) for (let c = 0; c < 3; c++) expected[index[t] * 3 + c] += w[t * 3 + c];
    for (let i = 0; i < expected.length; i++) expect(st.pool[i]).toBeCloseTo(expected[i], 5);
    // Router: d/dgate = weights . pool[index] under both modes, so the router gradients match.
    const scale = Math.max(...Array.from(sc.router, Math.abs));
    expect(scale).toBeGreaterThan(0);
    for (let i = 0; i < sc.router.length; i++) expect(Math.abs(st.router[i] - sc.router[i])).toBeLessThan(1e-5 * scale + 1e-6);

    tf.dispose([x, weights, inference, training, scaledTraining, routing.index, routing.gate, routing.logits]);
    straight.dispose();
    scaled.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('CollectiveKVAttention: the training forward equals inference (dropout 0); the option round-trips and is validated', () => {
    const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, poolSize: 8, userDim: 1, causal: true, poolSeed: 3, gate: 'straight-through' });
    const x = randomTensor([2, 5, 6], 7);
    const inference = layer.apply(x) as tf.Tensor;
    const training = layer.apply(x, { training: true }) as tf.Tensor;
    layer.auxiliaryLoss().dispose();
    expect(maxAbsDiff(training, inference)).toBe(0);
    expect(layer.getConfig().gate).toBe('straight-through');
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2 }).getConfig().gate).toBeUndefined();
    const copy = CollectiveKVAttention.fromConfig(CollectiveKVAttention, layer.getConfig()) as CollectiveKVAttention;
    expect(copy.gate).toBe('straight-through');
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, gate: 'hard' as GateMode })).toThrow(/gate.*scaled.*straight-through.*hard/s);
    tf.dispose([x, inference, training]);
    layer.dispose();
  });
});
