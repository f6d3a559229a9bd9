// Training and evaluation of the zoo's CTR models: the step (BCE on logits plus the CollectiveKV
// layers' auxiliary losses, Adam) on the library's trainLoop (early stopping on validation AUC, a
// time budget, seeded batch order, the recipe's switch for layers that start with full K/V), and
// the CTR metrics of a sample list. Reusable by any `CtrModel`.
import * as tf from '@tensorflow/tfjs-core';
import {
  CollectiveKVAttention, CtrBatch, CtrEventLog, CtrMetrics, CtrSample, CtrSplit, PhaseSwitch, RecipeOptions, RecipeSwitchRecord, SecondPhase, StepOutcome,
  StopReason, TrainLoopResult, TrainLoopSpec, ctrBatch, ctrBatches, ctrMetrics, formatDuration, recipePhase, trainLoop,
} from '../../internal';
import { definedOnly } from '../sequential/nextItemTraining';
import { CtrInputs, CtrModel, disposeInputs, toInputs } from './common';

export interface CtrStepResult {
  /** The minimized objective: mean BCE plus the auxiliary losses. */
  loss: number;
  auxLoss: number;
}

/** Mean binary cross-entropy of logits [B] against 0/1 labels [B]: softplus(z) - y z (stable). */
export function bceWithLogits(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.sub(tf.softplus(logits), tf.mul(labels, logits))) as tf.Scalar);
}

/** One Adam step on a prepared batch (`model.prepare(inputs)` already run). */
export function trainCtrStep(model: CtrModel, optimizer: tf.Optimizer, inputs: CtrInputs, labels: tf.Tensor1D): CtrStepResult {
  let aux: tf.Scalar | null = null;
  const total = optimizer.minimize(() => {
    const main = bceWithLogits(model.logits(inputs, true), labels);
    const auxiliary = model.auxiliaryLoss();
    aux = tf.keep(tf.clone(auxiliary));
    return tf.add(main, auxiliary) as tf.Scalar;
  }, true, model.trainableVariables()) as tf.Scalar;
  const result = { loss: total.dataSync()[0], auxLoss: (aux as tf.Scalar | null)?.dataSync()[0] ?? 0 };
  tf.dispose([total, ...(aux ? [aux] : [])]);
  return result;
}

/** Click probabilities of `samples`, in order. */
export function predictCtr(model: CtrModel, data: CtrEventLog, samples: readonly CtrSample[], batchSize = 256): Float32Array {
  const out = new Float32Array(samples.length);
  let k = 0;
  for (const batch of ctrBatches(data, samples, batchSize, { historyLength: model.historyLength, shuffle: false })) {
    const inputs = toInputs(batch);
    model.prepare(inputs);
    const p = tf.tidy(() => tf.sigmoid(model.logits(inputs, false)));
    out.set(p.dataSync(), k);
    k += batch.batchSize;
    tf.dispose(p);
    disposeInputs(inputs);
  }
  return out;
}

/** AUC, gAUC and logloss of the model on `samples`. */
export function evaluateCtr(model: CtrModel, data: CtrEventLog, samples: readonly CtrSample[], batchSize = 256): CtrMetrics {
  const p = predictCtr(model, data, samples, batchSize);
  return ctrMetrics(p, samples.map((s) => s.label), samples.map((s) => s.user));
}

export interface CtrFitOptions {
  /** Passes over the training samples. Default 10. */
  maxEpochs?: number;
  /** Epochs without a better validation AUC before stopping. Default 2. */
  patience?: number;
  batchSize?: number;
  learningRate?: number;
  seed?: number;
  /** Training time budget in seconds (checked after every step; the epoch in progress then ends early). 0 = none. */
  maxSeconds?: number;
  /** Validation samples scored per epoch (the first N of the list); default all. */
  maxValidationSamples?: number;
  /** Called with a progress line now and then, and after each epoch. */
  onProgress?: (line: string) => void;
  /** Seconds between progress lines inside an epoch. Default 15. */
  progressEverySeconds?: number;
  /** Bound on optimizer steps over the whole run, the recipe's included (0 = none): gives a second run a first one's steps. */
  maxSteps?: number;
  /** Called after every optimizer step with the run's step count so far and its training seconds so far. */
  onStep?: (step: number, trainSeconds: number) => void;
  /**
   * The recipe's options (docs/recipe.md), used when the model's CollectiveKV layers start in their
   * 'full' phase: the switch comes at the validation AUC's plateau (`patience`), its sample seeded
   * training samples.
   */
  recipe?: Omit<RecipeOptions, 'patience'>;
}

