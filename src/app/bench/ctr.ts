// `collectivekv bench ctr`: trains one CTR model of the zoo twice, with MultiHeadAttention and with
// CollectiveKVAttention, on the same samples, split, seed and time budget, and reports AUC, gAUC,
// logloss, cache bytes per token, compression ratio and training throughput side by side, next to
// a popularity-only scorer.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import {
  CtrEventLog, CtrLabelRule, CtrMetrics, CtrSplit, INTERACTION_FORMATS, InteractionFormat, auc, ctrSamples, gauc, generateSynthetic, itemPopularity,
  LayerConversionReport, PairedDifference, ctrMetrics, pairedAucDifference, pairedGaucDifference, parseCtrLabel, readInteractions, RouterSpec, resolveRouterConfig, routerFromFlatOptions, seededRandom,
  shuffleInPlace, withSyntheticEventFeatures,
} from '../../internal';
import { CollectiveOptions, CtrAttention, CtrModel, CtrModelBase, CtrModelOptions, cacheBytesPerToken } from '../../zoo/ctr/common';
import { buildDin } from '../../zoo/ctr/din';
import { buildEta } from '../../zoo/ctr/eta';
import { buildHstuCtr } from '../../zoo/ctr/hstuCtr';
import { buildSdim } from '../../zoo/ctr/sdim';
import { buildSim } from '../../zoo/ctr/sim';
import { buildTwin } from '../../zoo/ctr/twin';
import { CtrFitOptions, CtrFitResult, ctrStepsPerEpoch, evaluateCtr, fitCtr, interleavedStepTimes, predictCtr } from '../../zoo/ctr/training';
import { convertCtrModel } from '../../zoo/ctr/conversion';
import { DEFAULT_FINE_TUNE_RATE_SCALE, forkStepOf } from '../../zoo/sequential/conversion';
import {
  CtrBaselineKey, FINAL_WEIGHTS, SavedCheckpoint, checkpointSteps, readCtrBaseline, readWeights, writeCtrBaseline, writeModelWeights,
} from './ctrBaseline';
import { integerAtLeast, nonNegativeNumber, oneOf, openUnitFraction, positiveInt, positiveNumber } from '../command/flags';
import { COLLECTIVE_FLAGS, collectiveFlagOptions, parseCollectiveFlags } from '../command/collectiveFlags';
import { TRAINING } from '../command/trainingFlags';

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
   * Train collectivekv by warm start instead of from scratch: this share of the step budget
   * (--epochs) is its fine-tune. The mha run is forked at step round((1 - warmStart) x budget): its
   * weights there are converted (convertCtrModel) and the CollectiveKV model trains on from the
   * next batch to the end of the budget. In (0, 1); not with maxMinutes (no step budget).
   */
  warmStart?: number;
  /** With warmStart: the fine-tune's learning rate as a share of learningRate. Default DEFAULT_FINE_TUNE_RATE_SCALE. */
  fineTuneRate?: number;
  /**
   * Where the trained mha baseline is kept: trained and saved there (final weights, checkpoints at
   * every 5% of the step budget) when the directory has none, reused when it has one trained on
   * the same data with the same settings (anything else is refused). Not with maxMinutes.
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
  trainSeconds: number;
  samplesPerSecond: number;
  bestValidationAuc: number;
  /** The epoch whose weights were restored (early stopping) and the validation AUC after each epoch. */
  bestEpoch?: number;
  validationAuc?: number[];
  /** collectivekv by warm start (--warm-start); trainSeconds then counts the mha part, the conversion and the fine-tune. */
  warmStart?: CtrWarmStart;
  /** mha read from --baseline-dir (its training figures are the saved run's, its test figures scored again here). */
  reusedBaseline?: { dir: string; savedAt: string };
}

