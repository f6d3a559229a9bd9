// A model-agnostic training loop: the caller supplies the batches, one optimizer step and a
// validation function; the loop does the epochs, progress display, validation every N epochs,
// early stopping on one validation metric, best-weights snapshot and restore, optional checkpoint
// files, and a wall-clock bound. Synchronous on purpose: tfjs steps on cpu/wasm are synchronous,
// and callers with synchronous APIs (the zoo's fitSasrec) can use it as is.
import * as tf from '@tensorflow/tfjs-core';
import { ProgressReporter, ProgressMode, ProgressSink, type EpochRecord } from './progress';
import { writeCheckpoint } from './checkpoint';

/** What one optimizer step reports. */
export interface StepOutcome {
  /** The objective the step minimized (read back from the device). */
  loss: number;
  /** Items (e.g. sequences) in the batch, for the items/s display. Default 1. */
  items?: number;
  /** Extra per-step numbers averaged over the epoch (e.g. an auxiliary loss). */
  extras?: Record<string, number>;
}

/** The model-specific parts of training. */
export interface TrainLoopSpec<B> {
  /** The batches of `epoch` (0-based). Must depend only on (seed, epoch) for reproducible runs. */
  batches(epoch: number, seed: number): Iterable<B>;
  /** Batches per epoch, when known (progress percentage and ETA). */
  batchesPerEpoch?: number;
  /** One optimizer step. `seed` differs per step and is fixed by the loop's seed (e.g. for sampling). */
  step(batch: B, seed: number): StepOutcome;
  /** Validation metrics; must contain the loop's `metric`. Called every `validateEvery` epochs. */
  validate(epoch: number): Record<string, number>;
  /** The weights to snapshot (read, not consumed: the loop clones them). */
  getWeights(): tf.Tensor[];
  /** Restores a snapshot (the loop disposes its snapshot afterwards). */
  setWeights(weights: tf.Tensor[]): void;
  /** Names of the weights, for checkpoint files. Default w0, w1, ... */
  weightNames?(): string[];
}

export interface TrainLoopOptions {
  /** Default 20. */
  maxEpochs?: number;
  /** Validations without improvement before stopping. Default 3; 0 disables early stopping. */
  patience?: number;
  /** Validate after every N-th epoch (and after the last one). Default 1. */
  validateEvery?: number;
  /** The validation metric to maximize. Default 'ndcg10'. */
  metric?: string;
  /** Seeds the batch order and the per-step seeds. Default 1. */
  seed?: number;
  /** Wall-clock bound in minutes (0 = none): the running epoch ends early, is validated, and training stops. */
  maxMinutes?: number;
  /** Bound on optimizer steps over the whole run (0 = none), handled like maxMinutes (gives two runs the same step budget). */
  maxSteps?: number;
  /** 'auto' (default): a redrawn bar on a TTY, plain periodic lines otherwise; 'none' is silent. */
  progress?: ProgressMode;
  /** Where progress goes. Default process.stderr (nothing in a browser). */
  output?: ProgressSink;
  /** Seconds between plain progress lines. Default 10. */
  logEverySeconds?: number;
  /** A prefix of progress lines, e.g. the model name. */
  label?: string;
  /** When set, the best weights are also written to this directory (best.json + best.bin) at each improvement. */
  checkpointDir?: string;
  /** Called after each epoch. */
  onEpoch?: (record: EpochRecord) => void;
  /** Called after each optimizer step with the steps run so far (1-based), the seconds since the start and the epoch (1-based). */
  onStep?: (step: number, seconds: number, epoch: number) => void;
  /** Time source in ms (tests). Default performance.now. */
  now?: () => number;
  /**
   * A second phase (the CollectiveKV recipe, src/train/recipe.ts): where the run would stop
   * (patience, maxEpochs or the budget), the loop restores the best weights, calls `enter`,
   * validates the result and trains on with its own best-weights tracking and early stopping, for
   * at most `maxEpochs(first phase's epochs)` more epochs (none when the budget is used up).
   */
  secondPhase?: SecondPhase;
}

export interface SecondPhase {
  /** Epochs the second phase may run, given the epochs of the first. */
  maxEpochs(firstPhaseEpochs: number): number;
  /** Optimizer steps the second phase may run, given the steps of the first (it then stops as by maxSteps). Default: no bound. */
  maxSteps?(firstPhaseSteps: number): number;
  /** The step at which the first phase ends at the latest (mid-epoch if need be), e.g. the baseline's steps. Default: no bound. */
  latestSwitchStep?: number;
  /** Called with the first phase's best weights restored; what it changes is validated before training goes on. */
  enter(): void;
}