export interface CtrEpochReport {
  epoch: number;
  loss: number;
  auxLoss: number;
  validationAuc: number;
  /** Seconds of training so far (steps only, validation excluded). */
  trainSeconds: number;
  best: boolean;
  /** With the recipe: 1 for the full-K/V phase, 2 after the switch. */
  phase?: number;
}

export interface CtrFitResult {
  /** Epochs run; fractional when the budget ended an epoch early. */
  epochs: number;
  bestEpoch: number;
  bestValidationAuc: number;
  /** Seconds spent in training steps (batch building, retrieval and optimizer steps). */
  trainSeconds: number;
  samplesPerSecond: number;
  history: CtrEpochReport[];
  /** Optimizer steps run. */
  steps: number;
  /** Why training stopped; 'maxMinutes' means the time budget cut it. */
  stoppedBy: StopReason;
  /** With the recipe: where the layers switched to their pools, and the switch's reports (null when training ended before). */
  recipe?: { phaseSwitch: PhaseSwitch | null; switch: RecipeSwitchRecord | null };
}

/**
 * Trains with Adam, validates AUC after each epoch, stops after `patience` epochs without a better
 * validation AUC or when the budget runs out, and restores the best epoch's weights. Runs on the
 * library's trainLoop, whose clock is the training time here (batch building, retrieval and
 * optimizer steps; validation excluded), so that `maxSeconds` bounds the training alone.
 *
 * A model whose CollectiveKV layers start in their 'full' phase trains by the recipe
 * (docs/recipe.md): at the plateau (or maxEpochs) the best weights are restored, the layers switch
 * to pools built from the K/V they produce on a seeded sample of training samples, and training
 * goes on for at most ceil(0.25 x the epochs so far), keeping the best. A budget (maxSeconds,
 * maxSteps) used up before the plateau switches the layers without a fine-tune.
 */