export interface CtrWarmStart {
  /** The fine-tune's share of the step budget, and its learning rate as a share of the baseline's. */
  fraction: number; fineTuneRate: number;
  /** The budget's steps, the mha run's step at the fork, and the fine-tune's steps (the rest). */
  budgetSteps: number; forkStep: number; fineTuneSteps: number;
  /** Training seconds of the mha run up to the fork, of the conversion and of the fine-tune. */
  mhaPartSeconds: number; convertSeconds: number; fineTuneSeconds: number;
  /** Test AUC of the mha weights at the fork, and of the converted model before its fine-tune. */
  mhaPartAuc: number; convertedAuc: number;
  layers: LayerConversionReport[];
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
  popularity: { auc: number; gauc: number };
  mha: BenchCtrVariant;
  collectivekv: BenchCtrVariant;
  /**
   * collectivekv minus mha (AUC, gAUC) and collectivekv / mha (throughput of the two training runs;
   * stepThroughputRatio: of the interleaved steps, mha step ms / collectivekv step ms).
   */
  comparison: {
    aucDelta: number; gaucDelta: number; throughputRatio: number; stepThroughputRatio?: number;
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
  const modelOptions = resolveModelOptions(options, data.numItems, seed);
  const fork = options.warmStart != null ? warmStartFork(options, split) : null;
  let mhaRun: VariantRun;
  try {
    mhaRun = options.baselineDir != null
      ? savedOrTrainedBaseline(options, options.baselineDir, modelOptions, split, fork, log)
      : runVariant(options, 'mha', modelOptions, split, log, fork?.capture);
  } catch (e) {
    tf.dispose(fork?.weights ?? []);
    throw e;
  }
  let ckvRun: ReturnType<typeof runVariant> | null = null;
  let stepTiming: BenchCtrResult['stepTiming'];
  try {
    ckvRun = fork != null ? runWarmStart(options, modelOptions, split, fork, log) : runVariant(options, 'collectivekv', modelOptions, split, log);
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
    tf.dispose(fork?.weights ?? []);
  }
  const mha = mhaRun.variant;
  const ckv = ckvRun.variant;
  ckv.compressionRatio = ckv.bytesPerToken / mha.bytesPerToken;
  const paired = pairedTestDifferences(split, mhaRun.testScores, ckvRun.testScores, log);
  return {
    model: options.model, data: options.data ?? 'synthetic', label: label.kind === 'rating' ? `rating>=${label.minRating}` : 'next-item', backend,
    settings: { ...modelOptions, swap: options.swap ?? 'all', maxMinutes: options.maxMinutes ?? 0, maxEpochs: options.maxEpochs ?? 10, maxUsers: options.maxUsers ?? 0,
      trainPositions: options.trainPositions ?? 10, negatives: options.negatives ?? 1, batchSize: options.batchSize ?? 256, learningRate: options.learningRate ?? 1e-3 },
    users: data.sequences.length, items: data.numItems,
    samples: { train: split.train.length, validation: split.validation.length, test: split.test.length },
    popularity, mha, collectivekv: ckv,
    comparison: { aucDelta: ckv.auc - mha.auc, gaucDelta: ckv.gauc - mha.gauc, throughputRatio: ckv.samplesPerSecond / mha.samplesPerSecond,
      ...(paired != null ? { aucDeltaStandardError: paired.auc.standardError, gaucDeltaStandardError: paired.gauc.standardError } : {}),
      ...(stepTiming != null ? { stepThroughputRatio: stepTiming.mhaMs / stepTiming.collectivekvMs } : {}) },
    ...(stepTiming != null ? { stepTiming } : {}),
  };
}

function resolveModelOptions(o: BenchCtrOptions, numItems: number, seed: number): CtrModelOptions {
  return {
    numItems, seed, collective: { poolSize: 1024, userDim: 1, share: 'kv', ...o.collective,
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
  log: (line: string) => void, onStep?: (model: CtrModel, step: number, trainSeconds: number) => void): VariantRun {
  const model = BUILDERS[o.model]({ ...modelOptions, attention });
  try {
    const fit = fitCtr(model, split, { ...fitOptions(o, modelOptions), onProgress: (line) => log(`[${attention}] ${line}`),
      ...(onStep != null ? { onStep: (step: number, seconds: number) => onStep(model, step, seconds) } : {}) });
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

/** Test scores and the variant's figures of a trained model. */
function testVariant(attention: CtrAttention, model: CtrModel, fit: CtrFitResult, split: CtrSplit, log: (line: string) => void): VariantRun {
  const { testScores, test } = scoreTest(model, split);
  const variant = {
    auc: test.auc, gauc: test.gauc, logloss: test.logloss, bytesPerToken: cacheBytesPerToken(model), compressionRatio: 1,
    epochs: fit.epochs, trainSeconds: fit.trainSeconds, samplesPerSecond: fit.samplesPerSecond, bestValidationAuc: fit.bestValidationAuc,
    bestEpoch: fit.bestEpoch, validationAuc: fit.history.map((h) => h.validationAuc),
  };
  log(`[${attention}] test AUC ${variant.auc.toFixed(4)}, gAUC ${variant.gauc.toFixed(4)}, logloss ${variant.logloss.toFixed(4)}, `
    + `${variant.bytesPerToken} B/token, ${variant.samplesPerSecond.toFixed(0)} samples/s`);
  return { variant, model, testScores };
}

/** The model's click probabilities of the test samples (in order; the paired differences need them) and their metrics. */
function scoreTest(model: CtrModel, split: CtrSplit): { testScores: Float32Array; test: CtrMetrics } {
  const testScores = predictCtr(model, split.data, split.test);
  return { testScores, test: ctrMetrics(testScores, split.test.map((s) => s.label), split.test.map((s) => s.user)) };
}

/** Where the warm start forks the mha run, and (filled in by `capture` during that run) its weights there. */
interface WarmStartFork {
  budgetSteps: number;
  forkStep: number;
  weights: tf.Tensor[] | null;
  mhaPartSeconds: number;
  capture: (model: CtrModel, step: number, trainSeconds: number) => void;
}

/** Optimizer steps of the --epochs budget. */
function budgetStepsOf(o: BenchCtrOptions, split: CtrSplit): number {
  return (o.maxEpochs ?? 10) * ctrStepsPerEpoch(split.train.length, o.batchSize ?? 256);
}

function warmStartFork(o: BenchCtrOptions, split: CtrSplit): WarmStartFork {
  const budgetSteps = budgetStepsOf(o, split);
  if (budgetSteps < 2) throw new Error(`bench ctr: --warm-start needs a budget of 2 steps or more, received ${budgetSteps}`);
  const fraction = o.warmStart as number;
  const fork: WarmStartFork = {
    budgetSteps, forkStep: forkStepOf(budgetSteps, fraction), weights: null, mhaPartSeconds: 0,
    capture: (model, step, seconds) => {
      if (step !== fork.forkStep) return;
      fork.weights = model.getWeights();
      fork.mhaPartSeconds = seconds;
    },
  };
  return fork;
}

/**
 * The mha baseline of --baseline-dir: the saved one when `dir` holds one trained with these
 * settings (its final weights loaded and scored again; the warm start's fork read from its
 * checkpoints), else trained here and saved there.
 */
function savedOrTrainedBaseline(o: BenchCtrOptions, dir: string, modelOptions: CtrModelOptions, split: CtrSplit,
  fork: WarmStartFork | null, log: (line: string) => void): VariantRun {
  const key = baselineKey(o, modelOptions);
  const saved = readCtrBaseline<BenchCtrVariant>(dir, key);
  if (saved == null) return trainAndSaveBaseline(o, dir, key, modelOptions, split, fork, log);
  log(`[mha] reusing the baseline in ${dir} (saved ${saved.savedAt}; trained ${saved.variant.epochs} epochs in ${saved.variant.trainSeconds.toFixed(0)} s)`);
  if (fork != null) {
    const checkpoint = saved.checkpoints.find((c) => c.step === fork.forkStep);
    if (checkpoint == null) {
      throw new Error(`--baseline-dir ${dir}: no checkpoint at step ${fork.forkStep}, where --warm-start ${o.warmStart} forks (saved: steps `
        + `${saved.checkpoints.map((c) => c.step).join(', ')}, the forks of shares 0.05, 0.1, ..., 0.95)`);
    }
    fork.weights = readWeights(dir, checkpoint.file);
    fork.mhaPartSeconds = checkpoint.seconds;
  }
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

function trainAndSaveBaseline(o: BenchCtrOptions, dir: string, key: CtrBaselineKey, modelOptions: CtrModelOptions, split: CtrSplit,
  fork: WarmStartFork | null, log: (line: string) => void): VariantRun {
  const budgetSteps = budgetStepsOf(o, split);
  const wanted = new Set(checkpointSteps(budgetSteps));
  const checkpoints: SavedCheckpoint[] = [];
  const run = runVariant(o, 'mha', modelOptions, split, log, (model, step, seconds) => {
    fork?.capture(model, step, seconds);
    if (!wanted.has(step)) return;
    writeModelWeights(dir, `step-${step}`, model);
    checkpoints.push({ step, seconds, file: `step-${step}` });
  });
  writeModelWeights(dir, FINAL_WEIGHTS, run.model);
  writeCtrBaseline(dir, { key, variant: run.variant, budgetSteps, checkpoints, savedAt: new Date().toISOString() });
  log(`[mha] saved the baseline in ${dir} (final weights and ${checkpoints.length} checkpoints)`);
  return run;
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

/**
 * collectivekv by warm start: the mha weights at the fork, converted, then trained from the fork's
 * next batch to the end of the budget at fineTuneRate x the learning rate, with a linear user part
 * (which the conversion needs) and the balance loss off (it pulls the k-means routing toward equal
 * row use; see swapAttention).
 */
function runWarmStart(o: BenchCtrOptions, modelOptions: CtrModelOptions, split: CtrSplit, fork: WarmStartFork, log: (line: string) => void): VariantRun {
  if (fork.weights == null) {
    throw new Error(`bench ctr: the mha run stopped (early stopping) before step ${fork.forkStep}, where --warm-start forks it: use fewer --epochs`);
  }
  const fraction = o.warmStart as number;
  const rate = o.fineTuneRate ?? DEFAULT_FINE_TUNE_RATE_SCALE;
  const learningRate = (o.learningRate ?? 1e-3) * rate;
  const base = BUILDERS[o.model]({ ...modelOptions, attention: 'mha' }) as CtrModelBase;
  const model = BUILDERS[o.model]({ ...modelOptions, attention: 'collectivekv',
    collective: { ...modelOptions.collective, userActivation: 'linear', router: withoutBalanceLoss(modelOptions.collective?.router) } }) as CtrModelBase;
  try {
    base.setWeights(fork.weights);
    const testAuc = (m: CtrModel) => evaluateCtr(m, split.data, split.test).auc;
    const mhaPartAuc = testAuc(base);
    log(`[collectivekv] warm start: the mha run at step ${fork.forkStep} of ${fork.budgetSteps} (test AUC ${mhaPartAuc.toFixed(4)}), converted, `
      + `then ${fork.budgetSteps - fork.forkStep} steps at learning rate ${learningRate}`);
    const start = performance.now();
    const layers = convertCtrModel(base, model, split.data, split.train, { seed: modelOptions.seed });
    const convertSeconds = (performance.now() - start) / 1000;
    const convertedAuc = testAuc(model);
    log(`[collectivekv] converted in ${convertSeconds.toFixed(1)} s: test AUC ${convertedAuc.toFixed(4)} before the fine-tune; `
      + layers.map((l) => `${l.layer} relative inertia K ${l.key?.relativeInertia.toFixed(3) ?? '-'} V ${l.value?.relativeInertia.toFixed(3) ?? '-'}`).join(', '));
    const fit = fitCtr(model, split, { ...fitOptions(o, modelOptions), learningRate, startStep: fork.forkStep,
      onProgress: (line) => log(`[collectivekv] ${line}`) });
    const run = testVariant('collectivekv', model, fit, split, log);
    run.variant.trainSeconds = fork.mhaPartSeconds + convertSeconds + fit.trainSeconds;
    run.variant.warmStart = {
      fraction, fineTuneRate: rate, budgetSteps: fork.budgetSteps, forkStep: fork.forkStep, fineTuneSteps: fork.budgetSteps - fork.forkStep,
      mhaPartSeconds: fork.mhaPartSeconds, convertSeconds, fineTuneSeconds: fit.trainSeconds, mhaPartAuc, convertedAuc, layers,
    };
    return run;
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    base.dispose();
  }
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
  --share k|v|kv       CollectiveKV: which sides are pooled (default kv)
  --user-dim N         CollectiveKV user-specific width (default 1)
  --pool-size N        CollectiveKV pool rows (default 1024)
  --balance-tokens N   CollectiveKV: tokens per call the routing loss averages, sampled (default 2048; 0 = all)
  --router KIND        CollectiveKV router: dense (one router column per pool row; default, the
                       paper's) or nearest-product (the row of a product-quantized pool nearest to a
                       learned projection, trained as a VQ-VAE codebook: 2 sqrt(pool size) distances
                       per token; pool size a square). See docs/routing.md
  --commitment-weight X  CollectiveKV, router nearest-product: weight of the commitment term (default 0.25)
  --quantization-weight X  CollectiveKV, router nearest-product: weight of the whole VQ loss (default 1/64)
  --gate scaled|straight-through  CollectiveKV training gate (default scaled, the paper's)
  --pool-stddev X      CollectiveKV: std of the pools' normal init (default 1, the paper's)
  --swap all|short     swap every attention module (default) or the short-term one only
  --max-minutes N      training budget per variant (default 0: early stopping only)
  --epochs N           maximum epochs (default 10)
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
  --warm-start X       train collectivekv by warm start: fork the mha run at (1 - X) of the --epochs
                       step budget, convert its weights (k-means pools over its own K/V; router
                       dense or nearest-product), fine-tune to the end of the budget
  --fine-tune-rate X   --warm-start: the fine-tune's learning rate as a share of --lr (default ${DEFAULT_FINE_TUNE_RATE_SCALE})
  --baseline-dir DIR   keep the trained mha baseline in DIR (final weights, checkpoints at every 5% of
                       the budget): trained and saved when DIR has none, reused when DIR has one
                       trained with the same data and settings (runs that change only CollectiveKV,
                       e.g. --pool-size or --warm-start in steps of 0.05)
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
  log(JSON.stringify({ popularity: result.popularity, mha: result.mha, collectivekv: result.collectivekv, comparison: result.comparison }, null, 2));
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
        'warm-start', 'fine-tune-rate', 'baseline-dir',
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
  if (c.poolStddev != null) collective.poolStddev = c.poolStddev;
  const minutes = nonNegativeNumber('--max-minutes', v['max-minutes']);
  const warmStart = openUnitFraction('--warm-start', v['warm-start']);
  const fineTuneRate = positiveNumber('--fine-tune-rate', v['fine-tune-rate']);
  if (fineTuneRate != null && warmStart == null) throw new Error('--fine-tune-rate applies with --warm-start only');
  if (warmStart != null && (minutes ?? 0) > 0) throw new Error('--warm-start forks a step budget (--epochs); drop --max-minutes');
  if (v['baseline-dir'] != null && (minutes ?? 0) > 0) throw new Error('--baseline-dir keeps a step budget\'s checkpoints (--epochs); drop --max-minutes');
  return {
    warmStart, fineTuneRate, baselineDir: v['baseline-dir'],
    model, data: v.data, format: v.format == null ? undefined : oneOf('--format', v.format, [...INTERACTION_FORMATS, 'auto'] as const),
    label: v.label == null ? undefined : parseCtrLabel(v.label), json: v.json, collective,
    swap: v.swap == null ? undefined : oneOf('--swap', v.swap, ['all', 'short'] as const), maxMinutes: minutes,
    maxEpochs: training.epochs, maxUsers: int('max-users'), trainPositions: int('train-positions'), negatives: int('negatives'), attentionWidth: int('width'),
    embeddingDim: int('embedding-dim'), numHeads: int('heads'), longLength: int('long-length'), shortLength: int('short-length'), topK: int('top-k'),
    batchSize: training.batchSize, learningRate: training.learningRate, seed: int('seed'),
    timingRounds: v['timing-rounds'] == null ? undefined : integerAtLeast('--timing-rounds', v['timing-rounds'], 0), backend: v.backend == null ? undefined : oneOf('--backend', v.backend, ['wasm', 'cpu'] as const),
  };
}

/** The router without its balance loss (a dense router's balanceWeight 0; nearest-product has none). */
function withoutBalanceLoss(router: RouterSpec | undefined): RouterSpec {
  const r = resolveRouterConfig('bench ctr', router);
  return r.kind === 'dense' ? { ...r, balanceWeight: 0 } : r;
}
