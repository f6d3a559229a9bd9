// Bad arguments and inputs are rejected with the argument named; tensors do not leak across
// repeated forwards, cache calls and training-mode calls.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, randomTensor } from '../util/backends';
import { CollectiveKVAttention, MultiHeadAttention } from '../../layers/index';
import type { CollectiveKVAttentionArgs } from '../../layers/index';

const base: CollectiveKVAttentionArgs = { numHeads: 2, keyDim: 4, poolSize: 8 };

describeEachBackend('layers validation', () => {
  test('constructor arguments: the error names the argument, the expectation and the value', () => {
    const bad: [Partial<CollectiveKVAttentionArgs>, RegExp][] = [
      [{ numHeads: 0 }, /'numHeads' must be a positive integer, received 0/],
      [{ keyDim: 2.5 }, /'keyDim' must be a positive integer, received 2.5/],
      [{ valueDim: -1 }, /'valueDim'/],
      [{ poolSize: 0 }, /'poolSize' must be a positive integer, received 0/],
      [{ poolSize: 3.5 }, /'poolSize'/],
      [{ userDim: 9 }, /'userDim' must be at most numHeads\*keyDim = 8.*received 9/],
      [{ userDim: 5, valueDim: 2 }, /'userDim' must be at most numHeads\*valueDim = 4/],
      [{ userDim: 1.5 }, /'userDim'/],
      [{ share: 'q' as 'k' }, /'share' must be one of 'kv', 'k', 'v', received "q"/],
      [{ attention: 'relu' as 'hstu' }, /'attention' must be one of 'softmax', 'hstu'/],
      [{ dropout: 1 }, /'dropout'/],
      [{ peakWeight: -1 }, /'peakWeight'/],
      [{ userActivation: 'nope' }, /'userActivation'.*"nope"/],
      [{ kernelInitializer: 'noSuchInit' }, /'kernelInitializer'/],
    ];
    for (const [args, message] of bad) {
      expect(() => new CollectiveKVAttention({ ...base, ...args })).toThrow(message);
    }
    // The value side may be unshared: then valueDim is not constrained by userDim.
    expect(() => new CollectiveKVAttention({ ...base, userDim: 4, valueDim: 2, share: 'k' })).not.toThrow();
    // Exactly MultiHeadAttention's arguments construct a CollectiveKVAttention.
    const mhaArgs = { numHeads: 2, keyDim: 4, valueDim: 3, dropout: 0.1, useBias: false, causal: true, attention: 'hstu' as const,
      kernelInitializer: 'glorotNormal', name: 'swap' };
    expect(new CollectiveKVAttention(mhaArgs).poolSize).toBe(1024);
    expect(() => new MultiHeadAttention({ numHeads: 2, keyDim: 0 })).toThrow(/MultiHeadAttention: argument 'keyDim'/);
  });

  test('inputs: rank, widths, batch, mask shape, inputs count, cache blocks of another layer', () => {
    const layer = new CollectiveKVAttention(base);
    const x = randomTensor([2, 3, 5], 1);
    const kv = randomTensor([2, 4, 6], 2);
    const expectThrow = (f: () => unknown, message: RegExp) => expect(() => tf.tidy(() => { f(); })).toThrow(message);
    expectThrow(() => layer.apply(tf.zeros([2, 5])), /'query' must be a rank-3 input/);
    layer.apply([x, kv]);
    expectThrow(() => layer.apply([tf.zeros([2, 3, 4]), kv]), /'query' must be .*last dimension 5.*received shape \[2, 3, 4\]/);
    expectThrow(() => layer.apply([x, tf.zeros([2, 4, 7])]), /'kvSource' must be .*last dimension 6/);
    expectThrow(() => layer.apply([x, tf.zeros([3, 4, 6])]), /'kvSource' must be .*batch size 2/);
    expectThrow(() => layer.apply([x, kv, tf.ones([2, 3])]), /'mask' must be of shape \[2, 4\].*received shape \[2, 3\]/);
    expectThrow(() => layer.apply([x, kv], { mask: tf.ones([2]) }), /'mask' must be of shape \[2, 4\]/);
    expectThrow(() => layer.apply([x, kv, tf.ones([2, 4]), x]), /'inputs'/);
    expectThrow(() => layer.computeCache(kv, tf.ones([2, 5])), /'mask'/);
    expectThrow(() => layer.computeCache(x), /'kvSource'/);
    const block = layer.computeCache(kv);
    expectThrow(() => layer.attendCached(tf.zeros([1, 1, 5]), block), /'query' must be batch size 2/);
    expectThrow(() => layer.appendToCache(block, tf.zeros([2, 1, 5])), /'kvSource'/);
    const mha = new MultiHeadAttention({ numHeads: 2, keyDim: 4 });
    mha.apply([x, kv]);
    expectThrow(() => mha.attendCached(x, block), /MultiHeadAttention: argument 'block.keys' must be a 'full' cache side/);
    const unbuilt = new MultiHeadAttention({ numHeads: 2, keyDim: 4 });
    expectThrow(() => unbuilt.computeCache(kv), /built layer/);
    block.dispose();
    tf.dispose([x, kv]);
    [layer, mha].forEach((l) => l.dispose()); // (tfjs refuses to dispose an unbuilt layer)
  });

  test('no tensor leaks: forwards, cache calls, training-mode calls', () => {
    for (const layer of [new CollectiveKVAttention({ ...base, dropout: 0.2 }), new MultiHeadAttention({ numHeads: 2, keyDim: 4, dropout: 0.2 })]) {
      const x = randomTensor([2, 3, 5], 3);
      const kv = randomTensor([2, 4, 6], 4);
      const mask = tf.tensor2d([[1, 1, 1, 0], [1, 1, 0, 0]]);
      (layer.apply([x, kv, mask]) as tf.Tensor).dispose(); // builds the weights
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        (layer.apply([x, kv, mask]) as tf.Tensor).dispose();
        (layer.apply([x, kv]) as tf.Tensor).dispose();
        tf.tidy(() => { layer.apply([x, kv, mask], { training: true }); });
        const block = layer.computeCache(kv, mask);
        const grown = layer.appendToCache(block, tf.slice(kv, [0, 0, 0], [-1, 1, -1]));
        layer.attendCached(x, grown).dispose();
        block.dispose();
        grown.dispose();
        if (layer instanceof CollectiveKVAttention) layer.auxiliaryLoss().dispose();
      }
      // slices created above (3 of them) are the only extra tensors
      expect(tf.memory().numTensors - before).toBe(3);
      tf.dispose([x, kv, mask]);
      layer.dispose();
    }
  });
});
