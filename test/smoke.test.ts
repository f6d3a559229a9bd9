import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend } from './util/backends';
import { dotProductAttention } from '../ops/dotProductAttention/index';

describeEachBackend('backends load', (backend) => {
  it('runs attention', () => {
    expect(tf.getBackend()).toBe(backend);
    const q = tf.ones([1, 2, 4]);
    const out = dotProductAttention(q, q, q, { numHeads: 2, causal: true });
    expect(out.shape).toEqual([1, 2, 4]);
    tf.dispose([q, out]);
  });
});
