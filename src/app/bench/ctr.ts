// `collectivekv bench ctr`: trains one CTR model of the zoo twice, with MultiHeadAttention and with
// CollectiveKVAttention (by the recipe by default, docs/recipe.md), on the same samples, split, seed
// and budget, and reports AUC, gAUC, logloss, cache bytes per token, compression ratio, steps and
// training throughput side by side, next to a popularity-only scorer.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import {
  CtrEventLog, CtrLabelRule, CtrMetrics, CtrSplit, INTERACTION_FORMATS, InteractionFormat, RECIPE_DEFAULTS, auc, ctrSamples, gauc, generateSynthetic,
  itemPopularity, PairedDifference, ctrMetrics, pairedAucDifference, pairedGaucDifference, parseCtrLabel, readInteractions, resolveRouterConfig,
  routerFromFlatOptions, seededRandom, shuffleInPlace, summarizeSwitch, withSyntheticEventFeatures,
} from '../../internal';
import { CollectiveOptions, CtrAttention, CtrModel, CtrModelOptions, cacheBytesPerToken } from '../../zoo/ctr/common';
import { buildDin } from '../../zoo/ctr/din';
import { buildEta } from '../../zoo/ctr/eta';
import { buildHstuCtr } from '../../zoo/ctr/hstuCtr';
import { buildSdim } from '../../zoo/ctr/sdim';
import { buildSim } from '../../zoo/ctr/sim';
import { buildTwin } from '../../zoo/ctr/twin';
import { CtrFitOptions, CtrFitResult, ctrStepsPerEpoch, fitCtr, interleavedStepTimes, predictCtr } from '../../zoo/ctr/training';
import { CtrBaselineKey, FINAL_WEIGHTS, readCtrBaseline, readWeights, writeCtrBaseline, writeModelWeights } from './ctrBaseline';
import { integerAtLeast, nonNegativeNumber, oneOf, positiveInt } from '../command/flags';
import { COLLECTIVE_FLAGS, collectiveFlagOptions, parseCollectiveFlags } from '../command/collectiveFlags';
import { TRAINING } from '../command/trainingFlags';
import { TrainingKind, defaultPoolSize, trainingKind } from '../command/nextItem';

export const CTR_MODELS = ['din', 'sim', 'eta', 'sdim', 'twin', 'hstu-ctr'] as const;
export type CtrModelName = (typeof CTR_MODELS)[number];

const BUILDERS: Record<CtrModelName, (o: CtrModelOptions) => CtrModel> = {
  din: buildDin, sim: buildSim, eta: buildEta, sdim: buildSdim, twin: buildTwin, 'hstu-ctr': buildHstuCtr,
};

export interface BenchCtrOptions {
  model: CtrModelName;
  /** Interaction file; absent: the synthetic generator with per-event features. */
  data?: string;
  format?: InteractionFormat | 'auto';
  label?: CtrLabelRule;
  collective?: CollectiveOptions;
  /**
   * How collectivekv trains: 'recipe' (default: full K/V to the validation plateau, switch to pools
   * built from the trained K/V, a fine-tune of at most a quarter of the epochs; pool 4096 unless
   * given) or 'single-stage' (the paper's: pools from the start; pool 1024 unless given).
   */
  training?: TrainingKind;
  /** 'all' (default): every attention module is swapped, so the whole cache is compressed; 'short': the short-term one only. */
  swap?: 'all' | 'short';
  /** Training budget per variant, minutes (0 = until early stopping). */
  maxMinutes?: number;
  maxEpochs?: number;
  /** Seeded subset of users (0 = all). */
  maxUsers?: number;
  /** Most recent training positions per user. Default 10. */
  trainPositions?: number;
  /** Next-item labels: sampled negatives per positive, in every split (more test negatives make gAUC finer). Default 1. */
  negatives?: number;
  attentionWidth?: number;
  embeddingDim?: number;
  numHeads?: number;
  longLength?: number;
  shortLength?: number;
  topK?: number;
  batchSize?: number;
  learningRate?: number;
  seed?: number;
  backend?: 'wasm' | 'cpu';
  /**
   * After both trainings, time this many training steps of the two models interleaved on the same
   * samples (the throughput ratio that load changes between the two runs cannot bias). Default 10;
   * 0 skips it.
   */
  timingRounds?: number;
  /**
   * Where the trained mha baseline is kept: trained and saved there (its restored best weights and
   * figures) when the directory has none, reused when it has one trained on the same data with the
   * same settings (anything else is refused). Not with maxMinutes (a time budget's run depends on
   * the machine's speed and load).
   */
  baselineDir?: string;
  log?: (line: string) => void;
}

