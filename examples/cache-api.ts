// The cache API (README, "The cache API"): prefill a user's history once, decode against the
// block, append new events. Both attention layers expose the same API; only what the block holds
// differs, so the CollectiveKV block is far smaller per token than the full K/V.
//   npx tsx examples/cache-api.ts
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { CollectiveKVAttention, MultiHeadAttention } from 'collectivekv';

export interface CacheApiResult {
  attention: 'mha' | 'collectivekv';
  bytesPerToken: number;
  tokens: number;
  /** The cached decode against the full forward pass at the last position (max abs difference). */
  maxAbsDiff: number;
}

export async function main({ historyLength = 12, width = 32, newEvents = 2 } = {}): Promise<CacheApiResult[]> {
  if (tf.getBackend() !== 'wasm') await tf.setBackend('wasm');
  await tf.ready();
  const layers = {
    mha: new MultiHeadAttention({ numHeads: 2, keyDim: width / 2, causal: true }),
    collectivekv: new CollectiveKVAttention({ numHeads: 2, keyDim: width / 2, causal: true, poolSize: 64, userDim: 1, poolSeed: 1 }),
  };
  const events = tf.randomNormal([1, historyLength + newEvents, width], 0, 1, 'float32', 3);
  const history = tf.slice(events, [0, 0, 0], [1, historyLength, width]);
  const historyMask = tf.ones([1, historyLength]);
  const fresh = tf.slice(events, [0, historyLength, 0], [1, newEvents, width]);
  const results: CacheApiResult[] = [];
  for (const [name, attention] of Object.entries(layers) as [CacheApiResult['attention'], MultiHeadAttention | CollectiveKVAttention][]) {
    // The full forward pass over every event (this also builds the layer's weights).
    const full = attention.apply([events, tf.ones([1, historyLength + newEvents])]) as tf.Tensor;
    const block = attention.computeCache(history, historyMask);         // prefill: once per user
    const longer = attention.appendToCache(block, fresh);              // a new block; `block` is unchanged
    const query = tf.slice(events, [0, historyLength + newEvents - 1, 0], [1, 1, width]);
    const out = attention.attendCached(query, longer);                 // decode: never re-projects the history
    const last = tf.slice(full, [0, historyLength + newEvents - 1, 0], [1, 1, width]);
    const maxAbsDiff = tf.max(tf.abs(tf.sub(out, last))).dataSync()[0];
    results.push({ attention: name, bytesPerToken: block.bytesPerToken('fp32'), tokens: historyLength + newEvents, maxAbsDiff });
    block.dispose();
    longer.dispose();
    tf.dispose([full, query, out, last]);
  }
  tf.dispose([events, history, historyMask, fresh]);
  return results;
}

if (require.main === module) {
  main().then((results) => {
    for (const r of results) {
      console.log(`${r.attention.padEnd(12)} ${r.bytesPerToken} bytes per token (fp32), ${r.tokens} tokens cached, cached vs full forward: max |diff| ${r.maxAbsDiff.toExponential(1)}`);
    }
  }).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
