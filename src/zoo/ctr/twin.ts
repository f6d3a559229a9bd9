// TWIN (Chang et al., 2023): the retrieval stage scores the whole long history with the same
// target-attention scoring as the exact stage (the exact layer's own query and key projections),
// keeps the top-k (100 by default), and the exact stage attends over them.
import * as tf from '@tensorflow/tfjs-core';
import { dim, gatherRows } from '../../internal';
import { AttentionLayer, CtrInputs, CtrModelOptions, resolveCtrModelOptions } from './common';
import { TopK, targetAttentionScores, topKByScore } from './retrieval';
import { TwoStageModel } from './twoStage';

/** Rows scored per chunk in retrieval: keys of 1000 events at width 256 are 1 MB per row. */
const RETRIEVAL_CHUNK = 32;

export class Twin extends TwoStageModel {
  constructor(options: CtrModelOptions) {
    super('twin', resolveCtrModelOptions('Twin', options, 100));
    // Retrieval reads the exact layer's projections, so that layer must exist before the first forward.
    const d = this.options.embeddingDim;
    // (apply, not build: tfjs only counts a layer as used, and so disposable, once it was applied).
    tf.tidy(() => { this.exact.layer.apply([tf.zeros([1, 1, d]), tf.zeros([1, 1, d])]); });
    this.buildLayers();
  }

  protected retrieve(inputs: CtrInputs): TopK {
    const scores = tf.tidy(() => {
      const b = dim(inputs.items, 0);
      const query = projectQuery(this.exact.layer, this.embeddings.item(inputs.candidates));
      const parts: tf.Tensor[] = [];
      for (let start = 0; start < b; start += RETRIEVAL_CHUNK) {
        const size = Math.min(RETRIEVAL_CHUNK, b - start);
        parts.push(tf.tidy(() => {
          const rows = <T extends tf.Tensor>(t: T) => tf.slice(t, [start], [size]) as T;
          const chunk = { ...inputs, items: rows(inputs.items), positions: rows(inputs.positions), timeGaps: rows(inputs.timeGaps),
            ratings: rows(inputs.ratings), eventLabels: rows(inputs.eventLabels), mask: rows(inputs.mask) };
          const keys = projectKeys(this.exact.layer, this.embeddings.events(chunk), chunk.mask);
          return targetAttentionScores(rows(query), keys, this.exact.layer.numHeads);
        }));
      }
      return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
    });
    try {
      return topKByScore(scores, inputs.mask, this.options.topK);
    } finally {
      scores.dispose();
    }
  }
}

/** The layer's weight whose name ends with `suffix` (its current value). */
function weight(layer: AttentionLayer, suffix: string): tf.Tensor | null {
  const w = layer.weights.find((v) => v.originalName.endsWith(suffix) || v.name.endsWith(suffix));
  return w == null ? null : w.read();
}

/** candidate [B, de] through the layer's query projection -> [B, H*dk]. */
export function projectQuery(layer: AttentionLayer, candidate: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const kernel = weight(layer, 'query_kernel');
    if (kernel == null) throw new Error(`projectQuery: layer ${layer.name} has no query_kernel (is it built?)`);
    const bias = weight(layer, 'query_bias');
    const q = tf.matMul(candidate as tf.Tensor2D, kernel as tf.Tensor2D);
    return (bias == null ? q : tf.add(q, bias)) as tf.Tensor2D;
  });
}

/**
 * The layer's keys for events [B, T, de], read through its public cache API: full keys for
 * MultiHeadAttention, pool rows joined with the user part for CollectiveKVAttention.
 */
export function projectKeys(layer: AttentionLayer, events: tf.Tensor, mask: tf.Tensor): tf.Tensor3D {
  const block = layer.computeCache(events, mask);
  try {
    return tf.tidy(() => {
      if (block.keys.kind === 'full') return tf.clone(block.keys.values) as tf.Tensor3D;
      const pool = 'poolTable' in layer ? layer.poolTable('key') : null;
      if (pool == null) throw new Error(`projectKeys: layer ${layer.name} has pooled keys but no pool`);
      return tf.concat([gatherRows(pool, block.keys.index), block.keys.user], -1) as tf.Tensor3D;
    });
  } finally {
    block.dispose();
  }
}

export function buildTwin(options: CtrModelOptions): Twin {
  return new Twin(options);
}