export interface BenchCtrVariant {
  auc: number;
  gauc: number;
  logloss: number;
  bytesPerToken: number;
  /** bytesPerToken / the baseline's. */
  compressionRatio: number;
  epochs: number;
  /** Optimizer steps (absent in reports and saved baselines written before it existed). */
  steps?: number;
  /** Why training stopped: 'patience', 'maxEpochs', 'maxMinutes' or 'maxSteps' (absent where steps is). */
  stoppedBy?: string;
  trainSeconds: number;
  samplesPerSecond: number;
  bestValidationAuc: number;
  /** The epoch whose weights were restored (early stopping) and the validation AUC after each epoch. */
  bestEpoch?: number;
  validationAuc?: number[];
  /** collectivekv by the recipe: where it switched and what the switch did. */
  recipe?: CtrRecipeSummary;
  /** mha read from --baseline-dir (its training figures are the saved run's, its test figures scored again here). */
  reusedBaseline?: { dir: string; savedAt: string };
}

/** The recipe's switch as bench ctr reports it. */
export interface CtrRecipeSummary {
  /** Epochs and optimizer steps of the full-K/V phase. */
  fullPhaseEpochs: number;
  fullPhaseSteps: number;
  /** The full phase's best epoch and validation AUC (its weights were switched). */
  fullPhaseBestEpoch: number;
  fullPhaseValidAuc: number;
  /** Validation AUC right after the switch, before the fine-tune. */
  switchedValidAuc: number;
  switchSeconds: number;
  /** Mean k-means relative inertia over the switched sides (0 = exact). */
  relativeInertia: number;
}

export interface BenchCtrResult {
  model: CtrModelName;
  data: string;
  label: string;
  backend: string;
  settings: Record<string, unknown>;
  users: number;
  items: number;
  samples: { train: number; validation: number; test: number };
  /** How collectivekv trained. */
  training: TrainingKind;
  /** The popularity-only anchor on the test samples. */
  popularity: { auc: number; gauc: number };
  mha: BenchCtrVariant;
  collectivekv: BenchCtrVariant;
  /**
   * collectivekv minus mha (AUC, gAUC) and collectivekv / mha (throughput of the two training runs;
   * stepThroughputRatio: of the interleaved steps, mha step ms / collectivekv step ms; stepsRatio:
   * collectivekv's optimizer steps / mha's, at most 1.25 by the recipe within the same --epochs).
   */
  comparison: {
    aucDelta: number; gaucDelta: number; throughputRatio: number; stepThroughputRatio?: number; stepsRatio?: number;
    /**
     * Standard errors of aucDelta (DeLong, paired by test sample) and gaucDelta (over users), the
     * test set's sampling noise: absent in reports written before they existed.
     */
    aucDeltaStandardError?: number; gaucDeltaStandardError?: number;
  };
  /** The interleaved step timing (absent with timingRounds 0 and in reports written before it existed). */
  stepTiming?: { batchSize: number; rounds: number; mhaMs: number; collectivekvMs: number };
}

