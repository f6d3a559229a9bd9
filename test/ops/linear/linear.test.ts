import * as tf from '@tensorflow/tfjs-core';
import { LINEAR, linear, linearComposite } from '../../../ops/linear/index';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomTensor } from '../../util/backends';

describeEachBackend('linear', (backend) => {
  it('has a kernel on this backend', () => {
    expect(tf.getKernel(LINEAR, backend)).toBeDefined();
  });

  it.each([[[5, 3]], [[2, 4, 3]], [[3]], [[2, 1, 2, 3]]])('matches the composite in value and gradients for x %j', (shape: number[]) => {
    const x = randomTensor(shape, 1);
    const w = randomTensor([3, 7], 2);
    const b = randomTensor([7], 3);
    const up = randomTensor([...shape.slice(0, -1), 7], 4);
    for (const bias of [b, null]) {
      const ours = linear(x, w, bias);
      const theirs = linearComposite(x, w, bias);
      expect(ours.shape).toEqual([...shape.slice(0, -1), 7]);
      expect(maxAbsDiff(ours, theirs)).toBeLessThan(1e-5);
      // tf.grads rejects an argument the function does not use, so no bias argument without a bias.
      const f = (g: typeof linear) => (xx: tf.Tensor, ww: tf.Tensor, bb?: tf.Tensor) => tf.sum(tf.mul(g(xx, ww, bb ?? null), up));
      const args = bias == null ? [x, w] : [x, w, b];
      const a = tf.grads(f(linear))(args);
      const c = tf.grads(f(linearComposite))(args);
      expect(a.length).toBe(args.length);
      for (let i = 0; i < args.length; i++) expect(maxAbsDiff(a[i], c[i])).toBeLessThan(1e-5);
      tf.dispose([ours, theirs, ...a, ...c]);
    }
    tf.dispose([x, w, b, up]);
  });

  it('matches finite differences', () => {
    const x = randomTensor([2, 3, 4], 7);
    const w = randomTensor([4, 5], 8);
    const b = randomTensor([5], 9);
    const up = randomTensor([2, 3, 5], 10);
    expect(finiteDifferenceError((xx) => tf.sum(tf.mul(linear(xx, w, b), up)) as tf.Scalar, x, 1e-2)).toBeLessThan(2e-3);
    expect(finiteDifferenceError((ww) => tf.sum(tf.mul(linear(x, ww, b), up)) as tf.Scalar, w, 1e-2)).toBeLessThan(2e-3);
    tf.dispose([x, w, b, up]);
  });

  it('leaks no tensors', () => {
    const x = randomTensor([4, 3], 1);
    const w = randomTensor([3, 2], 2);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      linear(x, w, null).dispose();
      tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(linear(xx, ww, null)))([x, w]).forEach((g) => g.dispose());
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w]);
  });

  it('rejects bad inputs, naming the argument', () => {
    const x = tf.zeros([2, 3]);
    const w = tf.zeros([4, 2]);
    const good = tf.zeros([3, 2]);
    const bias = tf.zeros([3]);
    expect(() => linear(x, w, null)).toThrow(/linear: argument 'kernel' must be of shape \[3, out\]/);
    expect(() => linear(x, good, bias)).toThrow(/argument 'bias' must be of shape \[2\]/);
    expect(() => linear(tf.scalar(1), good, null)).toThrow(/argument 'x'/);
    tf.dispose([x, w, good, bias]);
  });
});
