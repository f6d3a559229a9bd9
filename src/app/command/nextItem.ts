// What the next-item commands share (`train`, `eval` in src/app/cli and `bench quality`,
// `bench convert` in src/app/bench): their arguments, the data file and split, the zoo model's and
// the fit's options from the flags, the test metrics and the JSON output.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import {
  GateMode, INTERACTION_FORMATS, InteractionFormat, LeaveOneOutSplit, NextItemCase, ProgressSink, RouterKind,
  leaveOneOut, readSequences, routerFromFlatOptions, summarizeSwitch,
} from '../../internal';
import { ZooModel, ZooModelName, ZooModelOptions, checkModelName } from '../../zoo/sequential/nextItem';
import { FitResult, NextItemFitOptions, evaluateNextItem, historyWindowOf } from '../../zoo/sequential/nextItemTraining';
import { SASREC_LOSSES, SasrecLoss } from '../../zoo/sequential/sasrecTraining';
import { UsageError } from './flags';

export { UsageError } from './flags';

export interface NextItemArgs {
  model?: string;
  attention?: string;
  data?: string;
  format?: string;
  out?: string;
  modelDir?: string;
  json?: string;
  maxMinutes?: number;
  epochs?: number;
  patience?: number;
  batchSize?: number;
  learningRate?: number;
  maxLength?: number;
  hiddenDim?: number;
  blocks?: number;
  heads?: number;
  dropout?: number;
  poolSize?: number;
  userDim?: number;
  /** CollectiveKV gate in training (dense router): 'scaled' (default) or 'straight-through'. */
  gate?: GateMode;
  /** CollectiveKV router: 'dense' (default) or 'nearest-product'. */
  router?: RouterKind;
  /** Weight of the nearest-product router's VQ loss (default DEFAULT_QUANTIZATION_WEIGHT); refused with the dense router. */
  quantizationWeight?: number;
  loss?: string;
  seed?: number;
  validateEvery?: number;
  validationUsers?: number;
  /**
   * Test metrics: drop each user's history items from the ranking: true for the whole history,
   * 'window' for the items in the model's input window (default false: they stay in).
   */
  filterHistory?: boolean | 'window';
  /** train: stop after this many optimizer steps (a step budget that does not depend on the machine's load). */
  maxSteps?: number;
  /**
   * How collectivekv trains: 'recipe' (default: full K/V to the validation plateau, switch to the
   * pools, a short fine-tune; docs/recipe.md) or 'single-stage' (the paper's: pools from the start).
   */
  training?: string;
  /**
   * bench quality --arm collectivekv: the recipe's latest switch step (the baseline's steps, read
   * from its run); with both arms bench quality takes it from the baseline itself.
   */
  switchByStep?: number;
  /** bench quality: run only this arm ('mha' or 'collectivekv'; default both), e.g. one per core; the JSON keeps the test ranks for pairing. */
  arm?: string;
  log: (line: string) => void;
  /** Progress display (stderr by default). */
  progress?: ProgressSink;
}

export interface TestMetrics {
  hr10: number;
  ndcg10: number;
  mrr10: number;
  users: number;
  /** Whether each user's history items were removed from the ranking (reported with the figures). */
  filterHistory: boolean;
  /** Present when only the last historyWindow items of each history (the model's input) were removed. */
  historyWindow?: number;
}

/** Reads and splits the data file; errors name the file, the format expected and what was found. */
export async function loadSplit(path: string | undefined, format: string | undefined): Promise<LeaveOneOutSplit> {
  if (path == null) throw new UsageError('--data PATH is required (an interaction file)');
  if (format == null) throw new UsageError(`--format is required: one of ${INTERACTION_FORMATS.join(', ')}`);
  if (!(INTERACTION_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`unknown format '${format}': expected one of ${INTERACTION_FORMATS.join(', ')}`);
  }
  if (!existsSync(path)) throw new UsageError(`--data: file not found: ${path}`);
  if (!statSync(path).isFile()) throw new UsageError(`--data: not a regular file: ${path}`);
  const data = await readSequences(path, { format: format as InteractionFormat });
  const split = leaveOneOut(data);
  if (split.validation.length === 0) throw new UsageError(`--data ${path}: no user has 3 or more events, nothing to validate or test on`);
  return split;
}

