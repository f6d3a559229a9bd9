// Bad arguments and inputs are rejected with the argument named; tensors do not leak across
// repeated forwards, cache calls and training-mode calls.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, randomTensor } from '../util/backends';
import { CollectiveKVAttention, GlobalKVPool, KVCacheBlock, MultiHeadAttention, UserKVProjector, concatBlocks } from '../../layers/index';
import type { CollectiveKVAttentionArgs } from '../../layers/index';
import { MAX_TENSOR_VALUES } from '../../layers/common';

const base: CollectiveKVAttentionArgs = { numHeads: 2, keyDim: 4, poolSize: 8 };

/** The error `f` throws (fails the test when it returns). */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

/** Regex-escaped. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `f` throws an ArgumentError (not a TypeError from deep inside) whose message matches. */
function expectArgumentError(f: () => unknown, message: RegExp): void {
  const e = thrown(f);
  expect(e.name).toBe('ArgumentError');
  expect(e.message).toMatch(message);
}

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
      [{ router: { kind: 'dense', peakWeight: -1 } }, /'router\.peakWeight' must be a finite number >= 0, received -1/],
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

  test('missing or non-object args: the error names the required options, not a TypeError', () => {
    const before = tf.memory().numTensors;
    const make = {
      CollectiveKVAttention: (a: unknown) => new CollectiveKVAttention(a as CollectiveKVAttentionArgs),
      MultiHeadAttention: (a: unknown) => new MultiHeadAttention(a as CollectiveKVAttentionArgs),
    };
    for (const [name, f] of Object.entries(make)) {
      expectArgumentError(() => (f as (a?: unknown) => unknown)(),
        new RegExp(`^${name}: argument 'args' must be an options object with numHeads and keyDim \\(e\\.g\\. .*\\), received undefined$`));
      expectArgumentError(() => f(undefined), /'args' must be an options object with numHeads and keyDim.*received undefined/);
      expectArgumentError(() => f(null), /'args' must be an options object with numHeads and keyDim.*received null/);
      expectArgumentError(() => f(4), /'args' must be an options object.*received 4$/);
      expectArgumentError(() => f('heads'), /'args' must be an options object.*received "heads"$/);
      expectArgumentError(() => f({}), new RegExp(`^${name}: argument 'numHeads' must be a positive integer, received undefined$`));
      expectArgumentError(() => f({ numHeads: 2 }), /'keyDim' must be a positive integer, received undefined/);
    }
    const pool = (a?: unknown) => new GlobalKVPool(a as { units: number });
    expectArgumentError(() => pool(), /^GlobalKVPool: argument 'args' must be an options object with units \(e\.g\. .*\), received undefined$/);
    expectArgumentError(() => pool(null), /^GlobalKVPool: argument 'args' .*units.*received null$/);
    expectArgumentError(() => pool({}), /^GlobalKVPool: argument 'units' must be an integer >= 0, received undefined$/);
    // UserKVProjector has no required option: no args is fine, null or a non-object is not.
    expect(new UserKVProjector().units).toBe(1);
    expectArgumentError(() => new UserKVProjector(null as never), /^UserKVProjector: argument 'args' must be an options object \(or nothing\), received null$/);
    expectArgumentError(() => new UserKVProjector([4] as never), /'args' must be an options object.*received an array of 1 items/);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('boolean and enum options: the error names the option, the expected type and the value', () => {
    const before = tf.memory().numTensors;
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ causal: 'yes' }, /^CollectiveKVAttention: argument 'causal' must be a boolean \(true or false\), received "yes"$/],
      [{ causal: 1 }, /'causal' must be a boolean \(true or false\), received 1$/],
      [{ useBias: 'false' }, /'useBias' must be a boolean \(true or false\), received "false"$/],
      [{ trainable: 'no' }, /'trainable' must be a boolean \(true or false\), received "no"$/],
      [{ attention: 'dot' }, /'attention' must be one of 'softmax', 'hstu', received "dot"$/],
      [{ share: true }, /'share' must be one of 'kv', 'k', 'v', received true$/],
      [{ router: { kind: 'dense', gate: 'hard' } }, /'router\.gate' must be one of 'scaled', 'straight-through', received "hard"$/],
      [{ gate: 'hard' }, /'router\.gate' must be one of 'scaled', 'straight-through', received "hard"$/],
      [{ router: 'hash' }, /'router' must be one of 'dense', 'nearest-product', received "hash"$/],
      [{ router: { kind: 'hash' } }, /'router\.kind' must be one of 'dense', 'nearest-product', received "hash"$/],
      [{ router: 7 }, /'router' must be one of 'dense', 'nearest-product' or a router config .*received 7$/],
      [{ userActivation: 5 }, /'userActivation' must be a tfjs activation id.*received 5$/],
    ];
    for (const [args, message] of bad) {
      expectArgumentError(() => new CollectiveKVAttention({ ...base, ...args } as CollectiveKVAttentionArgs), message);
    }
    // null is unset (the default), as for every option.
    expect(new CollectiveKVAttention({ ...base, causal: null as never, useBias: null as never }).causal).toBe(false);
    expectArgumentError(() => new MultiHeadAttention({ numHeads: 2, keyDim: 4, causal: 'true' as never }),
      /^MultiHeadAttention: argument 'causal' must be a boolean \(true or false\), received "true"$/);
    expectArgumentError(() => new GlobalKVPool({ units: 2, useBias: 0 as never }), /^GlobalKVPool: argument 'useBias' must be a boolean.*received 0$/);
    expectArgumentError(() => new GlobalKVPool({ units: 2, router: 'hash' as never }), /^GlobalKVPool: argument 'router' must be one of 'dense', 'nearest-product', received "hash"$/);
    expectArgumentError(() => new GlobalKVPool({ units: 2, router: { kind: 'dense', gate: 'on' as never } }), /^GlobalKVPool: argument 'router\.gate'.*received "on"$/);
    expectArgumentError(() => new UserKVProjector({ useBias: 'yes' as never }), /^UserKVProjector: argument 'useBias' must be a boolean.*received "yes"$/);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('unknown option keys are rejected by name; tfjs\'s own keys (and a saved config\'s) are accepted', () => {
    const before = tf.memory().numTensors;
    expectArgumentError(() => new CollectiveKVAttention({ ...base, poolsize: 8 } as CollectiveKVAttentionArgs),
      /^CollectiveKVAttention: argument 'poolsize' must be an option of CollectiveKVAttention \(did you mean 'poolSize'\?\), received 8$/);
    expectArgumentError(() => new CollectiveKVAttention({ ...base, heads: 2 } as CollectiveKVAttentionArgs),
      /argument 'heads' must be an option of CollectiveKVAttention: numHeads, keyDim, .*poolSize, .* \(or tfjs's inputShape, .*\), received 2$/);
    // MultiHeadAttention has no pool: its options are the base ones only.
    expectArgumentError(() => new MultiHeadAttention({ numHeads: 2, keyDim: 4, poolSize: 8 } as CollectiveKVAttentionArgs),
      /^MultiHeadAttention: argument 'poolSize' must be an option of MultiHeadAttention: numHeads, keyDim,.*received 8$/);
    expectArgumentError(() => new GlobalKVPool({ units: 2, unit: 3 } as never), /^GlobalKVPool: argument 'unit' must be an option of GlobalKVPool.*received 3$/);
    expectArgumentError(() => new UserKVProjector({ Units: 3 } as never), /^UserKVProjector: argument 'Units' .*did you mean 'units'.*received 3$/);
    // A key holding undefined (a spread of optional fields) sets nothing: accepted.
    expect(() => new CollectiveKVAttention({ ...base, notAnOption: undefined } as CollectiveKVAttentionArgs)).not.toThrow();
    // tfjs's LayerArgs.
    const layerArgs = { name: 'att', trainable: false, dtype: 'float32' as const, inputShape: [3, 5], batchSize: 2, inputDType: 'float32' as const };
    expect(new CollectiveKVAttention({ ...base, ...layerArgs }).trainable).toBe(false);
    expect(() => new MultiHeadAttention({ numHeads: 2, keyDim: 4, batchInputShape: [null, 3, 5] })).not.toThrow();
    expect(() => new GlobalKVPool({ units: 2, ...layerArgs })).not.toThrow();
    expect(() => new UserKVProjector({ units: 2, ...layerArgs })).not.toThrow();
    // tfjs's deserialization (deserializeKerasObject) adds customObjects to the saved config it constructs from.
    const deserialize = (c: { className: string; config: tf.serialization.ConfigDict }) => {
      const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[c.className];
      return fromConfig(cls, { ...c.config, customObjects: {} });
    };
    for (const layer of [new CollectiveKVAttention({ ...base, inputShape: [3, 5], poolSize: 16, router: { kind: 'nearest-product', lossTokens: undefined } }),
      new MultiHeadAttention({ numHeads: 2, keyDim: 4, causal: true }), new GlobalKVPool({ units: 2, poolSize: 16, router: 'nearest-product' }),
      new UserKVProjector({ units: 3 })]) {
      const copy = deserialize({ className: layer.getClassName(), config: layer.getConfig() }) as tfl.layers.Layer;
      expect(copy.getConfig()).toEqual(layer.getConfig());
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('poolSize and the widths derived from it are bounded by the backend\'s largest tensor, before any weight exists', () => {
    const backend = tf.getBackend();
    const limit = backend === 'wasm' ? MAX_TENSOR_VALUES.wasm : MAX_TENSOR_VALUES.other;
    const before = tf.memory().numTensors;
    // Not an integer >= 1.
    for (const poolSize of [0, -4, 2.5, NaN, Infinity, -Infinity]) {
      expectArgumentError(() => new CollectiveKVAttention({ ...base, poolSize }),
        new RegExp(`^CollectiveKVAttention: argument 'poolSize' must be a positive integer, received ${literal(String(poolSize))}$`));
    }
    expectArgumentError(() => new CollectiveKVAttention({ ...base, poolSize: '8' as never }), /'poolSize' must be a positive integer, received "8"$/);
    expectArgumentError(() => new GlobalKVPool({ units: 2, poolSize: NaN }), /^GlobalKVPool: argument 'poolSize' must be a positive integer, received NaN$/);
    // Too large for the backend: the pool [poolSize, numHeads*keyDim - userDim = 7].
    const limitText = backend === 'wasm'
      ? `the largest tensor the 'wasm' backend can allocate (${limit} float32 values: its heap is at most 4 GiB - 64 KiB)`
      : `the largest tensor the '${backend}' backend can allocate (${limit} values: the longest typed array)`;
    const poolSize = 2 ** 29;
    expectArgumentError(() => new CollectiveKVAttention({ ...base, poolSize }), new RegExp(`^${literal(
      `CollectiveKVAttention: argument 'poolSize' must be at most ${Math.floor(limit / 7)} so that the key pool [poolSize, numHeads*keyDim - userDim = 7] fits ${limitText}, received ${poolSize} (the key pool [poolSize, numHeads*keyDim - userDim = 7] would hold ${poolSize * 7} values)`)}$`));
    // Only the shared side's pool: with share 'v' the value pool [poolSize, 2*2 - 1 = 3] is the one.
    expectArgumentError(() => new CollectiveKVAttention({ ...base, valueDim: 2, share: 'v', poolSize: 2 ** 30 - 2 ** 20 }),
      /'poolSize' must be at most \d+ so that the value pool \[poolSize, numHeads\*valueDim - userDim = 3\] fits/);
    expectArgumentError(() => new CollectiveKVAttention({ ...base, poolSize: 2 ** 31 }), /'poolSize' must be at most \d+ so that a \[poolSize\] vector \(routing\) fits/);
    // Between the wasm heap and the typed-array limit: only wasm rejects it (nothing is allocated until build).
    const between = new RegExp(`'poolSize' must be at most ${Math.floor(MAX_TENSOR_VALUES.wasm / 7)} .*'wasm' backend`);
    if (backend === 'wasm') expectArgumentError(() => new CollectiveKVAttention({ ...base, poolSize: 2 ** 28 }), between);
    else expect(new CollectiveKVAttention({ ...base, poolSize: 2 ** 28 }).poolSize).toBe(2 ** 28);
    // numHeads x keyDim, numHeads x valueDim, relativePositions.
    expectArgumentError(() => new CollectiveKVAttention({ numHeads: 2 ** 16, keyDim: 2 ** 16 }),
      new RegExp(`^CollectiveKVAttention: argument 'keyDim' must be at most ${Math.floor(limit / 2 ** 16)} so that numHeads x keyDim \\(numHeads = 65536\\) fits .*, received 65536 \\(numHeads x keyDim \\(numHeads = 65536\\) would hold 4294967296 values\\)$`));
    expectArgumentError(() => new MultiHeadAttention({ numHeads: 2, keyDim: 4, valueDim: 2 ** 31 }), /^MultiHeadAttention: argument 'valueDim' must be at most \d+ so that numHeads x valueDim/);
    expectArgumentError(() => new MultiHeadAttention({ numHeads: 2 ** 32, keyDim: 1 }), /^MultiHeadAttention: argument 'numHeads' must be at most \d+/);
    expectArgumentError(() => new MultiHeadAttention({ numHeads: 2, keyDim: 4, relativePositions: 2 ** 30 }),
      /'relativePositions' must be at most \d+ so that relative_position_bias \[numHeads, 2 relativePositions - 1\] fits .*received 1073741824/);
    expectArgumentError(() => new GlobalKVPool({ units: 16, poolSize: 2 ** 28 }),
      /^GlobalKVPool: argument 'poolSize' must be at most \d+ so that the pool \[poolSize, units = 16\] fits .*received 268435456/);
    expectArgumentError(() => new UserKVProjector({ units: 2 ** 31 }), /^UserKVProjector: argument 'units' must be at most \d+/);
    // Input widths: checked by build before it creates the first weight.
    const layers = [new CollectiveKVAttention(base), new CollectiveKVAttention({ ...base, poolSize: 16, router: 'nearest-product' }), new MultiHeadAttention({ numHeads: 2, keyDim: 4 })];
    for (const layer of layers) {
      expectArgumentError(() => layer.build([[null, 3, 5], [null, 4, 2 ** 30]]),
        /argument 'kvSource' must be a last dimension of at most \d+ so that \w+[ \w]* \[kvSource width, \d+\] fits .*, received last dimension 1073741824 \(.* would hold \d+ values\)/);
      expectArgumentError(() => layer.build([[null, 3, 2 ** 30], [null, 4, 6]]),
        /argument 'query' must be a last dimension of at most \d+ so that query_kernel \[query width, 8\] fits .*received last dimension 1073741824/);
      expect(layer.weights).toHaveLength(0);
      expect(layer.built).toBe(false);
    }
    const pool = new GlobalKVPool({ units: 2, poolSize: 16 });
    expectArgumentError(() => pool.build([null, 2 ** 28]), /^GlobalKVPool: argument 'inputs' must be a last dimension of at most \d+ so that router \[input width, 16\] fits/);
    const projector = new UserKVProjector({ units: 8 });
    expectArgumentError(() => projector.build([null, 2 ** 28]), /^UserKVProjector: argument 'inputs' must be a last dimension of at most \d+ so that kernel \[input width, 8\]/);
    expect([pool.weights.length, projector.weights.length]).toEqual([0, 0]);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('a rank-1 mask: the error names the mask, its expected rank and the received shape', () => {
    const layer = new CollectiveKVAttention(base);
    const x = randomTensor([2, 3, 5], 5);
    const kv = randomTensor([2, 4, 6], 6);
    (layer.apply([x, kv]) as tf.Tensor).dispose();
    const before = tf.memory().numTensors;
    const expectThrow = (f: () => unknown, message: RegExp) => expectArgumentError(() => tf.tidy(() => { f(); }), message);
    const rank1 = /^CollectiveKVAttention: argument 'mask' must be of shape \[2, 4\] \(rank 2 \[batch, time\]; 1 valid, 0 padding\), received shape \[4\] \(rank 1\)$/;
    expectThrow(() => layer.apply([x, kv, tf.ones([4])]), rank1);
    expectThrow(() => layer.apply([x, kv], { mask: tf.ones([4]) }), rank1);
    expectThrow(() => layer.computeCache(kv, tf.ones([4])), rank1);
    // A rank-3 third input is Keras's key, which CollectiveKVAttention does not take apart from the value.
    expectThrow(() => layer.apply([x, kv, tf.ones([2, 3, 4])]), /'key' must be the value tensor or absent .*received a separate tensor of shape \[2, 3, 4\]$/);
    // Self-attention [x, mask]: a rank-1 second input is a (bad) mask, not a kvSource.
    const selfAttention = new CollectiveKVAttention(base);
    tf.tidy(() => { selfAttention.apply([kv, tf.ones([2, 4])]); });
    expectThrow(() => selfAttention.apply([kv, tf.ones([4])]), /'mask' must be of shape \[2, 4\] .*received shape \[4\] \(rank 1\)$/);
    const block = layer.computeCache(kv);
    const created = selfAttention.weights.length + block.tensors().length;
    expectThrow(() => layer.appendToCache(block, tf.zeros([2, 1, 6]), tf.ones([2])), /'mask' must be of shape \[2, 1\] .*received shape \[2\] \(rank 1\)$/);
    expectThrow(() => new KVCacheBlock(block.keys, block.values, tf.ones([4])),
      /^KVCacheBlock: argument 'mask' must be a float32 tensor of rank 2 \[batch, time\] \(1 valid, 0 padding\), received shape \[4\] \(rank 1\)$/);
    const pool = new GlobalKVPool({ units: 2, poolSize: 4 });
    (pool.apply(kv) as tf.Tensor).dispose();
    expectThrow(() => pool.apply(kv, { training: true, mask: tf.ones([4]) }), /^GlobalKVPool: argument 'mask' must be of shape \[2, 4\], received shape \[4\]$/);
    expect(tf.memory().numTensors - before).toBe(created + pool.weights.length);
    block.dispose();
    tf.dispose([x, kv]);
    [layer, selfAttention, pool].forEach((l) => l.dispose());
  });

  test('attendCached, appendToCache and concatBlocks on a disposed block name the block', () => {
    const x = randomTensor([2, 3, 5], 7);
    const kv = randomTensor([2, 4, 5], 8);
    for (const layer of [new CollectiveKVAttention(base), new MultiHeadAttention({ numHeads: 2, keyDim: 4 })]) {
      const name = layer.getClassName();
      (layer.apply([x, kv]) as tf.Tensor).dispose();
      const live = layer.computeCache(kv);
      const disposed = layer.computeCache(kv);
      disposed.dispose();
      expect(disposed.isDisposed).toBe(true);
      const before = tf.memory().numTensors;
      const gone = new RegExp(`^${name}: argument 'block' must be a cache block that is not disposed, received a disposed block \\(the block was disposed`);
      expectArgumentError(() => layer.attendCached(x, disposed), gone);
      expectArgumentError(() => layer.attendCached(x, disposed, { causal: true }), gone);
      const step = tf.slice(kv, [0, 0, 0], [-1, 1, -1]);
      expectArgumentError(() => layer.appendToCache(disposed, step), gone);
      step.dispose();
      expectArgumentError(() => concatBlocks(live, disposed), /^concatBlocks: argument 'next' must be a cache block that is not disposed/);
      // One tensor of the block disposed is enough.
      const partly = layer.computeCache(kv);
      partly.mask.dispose();
      expectArgumentError(() => layer.attendCached(x, partly), gone);
      partly.dispose();
      expectArgumentError(() => layer.attendCached(x, undefined as never), new RegExp(`^${name}: argument 'block' must be a KVCacheBlock \\(from computeCache or appendToCache\\), received undefined$`));
      expectArgumentError(() => layer.attendCached(x, live, { causal: 'yes' } as never),
        new RegExp(`^${name}: argument 'options.causal' must be a boolean \\(true or false\\), received "yes"$`));
      expectArgumentError(() => layer.attendCached(x, live, { casual: true } as never), /argument 'options.casual' must be absent \(attendCached's only option is causal\), received true$/);
      expectArgumentError(() => layer.attendCached(x, live, null as never), /argument 'options' must be an options object.*received null$/);
      expect(tf.memory().numTensors).toBe(before);
      live.dispose();
      layer.dispose();
    }
    tf.dispose([x, kv]);
  });
});