/** Where the second phase began. */
export interface PhaseSwitch {
  /** Epochs and optimizer steps of the first phase. */
  epochs: number;
  steps: number;
  /** The first phase's best epoch (1-based) and its validation, whose weights `enter` received. */
  firstPhaseBestEpoch: number;
  firstPhaseBest: Record<string, number> | null;
  /** The validation right after `enter`. */
  afterSwitch: Record<string, number>;
}

export type { EpochRecord } from './progress';

/** 'secondPhaseSteps': the second phase used up its steps (SecondPhase.maxSteps). */
export type StopReason = 'maxEpochs' | 'patience' | 'maxMinutes' | 'maxSteps' | 'secondPhaseSteps';

export interface TrainLoopResult {
  /** Epochs run (a partial last epoch counts). */
  epochs: number;
  /** 1-based epoch whose weights were restored; 0 when no validation ran. */
  bestEpoch: number;
  /** The best validation value of the metric (-Infinity when no validation ran). */
  bestMetric: number;
  /** The validation metrics of the best epoch. */
  bestValidation: Record<string, number> | null;
  stoppedBy: StopReason;
  /** Optimizer steps run. */
  steps: number;
  trainSeconds: number;
  history: EpochRecord[];
  /** With secondPhase: where it began (null when training ended before it). */
  phaseSwitch?: PhaseSwitch | null;
}

const DEFAULTS = { maxEpochs: 20, patience: 3, validateEvery: 1, metric: 'ndcg10', seed: 1, maxMinutes: 0, maxSteps: 0, logEverySeconds: 10 };

/** Trains until maxEpochs, patience or maxMinutes; restores the best validated weights. */
export function trainLoop<B>(spec: TrainLoopSpec<B>, options: TrainLoopOptions = {}): TrainLoopResult {
  const o = resolveOptions(options);
  const now = options.now ?? (() => performance.now());
  const start = now();
  const elapsed = () => (now() - start) / 1000;
  const deadline = o.maxMinutes > 0 ? o.maxMinutes * 60 : Infinity;
  const stepLimit = o.maxSteps > 0 ? o.maxSteps : Infinity;
  let secondPhaseStepLimit = Infinity;
  // The first phase's own step bound: where it switches at the latest (a stop of the first phase, not of the run).
  const switchDue = () => phaseSwitch == null && globalStep >= (options.secondPhase?.latestSwitchStep ?? Infinity);
  // Why the budget is used up, or null while it is not.
  const exhausted = (): StopReason | null => (globalStep >= stepLimit ? 'maxSteps' : globalStep >= secondPhaseStepLimit ? 'secondPhaseSteps'
    : elapsed() >= deadline ? 'maxMinutes' : null);
  const progress = new ProgressReporter({ mode: options.progress ?? 'auto', output: options.output, label: options.label,
    logEverySeconds: o.logEverySeconds, now });
  const history: EpochRecord[] = [];
  const noBest = () => ({ epoch: 0, value: -Infinity, validation: null as Record<string, number> | null, weights: [] as tf.Tensor[] });
  let best = noBest();
  let sinceBest = 0;
  let stoppedBy: StopReason = 'maxEpochs';
  let globalStep = 0;
  let phaseSwitch: PhaseSwitch | null = null;
  let lastEpoch = o.maxEpochs;
  const consider = (epoch: number, validation: Record<string, number>): boolean => {
    const value = metricOf(validation, o.metric);
    if (!(value > best.value)) return false;
    tf.dispose(best.weights);
    best = { epoch, value, validation, weights: spec.getWeights().map((w) => tf.clone(w)) };
    if (o.checkpointDir != null) writeCheckpoint(o.checkpointDir, best.weights, spec.weightNames?.(), { epoch, metric: o.metric, value, validation });
    return true;
  };
  try {
    for (let epoch = 0; epoch < lastEpoch; epoch++) {
      // The previous validation may have used up the time: do not start an epoch with no steps.
      const before = epoch > 0 ? exhausted() : null;
      if (before != null) { stoppedBy = before; break; }
      const run = runEpoch(spec, epoch, o.seed, () => globalStep++, () => exhausted() != null || switchDue(), progress, lastEpoch,
        () => options.onStep?.(globalStep, elapsed(), epoch + 1));
      const outOfBudget = exhausted();
      const last = epoch === lastEpoch - 1 || outOfBudget != null || switchDue();
      let validation: Record<string, number> | null = null;
      let improved = false;
      if ((epoch + 1) % o.validateEvery === 0 || last) {
        validation = spec.validate(epoch);
        improved = consider(epoch + 1, validation);
        sinceBest = improved ? 0 : sinceBest + 1;
      }
      const record: EpochRecord = { epoch: epoch + 1, loss: run.loss, extras: run.extras, validation, best: improved, seconds: elapsed(),
        steps: run.steps, items: run.items, partial: run.partial, ...(options.secondPhase != null ? { phase: phaseSwitch == null ? 1 : 2 } : {}) };
      history.push(record);
      progress.epochDone(record, o.metric);
      options.onEpoch?.(record);
      const stop: StopReason | null = outOfBudget ?? (o.patience > 0 && sinceBest >= o.patience ? 'patience'
        : epoch === lastEpoch - 1 ? 'maxEpochs' : switchDue() ? 'secondPhaseSteps' : null);
      if (stop == null) continue;
      if (options.secondPhase == null || phaseSwitch != null) { stoppedBy = stop; break; }
      // The switch: the first phase's best weights go into the second phase, which is validated at once.
      if (best.weights.length > 0) spec.setWeights(best.weights);
      const first = { epoch: best.epoch, validation: best.validation };
      options.secondPhase.enter();
      tf.dispose(best.weights);
      best = noBest();
      const afterSwitch = spec.validate(epoch);
      consider(epoch + 1, afterSwitch);
      sinceBest = 0;
      phaseSwitch = { epochs: epoch + 1, steps: globalStep, firstPhaseBestEpoch: first.epoch, firstPhaseBest: first.validation, afterSwitch };
      if (outOfBudget != null) { stoppedBy = outOfBudget; break; }
      lastEpoch = epoch + 1 + options.secondPhase.maxEpochs(epoch + 1);
      const phaseSteps = options.secondPhase.maxSteps?.(globalStep);
      if (phaseSteps != null) secondPhaseStepLimit = globalStep + phaseSteps;
      stoppedBy = 'maxEpochs';
    }
    if (best.weights.length > 0) spec.setWeights(best.weights);
  } finally {
    tf.dispose(best.weights);
    progress.close();
  }
  return { epochs: history.length, bestEpoch: best.epoch, bestMetric: best.value, bestValidation: best.validation, stoppedBy, steps: globalStep,
    trainSeconds: elapsed(), history, ...(options.secondPhase != null ? { phaseSwitch } : {}) };
}

