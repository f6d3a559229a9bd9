// The input forms of both attention layers: [x, mask] is self-attention with a padding mask and
// equals [x, x, mask]; a functional model built with [x, mask] predicts (tfjs's executor disposes a
// tensor that is fed twice to one layer, so [x, x, mask] fails in predict).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { CollectiveKVAttention, MultiHeadAttention } from '../../layers/index';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';

const makers = {
  mha: () => new MultiHeadAttention({ numHeads: 2, keyDim: 4, causal: true }),
  collectivekv: () => new CollectiveKVAttention({ numHeads: 2, keyDim: 4, causal: true, poolSize: 16, userDim: 1 }),
};

describeEachBackend('attention input forms', () => {
  for (const [name, make] of Object.entries(makers)) {
    it(`${name}: [x, mask] equals [x, x, mask]`, () => {
      const layer = make();
      const x = randomTensor([2, 5, 6], 1);
      const mask = tf.tensor2d([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]);
      const a = layer.apply([x, mask]) as tf.Tensor;
      const b = layer.apply([x, x, mask]) as tf.Tensor;
      expect(a.shape).toEqual([2, 5, 6]);
      expect(maxAbsDiff(a, b)).toBe(0);
      tf.dispose([x, mask, a, b]);
      layer.dispose();
    });

    it(`${name}: a functional model with [x, mask] inputs predicts`, () => {
      const x = tfl.input({ shape: [5, 6] });
      const mask = tfl.input({ shape: [5] });
      const out = make().apply([x, mask]) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: [x, mask], outputs: out });
      const xs = randomTensor([3, 5, 6], 2);
      const ms = tf.ones([3, 5]);
      const before = tf.memory().numTensors;
      const y = model.predict([xs, ms]) as tf.Tensor;
      expect(y.shape).toEqual([3, 5, 6]);
      expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
      y.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([xs, ms]);
      model.dispose();
    });
  }
});
