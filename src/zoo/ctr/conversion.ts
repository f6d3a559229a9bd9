// A trained CTR model with MultiHeadAttention -> the same model with CollectiveKVAttention,
// initialized from its own K/V (swapAttention's per-layer step: k-means pools, routers from the
// centroids, the trained projection's tail as the user part). The zoo's CTR models have a custom
// forward, so the K/V sources are recorded from a forward over training samples rather than probed
// from a LayersModel graph.
import * as tf from '@tensorflow/tfjs-core';
import {
  CollectiveKVAttention, CtrEventLog, CtrSample, LayerConversionReport, MultiHeadAttention, convertAttentionLayer, ctrBatches,
  disposeSites, recordAttentionInputs,
} from '../../internal';
import { CtrModelBase, disposeInputs, toInputs } from './common';

export interface CtrConversionOptions {
  /** Training samples whose forward gives the K/V sources k-means clusters. Default 2048. */
  sampleSize?: number;
  /** Seed of the sample, the token sampling and k-means++. Default 1. */
  seed?: number;
  /** Forward batch size over the sample. Default 256. */
  batchSize?: number;
}

/**
 * Initializes `target` (built by the same builder and options as `trained` but with attention
 * 'collectivekv' and a linear userActivation) from the trained mha model: every weight is copied
 * but the CollectiveKVAttention layers', which convertAttentionLayer initializes from what reached
 * the trained layer at the same place on a seeded sample of `samples`. Returns one report per
 * converted layer. `trained` is unchanged.
 */
export function convertCtrModel(trained: CtrModelBase, target: CtrModelBase, data: CtrEventLog, samples: readonly CtrSample[],
  options: CtrConversionOptions = {}): LayerConversionReport[] {
  const { sampleSize = 2048, seed = 1, batchSize = 256 } = options;
  if (trained.name !== target.name) throw new Error(`convertCtrModel: target must be a ${trained.name} model (the trained one's builder), received ${target.name}`);
  if (!Number.isInteger(sampleSize) || sampleSize < 1) throw new Error(`convertCtrModel: sampleSize must be a positive integer, received ${sampleSize}`);
  if (samples.length === 0) throw new Error('convertCtrModel: samples must not be empty');
  const pairs = attentionPairs(trained, target);
  target.copyWeightsFrom(trained);
  if (pairs.length === 0) return [];
  // One seeded shuffle of the samples; its first sampleSize make the k-means sample.
  const batches = ctrBatches(data, samples, batchSize, { historyLength: trained.historyLength, seed, epoch: 0 });
  const sites = recordAttentionInputs(pairs.map((p) => p.trained), () => {
    let seen = 0;
    for (const batch of batches) {
      if (seen >= sampleSize) break;
      const inputs = toInputs(batch);
      trained.prepare(inputs);
      tf.dispose(trained.logits(inputs, false));
      disposeInputs(inputs);
      seen += batch.batchSize;
    }
  });
  try {
    return pairs.map((p, i) => convertAttentionLayer(p.trained, p.target, sites[i], { seed }));
  } finally {
    disposeSites(sites);
  }
}

/** The (MultiHeadAttention, CollectiveKVAttention) layers at the same place of the two models. */
function attentionPairs(trained: CtrModelBase, target: CtrModelBase): { trained: MultiHeadAttention; target: CollectiveKVAttention }[] {
  const [from, to] = [trained.attentionLayers(), target.attentionLayers()];
  if (from.length !== to.length) throw new Error(`convertCtrModel: the models have ${from.length} and ${to.length} attention layers (same builder and options expected)`);
  return from.flatMap((layer, i) => {
    if (!(layer instanceof MultiHeadAttention)) throw new Error(`convertCtrModel: layer '${layer.name}' of the trained model must be a MultiHeadAttention, received a ${layer.getClassName()}`);
    const next = to[i];
    return next instanceof CollectiveKVAttention ? [{ trained: layer, target: next }] : [];
  });
}
