// `collectivekv bench quality`: a zoo model with MultiHeadAttention and with CollectiveKV on one
// data set, under the same split, seed, optimizer, early-stopping rule and budget; JSON with one
// object per variant under "mha" and "collectivekv".
import * as tf from '@tensorflow/tfjs-core';
import { LeaveOneOutSplit, sizeOf, useFastEmbeddingGradients } from '../../internal';
import { ZooModel, ZooModelName, buildZooModel } from '../../zoo/sequential/nextItem';
import { FitResult, NextItemFitOptions, fitNextItem } from '../../zoo/sequential/nextItemTraining';
import { DEFAULT_FINE_TUNE_RATE_SCALE, RunSnapshots, forkStepOf, warmStartCollective } from '../../zoo/sequential/conversion';
import type { SasrecLoss } from '../../zoo/sequential/sasrecTraining';
import {
  NextItemArgs, UsageError, f4, fitOptions, fitSummary, loadSplit, lossKind, modelName, modelOptions, testMetrics, writeJson,
} from '../command/nextItem';

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
  /** collectivekv trained by warm start (--warm-start): the mha part, the conversion and the fine-tune. */
  warmStart?: {
    fraction: number; mhaSteps: number; fineTuneSteps: number; convertSeconds: number;
    /** The fine-tune's learning rate as a share of the baseline's. */
    fineTuneRate: number;
    /** Test NDCG@10 of the mha part, and of the converted model before its fine-tune. */
    mhaPartNdcg10: number; convertedNdcg10: number;
    /** Whether the mha part is the baseline's own run (forked at mhaSteps), not a second mha run. */
    forkedBaseline: boolean;
  };
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
  if (a.maxSteps != null) throw new UsageError('--max-steps applies to train only (bench quality gives collectivekv the baseline\'s steps itself)');
  if (a.fineTuneRate != null && a.warmStart == null) throw new UsageError('--fine-tune-rate applies with --warm-start only');
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
  let snapshots: RunSnapshots | null = null;
  let truncatedByTime = false;
  let historyWindow: number | undefined;
  for (const attention of ['mha', 'collectivekv'] as const) {
    let m: ZooModel | null = null;
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
      let fit: FitResult;
      let warmStart: QualityRow['warmStart'];
      if (attention === 'collectivekv' && a.warmStart != null) {
        const r = warmStartCollective(() => buildZooModel(name, modelOptions(a, split.numItems, 'mha'), loss), split, loss, options,
          { fraction: a.warmStart, steps: mhaFit?.steps ?? 0, fork: snapshots?.atOrBefore(forkStepOf(mhaFit?.steps ?? 0, a.warmStart)) ?? null, ...(a.fineTuneRate != null ? { fineTuneRateScale: a.fineTuneRate } : {}), poolSize: a.poolSize ?? 1024, userDim: a.userDim ?? 1, sampleUsers: 512,
            seed: a.seed ?? 1, gate: a.gate, ...(a.router != null ? { router: a.router } : {}),
            ...(a.quantizationWeight != null ? { quantizationWeight: a.quantizationWeight } : {}), evaluate: (model) => testMetrics(model, split.test, a.filterHistory).ndcg10 }, a.log);
        m = r.model;
        fit = { ...r.fineTuneFit, epochs: r.baselineFit.epochs + r.fineTuneFit.epochs, steps: (r.baselineFit.steps ?? 0) + (r.fineTuneFit.steps ?? 0),
          trainSeconds: r.baselineFit.trainSeconds + r.convertSeconds + r.fineTuneFit.trainSeconds };
        warmStart = { fraction: a.warmStart, fineTuneRate: a.fineTuneRate ?? DEFAULT_FINE_TUNE_RATE_SCALE, forkedBaseline: r.forked, mhaSteps: r.baselineFit.steps ?? 0, fineTuneSteps: r.fineTuneFit.steps ?? 0, convertSeconds: r.convertSeconds,
          mhaPartNdcg10: r.mhaPartScore ?? NaN, convertedNdcg10: r.convertedScore ?? NaN };
      } else {
        m = buildZooModel(name, modelOptions(a, split.numItems, attention), loss);
        if (attention === 'mha' && a.warmStart != null) {
          // The warm start forks this run: its weights every 1% of the epoch budget (sparser when
          // that would hold more than SNAPSHOT_BYTES), up to the last step a fork can take (1 - X
          // of the budget, plus one interval).
          const model = m;
          const budgetSteps = (base.maxEpochs ?? 20) * Math.ceil(split.train.length / (base.batchSize ?? 128));
          const modelBytes = 4 * model.model.weights.reduce((sum, w) => sum + sizeOf(w.shape as number[]), 0);
          const interval = Math.max(1, Math.round(budgetSteps / 100), Math.ceil(budgetSteps * modelBytes / SNAPSHOT_BYTES));
          snapshots = new RunSnapshots(() => model.model.getWeights(), interval, Math.ceil((1 - a.warmStart) * budgetSteps) + interval);
          options = { ...options, onStep: snapshots.onStep };
        }
        fit = fitNextItem(m, split, options);
      }
      if (attention === 'mha') mhaFit = fit;
      else if (fit.stoppedBy === 'maxMinutes') {
        truncatedByTime = true;
        a.log(`WARNING: the time bound cut collectivekv after ${fit.steps} steps (${fit.epochs} epochs); the baseline had ` +
          `${mhaFit?.steps} steps (${mhaFit?.epochs} epochs). The comparison is NOT at equal budget.`);
      }
      const test = testMetrics(m, split.test, a.filterHistory);
      historyWindow = test.historyWindow;
      const bytes = m.bytesPerToken();
      rows[attention] = { hr10: test.hr10, ndcg10: test.ndcg10, mrr10: test.mrr10, bytesPerToken: bytes,
        compressionRatio: (rows.mha?.bytesPerToken ?? bytes) / bytes, ...fitSummary(fit), ...(warmStart != null ? { warmStart } : {}) } as QualityRow;
      a.log(`${name}/${attention}: test HR@10 ${f4(test.hr10)} NDCG@10 ${f4(test.ndcg10)} MRR@10 ${f4(test.mrr10)}, ` +
        `${fit.epochs} epochs (${fit.steps} steps, best ${fit.bestEpoch}, stopped by ${fit.stoppedBy}), ${fit.trainSeconds.toFixed(0)} s` +
        (warmStart != null ? ` (warm start: ${warmStart.mhaSteps} mha steps, then ${warmStart.fineTuneSteps} after the conversion)` : ''));
    } finally {
      m?.dispose();
    }
  }
  const mha = rows.mha as QualityRow;
  const ckv = rows.collectivekv as QualityRow;
  const result = {
    model: name, data: a.data, format: a.format, backend: tf.getBackend(), users: split.train.length, items: split.numItems,
    options: modelOptions(a, split.numItems, 'collectivekv'), fit: fitOptions(a, ''), loss, maxMinutes: a.maxMinutes ?? 0,
    filterHistory: (a.filterHistory ?? false) !== false, ...(historyWindow != null ? { historyWindow } : {}), mha, collectivekv: ckv, ndcg10Ratio: mha.ndcg10 > 0 ? ckv.ndcg10 / mha.ndcg10 : 0, truncatedByTime,
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
  return baselineTimeShare(seconds[0], seconds[1], a.warmStart);
}