/** Runs the benchmark (both variants, same data, split, seed and budget). */
export async function benchCtr(options: BenchCtrOptions): Promise<BenchCtrResult> {
  const log = options.log ?? (() => undefined);
  const seed = options.seed ?? 1;
  const backend = options.backend ?? 'wasm';
  if (!(await tf.setBackend(backend))) throw new Error(`bench ctr: backend ${backend} failed to initialize`);
  await tf.ready();
  const data = subsetUsers(await loadData(options, log), options.maxUsers ?? 0, seed);
  const label = options.label ?? { kind: 'next-item' };
  if (options.negatives != null && label.kind !== 'next-item') throw new Error('bench ctr: --negatives applies to next-item labels only');
  const split = ctrSamples(data, { label, seed, maxTrainPositionsPerUser: options.trainPositions ?? 10, negativesPerPositive: options.negatives ?? 1 });
  log(`${data.sequences.length} users, ${data.numItems} items; samples: ${split.train.length} train, ${split.validation.length} validation, ${split.test.length} test`);
  const popularity = popularityScores(split);
  log(`popularity: test AUC ${popularity.auc.toFixed(4)}, gAUC ${popularity.gauc.toFixed(4)}`);
  const training = options.training ?? 'recipe';
  const modelOptions = resolveModelOptions(options, data.numItems, seed);
  const mhaRun = options.baselineDir != null
    ? savedOrTrainedBaseline(options, options.baselineDir, modelOptions, split, log)
    : runVariant(options, 'mha', modelOptions, split, log);
  let ckvRun: ReturnType<typeof runVariant> | null = null;
  let stepTiming: BenchCtrResult['stepTiming'];
  try {
    ckvRun = runVariant(options, 'collectivekv', { ...modelOptions, collective: collectiveOf(modelOptions, training) }, split, log,
      collectiveBudget(options, training, mhaRun.variant, split));
    const rounds = options.timingRounds ?? 10;
    if (rounds > 0) {
      const batchSize = options.batchSize ?? 256;
      log(`interleaved step timing: ${rounds} rounds of one step each, batch ${batchSize}`);
      const t = interleavedStepTimes([mhaRun.model, ckvRun.model], split.data, split.train,
        { batchSize, rounds, learningRate: options.learningRate ?? 1e-3 });
      stepTiming = { batchSize, rounds, mhaMs: t.medianMs[0], collectivekvMs: t.medianMs[1] };
      log(`  median step: mha ${t.medianMs[0].toFixed(0)} ms, collectivekv ${t.medianMs[1].toFixed(0)} ms (${(t.medianMs[0] / t.medianMs[1]).toFixed(2)}x the throughput)`);
    }
  } finally {
    mhaRun.model.dispose();
    ckvRun?.model.dispose();
  }
  const mha = mhaRun.variant;
  const ckv = ckvRun.variant;
  ckv.compressionRatio = ckv.bytesPerToken / mha.bytesPerToken;
  const paired = pairedTestDifferences(split, mhaRun.testScores, ckvRun.testScores, log);
  return {
    model: options.model, data: options.data ?? 'synthetic', label: label.kind === 'rating' ? `rating>=${label.minRating}` : 'next-item', backend,
    settings: { ...modelOptions, collective: collectiveOf(modelOptions, training), training, swap: options.swap ?? 'all', maxMinutes: options.maxMinutes ?? 0, maxEpochs: options.maxEpochs ?? 10, maxUsers: options.maxUsers ?? 0,
      trainPositions: options.trainPositions ?? 10, negatives: options.negatives ?? 1, batchSize: options.batchSize ?? 256, learningRate: options.learningRate ?? 1e-3 },
    users: data.sequences.length, items: data.numItems,
    samples: { train: split.train.length, validation: split.validation.length, test: split.test.length },
    training, popularity, mha, collectivekv: ckv,
    comparison: { aucDelta: ckv.auc - mha.auc, gaucDelta: ckv.gauc - mha.gauc, throughputRatio: ckv.samplesPerSecond / mha.samplesPerSecond,
      ...(ckv.steps != null && mha.steps != null && mha.steps > 0 ? { stepsRatio: ckv.steps / mha.steps } : {}),
      ...(paired != null ? { aucDeltaStandardError: paired.auc.standardError, gaucDeltaStandardError: paired.gauc.standardError } : {}),
      ...(stepTiming != null ? { stepThroughputRatio: stepTiming.mhaMs / stepTiming.collectivekvMs } : {}) },
    ...(stepTiming != null ? { stepTiming } : {}),
  };
}

/** Both arms' model options (the collectivekv arm adds its phase: collectiveOf); CollectiveKV defaults follow --training. */
export function resolveModelOptions(o: BenchCtrOptions, numItems: number, seed: number): CtrModelOptions {
  return {
    numItems, seed, collective: { poolSize: defaultPoolSize(o.training ?? 'recipe'), userDim: 1, share: 'kv', ...o.collective,
      // Every router option written into the JSON, defaults included (a default changed once: see readme-results).
      router: resolveRouterConfig('bench ctr', o.collective?.router) },
    collectiveExact: (o.swap ?? 'all') === 'all',
    attentionWidth: o.attentionWidth ?? 256, embeddingDim: o.embeddingDim ?? 32, numHeads: o.numHeads ?? 4,
    longLength: o.longLength ?? 1000, shortLength: o.shortLength ?? 50, topK: o.topK,
  };
}

/**
 * The test samples' AUC and gAUC differences of two variants with their standard errors, logged;
 * null (and logged) when the test set is too small for them (fewer than 2 samples of a class or 2
 * users with both).
 */
