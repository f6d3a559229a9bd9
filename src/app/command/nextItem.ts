// What the next-item commands share (`train`, `eval` in src/app/cli and `bench quality`,
// `bench convert` in src/app/bench): their arguments, the data file and split, the zoo model's and
// the fit's options from the flags, the test metrics and the JSON output.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import {
  GateMode, INTERACTION_FORMATS, InteractionFormat, LeaveOneOutSplit, NextItemCase, ProgressSink, RouterKind,
  leaveOneOut, readSequences, routerFromFlatOptions,
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
   * bench quality: train collectivekv by warm start, this share of the baseline's steps being the
   * fine-tune after converting an mha model trained for the rest (zoo/conversion).
   */
  warmStart?: number;
  /** bench quality --warm-start: the fine-tune's learning rate as a share of the baseline's (default 0.25). */
  fineTuneRate?: number;
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

export function modelOptions(a: NextItemArgs, numItems: number, attention: 'mha' | 'collectivekv'): ZooModelOptions {
  if (a.quantizationWeight != null && a.router !== 'nearest-product') {
    throw new UsageError(`--quantization-weight applies to --router nearest-product, received router '${a.router ?? 'dense'}'`);
  }
  return {
    numItems, attention, maxLength: a.maxLength ?? 50, hiddenDim: a.hiddenDim ?? 64, numBlocks: a.blocks ?? 2, numHeads: a.heads ?? 1,
    dropout: a.dropout ?? 0.2, seed: a.seed ?? 1, collective: { poolSize: a.poolSize ?? 1024, userDim: a.userDim ?? 1,
      // Every router option written out, defaults included, so a saved model or a JSON result says what it ran with.
      router: routerFromFlatOptions({ router: a.router, gate: a.gate, quantizationWeight: a.quantizationWeight }, 'collectivekv') },
  };
}

export function fitOptions(a: NextItemArgs, label: string): NextItemFitOptions {
  return {
    maxEpochs: a.epochs ?? 20, patience: a.patience ?? 3, batchSize: a.batchSize ?? 128, learningRate: a.learningRate ?? 1e-3,
    seed: a.seed ?? 1, validateEvery: a.validateEvery ?? 1, validationUsers: a.validationUsers ?? 0, label,
    output: a.progress ?? process.stderr, progress: 'auto',
  };
}

export function testMetrics(m: ZooModel, cases: readonly NextItemCase[], filterHistory: boolean | 'window' = false): TestMetrics {
  const r = evaluateNextItem(m, cases, { ks: [10], filterHistory });
  const window = filterHistory === 'window' ? { historyWindow: historyWindowOf(m) } : {};
  return { hr10: r.hr[10], ndcg10: r.ndcg[10], mrr10: r.mrr[10], users: r.count, filterHistory: filterHistory !== false, ...window };
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

export function fitSummary(fit: FitResult) {
  return { epochs: fit.epochs, bestEpoch: fit.bestEpoch, validNdcg10: fit.bestValidationNdcg10, steps: fit.steps ?? 0,
    stoppedBy: fit.stoppedBy ?? 'maxEpochs', trainSeconds: fit.trainSeconds };
}
