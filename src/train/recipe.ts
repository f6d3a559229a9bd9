// The CollectiveKV recipe (docs/recipe.md): train with full K/V until validation plateaus, restore
// the best weights, build each pool from the K/V the model produces (switchToPool), fine-tune for
// at most a quarter of the epochs so far, keep the best. Two front ends share one policy: the
// model.fit callback `collectiveKVRecipe` and `recipePhase` for trainLoop's second phase.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Logs } from '@tensorflow/tfjs-layers/dist/logs';
import { ArgumentError } from '../../ops/util/validate';
import { CollectiveKVAttention } from '../../layers/CollectiveKVAttention';
import type { ResolvedRouterConfig } from '../../layers/routing/index';
import { LayerConversionReport, SwitchToPoolOptions, switchToPool } from '../convert/index';
import type { PhaseSwitch, SecondPhase } from './loop';

export interface RecipeOptions {
  /** Validations without improvement that end each phase. Default 3. */
  patience?: number;
  /** The pooled phase runs at most ceil(fineTuneShare x the full phase's epochs) epochs. Default 0.25. */
  fineTuneShare?: number;
  /**
   * Router options set at the switch. Default for the dense router { balanceWeight: 0 }, none for
   * nearest-product (docs/recipe.md says which run chose it).
   */
  routerAfterSwitch?: Partial<ResolvedRouterConfig>;
  /** How the pools are built at the switch (seed, tokens, k-means iterations, gate logit). */
  switchOptions?: SwitchToPoolOptions;
}

/** The recipe's defaults (docs/recipe.md gives the measurement behind each). */
export const RECIPE_DEFAULTS = { patience: 3, fineTuneShare: 0.25, denseRouterAfterSwitch: { balanceWeight: 0 } } as const;

type ResolvedRecipe = Required<Omit<RecipeOptions, 'switchOptions' | 'routerAfterSwitch'>> & Pick<RecipeOptions, 'routerAfterSwitch'> & { switchOptions: SwitchToPoolOptions };

function resolveRecipe(fn: string, options: RecipeOptions): ResolvedRecipe {
  const patience = options.patience ?? RECIPE_DEFAULTS.patience;
  const fineTuneShare = options.fineTuneShare ?? RECIPE_DEFAULTS.fineTuneShare;
  if (!Number.isInteger(patience) || patience < 1) throw new ArgumentError(fn, 'options.patience', 'a positive integer', String(patience));
  if (!(fineTuneShare > 0 && fineTuneShare <= 1)) throw new ArgumentError(fn, 'options.fineTuneShare', 'a number in (0, 1]', String(fineTuneShare));
  return { patience, fineTuneShare, routerAfterSwitch: options.routerAfterSwitch, switchOptions: options.switchOptions ?? {} };
}

/** Every CollectiveKVAttention of a model, nested models included, in model order. */
export function collectiveLayers(model: tfl.LayersModel): CollectiveKVAttention[] {
  return model.layers.flatMap((l) => (l instanceof CollectiveKVAttention ? [l] : l instanceof tfl.LayersModel ? collectiveLayers(l) : []));
}

/** Switches `layers` and applies the router options of the recipe; the switch's reports. */
function switchLayers(layers: readonly CollectiveKVAttention[], runSample: () => void, r: ResolvedRecipe): LayerConversionReport[] {
  const reports = switchToPool(layers, runSample, r.switchOptions);
  for (const layer of layers) {
    const options = r.routerAfterSwitch ?? (layer.router.kind === 'dense' ? RECIPE_DEFAULTS.denseRouterAfterSwitch : {});
    layer.setRouterOptions(options);
  }
  return reports;
}

/** A switch as the benchmarks report it, for validation metric `metric`. */
export interface SwitchSummary {
  /** Epochs and optimizer steps of the full-K/V phase. */
  fullPhaseEpochs: number;
  fullPhaseSteps: number;
  /** The full phase's best epoch and its validation value of the metric (its weights were switched). */
  fullPhaseBestEpoch: number;
  fullPhaseValid: number;
  /** The validation value right after the switch, before the fine-tune. */
  switchedValid: number;
  switchSeconds: number;
  /** Mean k-means relative inertia over the switched sides with a pool (0 = exact). */
  relativeInertia: number;
}

/** The summary of a switch (undefined when training ended before it), from trainLoop's PhaseSwitch and recipePhase's record. */
export function summarizeSwitch(phaseSwitch: PhaseSwitch | null | undefined, record: RecipeSwitchRecord | null | undefined,
  metric: string): SwitchSummary | undefined {
  if (phaseSwitch == null) return undefined;
  const sides = (record?.reports ?? []).flatMap((r) => [r.key, r.value]).filter((s) => s != null && s.poolWidth > 0);
  return {
    fullPhaseEpochs: phaseSwitch.epochs, fullPhaseSteps: phaseSwitch.steps, fullPhaseBestEpoch: phaseSwitch.firstPhaseBestEpoch,
    fullPhaseValid: phaseSwitch.firstPhaseBest?.[metric] ?? NaN, switchedValid: phaseSwitch.afterSwitch[metric],
    switchSeconds: record?.seconds ?? 0,
    relativeInertia: sides.reduce((t, s) => t + (s?.relativeInertia ?? 0), 0) / Math.max(1, sides.length),
  };
}

