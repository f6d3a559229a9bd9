// Conversion of a trained zoo model to CollectiveKV (swapAttention: k-means pools over its own
// K/V, routers from the centroids, a linear user part), and the warm start built on it: train the
// baseline for part of a step budget, convert, fine-tune CollectiveKV for the rest.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  GateMode, LayerConversionReport, LeaveOneOutSplit, SequenceBatch, SwapRouterKind, batchTensor, copyWeightsByName, routerFromFlatOptions,
  swapAttention, sizeOf, trainingBatches, trainingExamples,
} from '../../internal';
import type { CollectiveOptions } from './blocks';
import { ZooModel, buildZooModel } from './nextItem';
import { FitResult, NextItemFitOptions, fitNextItem } from './nextItemTraining';
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

/**
 * Padded training prefixes of seeded users, the conversion sample: `users` of them, or more when
 * that many hold fewer than `minTokens` valid tokens (short histories, as on Beauty), up to all.
 */
export function conversionSample(split: LeaveOneOutSplit, users: number, maxLength: number, seed: number, minTokens: number): tf.Tensor2D {
  const examples = trainingExamples(split.train, maxLength);
  const meanLength = examples.reduce((s, e) => s + (e.length ?? maxLength), 0) / Math.max(1, examples.length);
  const rows = Math.min(examples.length, Math.max(users, Math.ceil(minTokens / Math.max(1, meanLength))));
  const batch = trainingBatches(examples, rows, seed).next().value as SequenceBatch;
  return batchTensor(batch.inputs, batch.batchSize, batch.maxLength);
}

/** The mha run's step at which a warm start with fine-tune share `fraction` forks a run of `steps` steps (1 to steps - 1). */
export function forkStepOf(steps: number, fraction: number): number {
  return Math.max(1, Math.min(steps - 1, Math.round((1 - fraction) * steps)));
}

/** The warm start's fine-tune learning rate as a share of the baseline's (see bench convert). */
export const DEFAULT_FINE_TUNE_RATE_SCALE = 0.25;

export interface WarmStartOptions extends ConversionOptions {
  /** Share of the step budget given to the CollectiveKV fine-tune after the conversion, in (0, 1). */
  fraction: number;
  /** Total optimizer steps: the baseline's part plus the fine-tune. */
  steps: number;
  /** Fine-tune learning rate as a share of the baseline's. Default DEFAULT_FINE_TUNE_RATE_SCALE. */
  fineTuneRateScale?: number;
  /**
   * Scores a model (e.g. test NDCG@10); when given, the mha part and the converted model before its
   * fine-tune are scored too, so a report can tell what the shorter mha training and the
   * conversion each cost.
   */
  evaluate?: (m: ZooModel) => number;
  /**
   * The baseline's own run at a step of it (see RunSnapshots): the warm start converts these
   * weights instead of training an mha model of its own for the first part, so its mha part is
   * exactly the baseline's, and fine-tunes for steps - fork.step steps.
   */
  fork?: WarmStartFork | null;
}

/** A model's weights (getWeights order) at some step of its training run. */
export interface WarmStartFork {
  step: number;
  /** Epochs started by then (the last one maybe partial). */
  epochs: number;
  /** Training seconds by then. */
  seconds: number;
  weights: Float32Array[];
}

/**
 * Copies of a model's weights every `interval` optimizer steps up to `lastStep`, taken from
 * fitNextItem's onStep, for a warm start to fork the baseline's own run once its length is known
 * (early stopping and time bounds decide it). Plain arrays, not tensors: they stay off the backend.
 */
export class RunSnapshots {
  private readonly saved = new Map<number, WarmStartFork>();

  constructor(private readonly weights: () => tf.Tensor[], readonly interval: number, readonly lastStep: number) {
    if (!Number.isInteger(interval) || interval < 1) throw new Error(`RunSnapshots: interval must be a positive integer, received ${interval}`);
  }

  /** For fitNextItem's onStep. */
  readonly onStep = (step: number, seconds: number, epoch: number): void => {
    if (step % this.interval !== 0 || step > this.lastStep) return;
    this.saved.set(step, { step, epochs: epoch, seconds, weights: this.weights().map((w) => w.dataSync().slice() as Float32Array) });
  };

  /** The latest snapshot at or before `step` (null when none is). */
  atOrBefore(step: number): WarmStartFork | null {
    let found: WarmStartFork | null = null;
    for (const snapshot of this.saved.values()) if (snapshot.step <= step && (found == null || snapshot.step > found.step)) found = snapshot;
    return found;
  }
}