export function modelName(name: string | undefined): ZooModelName {
  if (name == null) throw new UsageError("--model is required: one of sasrec, bert4rec, hstu");
  try {
    return checkModelName(name);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function lossKind(value: string | undefined): SasrecLoss {
  const l = value ?? 'softmax';
  if (!(SASREC_LOSSES as readonly string[]).includes(l)) throw new UsageError(`unknown loss '${l}': expected one of ${SASREC_LOSSES.join(', ')}`);
  return l as SasrecLoss;
}

export const TRAINING_KINDS = ['recipe', 'single-stage'] as const;
export type TrainingKind = (typeof TRAINING_KINDS)[number];

export function trainingKind(value: string | undefined): TrainingKind {
  const t = value ?? 'recipe';
  if (!(TRAINING_KINDS as readonly string[]).includes(t)) throw new UsageError(`--training must be one of ${TRAINING_KINDS.join(', ')}, received '${t}'`);
  return t as TrainingKind;
}

/**
 * Default pool rows: 4096 with the recipe (a pool built by k-means keeps more of the trained K/V;
 * docs/recipe.md gives the runs), 1024 single-stage (the paper's).
 */
export function defaultPoolSize(training: TrainingKind): number {
  return training === 'recipe' ? 4096 : 1024;
}

export function modelOptions(a: NextItemArgs, numItems: number, attention: 'mha' | 'collectivekv'): ZooModelOptions {
  if (a.quantizationWeight != null && a.router !== 'nearest-product') {
    throw new UsageError(`--quantization-weight applies to --router nearest-product, received router '${a.router ?? 'dense'}'`);
  }
  const training = trainingKind(a.training);
  return {
    numItems, attention, maxLength: a.maxLength ?? 50, hiddenDim: a.hiddenDim ?? 64, numBlocks: a.blocks ?? 2, numHeads: a.heads ?? 1,
    dropout: a.dropout ?? 0.2, seed: a.seed ?? 1, collective: { poolSize: a.poolSize ?? defaultPoolSize(training), userDim: a.userDim ?? 1,
      // Every router option written out, defaults included, so a saved model or a JSON result says what it ran with.
      router: routerFromFlatOptions({ router: a.router, gate: a.gate, quantizationWeight: a.quantizationWeight }, 'collectivekv'),
      ...(attention === 'collectivekv' && training === 'recipe' ? { kvPhase: 'full' as const } : {}) },
  };
}

export function fitOptions(a: NextItemArgs, label: string): NextItemFitOptions {
  return {
    maxEpochs: a.epochs ?? 20, patience: a.patience ?? 3, batchSize: a.batchSize ?? 128, learningRate: a.learningRate ?? 1e-3,
    seed: a.seed ?? 1, validateEvery: a.validateEvery ?? 1, validationUsers: a.validationUsers ?? 0, label,
    output: a.progress ?? process.stderr, progress: 'auto',
  };
}

export function testMetrics(m: ZooModel, cases: readonly NextItemCase[], filterHistory: boolean | 'window' = false): TestMetrics & { ranks: Int32Array } {
  const r = evaluateNextItem(m, cases, { ks: [10], filterHistory, keepRanks: true });
  const window = filterHistory === 'window' ? { historyWindow: historyWindowOf(m) } : {};
  return { hr10: r.hr[10], ndcg10: r.ndcg[10], mrr10: r.mrr[10], users: r.count, filterHistory: filterHistory !== false, ...window, ranks: r.ranks as Int32Array };
}

/** The test metrics under both protocols the results report: history items kept in the ranking, and the input window's filtered. */
export function testProtocols(m: ZooModel, cases: readonly NextItemCase[]): { unfiltered: TestMetrics & { ranks: Int32Array }; window: TestMetrics & { ranks: Int32Array } } {
  return { unfiltered: testMetrics(m, cases, false), window: testMetrics(m, cases, 'window') };
}

/** Without the per-case ranks (what JSON results hold). */
export function withoutRanks<T extends { ranks?: Int32Array }>(t: T): Omit<T, 'ranks'> {
  const { ranks: _ranks, ...rest } = t;
  return rest;
}

export function writeJson(path: string | undefined, value: unknown, log: (line: string) => void): void {
  if (path == null) return;
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
  log(`wrote ${path}`);
}

export const f4 = (x: number) => x.toFixed(4);

/** Says which history items were filtered from the ranking, if any, for the printed result lines. */
export function filterNote(test: TestMetrics): string {
  if (!test.filterHistory) return '';
  return test.historyWindow == null ? ' (history items filtered from the ranking)'
    : ` (the last ${test.historyWindow} history items, the model's input, filtered from the ranking)`;
}

/** A directory written by `train --out`, or a UsageError that says what was expected. */
export function requireModelDir(dir: string): void {
  if (!existsSync(`${dir}/options.json`)) throw new UsageError(`--model-dir: ${dir}/options.json not found (expected a directory written by \`collectivekv train --out\`)`);
}

export interface RecipeSummary {
  /** Epochs and optimizer steps of the full-KV phase. */
  fullPhaseEpochs: number;
  fullPhaseSteps: number;
  /** The full phase's best epoch and validation NDCG@10 (its weights were switched). */
  fullPhaseBestEpoch: number;
  fullPhaseValidNdcg10: number;
  /** Validation NDCG@10 right after the switch, before the fine-tune. */
  switchedValidNdcg10: number;
  switchSeconds: number;
  /** Mean k-means relative inertia over the switched sides (0 = exact). */
  relativeInertia: number;
}

export function recipeSummary(fit: FitResult): RecipeSummary | undefined {
  const s = summarizeSwitch(fit.recipe?.phaseSwitch, fit.recipe?.switch, 'ndcg10');
  if (s == null) return undefined;
  const { fullPhaseValid, switchedValid, ...rest } = s;
  return { ...rest, fullPhaseValidNdcg10: fullPhaseValid, switchedValidNdcg10: switchedValid };
}

export function fitSummary(fit: FitResult) {
  const recipe = recipeSummary(fit);
  return { epochs: fit.epochs, bestEpoch: fit.bestEpoch, validNdcg10: fit.bestValidationNdcg10, steps: fit.steps ?? 0,
    stoppedBy: fit.stoppedBy ?? 'maxEpochs', trainSeconds: fit.trainSeconds, ...(recipe != null ? { recipe } : {}) };
}
