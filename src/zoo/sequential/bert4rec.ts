// BERT4Rec (Sun et al., 2019) on collectivekv's attention layers: bidirectional self-attention
// trained as a cloze task (random items replaced by a [mask] token, predicted from both sides).
// The next item is scored by appending [mask] after the history and reading its position.
// `attention: 'mha' | 'collectivekv'` is the single layer swap. No cached decode: with
// bidirectional attention a new token changes every earlier position's output, so a prefix cache
// does not give the next position's result (the cache would only save the K/V projections).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { SequenceBatch, StreamDropout, batchRows, dim, epochSeed, padLeft, positionWeights, seededRandom } from '../../internal';
import {
  AttentionLayer, LayerNorm, PointwiseDense, SasrecOptions, makeAttention,
  resolveSasrecOptions, ResolvedSasrecOptions, SequenceInputParts, seedStream, sequenceInputs,
} from './blocks';
import { StepHost } from './sasrecTraining';
import { LENGTH_BUCKETS } from './nextItemTraining';

export interface Bert4recOptions extends SasrecOptions {
  /** Share of items replaced by [mask] in training. Default 0.2. */
  maskProbability?: number;
  /**
   * Share of training rows that mask only their last item (the exact shape of the next-item
   * query); BERT4Rec implementations commonly add such rows. Default 0.1.
   */
  lastItemRate?: number;
}

export type ResolvedBert4recOptions = ResolvedSasrecOptions & { maskProbability: number; lastItemRate: number };


interface Bert4recBlock {
  attention: AttentionLayer;
  attentionDropout: tfl.layers.Layer;
  residual1: tfl.layers.Layer;
  norm1: tfl.layers.Layer;
  ffnIn: tfl.layers.Layer;
  ffnOut: tfl.layers.Layer;
  ffnDropout: tfl.layers.Layer;
  residual2: tfl.layers.Layer;
  norm2: tfl.layers.Layer;
}

export interface Bert4recParts extends SequenceInputParts {
  embeddingNorm: tfl.layers.Layer;
  embeddingDropout: tfl.layers.Layer;
  blocks: Bert4recBlock[];
}

export interface Bert4rec {
  /** ids [B, maxLength] int32 (0 = padding, numItems + 1 = [mask]) -> hidden [B, maxLength, hiddenDim]. */
  model: tfl.LayersModel;
  /** The model's layers, shared by training, the full forward and the cached decode. @internal */
  parts: Bert4recParts;
  options: ResolvedBert4recOptions;
  /** The [mask] token id: numItems + 1. */
  maskId: number;
}

export function resolveBert4recOptions(options: Bert4recOptions): ResolvedBert4recOptions {
  const o = { ...resolveSasrecOptions(options), maskProbability: options.maskProbability ?? 0.2, lastItemRate: options.lastItemRate ?? 0.1 };
  if (!(o.maskProbability > 0 && o.maskProbability < 1)) throw new Error(`buildBert4rec: maskProbability must be in (0, 1), received ${o.maskProbability}`);
  if (!(o.lastItemRate >= 0 && o.lastItemRate <= 1)) throw new Error(`buildBert4rec: lastItemRate must be in [0, 1], received ${o.lastItemRate}`);
  return o;
}

/** Builds BERT4Rec: item + position embeddings, LayerNorm, then post-LN bidirectional transformer blocks. */
export function buildBert4rec(options: Bert4recOptions): Bert4rec {
  const o = resolveBert4recOptions(options);
  const parts = makeParts(o);
  const ids = tfl.input({ shape: [o.maxLength], dtype: 'int32', name: 'item_ids' });
  const model = tfl.model({ inputs: ids, outputs: bert4recForward(parts, ids, {}), name: `bert4rec_${o.attention}` });
  return { model, parts, options: o, maskId: o.numItems + 1 };
}

function makeParts(o: ResolvedBert4recOptions): Bert4recParts {
  const d = o.hiddenDim;
  const { nextSeed, kernel } = seedStream(o.seed);
  const blocks: Bert4recBlock[] = [];
  for (let b = 0; b < o.numBlocks; b++) {
    blocks.push({
      attention: makeAttention(o, b, kernel(), { causal: false }),
      attentionDropout: new StreamDropout({ rate: o.dropout, seed: nextSeed(), name: `block${b}_attention_dropout` }),
      residual1: tfl.layers.add({ name: `block${b}_residual1` }),
      norm1: new LayerNorm({ width: d, name: `block${b}_norm1` }),
      ffnIn: new PointwiseDense({ units: 4 * d, activation: 'relu', kernelInitializer: kernel(), name: `block${b}_ffn_in` }),
      ffnOut: new PointwiseDense({ units: d, kernelInitializer: kernel(), name: `block${b}_ffn_out` }),
      ffnDropout: new StreamDropout({ rate: o.dropout, seed: nextSeed(), name: `block${b}_ffn_dropout` }),
      residual2: tfl.layers.add({ name: `block${b}_residual2` }),
      norm2: new LayerNorm({ width: d, name: `block${b}_norm2` }),
    });
  }
  return {
    // numItems + 2 rows: padding 0, items 1..numItems, [mask] numItems + 1.
    ...sequenceInputs(o, nextSeed, o.numItems + 2),
    embeddingNorm: new LayerNorm({ width: d, name: 'embedding_norm' }),
    blocks,
  };
}