/** The mha part of a forked warm start: `base` set to the fork's weights; its fit summary. */
function forkedBaseline(base: ZooModel, fork: WarmStartFork, steps: number): FitResult {
  if (!Number.isInteger(fork.step) || fork.step < 1 || fork.step >= steps) {
    throw new Error(`warmStartCollective: fork.step must be an integer in [1, ${steps - 1}], received ${fork.step}`);
  }
  const shapes = base.model.weights.map((w) => w.shape as number[]);
  if (fork.weights.length !== shapes.length || fork.weights.some((v, i) => v.length !== sizeOf(shapes[i]))) {
    throw new Error(`warmStartCollective: fork.weights must be the ${shapes.length} weights of the mha model, received ${fork.weights.length} arrays of other sizes`);
  }
  const tensors = fork.weights.map((v, i) => tf.tensor(v, shapes[i], 'float32'));
  try {
    base.model.setWeights(tensors);
  } finally {
    tf.dispose(tensors);
  }
  return { epochs: fork.epochs, bestEpoch: fork.epochs, bestValidationNdcg10: NaN, trainSeconds: fork.seconds, history: [], steps: fork.step };
}

export interface WarmStartResult {
  model: ZooModel;
  /** The baseline's part, then the fine-tune. */
  baselineFit: FitResult;
  fineTuneFit: FitResult;
  layers: LayerConversionReport[];
  /** Seconds of the conversion itself. */
  convertSeconds: number;
  /** Whether the mha part is options.fork (the baseline's own run). */
  forked: boolean;
  /** options.evaluate of the mha part and of the converted model before the fine-tune (absent without it). */
  mhaPartScore?: number;
  convertedScore?: number;
}

/**
 * CollectiveKV trained by warm start within a step budget: the mha model of `options` for
 * round((1 - fraction) * steps) steps (or the baseline's own run at options.fork), converted (k-means pools, routers from the centroids), then
 * fine-tuned for the remaining steps at fineTuneRateScale times the learning rate with the balance
 * loss off (unless balanceWeight says otherwise). The returned model is pure CollectiveKV; the
 * caller disposes it.
 */
export function warmStartCollective(build: () => ZooModel, split: LeaveOneOutSplit, loss: SasrecLoss, fit: NextItemFitOptions,
  o: WarmStartOptions, log: (line: string) => void = () => undefined): WarmStartResult {
  if (!(o.fraction > 0 && o.fraction < 1)) throw new Error(`warmStartCollective: fraction must be in (0, 1), received ${o.fraction}`);
  if (!Number.isInteger(o.steps) || o.steps < 2) throw new Error(`warmStartCollective: steps must be an integer >= 2, received ${o.steps}`);
  const baselineSteps = o.fork?.step ?? forkStepOf(o.steps, o.fraction);
  const base = build();
  let converted: ZooModel | null = null;
  try {
    const fineTuneRate = (fit.learningRate ?? 1e-3) * (o.fineTuneRateScale ?? DEFAULT_FINE_TUNE_RATE_SCALE);
    log(`warm start: ${o.fork != null ? `the baseline's run at step ${baselineSteps} of ${o.steps}` : `${baselineSteps} mha steps`}, ` +
      `then convert, then ${o.steps - baselineSteps} CollectiveKV steps at learning rate ${fineTuneRate}`);
    const baselineFit = o.fork != null ? forkedBaseline(base, o.fork, o.steps)
      : fitNextItem(base, split, { ...fit, maxSteps: baselineSteps, label: `${fit.label ?? ''} (mha part)` });
    const mhaPartScore = o.evaluate?.(base);
    const start = performance.now();
    const conversion = convertZooModel(base, split, loss, { balanceWeight: 0, ...o });
    converted = conversion.converted;
    const convertSeconds = (performance.now() - start) / 1000;
    const convertedScore = o.evaluate?.(converted);
    const fineTuneFit = fitNextItem(converted, split, { ...fit, maxSteps: o.steps - (baselineFit.steps ?? baselineSteps),
      learningRate: fineTuneRate, label: `${fit.label ?? ''} (fine-tune)` });
    const result = { model: converted, baselineFit, fineTuneFit, layers: conversion.layers, convertSeconds, forked: o.fork != null,
      ...(mhaPartScore != null ? { mhaPartScore } : {}), ...(convertedScore != null ? { convertedScore } : {}) };
    converted = null;
    return result;
  } finally {
    base.dispose();
    converted?.dispose();
  }
}
