// Loss-free load balancing (routingBiasRate): the update rule on hand-made routes, a training call
// moving tokens off a crowded row, the bias used by inference and the cache alike, and the option
// round-trips and is validated.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';
import { CollectiveKVAttention } from '../../layers/index';
import { updateRoutingBias } from '../../layers/CollectiveKVAttention';
import { setWeight, weightBySuffix } from './helpers';

describeEachBackend('routing bias (loss-free balancing)', () => {
  test('updateRoutingBias: rows above their share of valid tokens go down, rows below go up, padding ignored', () => {
    const layer = new CollectiveKVAttention({ numHeads: 1, keyDim: 4, poolSize: 4, userDim: 1, routingBiasRate: 0.5 });
    (layer.apply(tf.zeros([1, 1, 3])) as tf.Tensor).dispose();
    const bias = weightBySuffix(layer, 'key_routing_bias');
    expect(layer.trainableWeights.map((w) => w.name)).not.toContain(bias.name);
    // 8 valid tokens (share 2 per row): row 0 has 4, row 1 has 2, row 2 has 2, row 3 has 0; the padded token (row 3) does not count.
    const index = tf.tensor2d([[0, 0, 0, 0, 1], [1, 2, 2, 3, 3]], [2, 5], 'int32');
    const mask = tf.tensor2d([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]);
    updateRoutingBias(bias, index, mask, 0.5);
    expect(Array.from(bias.read().dataSync())).toEqual([-0.5, 0, 0, 0.5]);
    tf.dispose([index, mask]);
    layer.dispose();
  });

  test('a training call moves tokens off the crowded row; inference and the cache route with the bias', () => {
    const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 2, poolSize: 4, userDim: 1, causal: true, poolSeed: 2, routingBiasRate: 1 });
    const x = randomTensor([2, 5, 4], 3);
    (layer.apply(x) as tf.Tensor).dispose();
    // Every token prefers row 0 by 0.5 over row 1 and by more over the others.
    setWeight(layer, 'key_router', new Array(16).fill(0));
    setWeight(layer, 'key_router_bias', [0.5, 0, -1, -1]);
    const rows = () => { const r = layer.route('key', x); const out = Array.from(r.index.dataSync()); tf.dispose([r.index, r.gate, r.logits]); return out; };
    expect(new Set(rows())).toEqual(new Set([0]));
    (layer.apply(x, { training: true }) as tf.Tensor).dispose();
    layer.auxiliaryLoss().dispose();
    // Row 0 took all 10 tokens (share 2.5): its bias fell by 1, the others rose by 1, so row 1 now wins.
    expect(Array.from(weightBySuffix(layer, 'key_routing_bias').read().dataSync())).toEqual([-1, 1, 1, 1]);
    expect(new Set(rows())).toEqual(new Set([1]));
    const full = layer.apply(x) as tf.Tensor;
    const block = layer.computeCache(x);
    const keys = block.keys;
    expect(keys.kind === 'pooled' ? new Set(Array.from(keys.index.dataSync())) : null).toEqual(new Set([1]));
    const cached = layer.attendCached(x, block);
    expect(maxAbsDiff(cached, full)).toBeLessThan(2e-5);
    tf.dispose([x, full, cached]);
    block.dispose();
    layer.dispose();
  });

  test('the option round-trips through getConfig and the bias is saved with the weights; bad rates are named', () => {
    const layer = new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolSize: 4, routingBiasRate: 0.01 });
    expect(layer.getConfig().routingBiasRate).toBe(0.01);
    const input = tfl.input({ shape: [3, 2] });
    const model = tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor });
    expect(model.getWeights().length).toBe(model.trainableWeights.length + 2); // key and value routing biases
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2 }).getConfig().routingBiasRate).toBeUndefined();
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, routingBiasRate: -1 })).toThrow(/routingBiasRate/);
    model.dispose();
  });
});