/** recipePhase's options: the recipe's, and a step bound on the full phase. */
export interface RecipePhaseOptions extends RecipeOptions {
  /**
   * Switch at this optimizer step at the latest, plateau or not: the baseline's steps, so that the
   * full phase never outruns the run it stands for and the total stays within 1 + fineTuneShare of it.
   */
  latestSwitchStep?: number;
}

/** What recipePhase records about its switch. */
export interface RecipeSwitchRecord {
  reports: LayerConversionReport[];
  seconds: number;
}

/**
 * The recipe as trainLoop's secondPhase, for the CollectiveKVAttention layers given (already in
 * their 'full' phase): `runSample` runs a sample of training inputs through the model in inference
 * mode. Give the loop the recipe's patience. `switched` receives the switch's reports.
 */
export function recipePhase(layers: readonly CollectiveKVAttention[], runSample: () => void, options: RecipePhaseOptions = {},
  switched?: (record: RecipeSwitchRecord) => void): SecondPhase {
  const r = resolveRecipe('recipePhase', options);
  const latest = options.latestSwitchStep;
  if (latest != null && !(Number.isInteger(latest) && latest >= 1)) {
    throw new ArgumentError('recipePhase', 'options.latestSwitchStep', 'a positive integer', String(latest));
  }
  return {
    ...(latest != null ? { latestSwitchStep: latest } : {}),
    maxEpochs: (first) => Math.ceil(r.fineTuneShare * first),
    // The budget rule in steps: at most fineTuneShare more than the full phase (which repeats the baseline's run).
    maxSteps: (first) => Math.max(1, Math.floor(r.fineTuneShare * first)),
    enter: () => {
      const start = performance.now();
      const reports = switchLayers(layers, runSample, r);
      switched?.({ reports, seconds: (performance.now() - start) / 1000 });
    },
  };
}

export interface CollectiveKVRecipeOptions extends RecipeOptions {
  /** Model inputs of a sample of training users (one tensor per model input): what the pools are built from. */
  sample: tf.Tensor | tf.Tensor[];
  /** The epoch log value that chooses the switch and the best weights. Default 'val_loss'. */
  monitor?: string;
  /** 'min' or 'max'; default 'max' for a monitor naming an accuracy, AUC, NDCG or hit rate, else 'min'. */
  mode?: 'min' | 'max';
  /** Batch size of the sample's forward pass. Default 64. */
  sampleBatchSize?: number;
  /** Where the recipe reports the switch and the end. Default console.log; null for silence. */
  log?: ((line: string) => void) | null;
}

/**
 * The recipe as a model.fit callback: `model.fit(x, y, { epochs, validationData, callbacks:
 * [collectiveKVRecipe({ sample })] })` on a model with CollectiveKVAttention layers. At the start
 * of fit every such layer enters its 'full' phase; at the monitor's plateau (patience epochs
 * without improvement, or at the latest at epochs / (1 + fineTuneShare)) the best weights are
 * restored and the layers switched to their pools; the fine-tune then stops at its own plateau or
 * after ceil(fineTuneShare x the epochs before the switch), and fit ends with the best pooled
 * weights. It does its own early stopping: do not add an EarlyStopping callback.
 */
export function collectiveKVRecipe(options: CollectiveKVRecipeOptions): CollectiveKVRecipe {
  return new CollectiveKVRecipe(options);
}

export class CollectiveKVRecipe extends tfl.Callback {
  private readonly recipe: ResolvedRecipe;
  private readonly sample: tf.Tensor[];
  private readonly monitor: string;
  private readonly sign: number;
  private readonly sampleBatchSize: number;
  private readonly log: (line: string) => void;
  private layers: CollectiveKVAttention[] = [];
  private best: { epoch: number; value: number; weights: tf.Tensor[] } = { epoch: 0, value: -Infinity, weights: [] };
  private sinceBest = 0;
  private phaseEnd = Infinity;
  /** The epoch (1-based) after which the layers switched; null before. */
  switchedAfterEpoch: number | null = null;
  /** The switch's per-layer reports (empty before it). */
  switchReports: LayerConversionReport[] = [];

