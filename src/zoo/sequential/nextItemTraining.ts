// Training and evaluation shared by the zoo's next-item models (SASRec, BERT4Rec, HSTU): each model
// supplies batches, one optimizer step and next-item scoring; the library's trainLoop does epochs,
// progress, validation, early stopping on NDCG@10 and best-weights restore.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  LeaveOneOutSplit, NextItemCase, PhaseSwitch, ProgressMode, RecipePhaseOptions, RecipeSwitchRecord, SequenceBatch, StopReason, ProgressSink,
  RankingEvaluator, RankingResult, TrainingBatchOptions, batchTensor, collectiveLayers, evaluationBatches, recipePhase, trainLoop,
  trainingBatches, trainingExamples,
} from '../../internal';

/**
 * How the zoo batches training sequences: similar lengths together, each batch cut to its longest
 * row (same outputs at every real item, far less attention work on data with short histories).
 */
export const LENGTH_BUCKETS: TrainingBatchOptions = { bucketByLength: true };

/** The objective of a step: the main loss plus the layers' auxiliary losses. */
export interface TrainStepResult {
  loss: number;
  /** The auxiliary part (0 for MultiHeadAttention). */
  auxLoss: number;
}

/** What the shared fit/evaluate need from a model. */
export interface NextItemTrainable<B> {
  model: tfl.LayersModel;
  /** Window length: evaluation histories keep their last `maxLength` items (models may use fewer). */
  maxLength: number;
  /** History items a model reads when scoring (default maxLength; BERT4Rec's mask slot takes one). */
  historyWindow?: number;
  /** Batches of one epoch from the training sequences, seeded. */
  batches(train: readonly (readonly number[])[], batchSize: number, seed: number, epoch: number): Iterable<B>;
  batchRows(batch: B): number;
  step(optimizer: tf.Optimizer, batch: B, seed: number): TrainStepResult;
  /** Histories [B, maxLength] int32, left-padded -> next-item scores [B, numItems + 1]. */
  scoreNext(ids: tf.Tensor2D): tf.Tensor2D;
}

export interface EvaluateOptions {
  ks?: number[];
  batchSize?: number;
  /**
   * Remove history items from the ranking: true for the whole history, 'window' for the ones the
   * model reads (the published anchors' protocol). Default false.
   */
  filterHistory?: boolean | 'window';
  /** Also return every case's 1-based rank (in the order of `cases`), for paired comparisons. */
  keepRanks?: boolean;
}

/** Full-ranking metrics of next-item cases (history -> target); `ranks` with `keepRanks`. */
export function evaluateNextItem<B>(m: NextItemTrainable<B>, cases: readonly NextItemCase[], options: EvaluateOptions = {}): RankingResult & { ranks?: Int32Array } {
  const filter = options.filterHistory ?? false;
  const evaluator = new RankingEvaluator(options.ks ?? [10],
    { filterHistory: filter !== false, ...(filter === 'window' ? { historyWindow: historyWindowOf(m) } : {}) });
  const ranks = options.keepRanks ? new Int32Array(cases.length) : null;
  let done = 0;
  for (const batch of evaluationBatches(cases, options.batchSize ?? 256, m.maxLength)) {
    const ids = batchTensor(batch.inputs, batch.batchSize, batch.maxLength);
    const scores = m.scoreNext(ids);
    const batchRanks = evaluator.update(scores, batch.targets, batch.histories);
    ranks?.set(batchRanks, done);
    done += batchRanks.length;
    tf.dispose([ids, scores]);
  }
  return ranks == null ? evaluator.result() : { ...evaluator.result(), ranks };
}

/** History items `m` reads when scoring: its historyWindow, else its maxLength. */
export function historyWindowOf<B>(m: NextItemTrainable<B>): number {
  return m.historyWindow ?? m.maxLength;
}

export interface NextItemFitOptions {
  maxEpochs?: number;
  /** Validations without a better NDCG@10 before stopping. */
  patience?: number;
  batchSize?: number;
  learningRate?: number;
  seed?: number;
  /** Wall-clock bound in seconds (0 = none); a safety net: the result says when it cut training. */
  timeBudgetSeconds?: number;
  /** Optimizer steps bound (0 = none): gives a second run the same step budget as a first one. */
  maxSteps?: number;
  /** Validate every N epochs. Default 1. */
  validateEvery?: number;
  /** Validation users (the first N cases; 0 = all). Evaluation time matters on large data sets. */
  validationUsers?: number;
  progress?: ProgressMode;
  output?: ProgressSink;
  /** Seconds between plain progress lines (non-TTY). Default 10. */
  logEverySeconds?: number;
  label?: string;
  checkpointDir?: string;
  onEpoch?: (report: EpochReport) => void;
  /** Called after each optimizer step with the steps so far, the seconds since the start and the epoch (1-based). */
  onStep?: (step: number, seconds: number, epoch: number) => void;
  /**
   * The recipe's options (docs/recipe.md), used when the model's CollectiveKV layers start in their
   * 'full' phase (the zoo's default): the switch's patience is `patience`, its sample seeded users'
   * training prefixes.
   */
  recipe?: Omit<RecipePhaseOptions, 'patience'>;
}

export interface EpochReport {
  epoch: number;
  loss: number;
  auxLoss: number;
  /** NaN on epochs that were not validated. */
  validationNdcg10: number;
  validationHr10: number;
  seconds: number;
  best: boolean;
}

