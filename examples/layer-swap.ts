// The layer swap (README, "The layer swap"): one attention class for another, plus the recipe's
// callback. Trains a small next-item model on data with a known sequential signal (an item is
// usually followed by one fixed successor) with MultiHeadAttention and with CollectiveKVAttention,
// and prints each one's validation accuracy and cache bytes per token.
//   npx tsx examples/layer-swap.ts
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-wasm';
import { CollectiveKVAttention, MultiHeadAttention, collectiveKVRecipe, useFastEmbeddingGradients } from 'collectivekv';

export interface SwapResult {
  attention: 'mha' | 'collectivekv';
  accuracy: number;
  epochs: number;
  bytesPerToken: number;
}

/** Item sequences whose next item is (7 prev + 3) mod items, or a random one with probability `noise`; inputs and next-item targets. */
function sequences(count: number, seqLen: number, items: number, noise: number, seed: number): [tf.Tensor2D, tf.Tensor3D] {
  let state = seed;
  const rand = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  const ids = new Int32Array(count * (seqLen + 1));
  for (let s = 0; s < count; s++) {
    for (let t = 0; t <= seqLen; t++) {
      const prev = ids[s * (seqLen + 1) + t - 1];
      ids[s * (seqLen + 1) + t] = t === 0 || rand() < noise ? Math.floor(rand() * items) : (7 * prev + 3) % items;
    }
  }
  return tf.tidy(() => {
    const all = tf.tensor2d(ids, [count, seqLen + 1], 'int32');
    const next = tf.reshape(tf.cast(tf.slice(all, [0, 1], [count, seqLen]), 'float32'), [count, seqLen, 1]) as tf.Tensor3D;
    return [tf.slice(all, [0, 0], [count, seqLen]), next];
  });
}

function buildModel(attention: MultiHeadAttention | CollectiveKVAttention, seqLen: number, items: number, width: number): tfl.LayersModel {
  const ids = tfl.input({ shape: [seqLen], dtype: 'int32' });
  const embedded = tfl.layers.embedding({ inputDim: items, outputDim: width }).apply(ids) as tfl.SymbolicTensor;
  const hidden = attention.apply(embedded) as tfl.SymbolicTensor;
  const logits = tfl.layers.dense({ units: items, activation: 'softmax' }).apply(hidden) as tfl.SymbolicTensor;
  return tfl.model({ inputs: ids, outputs: logits });
}

export async function main({ seqLen = 10, items = 40, width = 16, users = 600, maxEpochs = 40 } = {}): Promise<SwapResult[]> {
  if (tf.getBackend() !== 'wasm') await tf.setBackend('wasm');
  useFastEmbeddingGradients();   // tfjs's embedding gradient needs a kernel wasm lacks
  const [x, y] = sequences(users, seqLen, items, 0.1, 1);
  const [xVal, yVal] = sequences(200, seqLen, items, 0.1, 2);
  const results: SwapResult[] = [];
  for (const name of ['mha', 'collectivekv'] as const) {
    const args = { numHeads: 2, keyDim: width / 2, causal: true };
    // Before: MultiHeadAttention. After: the same arguments plus the pool options, and the recipe's callback.
    const attention = name === 'mha' ? new MultiHeadAttention(args) : new CollectiveKVAttention({ ...args, poolSize: 64, userDim: 1 });
    const model = buildModel(attention, seqLen, items, width);
    model.compile({ optimizer: tf.train.adam(1e-2), loss: 'sparseCategoricalCrossentropy' });
    const callbacks = name === 'mha' ? [tfl.callbacks.earlyStopping({ patience: 3 })] : [collectiveKVRecipe({ sample: x, patience: 3, log: null })];
    const history = await model.fit(x, y, { epochs: maxEpochs, batchSize: 32, validationData: [xVal, yVal], callbacks, verbose: 0 });
    const accuracy = tf.tidy(() => tf.mean(tf.equal(tf.argMax(model.predict(xVal) as tf.Tensor, -1), tf.cast(tf.squeeze(yVal, [2]), 'int32'))).dataSync()[0]);
    const probe = tf.zeros([1, seqLen, width]);
    const block = attention.computeCache(probe);
    const bytesPerToken = block.bytesPerToken('fp32');
    tf.dispose(probe);
    block.dispose();
    results.push({ attention: name, accuracy, epochs: history.epoch.length, bytesPerToken });
    model.dispose();
  }
  tf.dispose([x, y, xVal, yVal]);
  return results;
}

if (require.main === module) {
  main().then((results) => {
    for (const r of results) console.log(`${r.attention.padEnd(12)} accuracy ${r.accuracy.toFixed(3)} after ${r.epochs} epochs, ${r.bytesPerToken} cache bytes/token`);
  }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