function pairedTestDifferences(split: CtrSplit, baseline: Float32Array, candidate: Float32Array,
  log: (line: string) => void): { auc: PairedDifference; gauc: PairedDifference } | null {
  const labels = split.test.map((s) => s.label);
  let paired: { auc: PairedDifference; gauc: PairedDifference };
  try {
    paired = { auc: pairedAucDifference(baseline, candidate, labels),
      gauc: pairedGaucDifference(baseline, candidate, labels, split.test.map((s) => s.user)) };
  } catch (e) {
    log(`no standard errors of the differences: ${(e as Error).message}`);
    return null;
  }
  log(`collectivekv - mha on the test samples: AUC ${signed(paired.auc)}, gAUC ${signed(paired.gauc)} (+- one standard error: DeLong, paired by sample; over users)`);
  return paired;
}

function signed(d: PairedDifference): string {
  return `${d.difference >= 0 ? '+' : ''}${d.difference.toFixed(4)} +- ${d.standardError.toFixed(4)}`;
}

/**
 * Trains and tests one variant; the caller disposes the returned model (the step timing reuses it).
 * testScores: its click probabilities of the test samples, in order.
 */
function runVariant(o: BenchCtrOptions, attention: CtrAttention, modelOptions: CtrModelOptions, split: CtrSplit,
  log: (line: string) => void, budget: Partial<CtrFitOptions> = {}): VariantRun {
  const model = BUILDERS[o.model]({ ...modelOptions, attention });
  try {
    const fit = fitCtr(model, split, { ...fitOptions(o, modelOptions), ...budget, onProgress: (line) => log(`[${attention}] ${line}`) });
    return testVariant(attention, model, fit, split, log);
  } catch (e) {
    model.dispose();
    throw e;
  }
}

type VariantRun = { variant: BenchCtrVariant; model: CtrModel; testScores: Float32Array };

function fitOptions(o: BenchCtrOptions, modelOptions: CtrModelOptions): CtrFitOptions {
  return { maxEpochs: o.maxEpochs ?? 10, batchSize: o.batchSize ?? 256, learningRate: o.learningRate ?? 1e-3, seed: modelOptions.seed,
    maxSeconds: (o.maxMinutes ?? 0) * 60 };
}

/** The collectivekv arm's CollectiveKV options: by the recipe its layers start with full K/V. */
function collectiveOf(modelOptions: CtrModelOptions, training: TrainingKind): CollectiveOptions {
  return { ...modelOptions.collective, ...(training === 'recipe' ? { kvPhase: 'full' as const } : {}) };
}

/**
 * The collectivekv arm's budget beyond the shared one. By the recipe it may train a quarter longer
 * than the baseline: at most 1.25 x the --epochs budget's steps (the recipe's fine-tune of
 * ceil(epochs / 4) epochs would add more after few epochs), with --max-minutes 1.25 x the time, and
 * when the time cut the baseline, at most 1.25 x its steps.
 */
function collectiveBudget(o: BenchCtrOptions, training: TrainingKind, mha: BenchCtrVariant, split: CtrSplit): Partial<CtrFitOptions> {
  if (training !== 'recipe') return {};
  const share = 1 + RECIPE_DEFAULTS.fineTuneShare;
  const budgetSteps = (o.maxEpochs ?? 10) * ctrStepsPerEpoch(split.train.length, o.batchSize ?? 256);
  const cutByTime = mha.stoppedBy === 'maxMinutes' && mha.steps != null;
  const maxSteps = Math.min(Math.floor(share * budgetSteps), cutByTime ? Math.ceil(share * (mha.steps as number)) : Infinity);
  return { maxSteps, ...((o.maxMinutes ?? 0) > 0 ? { maxSeconds: share * (o.maxMinutes as number) * 60 } : {}) };
}