/** Memory bench quality may hold in copies of the baseline's weights for a forked warm start. */
const SNAPSHOT_BYTES = 1 << 30;

/**
 * Share of a --max-minutes budget the mha baseline may take, from the two variants' step times:
 * the CollectiveKV run costs its steps at its own rate, or by warm start (fraction X) the
 * baseline's rate for 1 - X of them and its own for X. 0.85: the baseline leaves a margin for
 * CollectiveKV's validation, test evaluation and conversion and for step-time noise on a shared
 * machine, so the second run is not the one the clock cuts.
 */
export function baselineTimeShare(mhaStepSeconds: number, collectiveStepSeconds: number, warmStart?: number): number {
  const collectiveRun = warmStart == null ? collectiveStepSeconds : (1 - warmStart) * mhaStepSeconds + warmStart * collectiveStepSeconds;
  return (0.85 * mhaStepSeconds) / (mhaStepSeconds + collectiveRun);
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
  const warm = r.collectivekv.warmStart;
  if (warm != null) {
    const part = warm.forkedBaseline ? `the mha run to step ${warm.mhaSteps}` : `${warm.mhaSteps} mha steps`;
    lines.push(`collectivekv by warm start: ${part}, converted (${warm.convertSeconds.toFixed(0)} s), then ${warm.fineTuneSteps} steps`
      + ` at ${warm.fineTuneRate} of the learning rate`);
    if (warm.mhaPartNdcg10 != null) {
      lines.push(`  test NDCG@10 of its mha part ${f4(warm.mhaPartNdcg10)}, converted before the fine-tune ${f4(warm.convertedNdcg10)}`);
    }
  }
  lines.push(`collectivekv NDCG@10 = ${(100 * r.ndcg10Ratio).toFixed(1)}% of mha${r.truncatedByTime ? ' (WARNING: collectivekv cut by the time bound)' : ''}`);
  return lines.join('\n');
}
