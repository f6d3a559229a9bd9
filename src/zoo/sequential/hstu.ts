// HSTU (Zhai et al., 2024, "Actions Speak Louder than Words") for next-item prediction on
// collectivekv's attention layers, with `attention: 'mha' | 'collectivekv'` as the single swap.
// Per block (pre-norm, residual):  h = LN(x);  A = PointwiseAttention(h) (the layers' 'hstu'
// attention: SiLU(q.k / sqrt(d) + relative position bias) / number of valid keys, causal);
// U = SiLU(h Wu);  x += Wo (LN(A) * U).
//
// Differences from the paper, on purpose:
// - Q/K/V are the attention layers' projections (linear for Q; for CollectiveKV the user part of
//   K/V has its SiLU, the pool part is routed), not SiLU(f1(x)) split four ways: the layer swap must
//   be the only change, so the K/V path is the layers' own.
// - Relative position bias: one learned scalar per head and distance (query slot - key slot, up
//   to the window), the layers' `relativePositions`; HSTU's log-bucketed positions and time
//   buckets are not used (our data have no timestamps in the next-item protocol). The bias depends
//   on slots only, so the compressed cache is unchanged; cached decode with the bias reads the
//   pooled K/V through gathered rows instead of the fused kernel.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { KVCacheBlock, StreamDropout, claimClasses, dim } from '../../internal';
import {
  AttentionLayer, LayerNorm, PointwiseDense, SasrecOptions, ResolvedSasrecOptions, makeAttention,
  SequenceInputParts, resolveSasrecOptions, seedStream, sequenceInputs,
} from './blocks';
import { StepHost } from './sasrecTraining';

export type HstuOptions = SasrecOptions;
export type ResolvedHstuOptions = ResolvedSasrecOptions;


/** [a, g] -> a * SiLU(g): HSTU's gating of the normalized attention output by U = SiLU(x Wu). */
export class SiluGate extends tfl.layers.Layer {
  static className = 'HstuSiluGate';

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [a, g] = inputs as tf.Tensor[];
    return tf.tidy(() => tf.mul(a, tf.mul(g, tf.sigmoid(g))));
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (inputShape as tfl.Shape[])[0];
  }
}
tf.serialization.registerClass(SiluGate);
claimClasses([SiluGate]);

interface HstuBlock {
  norm: tfl.layers.Layer;
  attention: AttentionLayer;
  attentionNorm: tfl.layers.Layer;
  gateProjection: tfl.layers.Layer;
  gate: tfl.layers.Layer;
  output: tfl.layers.Layer;
  dropout: tfl.layers.Layer;
  residual: tfl.layers.Layer;
}

export interface HstuParts extends SequenceInputParts {
  blocks: HstuBlock[];
  finalNorm: tfl.layers.Layer;
}

export interface Hstu {
  /** ids [B, maxLength] int32 (0 = padding, left-padded) -> hidden [B, maxLength, hiddenDim]. */
  model: tfl.LayersModel;
  /** The model's layers, shared by training, the full forward and the cached decode. @internal */
  parts: HstuParts;
  options: ResolvedHstuOptions;
}

export function buildHstu(options: HstuOptions): Hstu {
  const o = resolveSasrecOptions(options);
  const parts = makeParts(o);
  const ids = tfl.input({ shape: [o.maxLength], dtype: 'int32', name: 'item_ids' });
  const model = tfl.model({ inputs: ids, outputs: hstuForward(parts, ids, {}), name: `hstu_${o.attention}` });
  return { model, parts, options: o };
}

function makeParts(o: ResolvedHstuOptions): HstuParts {
  const d = o.hiddenDim;
  const { nextSeed, kernel } = seedStream(o.seed);
  const blocks: HstuBlock[] = [];
  for (let b = 0; b < o.numBlocks; b++) {
    blocks.push({
      norm: new LayerNorm({ width: d, name: `block${b}_norm` }),
      attention: makeAttention(o, b, kernel(), { causal: true, attention: 'hstu', relativePositions: o.maxLength }),
      attentionNorm: new LayerNorm({ width: d, name: `block${b}_attention_norm` }),
      gateProjection: new PointwiseDense({ units: d, kernelInitializer: kernel(), name: `block${b}_gate_projection` }),
      gate: new SiluGate({ name: `block${b}_gate` }),
      output: new PointwiseDense({ units: d, kernelInitializer: kernel(), name: `block${b}_output` }),
      dropout: new StreamDropout({ rate: o.dropout, seed: nextSeed(), name: `block${b}_dropout` }),
      residual: tfl.layers.add({ name: `block${b}_residual` }),
    });
  }
  return {
    ...sequenceInputs(o, nextSeed, o.numItems + 1),
    blocks,
    finalNorm: new LayerNorm({ width: d, name: 'final_norm' }),
  };
}


type Flow = tf.Tensor | tfl.SymbolicTensor;

function call<X extends Flow>(layer: tfl.layers.Layer, inputs: X | X[], kwargs: Record<string, unknown> = {}): X {
  return layer.apply(inputs as tf.Tensor | tf.Tensor[], kwargs) as X;
}

