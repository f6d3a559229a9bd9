// Conversion of a trained zoo model to CollectiveKV (swapAttention: k-means pools over its own
// K/V, routers from the centroids, a linear user part): the path for models already trained with
// MultiHeadAttention. New models train by the recipe instead (docs/recipe.md).
import * as tfl from '@tensorflow/tfjs-layers';
import {
  GateMode, LayerConversionReport, LeaveOneOutSplit, SwapRouterKind, copyWeightsByName, routerFromFlatOptions,
  swapAttention,
} from '../../internal';
import type { CollectiveOptions } from './blocks';
import { ZooModel, buildZooModel } from './nextItem';
import { conversionSample } from './nextItemTraining';
import type { SasrecLoss } from './sasrecTraining';

export interface ConversionOptions {
  poolSize: number;
  userDim: number;
  /** Users in the conversion sample (more when their histories hold too few tokens for the pool). */
  sampleUsers: number;
  seed: number;
  gate?: GateMode;
  /** Router of the converted layers (see swapAttention). Default 'dense'. */
  router?: SwapRouterKind;
  /** Balance-loss weight of the converted layers (for the fine-tune); see swapAttention. */
  balanceWeight?: number;
  /** VQ loss weight of a converted nearest-product router; see swapAttention. */
  quantizationWeight?: number;
}

/** The router options of the conversion, flat, as swapAttention takes them. */
function routerOptions(o: ConversionOptions) {
  return { router: o.router, gate: o.gate, balanceWeight: o.balanceWeight, quantizationWeight: o.quantizationWeight };
}

/** The converted layers' CollectiveKV options (what the caller's model builder needs). */
export function convertedCollective(o: ConversionOptions): CollectiveOptions {
  return { poolSize: o.poolSize, userDim: o.userDim, userActivation: 'linear', router: routerFromFlatOptions(routerOptions(o)) };
}

/**
 * swapAttention on a trained model whose input is padded item ids [B, maxLength], over the
 * training prefixes of seeded users. Returns the converted LayersModel (the caller copies its
 * weights into a model of its own builder, then disposes it).
 */
export function convertTrainedModel(model: tfl.LayersModel, maxLength: number, split: LeaveOneOutSplit,
  o: ConversionOptions): { model: tfl.LayersModel; layers: LayerConversionReport[] } {
  // k-means needs a valid token per pool row at least, and swapAttention takes up to 8 per row.
  const sample = conversionSample(split, o.sampleUsers, maxLength, o.seed, 8 * o.poolSize);
  try {
    return swapAttention(model, { sample, poolSize: o.poolSize, userDim: o.userDim, userActivation: 'linear', ...routerOptions(o), seed: o.seed });
  } finally {
    sample.dispose();
  }
}

/** A trained mha zoo model converted to a CollectiveKV zoo model of the same options (the caller disposes both). */
export function convertZooModel(base: ZooModel, split: LeaveOneOutSplit, loss: SasrecLoss,
  o: ConversionOptions): { converted: ZooModel; layers: LayerConversionReport[] } {
  const { model, layers } = convertTrainedModel(base.model, base.options.maxLength ?? 50, split, o);
  try {
    const converted = buildZooModel(base.name, { ...base.options, attention: 'collectivekv', collective: convertedCollective(o) }, loss);
    copyWeightsByName(model, converted.model);
    return { converted, layers };
  } finally {
    model.dispose();
  }
}

/** bench convert's fine-tune learning rate as a share of the baseline's. */
export const DEFAULT_FINE_TUNE_RATE_SCALE = 0.25;