function resolveOptions(options: TrainLoopOptions): typeof DEFAULTS & { checkpointDir?: string } {
  const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS & { checkpointDir?: string };
  const positiveInt = (key: 'maxEpochs' | 'validateEvery') => {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new Error(`trainLoop: ${key} must be a positive integer, received ${o[key]}`);
  };
  positiveInt('maxEpochs');
  positiveInt('validateEvery');
  if (!Number.isInteger(o.patience) || o.patience < 0) throw new Error(`trainLoop: patience must be a non-negative integer, received ${o.patience}`);
  if (!Number.isInteger(o.maxSteps) || o.maxSteps < 0) throw new Error(`trainLoop: maxSteps must be a non-negative integer, received ${o.maxSteps}`);
  if (!(o.maxMinutes >= 0)) throw new Error(`trainLoop: maxMinutes must be >= 0, received ${o.maxMinutes}`);
  if (!Number.isFinite(o.seed)) throw new Error(`trainLoop: seed must be a finite number, received ${o.seed}`);
  return o;
}

function metricOf(validation: Record<string, number>, metric: string): number {
  const value = validation[metric];
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new Error(`trainLoop: validate() must return the metric '${metric}', received keys ${JSON.stringify(Object.keys(validation))}`);
  }
  return value;
}

interface EpochRun { loss: number; extras: Record<string, number>; steps: number; items: number; partial: boolean }

function runEpoch<B>(spec: TrainLoopSpec<B>, epoch: number, seed: number, nextStep: () => number, outOfTime: () => boolean,
  progress: ProgressReporter, maxEpochs: number, stepDone: () => void): EpochRun {
  let lossSum = 0;
  let steps = 0;
  let items = 0;
  const extraSums: Record<string, number> = {};
  progress.epochStart(epoch + 1, maxEpochs, spec.batchesPerEpoch);
  for (const batch of spec.batches(epoch, seed)) {
    if (outOfTime()) return summarize(true);
    // Per-step seeds derive from the loop seed and the global step only: a rerun gives the same ones.
    const outcome = spec.step(batch, (seed * 1000003 + nextStep()) >>> 0);
    lossSum += outcome.loss;
    steps += 1;
    items += outcome.items ?? 1;
    for (const [key, value] of Object.entries(outcome.extras ?? {})) extraSums[key] = (extraSums[key] ?? 0) + value;
    progress.step(steps, items, lossSum / steps);
    stepDone();
  }
  return summarize(false);

  function summarize(partial: boolean): EpochRun {
    const extras = Object.fromEntries(Object.entries(extraSums).map(([k, v]) => [k, steps ? v / steps : 0]));
    return { loss: steps ? lossSum / steps : NaN, extras, steps, items, partial };
  }
}