export interface FitResult {
  epochs: number;
  bestEpoch: number;
  bestValidationNdcg10: number;
  trainSeconds: number;
  history: EpochReport[];
  /** Why training stopped; 'maxMinutes' means the time bound cut it. */
  stoppedBy?: StopReason;
  /** Optimizer steps run. */
  steps?: number;
  /** With the recipe: where the layers switched to their pools, and the switch's reports (null when training ended before). */
  recipe?: { phaseSwitch: PhaseSwitch | null; switch: RecipeSwitchRecord | null };
}

/** Adam, validation NDCG@10 every N epochs, early stopping with patience, best-weights restore. */
export function fitNextItem<B>(m: NextItemTrainable<B>, split: LeaveOneOutSplit, options: NextItemFitOptions = {}): FitResult {
  const o = { maxEpochs: 20, patience: 3, batchSize: 128, learningRate: 1e-3, seed: 1, timeBudgetSeconds: 0, validationUsers: 0,
    ...definedOnly(options) };
  const optimizer = tf.train.adam(o.learningRate);
  const validation = o.validationUsers > 0 ? split.validation.slice(0, o.validationUsers) : split.validation;
  const batchesPerEpoch = countBatches(m, split.train, o.batchSize, o.seed);
  const warming = collectiveLayers(m.model).filter((l) => l.kvPhase === 'full');
  let switched: RecipeSwitchRecord | null = null;
  const secondPhase = warming.length === 0 ? undefined
    : recipePhase(warming, () => runRecipeSample(m, split, o.seed, Math.max(...warming.map((l) => l.poolSize))),
      { ...o.recipe, patience: Math.max(1, o.patience) }, (r) => { switched = r; });
  try {
    const result = trainLoop<B>({
      batches: (epoch, seed) => m.batches(split.train, o.batchSize, seed, epoch),
      batchesPerEpoch,
      step: (batch, seed) => {
        const r = m.step(optimizer, batch, seed);
        const extras: Record<string, number> = r.auxLoss ? { aux: r.auxLoss } : {};
        return { loss: r.loss, items: m.batchRows(batch), extras };
      },
      validate: () => {
        const r = evaluateNextItem(m, validation, { ks: [10] });
        return { ndcg10: r.ndcg[10], hr10: r.hr[10] };
      },
      getWeights: () => m.model.getWeights(),
      setWeights: (w) => m.model.setWeights(w),
      weightNames: () => m.model.weights.map((w) => w.name),
    }, {
      maxEpochs: o.maxEpochs, patience: o.patience, validateEvery: o.validateEvery, metric: 'ndcg10', seed: o.seed,
      maxMinutes: o.timeBudgetSeconds / 60, maxSteps: o.maxSteps, progress: o.progress ?? (o.output == null ? 'none' : 'auto'), output: o.output, label: o.label, logEverySeconds: o.logEverySeconds,
      checkpointDir: o.checkpointDir,
      onEpoch: (r) => o.onEpoch?.(toReport(r)),
      onStep: o.onStep,
      secondPhase,
    });
    return { epochs: result.epochs, bestEpoch: result.bestEpoch, bestValidationNdcg10: result.bestMetric, trainSeconds: result.trainSeconds,
      history: result.history.map(toReport), stoppedBy: result.stoppedBy, steps: result.steps,
      ...(secondPhase != null ? { recipe: { phaseSwitch: result.phaseSwitch ?? null, switch: switched } } : {}) };
  } finally {
    optimizer.dispose();
  }
}

function toReport(r: import('../../index').EpochRecord): EpochReport {
  return { epoch: r.epoch, loss: r.loss, auxLoss: r.extras.aux ?? 0, validationNdcg10: r.validation?.ndcg10 ?? NaN,
    validationHr10: r.validation?.hr10 ?? NaN, seconds: r.seconds, best: r.best };
}

/** The recipe's sample: seeded users' training prefixes (conversionSample), scored in inference mode in chunks. */
function runRecipeSample<B>(m: NextItemTrainable<B>, split: LeaveOneOutSplit, seed: number, poolSize: number): void {
  const ids = conversionSample(split, RECIPE_SAMPLE_USERS, m.maxLength, seed, 4 * Math.max(8192, 8 * poolSize));
  try {
    const rows = ids.shape[0];
    for (let start = 0; start < rows; start += RECIPE_SAMPLE_CHUNK) {
      tf.tidy(() => { m.scoreNext(tf.slice(ids, [start, 0], [Math.min(RECIPE_SAMPLE_CHUNK, rows - start), -1])); });
    }
  } finally {
    ids.dispose();
  }
}

const RECIPE_SAMPLE_USERS = 512;
const RECIPE_SAMPLE_CHUNK = 128;

/**
 * Padded training prefixes of seeded users, the sample pools are built from: `users` of them, or
 * more when that many hold fewer than `minTokens` valid tokens (short histories, as on Beauty), up to all.
 */
export function conversionSample(split: LeaveOneOutSplit, users: number, maxLength: number, seed: number, minTokens: number): tf.Tensor2D {
  const examples = trainingExamples(split.train, maxLength);
  const meanLength = examples.reduce((s, e) => s + (e.length ?? maxLength), 0) / Math.max(1, examples.length);
  const rows = Math.min(examples.length, Math.max(users, Math.ceil(minTokens / Math.max(1, meanLength))));
  const batch = trainingBatches(examples, rows, seed).next().value as SequenceBatch;
  return batchTensor(batch.inputs, batch.batchSize, batch.maxLength);
}

function countBatches<B>(m: NextItemTrainable<B>, train: readonly (readonly number[])[], batchSize: number, seed: number): number {
  let n = 0;
  for (const _ of m.batches(train, batchSize, seed, 0)) n += 1;
  return n;
}

export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