/** Test scores and the variant's figures of a trained model. */
function testVariant(attention: CtrAttention, model: CtrModel, fit: CtrFitResult, split: CtrSplit, log: (line: string) => void): VariantRun {
  const { testScores, test } = scoreTest(model, split);
  const recipe = recipeSummary(fit);
  const variant: BenchCtrVariant = {
    auc: test.auc, gauc: test.gauc, logloss: test.logloss, bytesPerToken: cacheBytesPerToken(model), compressionRatio: 1,
    epochs: fit.epochs, steps: fit.steps, stoppedBy: fit.stoppedBy, trainSeconds: fit.trainSeconds, samplesPerSecond: fit.samplesPerSecond,
    bestValidationAuc: fit.bestValidationAuc, bestEpoch: fit.bestEpoch, validationAuc: fit.history.map((h) => h.validationAuc),
    ...(recipe != null ? { recipe } : {}),
  };
  if (recipe != null) {
    log(`[${attention}] recipe: full K/V for ${recipe.fullPhaseEpochs} epochs (${recipe.fullPhaseSteps} steps; best epoch ${recipe.fullPhaseBestEpoch}, `
      + `validation AUC ${f4(recipe.fullPhaseValidAuc)}), switched in ${recipe.switchSeconds.toFixed(1)} s (validation AUC ${f4(recipe.switchedValidAuc)}, `
      + `k-means relative inertia ${recipe.relativeInertia.toFixed(3)}), fine-tuned to ${fit.epochs} epochs (${fit.steps} steps)`);
  } else if (fit.recipe != null) {
    log(`[${attention}] WARNING: training ended before the recipe's switch (${fit.stoppedBy})`);
  }
  log(`[${attention}] test AUC ${variant.auc.toFixed(4)}, gAUC ${variant.gauc.toFixed(4)}, logloss ${variant.logloss.toFixed(4)}, `
    + `${variant.bytesPerToken} B/token, ${fit.epochs} epochs (${fit.steps} steps, stopped by ${fit.stoppedBy}), ${variant.samplesPerSecond.toFixed(0)} samples/s`);
  return { variant, model, testScores };
}

/** The recipe's switch of a fit (undefined without the recipe or when training ended before the switch). */
export function recipeSummary(fit: CtrFitResult): CtrRecipeSummary | undefined {
  const s = summarizeSwitch(fit.recipe?.phaseSwitch, fit.recipe?.switch, 'auc');
  if (s == null) return undefined;
  const { fullPhaseValid, switchedValid, ...rest } = s;
  return { ...rest, fullPhaseValidAuc: fullPhaseValid, switchedValidAuc: switchedValid };
}

const f4 = (x: number) => x.toFixed(4);

/** The model's click probabilities of the test samples (in order; the paired differences need them) and their metrics. */
function scoreTest(model: CtrModel, split: CtrSplit): { testScores: Float32Array; test: CtrMetrics } {
  const testScores = predictCtr(model, split.data, split.test);
  return { testScores, test: ctrMetrics(testScores, split.test.map((s) => s.label), split.test.map((s) => s.user)) };
}

/**
 * The mha baseline of --baseline-dir: the saved one when `dir` holds one trained with these
 * settings (its final weights loaded and scored again), else trained here and saved there.
 */