type Flow = tf.Tensor | tfl.SymbolicTensor;

function call<X extends Flow>(layer: tfl.layers.Layer, inputs: X | X[], kwargs: Record<string, unknown> = {}): X {
  return layer.apply(inputs as tf.Tensor | tf.Tensor[], kwargs) as X;
}

/** The whole model, symbolic (functional model) or concrete (training forward with `training`). */
export function bert4recForward<X extends Flow>(parts: Bert4recParts, ids: X, kwargs: { training?: boolean }): X {
  const mask = call(parts.paddingMask, ids);
  const embedded = call(parts.positions, call(parts.itemEmbedding, ids));
  let x = call(parts.embeddingDropout, call(parts.embeddingNorm, embedded), { ...kwargs });
  for (const block of parts.blocks) {
    // [x, mask]: self-attention form (see the layers' note on feeding one tensor twice).
    const attended = call(block.attentionDropout, call(block.attention, [x, mask], { ...kwargs }), { ...kwargs });
    const h = call(block.norm1, call(block.residual1, [x, attended]));
    const f = call(block.ffnDropout, call(block.ffnOut, call(block.ffnIn, h)), { ...kwargs });
    x = call(block.norm2, call(block.residual2, [h, f]));
  }
  return x;
}

/** Rows 0..numItems of the item table [numItems + 1, d]: the scored items (not [mask]). */
export function bert4recTable(m: Bert4rec): tf.Tensor {
  return tf.slice(m.parts.itemEmbedding.getWeights()[0], [0, 0], [m.options.numItems + 1, m.options.hiddenDim]);
}

/** What the shared training step needs. */
export function bert4recHost(m: Bert4rec): StepHost {
  return { model: m.model, numItems: m.options.numItems, hidden: (ids, training) => bert4recForward(m.parts, ids, { training }),
    table: () => bert4recTable(m) };
}

/**
 * Next-item scores [B, numItems + 1] for left-padded histories [B, maxLength]: the window moves one
 * slot left (dropping the oldest item when full) and [mask] takes the last slot.
 */
export function bert4recScoreNext(m: Bert4rec, ids: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, L] = [dim(ids, 0), dim(ids, 1)];
    const shifted = tf.concat([tf.slice(tf.cast(ids, 'int32'), [0, 1], [b, L - 1]), tf.fill([b, 1], m.maskId, 'int32')], 1);
    const hidden = m.model.apply(shifted) as tf.Tensor;
    const last = tf.reshape(tf.slice(hidden, [0, L - 1, 0], [b, 1, m.options.hiddenDim]), [b, m.options.hiddenDim]) as tf.Tensor2D;
    return tf.matMul(last, tf.transpose(bert4recTable(m) as tf.Tensor2D));
  });
}

/** epochSeed stream of the cloze masks. */
const CLOZE_STREAM = 1;

/**
 * Cloze batches of one epoch (seeded by seed and epoch): each training sequence's last maxLength
 * items; every item is masked with probability maskProbability (at least one per row), or, for a
 * share lastItemRate of rows, only the last item. Targets hold the original item at masked slots, 0 elsewhere.
 */
export function* clozeBatches(m: Bert4rec, train: readonly (readonly number[])[], batchSize: number, seed: number, epoch: number): Generator<SequenceBatch> {
  const L = m.options.maxLength;
  // Its own stream: batchRows draws the batch order from stream 0 of the same seed and epoch.
  const rand = seededRandom(epochSeed(seed, epoch, CLOZE_STREAM));
  const users = train.map((_, i) => i).filter((i) => train[i].length > 0);
  const lengths = users.map((u) => Math.min(train[u].length, L));
  const groups = batchRows(lengths, batchSize, seed, epoch, LENGTH_BUCKETS);
  const weights = positionWeights(groups, lengths);
  for (const [b, rows] of groups.entries()) {
    // The window is the longest row's: only left padding goes, so every item keeps its slot from the end.
    const width = Math.max(...rows.map((r) => lengths[r]));
    const inputs = new Int32Array(rows.length * width);
    const targets = new Int32Array(rows.length * width);
    rows.forEach((r, i) => maskRow(m, padLeft(train[users[r]], width), inputs.subarray(i * width, (i + 1) * width),
      targets.subarray(i * width, (i + 1) * width), rand));
    // Masked slots grow with the row lengths: weighting by length keeps each slot's weight in an epoch even.
    yield { inputs, targets, batchSize: rows.length, maxLength: width, lossWeight: weights[b] };
  }
}

function maskRow(m: Bert4rec, row: Int32Array, inputs: Int32Array, targets: Int32Array, rand: () => number): void {
  inputs.set(row);
  const L = row.length;
  const maskAt = (t: number) => { targets[t] = row[t]; inputs[t] = m.maskId; };
  if (rand() < m.options.lastItemRate) {
    maskAt(L - 1);
    return;
  }
  let masked = 0;
  for (let t = 0; t < L; t++) {
    if (row[t] !== 0 && rand() < m.options.maskProbability) { maskAt(t); masked += 1; }
  }
  if (masked === 0) maskAt(L - 1);
}
