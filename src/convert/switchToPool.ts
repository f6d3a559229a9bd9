// The recipe's switch (docs/recipe.md): a CollectiveKVAttention trained in its 'full' phase becomes
// 'pooled', its pool the k-means centroids of the K/V columns its own warm-up projection produces
// on a sample, its router the nearest-centroid rule of that projection; the user part is kept.
import * as tf from '@tensorflow/tfjs-core';
import { seededRandom } from '../data/random';
import { ArgumentError } from '../../ops/util/validate';
import { CollectiveKVAttention } from '../../layers/CollectiveKVAttention';
import type { RecordedKVSources } from '../../layers/KVSourceRecorder';
import { sampleRows } from '../analysis/capture';
import { EMPTY_POOL, LayerConversionReport, SideConversionReport, initializeCollectivePart } from './swapAttention';

export interface SwitchToPoolOptions {
  /** Seed of the token sample and k-means++. Default 1. */
  seed?: number;
  /** Valid tokens per layer fed to k-means (a uniform sample of those recorded). Default max(8192, 8 * poolSize). */
  maxTokens?: number;
  /** Lloyd iterations at most. Default 25. */
  kmeansIterations?: number;
  /** See SwapAttentionOptions.gateLogit. Default 3. */
  gateLogit?: number;
}

/** Rows recorded per layer, as a multiple of the tokens k-means takes (the sample is drawn from them). */
const RECORD_FACTOR = 4;

/**
 * Switches every layer of `layers` in the 'full' phase to 'pooled' (the others are left as they
 * are): records what reaches each while `runSample` runs the caller's sample through the model in
 * inference mode, then builds each shared side's pool and router from the recorded K/V. Returns
 * one report per switched layer. A sample with fewer valid tokens than poolSize fails, naming the
 * layer, and leaves every layer in its phase.
 */
export function switchToPool(layers: readonly CollectiveKVAttention[], runSample: () => void, options: SwitchToPoolOptions = {}): LayerConversionReport[] {
  const targets = layers.filter((l) => l.kvPhase === 'full');
  if (targets.length === 0) return [];
  const o = resolve(options);
  const recorded = record(targets, runSample, o);
  for (const [layer, rows] of recorded) {
    if (rows.count < layer.poolSize) {
      throw new ArgumentError('switchToPool', 'runSample', `a sample with at least poolSize = ${layer.poolSize} valid tokens reaching layer '${layer.name}'`,
        `${rows.count} tokens`);
    }
  }
  return targets.map((layer) => switchLayer(layer, recorded.get(layer) as RecordedKVSources, o));
}

type Resolved = Required<Omit<SwitchToPoolOptions, 'maxTokens'>> & { maxTokensOf: (layer: CollectiveKVAttention) => number };

function resolve(options: SwitchToPoolOptions): Resolved {
  const { seed = 1, kmeansIterations = 25, gateLogit = 3, maxTokens } = options;
  const positive = (key: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new ArgumentError('switchToPool', `options.${key}`, 'a positive integer', String(v));
  };
  positive('kmeansIterations', kmeansIterations);
  if (maxTokens != null) positive('maxTokens', maxTokens);
  if (!Number.isFinite(seed)) throw new ArgumentError('switchToPool', 'options.seed', 'a finite number', String(seed));
  if (!Number.isFinite(gateLogit)) throw new ArgumentError('switchToPool', 'options.gateLogit', 'a finite number', String(gateLogit));
  return { seed, kmeansIterations, gateLogit, maxTokensOf: (layer) => maxTokens ?? Math.max(8192, 8 * layer.poolSize) };
}

function record(layers: readonly CollectiveKVAttention[], runSample: () => void, o: Resolved): Map<CollectiveKVAttention, RecordedKVSources> {
  const out = new Map<CollectiveKVAttention, RecordedKVSources>();
  try {
    for (const layer of layers) layer.startRecording(RECORD_FACTOR * o.maxTokensOf(layer));
    runSample();
  } finally {
    for (const layer of layers) {
      const rows = layer.stopRecording();
      out.set(layer, rows ?? { rows: new Float32Array(0), count: 0, width: 0 });
    }
  }
  return out;
}

function switchLayer(layer: CollectiveKVAttention, recorded: RecordedKVSources, o: Resolved): LayerConversionReport {
  const pick = sampleRows(Int32Array.from({ length: recorded.count }, (_, i) => i), o.maxTokensOf(layer), seededRandom(o.seed));
  const source = tf.tidy(() => tf.gather(tf.tensor2d(recorded.rows, [recorded.count, recorded.width]), tf.tensor1d(pick, 'int32')));
  const kvSource = tf.reshape(source, [1, pick.length, recorded.width]);
  const all = Int32Array.from(pick, (_, i) => i);
  const init = { poolSize: layer.poolSize, router: layer.router.kind, seed: o.seed, kmeansIterations: o.kmeansIterations, gateLogit: o.gateLogit, maxTokens: pick.length };
  try {
    const side = (s: 'key' | 'value'): SideConversionReport | null => {
      if (!layer.isShared(s)) return null;
      const warmup = layer.warmupProjection(s);
      if (warmup == null) return { tokens: all.length, poolWidth: 0, ...EMPTY_POOL };
      const points = tf.tidy(() => {
        const kc = tf.matMul(source, warmup.kernel as tf.Tensor2D);
        return warmup.bias == null ? kc : tf.add(kc, warmup.bias);
      });
      const values = Float64Array.from(points.dataSync());
      points.dispose();
      return initializeCollectivePart(layer, s, warmup, values, kvSource, all, init);
    };
    const report = { layer: layer.name, userDim: layer.userDim, key: side('key'), value: side('value') };
    layer.setKVPhase('pooled');
    return report;
  } finally {
    tf.dispose([source, kvSource]);
  }
}