function savedOrTrainedBaseline(o: BenchCtrOptions, dir: string, modelOptions: CtrModelOptions, split: CtrSplit,
  log: (line: string) => void): VariantRun {
  const key = baselineKey(o, modelOptions);
  const saved = readCtrBaseline<BenchCtrVariant>(dir, key);
  if (saved == null) {
    const run = runVariant(o, 'mha', modelOptions, split, log);
    writeModelWeights(dir, FINAL_WEIGHTS, run.model);
    writeCtrBaseline(dir, { key, variant: run.variant, savedAt: new Date().toISOString() });
    log(`[mha] saved the baseline in ${dir}`);
    return run;
  }
  log(`[mha] reusing the baseline in ${dir} (saved ${saved.savedAt}; trained ${saved.variant.epochs} epochs in ${saved.variant.trainSeconds.toFixed(0)} s)`);
  const model = BUILDERS[o.model]({ ...modelOptions, attention: 'mha' });
  try {
    const weights = readWeights(dir, FINAL_WEIGHTS);
    try {
      model.setWeights(weights);
    } finally {
      tf.dispose(weights);
    }
    const { testScores, test } = scoreTest(model, split);
    const variant = { ...saved.variant, auc: test.auc, gauc: test.gauc, logloss: test.logloss, bytesPerToken: cacheBytesPerToken(model),
      reusedBaseline: { dir: resolve(dir), savedAt: saved.savedAt } };
    log(`[mha] test AUC ${variant.auc.toFixed(4)}, gAUC ${variant.gauc.toFixed(4)}, logloss ${variant.logloss.toFixed(4)} (the saved baseline)`);
    return { variant, model, testScores };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** What the baseline's training depended on: the data, its sampling, the model's options but the CollectiveKV ones, the optimizer. */
function baselineKey(o: BenchCtrOptions, modelOptions: CtrModelOptions): CtrBaselineKey {
  const { collective: _collective, collectiveExact: _exact, ...mhaOptions } = modelOptions;
  void _collective;
  void _exact;
  return {
    model: o.model, data: o.data == null ? 'synthetic' : resolve(o.data), format: o.format ?? 'auto', label: o.label ?? { kind: 'next-item' },
    maxUsers: o.maxUsers ?? 0, trainPositions: o.trainPositions ?? 10, negatives: o.negatives ?? 1, maxEpochs: o.maxEpochs ?? 10,
    batchSize: o.batchSize ?? 256, learningRate: o.learningRate ?? 1e-3, backend: o.backend ?? 'wasm', ...mhaOptions,
  };
}

/** AUC and gAUC of scoring every candidate by its training-period popularity (ignores the user). */
export function popularityScores(split: CtrSplit): { auc: number; gauc: number } {
  const counts = itemPopularity(split);
  const scores = split.test.map((s) => counts[s.candidate]);
  const labels = split.test.map((s) => s.label);
  return { auc: auc(scores, labels), gauc: gauc(scores, labels, split.test.map((s) => s.user)).gauc };
}

async function loadData(o: BenchCtrOptions, log: (line: string) => void): Promise<CtrEventLog> {
  if (o.data == null) {
    log('data: synthetic generator (long histories) with synthetic timestamps and ratings');
    const seqs = generateSynthetic({ numUsers: 1500, numItems: 1000, minLength: 60, maxLength: 400, seed: o.seed ?? 2026 });
    return withSyntheticEventFeatures(seqs, o.seed ?? 2026);
  }
  const log0 = await readInteractions(o.data, { format: o.format ?? 'auto' });
  log(`data: ${o.data} (${log0.timestamps ? 'timestamps' : 'no timestamps'}, ${log0.ratings ? 'ratings' : 'no ratings'})`);
  return { sequences: log0.sequences, numItems: log0.numItems, timestamps: log0.timestamps, ratings: log0.ratings };
}

/** A seeded subset of `max` users (all when max is 0 or covers them); item ids are unchanged. */
export function subsetUsers(data: CtrEventLog, max: number, seed: number): CtrEventLog {
  const n = data.sequences.length;
  if (max <= 0 || max >= n) return data;
  const keep = shuffleInPlace(Array.from({ length: n }, (_, i) => i), seededRandom(seed ^ 0x5bd1e995)).slice(0, max).sort((a, b) => a - b);
  return {
    sequences: keep.map((u) => data.sequences[u]), numItems: data.numItems,
    timestamps: data.timestamps && keep.map((u) => (data.timestamps as number[][])[u]),
    ratings: data.ratings && keep.map((u) => (data.ratings as number[][])[u]),
  };
}

// ---------------------------------------------------------------- command line

export const BENCH_CTR_USAGE = `Usage: collectivekv bench ctr --model din|sim|eta|sdim|twin|hstu-ctr [options]
  --data PATH          interaction file (default: synthetic data with per-event features)
  --format F           ${INTERACTION_FORMATS.join(' | ')} | auto (default auto)
  --label RULE         next-item (default: sampled negatives) or rating>=X
  --json FILE          write the results as JSON
  --training recipe|single-stage  how the CollectiveKV arm trains: recipe (default) trains with full K/V
                       to the validation plateau, restores the best weights, builds each pool from
                       the K/V the model produces (k-means, nearest-centroid router) and fine-tunes
                       for at most a quarter of the epochs so far (docs/recipe.md); single-stage
                       is the paper's, pools from the start
  --share k|v|kv       CollectiveKV: which sides are pooled (default kv)
  --user-dim N         CollectiveKV user-specific width (default 1)
  --pool-size N        CollectiveKV pool rows (default ${defaultPoolSize('recipe')} with the recipe, ${defaultPoolSize('single-stage')} single-stage)
  --balance-tokens N   CollectiveKV: tokens per call the routing loss averages, sampled (default 2048; 0 = all)
  --router KIND        CollectiveKV router: dense (one router column per pool row; the paper's,
                       the default single-stage) or nearest-product (the default with the recipe:
                       the row of a product-quantized pool nearest to a
                       learned projection, trained as a VQ-VAE codebook: 2 sqrt(pool size) distances
                       per token; pool size a square). See docs/routing.md
  --commitment-weight X  CollectiveKV, router nearest-product: weight of the commitment term (default 0.25)
  --quantization-weight X  CollectiveKV, router nearest-product: weight of the whole VQ loss (default 1/64)
  --gate scaled|straight-through  CollectiveKV training gate (default scaled, the paper's)
  --pool-stddev X      CollectiveKV: std of the pools' normal init (default 1, the paper's)
  --swap all|short     swap every attention module (default) or the short-term one only
  --max-minutes N      training budget per variant (default 0: early stopping only); the recipe
                       may take 1.25x the time and, when the time cut the baseline, 1.25x its steps
  --epochs N           maximum epochs (default 10); the recipe may add a quarter of its full phase's
                       epochs, at most a quarter of the budget's steps
  --max-users N        seeded user sample (default all)
  --train-positions N  most recent training positions per user (default 10)
  --negatives N        next-item labels: sampled negatives per positive (default 1; more make gAUC,
                       a proportion over users with one positive each, less coarse)
  --width N            attention width numHeads*keyDim (default 256)
  --embedding-dim N    item/feature embedding width (default 32)
  --heads N            attention heads (default 4)
  --long-length N      long history (default 1000)
  --short-length N     short-term window (default 50)
  --top-k N            retrieval top-k (default 50, TWIN 100)
  --batch-size N       (default 256)
  --timing-rounds N    interleaved training steps of the two trained models timed side by side
                       (default 10; 0 = skip): the throughput ratio a load change cannot bias
  --lr X               Adam learning rate (default 0.001)
  --baseline-dir DIR   keep the trained mha baseline in DIR (its best weights and figures): trained
                       and saved when DIR has none, reused when DIR has one trained with the same
                       data and settings (runs that change only CollectiveKV, e.g. --pool-size,
                       --router or --training); not with --max-minutes
  --seed N             (default 1)
  --backend wasm|cpu   (default wasm)`;

/** `collectivekv bench ctr ...` (argv without 'bench ctr'); returns the exit code. */
export async function runBenchCtrCommand(argv: string[], log: (line: string) => void = console.log): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    log(BENCH_CTR_USAGE);
    return 0;
  }
  let options: BenchCtrOptions & { json?: string };
  try {
    options = parseBenchCtrArgs(argv);
  } catch (e) {
    console.error(`collectivekv bench ctr: ${(e as Error).message}\n\n${BENCH_CTR_USAGE}`);
    return 2;
  }
  const result = await benchCtr({ ...options, log });
  log(formatCtr(result));
  if (options.json != null) {
    writeFileSync(options.json, `${JSON.stringify(result, null, 2)}\n`);
    log(`wrote ${options.json}`);
  }
  return 0;
}

