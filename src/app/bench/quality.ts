// `collectivekv bench quality`: a zoo model with MultiHeadAttention and with CollectiveKV on one
// data set, under the same split, seed, optimizer, early-stopping rule and budget, beside the
// popularity and first-order Markov anchors; test metrics under both protocols (history items
// kept in the ranking, and the input window's filtered) and the paired per-user difference.
import * as tf from '@tensorflow/tfjs-core';
import { LeaveOneOutSplit, PairedNdcgDifference, RECIPE_DEFAULTS, anchorMetrics, pairedNdcg10, useFastEmbeddingGradients } from '../../internal';
import { ZooModel, ZooModelName, buildZooModel } from '../../zoo/sequential/nextItem';
import { FitResult, NextItemFitOptions, fitNextItem, historyWindowOf } from '../../zoo/sequential/nextItemTraining';
import type { SasrecLoss } from '../../zoo/sequential/sasrecTraining';
import {
  NextItemArgs, RecipeSummary, TestMetrics, UsageError, f4, fitOptions, fitSummary, loadSplit, lossKind, modelName, modelOptions, testProtocols, trainingKind,
  writeJson,
} from '../command/nextItem';

export const PROTOCOLS = ['unfiltered', 'window'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

type Metrics = Pick<TestMetrics, 'hr10' | 'ndcg10' | 'mrr10'>;

export interface QualityRow {
  /** Test metrics under the reported protocol (--filter-window: 'window', else 'unfiltered'). */
  hr10: number;
  ndcg10: number;
  mrr10: number;
  /** Test metrics under each protocol. */
  protocols: Record<Protocol, Metrics>;
  bytesPerToken: number;
  /** Full-KV bytes per token / these bytes per token (1 for mha). */
  compressionRatio: number;
  epochs: number;
  bestEpoch: number;
  validNdcg10: number;
  steps: number;
  stoppedBy: string;
  trainSeconds: number;
  /** collectivekv by the recipe: where it switched and what the switch did. */
  recipe?: RecipeSummary;
}

/**
 * Baseline and CollectiveKV with the same data, split, seed, optimizer, early-stopping rule and
 * budget (the recipe adds at most a quarter of its full phase's epochs). With --max-minutes, the
 * time is shared by the measured step times; when the baseline is cut by time, CollectiveKV gets
 * the baseline's optimizer steps (plus the recipe's quarter).
 */
export async function benchQualityCommand(a: NextItemArgs): Promise<number> {
  const name = modelName(a.model);
  if (a.attention != null) throw new UsageError('bench quality runs both attentions; drop --attention');
  if (a.maxSteps != null) throw new UsageError('--max-steps applies to train only (bench quality gives collectivekv the baseline\'s steps itself)');
  const training = trainingKind(a.training);
  const arms = armsOf(a.arm);
  if (arms.length === 1 && a.maxMinutes != null) throw new UsageError('--arm runs one arm alone; --max-minutes shares a budget between both: drop one');
  if (a.switchByStep != null && !(arms.length === 1 && arms[0] === 'collectivekv' && training === 'recipe')) {
    throw new UsageError('--switch-by-step applies to --arm collectivekv by the recipe (with both arms, the baseline\'s steps bound the switch)');
  }
  const loss = lossKind(a.loss);
  const start = performance.now();
  const split = await loadSplit(a.data, a.format);
  useFastEmbeddingGradients();
  const budget = (a.maxMinutes ?? 0) * 60;
  const left = () => budget - (performance.now() - start) / 1000;
  a.log(`${a.data}: ${split.train.length} users, ${split.numItems} items; bench quality of ${name}, mha vs collectivekv (${training}) on ${tf.getBackend()}` +
    (budget > 0 ? `, ${a.maxMinutes} minutes in all` : ''));
  const reported: Protocol = a.filterHistory === 'window' ? 'window' : 'unfiltered';
  if (a.filterHistory === true) throw new UsageError('bench quality reports the unfiltered and the --filter-window protocols; drop --filter-history');
  const share = budget > 0 ? mhaTimeShare(name, a, split, loss, training === 'recipe' ? RECIPE_DEFAULTS.fineTuneShare : undefined) : 0.5;
  const rows: Partial<Record<'mha' | 'collectivekv', QualityRow>> = {};
  const ranks: Partial<Record<'mha' | 'collectivekv', Record<Protocol, Int32Array>>> = {};
  let mhaFit: FitResult | null = null;
  let truncatedByTime = false;
  let historyWindow = 0;
  let switchByStep: number | null = null;
  for (const attention of arms) {
    let m: ZooModel | null = null;
    try {
      const base = fitOptions(a, `${name}/${attention}`);
      let options: NextItemFitOptions;
      if (attention === 'mha') {
        options = { ...base, timeBudgetSeconds: budget > 0 ? Math.max(1, left() * share) : 0 };
      } else {
        const cutByTime = mhaFit?.stoppedBy === 'maxMinutes';
        const steps = mhaFit?.steps ?? 0;
        const maxSteps = !cutByTime ? 0 : training === 'recipe' ? Math.ceil((1 + RECIPE_DEFAULTS.fineTuneShare) * steps) : steps;
        // The recipe's full phase stands for the baseline's run: it switches at the baseline's steps at the latest.
        const latestSwitchStep = a.switchByStep ?? (mhaFit?.steps || undefined);
        options = { ...base, maxSteps, timeBudgetSeconds: budget > 0 ? Math.max(1, left()) : 0,
          ...(latestSwitchStep != null ? { recipe: { latestSwitchStep } } : {}) };
        switchByStep = latestSwitchStep ?? null;
      }
      m = buildZooModel(name, modelOptions(a, split.numItems, attention), loss);
      const fit = fitNextItem(m, split, options);
      if (attention === 'mha') mhaFit = fit;
      else if (fit.stoppedBy === 'maxMinutes') {
        truncatedByTime = true;
        a.log(`WARNING: the time bound cut collectivekv after ${fit.steps} steps (${fit.epochs} epochs); the baseline had ` +
          `${mhaFit?.steps} steps (${mhaFit?.epochs} epochs). The comparison is NOT at equal budget.`);
      }
      const test = testProtocols(m, split.test);
      historyWindow = historyWindowOf(m);
      ranks[attention] = { unfiltered: test.unfiltered.ranks, window: test.window.ranks };
      const bytes = m.bytesPerToken();
      const protocols = { unfiltered: pick(test.unfiltered), window: pick(test.window) };
      const row: QualityRow = { ...protocols[reported], protocols, bytesPerToken: bytes, compressionRatio: (rows.mha?.bytesPerToken ?? bytes) / bytes,
        ...fitSummary(fit) };
      rows[attention] = row;
      const recipe = row.recipe;
      a.log(`${name}/${attention}: test NDCG@10 ${f4(test.unfiltered.ndcg10)} (window-filtered ${f4(test.window.ndcg10)}), ` +
        `${fit.epochs} epochs (${fit.steps} steps, best ${fit.bestEpoch}, stopped by ${fit.stoppedBy}), ${fit.trainSeconds.toFixed(0)} s` +
        (recipe != null ? `; recipe: full K/V for ${recipe.fullPhaseEpochs} epochs (best ${recipe.fullPhaseBestEpoch}, valid NDCG@10 ` +
          `${f4(recipe.fullPhaseValidNdcg10)}), switched (${f4(recipe.switchedValidNdcg10)}, ${recipe.switchSeconds.toFixed(0)} s), fine-tuned` : ''));
    } finally {
      m?.dispose();
    }
  }
  const anchors = anchorRows(split, historyWindow);
  const common = {
    model: name, data: a.data, format: a.format, backend: tf.getBackend(), users: split.train.length, items: split.numItems, seed: a.seed ?? 1,
    training, options: modelOptions(a, split.numItems, 'collectivekv'), fit: { ...fitOptions(a, ''), output: undefined }, loss, maxMinutes: a.maxMinutes ?? 0,
    protocol: reported, historyWindow, anchors, truncatedByTime, totalSeconds: (performance.now() - start) / 1000,
    ...(training === 'recipe' && arms.includes('collectivekv') ? { switchByStep } : {}),
    // Per test user, in split order: what pairs two runs (results/README.md's generator pairs one-arm runs by these).
    testRanks: Object.fromEntries(Object.entries(ranks).map(([arm, r]) => [arm, { unfiltered: Array.from(r.unfiltered), window: Array.from(r.window) }])),
  };
  if (arms.length === 1) {
    a.log(`${name}/${arms[0]} alone (--arm): pair it with the other arm's run of the same seed and options`);
    writeJson(a.json, { ...common, arm: arms[0], [arms[0]]: rows[arms[0]] }, a.log);
    return 0;
  }
  const mha = rows.mha as QualityRow;
  const ckv = rows.collectivekv as QualityRow;
  const paired = Object.fromEntries(PROTOCOLS.map((p) => [p, pairedNdcg10(ranks.collectivekv?.[p], ranks.mha?.[p])])) as Record<Protocol, PairedNdcgDifference>;
  const result = { ...common, mha, collectivekv: ckv, pairedNdcg10: paired, ndcg10Ratio: mha.ndcg10 > 0 ? ckv.ndcg10 / mha.ndcg10 : 0 };
  a.log(formatQuality(result));
  writeJson(a.json, result, a.log);
  return 0;
}

const ARMS = ['mha', 'collectivekv'] as const;

function armsOf(arm: string | undefined): ReadonlyArray<(typeof ARMS)[number]> {
  if (arm == null) return ARMS;
  if (!(ARMS as readonly string[]).includes(arm)) throw new UsageError(`--arm must be one of ${ARMS.join(', ')}, received '${arm}'`);
  return [arm as (typeof ARMS)[number]];
}

function pick(t: TestMetrics): Metrics {
  return { hr10: t.hr10, ndcg10: t.ndcg10, mrr10: t.mrr10 };
}

/** The popularity and first-order Markov anchors on the test cases, under both protocols. */
function anchorRows(split: LeaveOneOutSplit, historyWindow: number): Record<'popularity' | 'markov', Record<Protocol, Metrics>> {
  const one = (kind: 'popularity' | 'markov', protocol: Protocol): Metrics => {
    const r = anchorMetrics(kind, split, split.test, { ks: [10], filterHistory: protocol === 'window', historyWindow });
    return { hr10: r.hr[10], ndcg10: r.ndcg[10], mrr10: r.mrr[10] };
  };
  return {
    popularity: { unfiltered: one('popularity', 'unfiltered'), window: one('popularity', 'window') },
    markov: { unfiltered: one('markov', 'unfiltered'), window: one('markov', 'window') },
  };
}

/** The baseline's share of the time: its step time over both step times (two timed steps each after a warm-up). */
function mhaTimeShare(name: ZooModelName, a: NextItemArgs, split: LeaveOneOutSplit, loss: SasrecLoss, fineTuneShare?: number): number {
  const seconds: number[] = [];
  for (const attention of ['mha', 'collectivekv'] as const) {
    const options = modelOptions(a, split.numItems, attention);
    // The pooled phase's step time: the full phase costs about the baseline's.
    const m = buildZooModel(name, { ...options, collective: { ...options.collective, kvPhase: 'pooled' } }, loss);
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
  return baselineTimeShare(seconds[0], seconds[1], fineTuneShare);
}

/**
 * Share of a --max-minutes budget the mha baseline may take, from the two variants' step times:
 * single-stage CollectiveKV costs its steps at its own rate; by the recipe (fine-tune share X) the
 * baseline's steps at the baseline's rate plus X of them at its own. 0.85 leaves a margin for
 * validation, test evaluation, the switch and step-time noise, so the clock does not cut the second run.
 */
export function baselineTimeShare(mhaStepSeconds: number, collectiveStepSeconds: number, fineTuneShare?: number): number {
  const collectiveRun = fineTuneShare == null ? collectiveStepSeconds : mhaStepSeconds + fineTuneShare * collectiveStepSeconds;
  return (0.85 * mhaStepSeconds) / (mhaStepSeconds + collectiveRun);
}

interface QualityResult {
  model: string;
  protocol: Protocol;
  mha: QualityRow;
  collectivekv: QualityRow;
  anchors: Record<'popularity' | 'markov', Record<Protocol, Metrics>>;
  pairedNdcg10: Record<Protocol, PairedNdcgDifference>;
  ndcg10Ratio: number;
  truncatedByTime: boolean;
}

export function formatQuality(r: QualityResult): string {
  const protocolRows = (label: string, get: (m: Metrics) => number) => PROTOCOLS.map((p): [string, (q: QualityRow) => string, string, string] =>
    [`test ${label} (${p})`, (q) => f4(get(q.protocols[p])), f4(get(r.anchors.markov[p])), f4(get(r.anchors.popularity[p]))]);
  const rows: [string, (q: QualityRow) => string, string, string][] = [
    ...protocolRows('NDCG@10', (m) => m.ndcg10), ...protocolRows('HR@10', (m) => m.hr10),
    ['cache bytes/token', (q) => String(q.bytesPerToken), '', ''], ['compression vs full KV', (q) => `${q.compressionRatio.toFixed(1)}x`, '', ''],
    ['epochs (steps, best)', (q) => `${q.epochs} (${q.steps}, ${q.bestEpoch})`, '', ''], ['stopped by', (q) => q.stoppedBy, '', ''],
    ['train seconds', (q) => q.trainSeconds.toFixed(0), '', ''],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  const head = ['mha'.padStart(12), 'collectivekv'.padStart(14), 'markov'.padStart(10), 'popularity'.padStart(12)].join('');
  const lines = [`${r.model}: ${''.padEnd(width - r.model.length - 2)}${head}`];
  for (const [label, get, markov, popularity] of rows) {
    lines.push(`${label.padEnd(width)}${get(r.mha).padStart(12)}${get(r.collectivekv).padStart(14)}${markov.padStart(10)}${popularity.padStart(12)}`);
  }
  const recipe = r.collectivekv.recipe;
  if (recipe != null) {
    lines.push(`collectivekv by the recipe: full K/V for ${recipe.fullPhaseEpochs} epochs (${recipe.fullPhaseSteps} steps; best epoch ` +
      `${recipe.fullPhaseBestEpoch}, valid NDCG@10 ${f4(recipe.fullPhaseValidNdcg10)}), switched in ${recipe.switchSeconds.toFixed(0)} s ` +
      `(valid ${f4(recipe.switchedValidNdcg10)}, k-means relative inertia ${recipe.relativeInertia.toFixed(3)}), then fine-tuned`);
  }
  for (const p of PROTOCOLS) {
    const d = r.pairedNdcg10[p];
    const beats = r.mha.protocols[p].ndcg10 > r.anchors.markov[p].ndcg10;
    lines.push(`${p}: collectivekv NDCG@10 = ${(100 * r.collectivekv.protocols[p].ndcg10 / r.mha.protocols[p].ndcg10).toFixed(1)}% of mha ` +
      `(paired difference ${d.mean.toFixed(4)} +- ${d.standardError.toFixed(4)} se); mha ${beats ? 'beats' : 'does NOT beat'} the Markov anchor`);
  }
  if (r.truncatedByTime) lines.push('WARNING: collectivekv cut by the time bound');
  return lines.join('\n');
}