export function fitCtr(model: CtrModel, split: CtrSplit, options: CtrFitOptions = {}): CtrFitResult {
  const o = { maxEpochs: 10, patience: 2, batchSize: 256, learningRate: 1e-3, seed: 1, maxSeconds: 0, maxSteps: 0, progressEverySeconds: 15,
    maxValidationSamples: Number.POSITIVE_INFINITY, ...definedOnly(options) };
  const perEpoch = ctrStepsPerEpoch(split.train.length, o.batchSize);
  const validation = split.validation.slice(0, o.maxValidationSamples);
  const total = split.train.length;
  const optimizer = tf.train.adam(o.learningRate);
  const history: CtrEpochReport[] = [];
  // seconds: training time so far; atLastStep: that time as of the last optimizer step, which is the
  // loop's clock, so that the budget ends the run after the step that used it up (the first step always runs).
  const clock = { seconds: 0, atLastStep: 0, samples: 0, lastLine: 0, steps: 0 };
  // The epoch in progress (0-based) and the samples it has covered.
  const current = { epoch: 0, seen: 0, lossSum: 0, steps: 0 };
  let lastAuc = NaN;
  const warming = model.attentionLayers().filter((l): l is CollectiveKVAttention => l instanceof CollectiveKVAttention && l.kvPhase === 'full');
  let switched: RecipeSwitchRecord | null = null;
  // The epochs the run may take (for the ETA): maxEpochs, or after the switch its end.
  let plannedEpochs = o.maxEpochs;
  const secondPhase: SecondPhase | undefined = warming.length === 0 ? undefined
    : recipePhase(warming, () => runRecipeSample(model, split, o.seed, Math.max(...warming.map((l) => l.poolSize)), o.batchSize),
      { ...o.recipe, patience: Math.max(1, o.patience) }, (r) => {
        switched = r;
        plannedEpochs = current.epoch + 1 + (secondPhase as SecondPhase).maxEpochs(current.epoch + 1);
        o.onProgress?.(`${model.name}: best full-K/V weights restored and switched to the pools in ${r.seconds.toFixed(1)} s`);
      });
  let snapshot: tf.Tensor[] = [];
  const timed = <T>(f: () => T): T => {
    const start = performance.now();
    try {
      return f();
    } finally {
      clock.seconds += (performance.now() - start) / 1000;
    }
  };
  const outOfTime = () => o.maxSeconds > 0 && clock.seconds >= o.maxSeconds;
  const spec: TrainLoopSpec<CtrBatch> = {
    batchesPerEpoch: perEpoch,
    *batches(epoch: number) {
      Object.assign(current, { epoch, seen: 0, lossSum: 0, steps: 0 });
      const batches = ctrBatches(split.data, split.train, o.batchSize, { historyLength: model.historyLength, seed: o.seed, epoch });
      while (!outOfTime()) {
        const next = timed(() => batches.next());
        if (next.done) return;
        yield next.value;
      }
    },
    step(batch: CtrBatch): StepOutcome {
      const step = timed(() => {
        const inputs = toInputs(batch);
        const labels = tf.tensor1d(batch.labels, 'float32');
        model.prepare(inputs);
        const result = trainCtrStep(model, optimizer, inputs, labels);
        disposeInputs(inputs);
        labels.dispose();
        return result;
      });
      clock.atLastStep = clock.seconds;
      clock.samples += batch.batchSize;
      clock.steps++;
      current.seen += batch.batchSize;
      current.lossSum += step.loss;
      current.steps++;
      o.onStep?.(clock.steps, clock.seconds);
      if (o.onProgress && clock.seconds - clock.lastLine >= o.progressEverySeconds) {
        clock.lastLine = clock.seconds;
        const rate = clock.samples / clock.seconds;
        // Training time only (validation excluded); early stopping, a time budget or the recipe's switch can change it.
        const epochLeft = (total - current.seen) / rate;
        const runLeft = epochLeft + Math.max(0, plannedEpochs - current.epoch - 1) * (total / rate);
        o.onProgress(`${model.name} epoch ${current.epoch + 1}: ${current.seen}/${total} samples, loss ${(current.lossSum / current.steps).toFixed(4)}, `
          + `${rate.toFixed(0)} samples/s, ETA epoch ${formatDuration(epochLeft)}, run ${formatDuration(runLeft)}`);
      }
      return { loss: step.loss, items: batch.batchSize, extras: { auxLoss: step.auxLoss } };
    },
    validate() {
      const metrics = evaluateCtr(model, split.data, validation);
      lastAuc = metrics.auc;
      // An undefined AUC (one class only) never counts as an improvement.
      return { auc: Number.isNaN(lastAuc) ? -Infinity : lastAuc, gauc: metrics.gauc };
    },
    getWeights() {
      // CtrModel.getWeights returns copies; the loop clones what it is given, so the previous copies go.
      tf.dispose(snapshot);
      snapshot = model.getWeights();
      return snapshot;
    },
    setWeights(weights: tf.Tensor[]) {
      model.setWeights(weights);
    },
  };
  let result: TrainLoopResult;
  try {
    result = trainLoop(spec, {
      maxEpochs: o.maxEpochs, patience: o.patience, metric: 'auc', seed: o.seed, maxMinutes: o.maxSeconds / 60, maxSteps: o.maxSteps,
      progress: 'none', now: () => clock.atLastStep * 1000, secondPhase,
      onEpoch: (record) => {
        const fraction = total ? current.seen / total : 1;
        const report: CtrEpochReport = { epoch: current.epoch + fraction, loss: record.loss, auxLoss: record.extras?.auxLoss ?? 0, validationAuc: lastAuc,
          trainSeconds: clock.seconds, best: record.best, ...(record.phase != null ? { phase: record.phase } : {}) };
        history.push(report);
        o.onProgress?.(`${model.name} epoch ${report.epoch.toFixed(2)}${record.phase === 2 ? ' (pooled)' : ''}: loss ${report.loss.toFixed(4)} `
          + `(aux ${report.auxLoss.toFixed(4)}), validation AUC ${lastAuc.toFixed(4)}${record.best ? ' *' : ''}, `
          + `${(clock.samples / Math.max(clock.seconds, 1e-9)).toFixed(0)} samples/s`);
      },
    });
  } finally {
    tf.dispose(snapshot);
    optimizer.dispose();
  }
  const last = history[history.length - 1];
  // The loop's best epoch is 1-based over its epochs (right after the switch: the last full-phase one); ours may end in a fraction.
  const bestEpoch = result.bestEpoch > 0 ? (history[result.bestEpoch - 1]?.epoch ?? result.bestEpoch) : 0;
  return { epochs: last?.epoch ?? 0, bestEpoch, bestValidationAuc: result.bestEpoch > 0 ? result.bestMetric : NaN, trainSeconds: clock.seconds,
    samplesPerSecond: clock.samples / Math.max(clock.seconds, 1e-9), history, steps: result.steps, stoppedBy: result.stoppedBy,
    ...(secondPhase != null ? { recipe: { phaseSwitch: result.phaseSwitch ?? null, switch: switched } } : {}) };
}