export function parseBenchCtrArgs(argv: string[]): BenchCtrOptions & { json?: string } {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      ...Object.fromEntries(['model', 'data', 'format', 'label', 'json', 'swap', 'max-minutes',
        'max-users', 'train-positions', 'negatives', 'width', 'embedding-dim', 'heads', 'long-length', 'short-length', 'top-k', 'seed', 'backend', 'timing-rounds',
        'training', 'baseline-dir',
      ].map((k) => [k, { type: 'string' as const }])),
      ...collectiveFlagOptions(COLLECTIVE_FLAGS),
      ...TRAINING.options(),
    },
  });
  if (positionals.length > 0) throw new Error(`unexpected argument '${positionals[0]}'`);
  const v = values as Record<string, string | undefined>;
  const model = oneOf('--model', v.model ?? '', CTR_MODELS);
  const int = (flag: string) => positiveInt(`--${flag}`, v[flag]);
  const c = parseCollectiveFlags(v, COLLECTIVE_FLAGS);
  const training = TRAINING.parse(v);
  const collective: CollectiveOptions = {};
  if (c.share != null) collective.share = c.share;
  if (c.userDim != null) collective.userDim = c.userDim;
  if (c.poolSize != null) collective.poolSize = c.poolSize;
  const routerFlags = { router: c.router, balanceTokens: c.balanceTokens, commitmentWeight: c.commitmentWeight, quantizationWeight: c.quantizationWeight, gate: c.gate };
  if (Object.values(routerFlags).some((x) => x != null)) collective.router = routerFromFlatOptions(routerFlags, 'bench ctr');
  // Target attention by the recipe routes with nearest-product (docs/recipe.md): a dense router over 4096 rows trained ~10x slower.
  else if ((v.training ?? 'recipe') === 'recipe') collective.router = routerFromFlatOptions({ router: 'nearest-product' }, 'bench ctr');
  if (c.poolStddev != null) collective.poolStddev = c.poolStddev;
  const minutes = nonNegativeNumber('--max-minutes', v['max-minutes']);
  if (v['baseline-dir'] != null && (minutes ?? 0) > 0) {
    throw new Error('--baseline-dir reuses a baseline trained to a step budget (--epochs); a time budget\'s run depends on the machine\'s speed: drop --max-minutes');
  }
  return {
    training: v.training == null ? undefined : trainingKind(v.training), baselineDir: v['baseline-dir'],
    model, data: v.data, format: v.format == null ? undefined : oneOf('--format', v.format, [...INTERACTION_FORMATS, 'auto'] as const),
    label: v.label == null ? undefined : parseCtrLabel(v.label), json: v.json, collective,
    swap: v.swap == null ? undefined : oneOf('--swap', v.swap, ['all', 'short'] as const), maxMinutes: minutes,
    maxEpochs: training.epochs, maxUsers: int('max-users'), trainPositions: int('train-positions'), negatives: int('negatives'), attentionWidth: int('width'),
    embeddingDim: int('embedding-dim'), numHeads: int('heads'), longLength: int('long-length'), shortLength: int('short-length'), topK: int('top-k'),
    batchSize: training.batchSize, learningRate: training.learningRate, seed: int('seed'),
    timingRounds: v['timing-rounds'] == null ? undefined : integerAtLeast('--timing-rounds', v['timing-rounds'], 0), backend: v.backend == null ? undefined : oneOf('--backend', v.backend, ['wasm', 'cpu'] as const),
  };
}

