// The layer swap (README, "The layer swap"): one attention class for another, nothing else changes.
// Builds a small causal self-attention model twice, with MultiHeadAttention and with
// CollectiveKVAttention, trains each for a few steps on random data and prints their losses.
//   npx tsx examples/layer-swap.ts
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-wasm';
import { CollectiveKVAttention, MultiHeadAttention } from 'collectivekv';

export interface SwapResult {
  attention: 'mha' | 'collectivekv';
  params: number;
  losses: number[];
}

/** A model over an embedded history [B, seqLen, width] and its mask [B, seqLen]. */
function buildModel(attention: MultiHeadAttention | CollectiveKVAttention, seqLen: number, width: number): tfl.LayersModel {
  const items = tfl.input({ shape: [seqLen, width] });   // embedded history
  const mask = tfl.input({ shape: [seqLen] });           // 1 = event, 0 = padding
  const hidden = attention.apply([items, mask]) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [items, mask], outputs: hidden });
}

export async function main({ seqLen = 16, width = 16, batch = 8, steps = 3 } = {}): Promise<SwapResult[]> {
  if (tf.getBackend() !== 'wasm') await tf.setBackend('wasm');
  await tf.ready();
  const layers = {
    // Before:
    mha: new MultiHeadAttention({ numHeads: 2, keyDim: width / 2, causal: true }),
    // After: the same arguments, plus the pool options.
    collectivekv: new CollectiveKVAttention({ numHeads: 2, keyDim: width / 2, causal: true, poolSize: 64, userDim: 1, poolSeed: 1 }),
  };
  const x = tf.randomNormal([batch, seqLen, width], 0, 1, 'float32', 1);
  const mask = tf.ones([batch, seqLen]);
  const target = tf.randomNormal([batch, seqLen, width], 0, 1, 'float32', 2);
  const results: SwapResult[] = [];
  for (const [name, layer] of Object.entries(layers) as [SwapResult['attention'], MultiHeadAttention | CollectiveKVAttention][]) {
    const model = buildModel(layer, seqLen, width);
    // Train as usual: CollectiveKV's router losses are added through addLoss.
    model.compile({ optimizer: tf.train.adam(1e-2), loss: 'meanSquaredError' });
    const history = await model.fit([x, mask], target, { epochs: steps, batchSize: batch, verbose: 0 });
    results.push({ attention: name, params: model.countParams(), losses: history.history.loss as number[] });
    model.dispose();
  }
  tf.dispose([x, mask, target]);
  return results;
}

if (require.main === module) {
  main().then((results) => {
    for (const r of results) console.log(`${r.attention.padEnd(12)} ${r.params} weights, loss ${r.losses.map((l) => l.toFixed(4)).join(' -> ')}`);
  }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