function embed<X extends Flow>(parts: HstuParts, ids: X, kwargs: { training?: boolean }, start?: number): X {
  const placed = call(parts.positions, call(parts.itemEmbedding, ids), start == null ? {} : { start });
  return call(parts.embeddingDropout, placed, { ...kwargs });
}

/** Everything of a block after its attention output `a`: gate, output projection, residual. */
function blockTail<X extends Flow>(block: HstuBlock, x: X, h: X, a: X, kwargs: { training?: boolean }): X {
  const gated = call(block.gate, [call(block.attentionNorm, a), call(block.gateProjection, h)]);
  return call(block.residual, [x, call(block.dropout, call(block.output, gated), { ...kwargs })]);
}

/** The whole model, symbolic (functional model) or concrete (training forward with `training`). */
export function hstuForward<X extends Flow>(parts: HstuParts, ids: X, kwargs: { training?: boolean }): X {
  const mask = call(parts.paddingMask, ids);
  let x = embed(parts, ids, kwargs);
  for (const block of parts.blocks) {
    const h = call(block.norm, x);
    x = blockTail(block, x, h, call(block.attention, [h, mask], { ...kwargs }), kwargs);
  }
  return call(parts.finalNorm, x);
}

export function hstuHost(m: Hstu): StepHost {
  return { model: m.model, numItems: m.options.numItems, hidden: (ids, training) => hstuForward(m.parts, ids, { training }),
    table: () => m.parts.itemEmbedding.getWeights()[0] };
}

function scoreRows(m: Hstu, hidden: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.matMul(hidden, tf.transpose(m.parts.itemEmbedding.getWeights()[0] as tf.Tensor2D)));
}

/** Next-item scores [B, numItems + 1] from the full forward (last position). */
export function hstuScoreNext(m: Hstu, ids: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const hidden = m.model.apply(tf.cast(ids, 'int32')) as tf.Tensor;
    const [b, t, d] = [dim(hidden, 0), dim(hidden, 1), dim(hidden, 2)];
    return scoreRows(m, tf.reshape(tf.slice(hidden, [0, t - 1, 0], [b, 1, d]), [b, d]) as tf.Tensor2D);
  });
}

// ---------------------------------------------------------------- cached decode

export interface HstuCache {
  blocks: KVCacheBlock[];
  /** Window slots already filled. */
  length: number;
}

export function disposeHstuCache(cache: HstuCache): void {
  for (const block of cache.blocks) block.dispose();
}

/** Prefill: prefix ids [B, T] at window slots 0..T-1; caches each block's K/V source h = LN(x). */
export function hstuPrefill(m: Hstu, prefix: tf.Tensor2D): HstuCache {
  const blocks: KVCacheBlock[] = [];
  tf.tidy(() => {
    const ids: tf.Tensor = tf.cast(prefix, 'int32');
    const mask = call(m.parts.paddingMask, ids);
    let x = embed(m.parts, ids, {}, 0);
    for (const block of m.parts.blocks) {
      const h = call(block.norm, x);
      const cache = block.attention.computeCache(h, mask);
      cache.tensors().forEach((t) => tf.keep(t));
      blocks.push(cache);
      x = blockTail(block, x, h, block.attention.attendCached(h, cache, { causal: true }), {});
    }
  });
  return { blocks, length: dim(prefix, 1) };
}

/** One decode step for next ids [B] at the next slot; disposes `cache`, returns hidden [B, d] and the grown cache. */
export function hstuDecodeStep(m: Hstu, cache: HstuCache, nextIds: tf.Tensor): { hidden: tf.Tensor2D; cache: HstuCache } {
  const batch = dim(nextIds, 0);
  const blocks: KVCacheBlock[] = [];
  const hidden = tf.tidy(() => {
    const ids = tf.reshape(tf.cast(nextIds, 'int32'), [batch, 1]);
    const mask = call(m.parts.paddingMask, ids);
    let x = embed(m.parts, ids, {}, cache.length);
    m.parts.blocks.forEach((block, b) => {
      const h = call(block.norm, x);
      const grown = block.attention.appendToCache(cache.blocks[b], h, mask);
      grown.tensors().forEach((t) => tf.keep(t));
      blocks.push(grown);
      x = blockTail(block, x, h, block.attention.attendCached(h, grown, { causal: true }), {});
    });
    const out = call(m.parts.finalNorm, x);
    return tf.reshape(out, [batch, m.options.hiddenDim]) as tf.Tensor2D;
  });
  disposeHstuCache(cache);
  return { hidden, cache: { blocks, length: cache.length + 1 } };
}

/** Next-item scores through the cache: prefill slots 0..L-2, decode slot L-1. Equals hstuScoreNext up to rounding. */
export function hstuScoreNextCached(m: Hstu, ids: tf.Tensor2D): tf.Tensor2D {
  const L = m.options.maxLength;
  const b = dim(ids, 0);
  const prefix = tf.slice(ids, [0, 0], [b, L - 1]) as tf.Tensor2D;
  const last = tf.tidy(() => tf.reshape(tf.slice(ids, [0, L - 1], [b, 1]), [b]));
  const step = hstuDecodeStep(m, hstuPrefill(m, prefix), last);
  const scores = scoreRows(m, step.hidden);
  tf.dispose([prefix, last, step.hidden]);
  disposeHstuCache(step.cache);
  return scores;
}
