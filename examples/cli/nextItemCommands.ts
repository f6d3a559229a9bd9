// `collectivekv train`, `eval` and `bench quality` for the zoo's next-item models.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import {
  INTERACTION_FORMATS, InteractionFormat, LeaveOneOutSplit, NextItemCase, ProgressSink, leaveOneOut, readSequences, useFastEmbeddingGradients,
} from 'collectivekv';
import { ZooModel, ZooModelName, ZooModelOptions, buildZooModel, checkModelName, loadZooModel, saveZooModel } from '../zoo/nextItem';
import { FitResult, NextItemFitOptions, evaluateNextItem, fitNextItem } from '../zoo/nextItemTraining';
import type { SasrecLoss } from '../zoo/sasrecTraining';

/** A bad command line (printed with a pointer to --help, exit code 2). */
export class UsageError extends Error {}

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
  loss?: string;
  seed?: number;
  validateEvery?: number;
  validationUsers?: number;
  log: (line: string) => void;
  /** Progress display (stderr by default). */
  progress?: ProgressSink;
}

export interface TestMetrics {
  hr10: number;
  ndcg10: number;
  mrr10: number;
  users: number;
}

// ---------------------------------------------------------------- shared pieces

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

function modelName(name: string | undefined): ZooModelName {
  if (name == null) throw new UsageError("--model is required: one of sasrec, bert4rec, hstu");
  try {
    return checkModelName(name);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function attentionKind(value: string | undefined): 'mha' | 'collectivekv' {
  const a = value ?? 'mha';
  if (a !== 'mha' && a !== 'collectivekv') throw new UsageError(`unknown attention '${a}': expected mha or collectivekv`);
  return a;
}

function lossKind(value: string | undefined): SasrecLoss {
  const l = value ?? 'softmax';
  if (l !== 'softmax' && l !== 'bce') throw new UsageError(`unknown loss '${l}': expected softmax or bce`);
  return l;
}

export function modelOptions(a: NextItemArgs, numItems: number, attention: 'mha' | 'collectivekv'): ZooModelOptions {
  return {
    numItems, attention, maxLength: a.maxLength ?? 50, hiddenDim: a.hiddenDim ?? 64, numBlocks: a.blocks ?? 2, numHeads: a.heads ?? 1,
    dropout: a.dropout ?? 0.2, seed: a.seed ?? 1, collective: { poolSize: a.poolSize ?? 1024, userDim: a.userDim ?? 1 },
  };
}

function fitOptions(a: NextItemArgs, label: string): NextItemFitOptions {
  return {
    maxEpochs: a.epochs ?? 20, patience: a.patience ?? 3, batchSize: a.batchSize ?? 128, learningRate: a.learningRate ?? 1e-3,
    seed: a.seed ?? 1, validateEvery: a.validateEvery ?? 1, validationUsers: a.validationUsers ?? 0, label,
    output: a.progress ?? process.stderr, progress: 'auto',
  };
}

export function testMetrics(m: ZooModel, cases: readonly NextItemCase[]): TestMetrics {
  const r = evaluateNextItem(m, cases, { ks: [10] });
  return { hr10: r.hr[10], ndcg10: r.ndcg[10], mrr10: r.mrr[10], users: r.count };
}

function writeJson(path: string | undefined, value: unknown, log: (line: string) => void): void {
  if (path == null) return;
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
  log(`wrote ${path}`);
}

const f4 = (x: number) => x.toFixed(4);

// ---------------------------------------------------------------- train / eval

export async function trainCommand(a: NextItemArgs): Promise<number> {
  const name = modelName(a.model);
  const attention = attentionKind(a.attention);
  const loss = lossKind(a.loss);
  const split = await loadSplit(a.data, a.format);
  useFastEmbeddingGradients();
  a.log(`${a.data}: ${split.train.length} users, ${split.numItems} items; training ${name} (${attention}) on ${tf.getBackend()}`);
  const m = buildZooModel(name, modelOptions(a, split.numItems, attention), loss);
  try {
    const fit = fitNextItem(m, split, { ...fitOptions(a, `${name}/${attention}`), timeBudgetSeconds: (a.maxMinutes ?? 0) * 60 });
    const test = testMetrics(m, split.test);
    const summary = { model: name, attention, data: a.data, format: a.format, test, bytesPerToken: m.bytesPerToken(), ...fitSummary(fit) };
    a.log(`${name} (${attention}): test HR@10 ${f4(test.hr10)}, NDCG@10 ${f4(test.ndcg10)}, MRR@10 ${f4(test.mrr10)}; ` +
      `${fit.epochs} epochs (best ${fit.bestEpoch}, stopped by ${fit.stoppedBy}), ${fit.trainSeconds.toFixed(0)} s; ${summary.bytesPerToken} cache bytes/token`);
    if (a.out != null) {
      await saveZooModel(m, a.out, loss);
      a.log(`saved the model to ${a.out} (model.json, weights.bin, options.json)`);
    }
    writeJson(a.json, summary, a.log);
    return 0;
  } finally {
    m.dispose();
  }
}

function fitSummary(fit: FitResult) {
  return { epochs: fit.epochs, bestEpoch: fit.bestEpoch, validNdcg10: fit.bestValidationNdcg10, steps: fit.steps ?? 0,
    stoppedBy: fit.stoppedBy ?? 'maxEpochs', trainSeconds: fit.trainSeconds };
}

export async function evalCommand(a: NextItemArgs): Promise<number> {
  const dir = a.modelDir ?? a.out;
  if (dir == null) throw new UsageError('eval needs --model-dir DIR (a directory written by `collectivekv train --out DIR`)');
  if (!existsSync(`${dir}/options.json`)) throw new UsageError(`--model-dir: ${dir}/options.json not found (expected a directory written by \`collectivekv train --out\`)`);
  const split = await loadSplit(a.data, a.format);
  const m = await loadZooModel(dir);
  try {
    if (a.model != null && modelName(a.model) !== m.name) throw new UsageError(`--model ${a.model} does not match the saved model (${m.name}) in ${dir}`);
    if ((m.options.numItems ?? 0) < split.numItems) {
      throw new UsageError(`--data ${a.data}: ${split.numItems} items, but the model in ${dir} was trained for ${m.options.numItems}`);
    }
    const test = testMetrics(m, split.test);
    const out = { model: m.name, attention: m.options.attention ?? 'mha', modelDir: dir, data: a.data, format: a.format, test, bytesPerToken: m.bytesPerToken() };
    a.log(`${m.name} (${out.attention}) from ${dir}: test HR@10 ${f4(test.hr10)}, NDCG@10 ${f4(test.ndcg10)}, MRR@10 ${f4(test.mrr10)} over ${test.users} users`);
    writeJson(a.json, out, a.log);
    return 0;
  } finally {
    m.dispose();
  }
}

// ---------------------------------------------------------------- bench quality

export interface QualityRow {
  hr10: number;
  ndcg10: number;
  mrr10: number;
  bytesPerToken: number;
  /** Full-KV bytes per token / these bytes per token (1 for mha). */
  compressionRatio: number;
  epochs: number;
  bestEpoch: number;
  validNdcg10: number;
  steps: number;
  stoppedBy: string;
  trainSeconds: number;
}

/**
 * Baseline and CollectiveKV with the same data, split, seed, optimizer, early-stopping rule and
 * budget. With --max-minutes, the time is shared in proportion to each variant's measured step time;
 * when the baseline is cut by time, CollectiveKV gets exactly the baseline's number of optimizer
 * steps (its own time cap is then only a safety net, reported as `truncatedByTime`).
 */
export async function benchQualityCommand(a: NextItemArgs): Promise<number> {
  const name = modelName(a.model);
  if (a.attention != null) throw new UsageError('bench quality runs both attentions; drop --attention');
  const loss = lossKind(a.loss);
  const start = performance.now();
  const split = await loadSplit(a.data, a.format);
  useFastEmbeddingGradients();
  const budget = (a.maxMinutes ?? 0) * 60;
  const left = () => budget - (performance.now() - start) / 1000;
  a.log(`${a.data}: ${split.train.length} users, ${split.numItems} items; bench quality of ${name}, mha vs collectivekv on ${tf.getBackend()}` +
    (budget > 0 ? `, ${a.maxMinutes} minutes in all` : ''));
  const share = budget > 0 ? mhaTimeShare(name, a, split, loss) : 0.5;
  const rows: Partial<Record<'mha' | 'collectivekv', QualityRow>> = {};
  let mhaFit: FitResult | null = null;
  let truncatedByTime = false;
  for (const attention of ['mha', 'collectivekv'] as const) {
    const m = buildZooModel(name, modelOptions(a, split.numItems, attention), loss);
    try {
      const base = fitOptions(a, `${name}/${attention}`);
      let options: NextItemFitOptions;
      if (attention === 'mha') {
        options = { ...base, timeBudgetSeconds: budget > 0 ? Math.max(1, left() * share) : 0 };
      } else {
        const cutByTime = mhaFit?.stoppedBy === 'maxMinutes';
        // Same epoch budget and rule; when time cut the baseline, the same number of steps.
        options = { ...base, maxSteps: cutByTime ? mhaFit?.steps ?? 0 : 0, timeBudgetSeconds: budget > 0 ? Math.max(1, left()) : 0 };
      }
      const fit = fitNextItem(m, split, options);
      if (attention === 'mha') mhaFit = fit;
      else if (fit.stoppedBy === 'maxMinutes') {
        truncatedByTime = true;
        a.log(`WARNING: the time bound cut collectivekv after ${fit.steps} steps (${fit.epochs} epochs); the baseline had ` +
          `${mhaFit?.steps} steps (${mhaFit?.epochs} epochs). The comparison is NOT at equal budget.`);
      }
      const test = testMetrics(m, split.test);
      const bytes = m.bytesPerToken();
      rows[attention] = { hr10: test.hr10, ndcg10: test.ndcg10, mrr10: test.mrr10, bytesPerToken: bytes,
        compressionRatio: (rows.mha?.bytesPerToken ?? bytes) / bytes, ...fitSummary(fit) } as QualityRow;
      a.log(`${name}/${attention}: test HR@10 ${f4(test.hr10)} NDCG@10 ${f4(test.ndcg10)} MRR@10 ${f4(test.mrr10)}, ` +
        `${fit.epochs} epochs (${fit.steps} steps, best ${fit.bestEpoch}, stopped by ${fit.stoppedBy}), ${fit.trainSeconds.toFixed(0)} s`);
    } finally {
      m.dispose();
    }
  }
  const mha = rows.mha as QualityRow;
  const ckv = rows.collectivekv as QualityRow;
  const result = {
    model: name, data: a.data, format: a.format, backend: tf.getBackend(), users: split.train.length, items: split.numItems,
    options: modelOptions(a, split.numItems, 'collectivekv'), fit: fitOptions(a, ''), loss, maxMinutes: a.maxMinutes ?? 0,
    mha, collectivekv: ckv, ndcg10Ratio: mha.ndcg10 > 0 ? ckv.ndcg10 / mha.ndcg10 : 0, truncatedByTime,
    totalSeconds: (performance.now() - start) / 1000,
  };
  delete (result.fit as Partial<NextItemFitOptions>).output;
  a.log(formatQuality(result));
  writeJson(a.json, result, a.log);
  return 0;
}

/** The baseline's share of the time: its step time over both step times (two timed steps each after a warm-up). */
function mhaTimeShare(name: ZooModelName, a: NextItemArgs, split: LeaveOneOutSplit, loss: SasrecLoss): number {
  const seconds: number[] = [];
  for (const attention of ['mha', 'collectivekv'] as const) {
    const m = buildZooModel(name, modelOptions(a, split.numItems, attention), loss);
    const optimizer = tf.train.adam(1e-3);
    try {
      const it = m.batches(split.train, a.batchSize ?? 128, a.seed ?? 1, 0)[Symbol.iterator]();
      const batch = it.next().value;
      if (batch == null) throw new UsageError(`--data ${a.data}: no training sequence with 2 or more items`);
      m.step(optimizer, batch, 0);
      const t0 = performance.now();
      m.step(optimizer, batch, 1);
      m.step(optimizer, batch, 2);
      seconds.push((performance.now() - t0) / 2000);
    } finally {
      optimizer.dispose();
      m.dispose();
    }
  }
  return seconds[0] / (seconds[0] + seconds[1]);
}

export function formatQuality(r: { model: string; mha: QualityRow; collectivekv: QualityRow; ndcg10Ratio: number; truncatedByTime: boolean }): string {
  const rows: [string, (q: QualityRow) => string][] = [
    ['test HR@10', (q) => f4(q.hr10)], ['test NDCG@10', (q) => f4(q.ndcg10)], ['test MRR@10', (q) => f4(q.mrr10)],
    ['cache bytes/token', (q) => String(q.bytesPerToken)], ['compression vs full KV', (q) => `${q.compressionRatio.toFixed(1)}x`],
    ['epochs (steps, best)', (q) => `${q.epochs} (${q.steps}, ${q.bestEpoch})`], ['stopped by', (q) => q.stoppedBy],
    ['train seconds', (q) => q.trainSeconds.toFixed(0)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  const lines = [`${r.model}: ${''.padEnd(width - r.model.length - 2)}${'mha'.padStart(14)}${'collectivekv'.padStart(16)}`];
  for (const [label, get] of rows) lines.push(`${label.padEnd(width)}${get(r.mha).padStart(14)}${get(r.collectivekv).padStart(16)}`);
  lines.push(`collectivekv NDCG@10 = ${(100 * r.ndcg10Ratio).toFixed(1)}% of mha${r.truncatedByTime ? ' (WARNING: collectivekv cut by the time bound)' : ''}`);
  return lines.join('\n');
}