  constructor(options: CollectiveKVRecipeOptions) {
    super();
    const fn = 'collectiveKVRecipe';
    if (options == null || options.sample == null) throw new ArgumentError(fn, 'options.sample', 'model inputs of a sample of training users', String(options?.sample));
    this.recipe = resolveRecipe(fn, options);
    this.sample = Array.isArray(options.sample) ? options.sample : [options.sample];
    this.monitor = options.monitor ?? 'val_loss';
    const mode = options.mode ?? (/acc|auc|ndcg|hr|hit|precision|recall/i.test(this.monitor) ? 'max' : 'min');
    if (mode !== 'min' && mode !== 'max') throw new ArgumentError(fn, 'options.mode', "'min' or 'max'", String(mode));
    this.sign = mode === 'max' ? 1 : -1;
    this.sampleBatchSize = options.sampleBatchSize ?? 64;
    if (!Number.isInteger(this.sampleBatchSize) || this.sampleBatchSize < 1) {
      throw new ArgumentError(fn, 'options.sampleBatchSize', 'a positive integer', String(this.sampleBatchSize));
    }
    this.log = options.log === null ? () => {} : (options.log ?? ((line) => console.log(line)));
  }

  private get fitModel(): tfl.LayersModel {
    return this.model as unknown as tfl.LayersModel;
  }

  override async onTrainBegin(): Promise<void> {
    this.layers = collectiveLayers(this.fitModel);
    if (this.layers.length === 0) throw new ArgumentError('collectiveKVRecipe', 'model', 'a model with a CollectiveKVAttention layer', 'none');
    for (const layer of this.layers) layer.setKVPhase('full');
    const epochs = Number(this.params.epochs);
    this.phaseEnd = Number.isFinite(epochs) ? Math.max(1, Math.floor(epochs / (1 + this.recipe.fineTuneShare))) : Infinity;
  }

  override async onEpochEnd(epoch: number, logs?: Logs): Promise<void> {
    const raw = await logValue(logs?.[this.monitor]);
    if (raw == null || Number.isNaN(raw)) {
      throw new ArgumentError('collectiveKVRecipe', 'options.monitor', `a value in the epoch logs (${Object.keys(logs ?? {}).join(', ') || 'none'}; ` +
        "'val_*' needs validationData or validationSplit in fit)", `'${this.monitor}'`);
    }
    const value = this.sign * raw;
    if (value > this.best.value) {
      tf.dispose(this.best.weights);
      this.best = { epoch: epoch + 1, value, weights: this.fitModel.getWeights().map((w) => tf.clone(w)) };
      this.sinceBest = 0;
    } else {
      this.sinceBest += 1;
    }
    const done = this.sinceBest >= this.recipe.patience || epoch + 1 >= this.phaseEnd;
    if (!done) return;
    if (this.switchedAfterEpoch == null) this.switchNow(epoch + 1);
    else this.fitModel.stopTraining = true;
  }

  override async onTrainEnd(): Promise<void> {
    if (this.switchedAfterEpoch == null && this.layers.some((l) => l.kvPhase === 'full')) {
      this.log('collectiveKVRecipe: fit ended before the switch; switching now, without a fine-tune');
      this.switchNow(this.best.epoch);
    }
    if (this.best.weights.length > 0) this.fitModel.setWeights(this.best.weights);
    this.log(`collectiveKVRecipe: best pooled epoch ${this.best.epoch} (${this.monitor} ${(this.sign * this.best.value).toPrecision(5)})`);
    tf.dispose(this.best.weights);
    this.best = { epoch: 0, value: -Infinity, weights: [] };
  }

  /** Restores the best full-phase weights, switches, and starts the fine-tune's own tracking from the switched weights. */
  private switchNow(epochs: number): void {
    if (this.best.weights.length > 0) this.fitModel.setWeights(this.best.weights);
    const from = this.best.epoch;
    this.switchReports = switchLayers(this.layers, () => this.runSample(), this.recipe);
    tf.dispose(this.best.weights);
    this.best = { epoch: epochs, value: -Infinity, weights: this.fitModel.getWeights().map((w) => tf.clone(w)) };
    this.sinceBest = 0;
    this.switchedAfterEpoch = epochs;
    this.phaseEnd = epochs + Math.ceil(this.recipe.fineTuneShare * epochs);
    this.log(`collectiveKVRecipe: switched to the pools after epoch ${epochs} (weights of epoch ${from}); fine-tune until epoch ${this.phaseEnd} at most`);
  }

  private runSample(): void {
    const input = this.sample.length === 1 ? this.sample[0] : this.sample;
    tf.dispose(this.fitModel.predict(input, { batchSize: this.sampleBatchSize }));
  }
}

/** A value of fit's epoch logs: tfjs passes numbers, or scalars not yet read back. */
async function logValue(value: unknown): Promise<number | null> {
  if (typeof value === 'number') return value;
  if (value instanceof tf.Tensor && value.size === 1) return (await value.data())[0];
  return null;
}