/** The printed result: the two arms beside the popularity anchor, the recipe's switch, the differences. */
export function formatCtr(r: BenchCtrResult): string {
  const steps = (q: BenchCtrVariant) => `${fixedEpochs(q.epochs)} (${q.steps ?? '?'}, ${q.bestEpoch != null ? fixedEpochs(q.bestEpoch) : '?'})`;
  const rows: [string, (q: BenchCtrVariant) => string, string][] = [
    ['test AUC', (q) => f4(q.auc), f4(r.popularity.auc)], ['test gAUC', (q) => f4(q.gauc), f4(r.popularity.gauc)],
    ['test logloss', (q) => f4(q.logloss), ''], ['best validation AUC', (q) => f4(q.bestValidationAuc), ''],
    ['cache bytes/token', (q) => String(q.bytesPerToken), ''], ['compression vs full KV', (q) => `${(1 / q.compressionRatio).toFixed(1)}x`, ''],
    ['epochs (steps, best)', steps, ''], ['stopped by', (q) => q.stoppedBy ?? '?', ''],
    ['train seconds', (q) => q.trainSeconds.toFixed(0), ''], ['samples/s', (q) => q.samplesPerSecond.toFixed(0), ''],
  ];
  const title = `${r.model} (${r.data}, ${r.label})`;
  const width = Math.max(title.length + 2, ...rows.map(([label]) => label.length + 2));
  const lines = [`${title.padEnd(width)}${'mha'.padStart(12)}${`collectivekv`.padStart(14)}${'popularity'.padStart(12)}`];
  for (const [label, get, popularity] of rows) lines.push(`${label.padEnd(width)}${get(r.mha).padStart(12)}${get(r.collectivekv).padStart(14)}${popularity.padStart(12)}`);
  const recipe = r.collectivekv.recipe;
  if (recipe != null) {
    lines.push(`collectivekv by the recipe: full K/V for ${recipe.fullPhaseEpochs} epochs (${recipe.fullPhaseSteps} steps; best epoch `
      + `${recipe.fullPhaseBestEpoch}, validation AUC ${f4(recipe.fullPhaseValidAuc)}), switched in ${recipe.switchSeconds.toFixed(1)} s `
      + `(validation AUC ${f4(recipe.switchedValidAuc)}, k-means relative inertia ${recipe.relativeInertia.toFixed(3)}), then fine-tuned`);
  } else if (r.training === 'recipe') {
    lines.push('WARNING: collectivekv ended before the recipe\'s switch');
  }
  if (r.comparison.stepsRatio != null) lines.push(`collectivekv steps / mha steps: ${r.comparison.stepsRatio.toFixed(2)}`);
  const se = (x: number | undefined) => (x == null ? '' : ` +- ${x.toFixed(4)}`);
  lines.push(`collectivekv - mha: AUC ${signedNumber(r.comparison.aucDelta)}${se(r.comparison.aucDeltaStandardError)}, `
    + `gAUC ${signedNumber(r.comparison.gaucDelta)}${se(r.comparison.gaucDeltaStandardError)} (one standard error)`);
  const beats = r.mha.auc > r.popularity.auc && r.mha.gauc > r.popularity.gauc;
  lines.push(`mha ${beats ? 'beats' : 'does NOT beat'} the popularity anchor on AUC and gAUC`);
  return lines.join('\n');
}

function fixedEpochs(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}

function signedNumber(x: number): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;
}