/**
 * The recipe's sample: training samples in a seeded order, run through the model in inference mode
 * until they hold about 4 x max(8192, 8 x poolSize) valid history tokens (what switchToPool records,
 * from which it draws its k-means sample), or all of them on smaller data. Tokens are counted in the
 * last min(shortLength, topK) slots, the fewest any of the zoo's attention modules sees.
 */
function runRecipeSample(model: CtrModel, split: CtrSplit, seed: number, poolSize: number, batchSize: number): void {
  const wanted = 4 * Math.max(8192, 8 * poolSize);
  const window = Math.min(model.options.shortLength, model.options.topK, model.historyLength);
  let tokens = 0;
  for (const batch of ctrBatches(split.data, split.train, batchSize, { historyLength: model.historyLength, seed: seed ^ RECIPE_SAMPLE_SALT, epoch: 0 })) {
    if (tokens >= wanted) break;
    const inputs = toInputs(batch);
    model.prepare(inputs);
    tf.dispose(model.logits(inputs, false));
    disposeInputs(inputs);
    const L = batch.historyLength;
    for (let b = 0; b < batch.batchSize; b++) {
      for (let t = L - window; t < L; t++) if (batch.items[b * L + t] !== 0) tokens += 1;
    }
  }
}

/** Makes the sample's order differ from the first epoch's batch order of the same seed. */
const RECIPE_SAMPLE_SALT = 0x2c1b3c6d;


/** Optimizer steps of one epoch over `samples` training samples (the last batch may be short). */
export function ctrStepsPerEpoch(samples: number, batchSize: number): number {
  return Math.max(1, Math.ceil(samples / batchSize));
}

export interface InterleavedStepTimes {
  batchSize: number;
  /** Timed rounds (after one untimed warm-up round). */
  rounds: number;
  /** Median milliseconds of one training step as the training loop runs it (batch building included), per model, in the order given. */
  medianMs: number[];
}

/**
 * Training-step time of several models measured side by side: every round runs one step of each
 * model on the same samples, one after the other, so a change of the machine's load between the
 * models' training runs does not bias their ratio. A step is what the training loop times: building
 * the batch and its tensors, the retrieval stage (`prepare`) and the Adam step. Each model gets its
 * own fresh Adam (the steps change its weights: run this after evaluating them).
 */
export function interleavedStepTimes(models: readonly CtrModel[], data: CtrEventLog, samples: readonly CtrSample[],
  options: { batchSize: number; rounds: number; learningRate?: number }): InterleavedStepTimes {
  const { batchSize, rounds } = options;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`interleavedStepTimes: rounds must be a positive integer, received ${rounds}`);
  if (samples.length < (rounds + 1) * batchSize) {
    throw new Error(`interleavedStepTimes: ${samples.length} samples give fewer than ${rounds + 1} batches of ${batchSize}`);
  }
  const optimizers = models.map(() => tf.train.adam(options.learningRate ?? 1e-3));
  const times = models.map(() => [] as number[]);
  try {
    for (let round = 0; round <= rounds; round++) {
      const slice = samples.slice(round * batchSize, (round + 1) * batchSize);
      models.forEach((model, i) => {
        const start = performance.now();
        const batch = ctrBatch(data, slice, { historyLength: model.historyLength });
        const inputs = toInputs(batch);
        const labels = tf.tensor1d(batch.labels, 'float32');
        model.prepare(inputs);
        trainCtrStep(model, optimizers[i], inputs, labels);
        disposeInputs(inputs);
        labels.dispose();
        if (round > 0) times[i].push(performance.now() - start);
      });
    }
  } finally {
    optimizers.forEach((o) => o.dispose());
  }
  const median = (v: number[]) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];
  return { batchSize, rounds, medianMs: times.map(median) };
}
