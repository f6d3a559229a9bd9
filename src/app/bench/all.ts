// `collectivekv bench all --data-dir DIR --out DIR`: runs every benchmark the data present allows
// (ML-1M, Amazon Beauty, and the synthetic set always) under one time budget, and writes
// report.json, report.md and charts/*.svg (src/app/report). Each part's failure is recorded in the
// report, not fatal; the report is rewritten after every part so an interrupted run loses nothing.
// Wired into the CLI by src/app/cli/main.ts (`bench all`) through runBenchAllCommand.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  LeaveOneOutSplit, NextItemCase, ProgressSink, analyzeKV, generateSynthetic, leaveOneOut, readSequences, seededRandom, shuffleInPlace,
  ndcgAt, useFastEmbeddingGradients,
} from '../../internal';
import { benchOps } from './ops';
import { benchServe } from './serve';
import { BenchConvertOptions, benchConvert, convertSasrec } from './convert';
import { benchCtr } from './ctr';
import { benchQualityCommand } from './quality';
import { attentionBytesPerToken } from '../../zoo/sequential/nextItem';
import { Sasrec, buildSasrec } from '../../zoo/sequential/sasrec';
import { evaluateSasrec, fitSasrec } from '../../zoo/sequential/sasrecTraining';
import {
  AnalysisResult, DatasetInfo, PartRecord, QualityResult, ReportData, SweepPoint, SweepResult, WrittenReport, ChartPackageMissingError, collectMeta, writeReport,
} from '../report/report';

export const BENCH_ALL_USAGE = `Usage: collectivekv bench all [--data-dir DIR] [--out DIR] [--quick] [--max-minutes N] [--only a,b] [--backend wasm|cpu]

Runs the quality, sweep (a trained SASRec, its SVD analysis, and its conversions at userDim 1/2/4/8 and
pool 64..4096), convert (fine-tuned conversion vs from scratch),
CTR, ops and serve benchmarks on every data set present (ML-1M, Amazon Beauty; the synthetic set always)
and writes report.json, report.md and charts/*.svg under --out.

  --data-dir DIR     folder with ml-1m/ml-1m.txt and amazon-beauty/Beauty.txt (default ../shared/datasets if present)
  --out DIR          output folder (default bench-out/report)
  --quick            tiny sizes (a smoke run of a minute or so; numbers are not results)
  --max-minutes N    total time budget, split across the parts (default 110; 5 with --quick)
  --only a,b         only these parts: kinds (ops, serve, quality, sweep, convert, ctr), data sets
                     (synthetic, ml-1m, beauty) or full names (sweep:ml-1m)
  --backend B        wasm (default) or cpu`;

export interface BenchAllArgs {
  dataDir: string | null;
  out: string;
  quick: boolean;
  maxMinutes: number;
  only: string[] | null;
  backend: 'wasm' | 'cpu';
}

/** A data set the next-item parts train on. */
interface Dataset {
  name: string;
  path: string;
  format: 'pairs' | 'lines';
  split: LeaveOneOutSplit;
}

export interface Part {
  name: string;
  kind: 'ops' | 'serve' | 'quality' | 'sweep' | 'convert' | 'ctr';
  dataset: string | null;
  /** Share of the time budget (relative). */
  weight: number;
  run(budgetSeconds: number, log: (line: string) => void): Promise<string | void>;
}

/** Model and training sizes; --quick shrinks everything so a run takes about a minute. */
interface Sizes {
  maxLength: number;
  hiddenDim: number;
  epochs: number;
  poolSize: number;
  userDims: number[];
  poolSizes: number[];
  validationUsers: number;
  analysisUsers: number;
  /** Test users of the sweep's points (a seeded sample; 0 = all). */
  sweepTestUsers: number;
}

const FULL: Sizes = { maxLength: 50, hiddenDim: 64, epochs: 20, poolSize: 1024, userDims: [1, 2, 4, 8], poolSizes: [64, 256, 1024, 4096],
  validationUsers: 1000, analysisUsers: 512, sweepTestUsers: 3000 };
const QUICK: Sizes = { maxLength: 10, hiddenDim: 16, epochs: 1, poolSize: 32, userDims: [1, 2], poolSizes: [16, 32],
  validationUsers: 50, analysisUsers: 32, sweepTestUsers: 0 };

export function parseBenchAllArgs(argv: string[]): BenchAllArgs | null {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      'data-dir': { type: 'string' }, out: { type: 'string' }, quick: { type: 'boolean' }, 'max-minutes': { type: 'string' },
      only: { type: 'string' }, backend: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (positionals.length > 0) throw new Error(`unexpected argument '${positionals[0]}'`);
  const quick = values.quick ?? false;
  const maxMinutes = values['max-minutes'] == null ? (quick ? 5 : 110) : Number(values['max-minutes']);
  if (!(maxMinutes > 0)) throw new Error(`--max-minutes must be a positive number, received '${values['max-minutes']}'`);
  const backend = values.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') throw new Error(`--backend must be wasm or cpu, received '${backend}'`);
  const defaultDir = resolve('../shared/datasets');
  return {
    dataDir: values['data-dir'] ?? (existsSync(defaultDir) ? defaultDir : null), out: values.out ?? 'bench-out/report', quick, maxMinutes,
    only: values.only == null ? null : values.only.split(',').map((s) => s.trim()).filter(Boolean), backend,
  };
}

/** The `bench all` command; returns the exit code (0 when at least one part succeeded). */
export async function runBenchAllCommand(argv: string[], log: (line: string) => void = console.log): Promise<number> {
  let args: BenchAllArgs | null;
  try {
    args = parseBenchAllArgs(argv);
  } catch (e) {
    console.error(`collectivekv bench all: ${(e as Error).message}\n\n${BENCH_ALL_USAGE}`);
    return 2;
  }
  if (args == null) {
    log(BENCH_ALL_USAGE);
    return 0;
  }
  return benchAll(args, log, `collectivekv bench all ${argv.join(' ')}`.trim());
}

export async function benchAll(args: BenchAllArgs, log: (line: string) => void, command: string): Promise<number> {
  const start = performance.now();
  mkdirSync(join(args.out, 'parts'), { recursive: true });
  if (!(await tf.setBackend(args.backend))) throw new Error(`backend ${args.backend} failed to initialize`);
  await tf.ready();
  useFastEmbeddingGradients();
  const sizes = args.quick ? QUICK : FULL;
  const report: ReportData = {
    meta: collectMeta({ backend: args.backend, command, quick: args.quick, maxMinutes: args.maxMinutes }),
    datasets: [], parts: [], settings: { sizes: { ...sizes } }, results: {},
  };
  const datasets = await findDatasets(args, report.datasets, log);
  const baselines = new Map<string, TrainedBaseline>();
  const parts = planParts(args, sizes, datasets, report, baselines).filter((p) => selected(p, args.only));
  log(`bench all: ${parts.length} parts on ${datasets.map((d) => d.name).join(', ')}; budget ${args.maxMinutes} min; backend ${args.backend}; out ${args.out}`);
  const budget = args.maxMinutes * 60;
  const elapsed = () => (performance.now() - start) / 1000;
  let doneWeight = 0;
  for (const [i, part] of parts.entries()) {
    const remainingWeight = parts.slice(i).reduce((s, p) => s + p.weight, 0);
    const partBudget = Math.max(5, ((budget - elapsed()) * part.weight) / remainingWeight);
    log(`[${i + 1}/${parts.length}] ${part.name}: start, budget ${clock(partBudget)} (elapsed ${clock(elapsed())}, ETA ${clock(eta(elapsed(), doneWeight, remainingWeight, budget))})`);
    const record = await runPart(part, partBudget, log);
    report.parts.push(record);
    doneWeight += part.weight;
    log(`[${i + 1}/${parts.length}] ${part.name}: ${record.status} in ${record.seconds.toFixed(0)} s${record.error ? `: ${record.error.split('\n')[0]}` : ''} `
      + `(elapsed ${clock(elapsed())}, ETA ${clock(eta(elapsed(), doneWeight, remainingWeight - part.weight, budget))})`);
    report.meta.totalSeconds = elapsed();
    await save(args.out, report, log);
  }
  // Baselines whose convert part was not selected.
  for (const b of baselines.values()) b.sasrec.model.dispose();
  report.meta.partial = false;
  report.meta.totalSeconds = elapsed();
  const written = await save(args.out, report, log);
  log(`bench all: done in ${clock(elapsed())}; ${report.parts.filter((p) => p.status === 'ok').length}/${parts.length} parts ok`);
  if (written) log(`wrote ${written.markdown}\nwrote ${written.json}\n${written.charts.map((c) => `wrote ${c}`).join('\n')}`);
  return parts.length === 0 || report.parts.some((p) => p.status === 'ok') ? 0 : 1;
}

/** Remaining time: observed seconds per weight unit so far times the weight left, capped by the budget. */
function eta(elapsed: number, doneWeight: number, remainingWeight: number, budget: number): number {
  if (doneWeight === 0) return Math.max(0, budget - elapsed);
  return Math.min(Math.max(0, budget - elapsed), (elapsed / doneWeight) * remainingWeight);
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function selected(p: Part, only: string[] | null): boolean {
  if (only == null) return true;
  return only.some((o) => o === p.name || o === p.kind || (p.dataset != null && o === p.dataset));
}

/** Runs one part; a throw becomes a 'failed' record (exported for tests). */
export async function runPart(part: Part, budgetSeconds: number, log: (line: string) => void): Promise<PartRecord> {
  const t0 = performance.now();
  const record: PartRecord = { name: part.name, dataset: part.dataset, status: 'ok', seconds: 0, budgetSeconds };
  try {
    const note = await part.run(budgetSeconds, (text) => text.split('\n').forEach((line) => log(`  [${part.name}] ${line}`)));
    if (note) record.note = note;
  } catch (e) {
    // Recorded, not fatal: the other parts' numbers are worth having.
    record.status = 'failed';
    record.error = e instanceof Error ? `${e.message}${e.stack ? `\n${e.stack.split('\n').slice(1, 4).join('\n')}` : ''}` : String(e);
  }
  record.seconds = (performance.now() - t0) / 1000;
  return record;
}

/** Writes the report; if rendering fails, still writes the raw JSON (nothing measured is lost). */
async function save(out: string, report: ReportData, log: (line: string) => void): Promise<WrittenReport | null> {
  try {
    return await writeReport(out, report);
  } catch (e) {
    writeFileSync(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    log(e instanceof ChartPackageMissingError ? `WARNING: charts not drawn: ${e.message}; report.json and report.md are written`
      : `WARNING: report rendering failed (${(e as Error).message}); wrote report.json`);
    return null;
  }
}

// ---------------------------------------------------------------- data sets

async function findDatasets(args: BenchAllArgs, infos: DatasetInfo[], log: (line: string) => void): Promise<Dataset[]> {
  const out: Dataset[] = [synthetic(args)];
  const candidates: { name: string; rel: string; format: 'pairs' | 'lines' }[] = [
    { name: 'ml-1m', rel: 'ml-1m/ml-1m.txt', format: 'pairs' },
    { name: 'beauty', rel: 'amazon-beauty/Beauty.txt', format: 'lines' },
  ];
  for (const c of candidates) {
    const path = args.dataDir == null ? null : join(args.dataDir, c.rel);
    const wanted = args.only == null || args.only.includes(c.name) || !args.only.some((o) => ['synthetic', 'ml-1m', 'beauty'].includes(o));
    if (path == null || !existsSync(path)) {
      infos.push({ name: c.name, path, format: c.format, found: false, used: false, note: args.dataDir == null ? 'no --data-dir' : 'not found' });
    } else if (args.quick || !wanted) {
      infos.push({ name: c.name, path, format: c.format, found: true, used: false, note: args.quick ? 'skipped by --quick (synthetic only)' : 'not in --only' });
    } else {
      try {
        const split = leaveOneOut(await readSequences(path, { format: c.format }));
        out.push({ name: c.name, path, format: c.format, split });
      } catch (e) {
        // An unreadable file costs its data set, not the run.
        infos.push({ name: c.name, path, format: c.format, found: true, used: false, note: `unreadable: ${(e as Error).message}` });
        log(`data ${c.name}: unreadable, skipped (${(e as Error).message})`);
      }
    }
  }
  for (const d of out) {
    infos.push({ name: d.name, path: d.path, format: d.format, found: true, used: true, users: d.split.train.length, items: d.split.numItems,
      note: d.name === 'synthetic' ? 'generated (seeded): latent tastes, item topics, Zipf popularity' : undefined });
    log(`data ${d.name}: ${d.split.train.length} users, ${d.split.numItems} items (${d.path})`);
  }
  infos.sort((a, b) => a.name.localeCompare(b.name));
  return out;
}

/** The seeded synthetic set, written as a one-line-per-user file so every part reads the same file. */
function synthetic(args: BenchAllArgs): Dataset {
  const data = generateSynthetic(args.quick ? { numUsers: 60, numItems: 80, minLength: 6, maxLength: 14, seed: 2026 }
    : { numUsers: 3000, numItems: 1500, minLength: 20, maxLength: 120, seed: 2026 });
  const path = join(args.out, 'parts', 'synthetic.txt');
  writeFileSync(path, `${data.sequences.map((s, u) => `${u + 1} ${s.join(' ')}`).join('\n')}\n`);
  return { name: 'synthetic', path, format: 'lines', split: leaveOneOut({ sequences: data.sequences, numItems: data.numItems }) };
}

// ---------------------------------------------------------------- parts

/** The parts in run order; a sweep part leaves its trained baseline in `baselines` for the convert part of its data set. */
function planParts(args: BenchAllArgs, sizes: Sizes, datasets: Dataset[], report: ReportData, baselines: Map<string, TrainedBaseline>): Part[] {
  const results = report.results;
  const parts: Part[] = [
    { name: 'ops', kind: 'ops', dataset: null, weight: 2, run: async (_b, log) => {
      // tfjs's own embedding gradient takes ~6 minutes of a 110-minute budget here; `bench ops` measures it.
      if (!args.quick) log('embedding gradient: ours only (tfjs\'s default takes minutes; `collectivekv bench ops` compares them)');
      results.ops = await benchOps(args.quick ? quickOps(log) : reportOps(log, args.backend));
      await tf.setBackend(args.backend);
    } },
    { name: 'serve', kind: 'serve', dataset: null, weight: 3, run: async (_b, log) => {
      results.serve = await benchServe({ quick: args.quick, noRedis: args.quick, log });
      await tf.setBackend(args.backend);
    } },
  ];
  for (const d of datasets) {
    // Big data sets get more of the budget: training time grows with the interactions.
    const scale = Math.max(1, Math.log10(d.split.train.reduce((s, x) => s + x.length, 0)) - 4);
    parts.push(
      { name: `quality:${d.name}`, kind: 'quality', dataset: d.name, weight: 3 * scale, run: (b, log) => qualityPart(d, sizes, args, b, log, report) },
      { name: `sweep:${d.name}`, kind: 'sweep', dataset: d.name, weight: 8 * scale, run: (b, log) => sweepPart(d, sizes, b, log, report, baselines) },
      { name: `convert:${d.name}`, kind: 'convert', dataset: d.name, weight: 6 * scale, run: async (b, log) => {
        const baseline = baselines.get(d.name);
        baselines.delete(d.name);
        try {
          await convertPart(d, sizes, b, log, report, baseline);
        } finally {
          baseline?.sasrec.model.dispose();
        }
      } },
      { name: `ctr:${d.name}`, kind: 'ctr', dataset: d.name, weight: 3 * scale, run: (b, log) => ctrPart(d, args, b, log, report) },
    );
  }
  return parts;
}

/** bench ops at sizes that fit a few minutes of the report's budget (the `bench ops` defaults take ~9 minutes here). */
function reportOps(log: (line: string) => void, backend: 'wasm' | 'cpu'): Parameters<typeof benchOps>[0] {
  // On cpu the catalog loss at full size (its composite's transposed products) would take minutes.
  return { log, backend, embedding: { skipTfjs: true }, trainStep: { batch: 64, warmup: 1, steps: 2 },
    catalogLoss: backend === 'cpu' ? { rows: 800 } : {} };
}

function quickOps(log: (line: string) => void): Parameters<typeof benchOps>[0] {
  return {
    log, backend: 'cpu', embedding: { rows: 64, width: 8, indices: 128, oursRuns: 1, skipTfjs: true },
    collectiveAttention: { batch: 2, tq: 1, tk: 16, width: 16, numHeads: 2, poolSize: 16, warmup: 1, iterations: 1 },
    trainStep: { batch: 4, length: 8, hiddenDim: 8, numItems: 20, poolSize: 8, warmup: 1, steps: 1 }, bytes: { widths: [64] },
    attentionMatMul: { entries: 2, length: 8, headDim: 4, rounds: 1 }, catalogLoss: { rows: 16, catalog: 20, width: 8, rounds: 1 },
  };
}

/** `bench quality` (src/app/bench/quality.ts) through its command function; its JSON is read back. */
async function qualityPart(d: Dataset, s: Sizes, args: BenchAllArgs, budget: number, log: (line: string) => void, report: ReportData): Promise<void> {
  const json = join(args.out, 'parts', `quality-${d.name}.json`);
  const code = await benchQualityCommand({
    model: 'sasrec', data: d.path, format: d.format, json, maxMinutes: budget / 60, epochs: s.epochs, hiddenDim: s.hiddenDim, maxLength: s.maxLength,
    poolSize: s.poolSize, userDim: 1, validationUsers: s.validationUsers, log, progress: linesTo(log),
  });
  if (code !== 0) throw new Error(`bench quality exited with ${code}`);
  (report.results.quality ??= {})[d.name] = JSON.parse(readFileSync(json, 'utf8')) as QualityResult;
}

/** A progress sink that forwards whole lines to the log (no bar: the log may not be a terminal). */
function linesTo(log: (line: string) => void): ProgressSink {
  let pending = '';
  return {
    isTTY: false,
    write(text: string) {
      pending += text;
      const lines = pending.split(/\r?\n|\r/);
      pending = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) log(l);
      return true;
    },
  };
}

/** A baseline trained by a sweep part, kept for the convert part of the same data set. */
type TrainedBaseline = NonNullable<BenchConvertOptions['baseline']>;

/** Smallest userDim within this share of the sweep's best NDCG@10 counts as "best": more user width buys nothing beyond it. */
export const SWEEP_TOLERANCE = 0.97;

/**
 * The quality-vs-compression sweep: a baseline mha SASRec is trained (most of the budget) and
 * analysed with analyzeKV (SVD energy curves, suggested userDim); then, for userDim 1/2/4/8 (default
 * pool) and each pool size (userDim 1), it is converted to CollectiveKV (swapAttention: k-means pools
 * over its own K/V) and tested without fine-tuning. Every point is the same trained model, so the
 * points differ only by the cache format and are not noise of separate short trainings; all are
 * tested on one seeded sample of test users.
 */
async function sweepPart(d: Dataset, s: Sizes, budget: number, log: (line: string) => void, report: ReportData,
  baselines: Map<string, TrainedBaseline>): Promise<string> {
  const configs = [...s.userDims.map((u) => ({ userDim: u, poolSize: s.poolSize })),
    ...s.poolSizes.filter((p) => p !== s.poolSize).map((p) => ({ userDim: 1, poolSize: p }))];
  const train = { maxEpochs: s.epochs, patience: 3, batchSize: 128, learningRate: 1e-3, seed: 1, validationUsers: s.validationUsers,
    timeBudgetSeconds: Math.max(1, budget * SWEEP_TRAINING_SHARE) };
  const settings = { model: 'sasrec', maxLength: s.maxLength, hiddenDim: s.hiddenDim, numBlocks: 2, heads: 1, poolSize: s.poolSize,
    maxEpochs: s.epochs, patience: 3, batchSize: 128, learningRate: 1e-3, seed: 1, trainingSeconds: Math.round(train.timeBudgetSeconds),
    points: 'converted from the baseline, no fine-tune', testUsers: Math.min(s.sweepTestUsers || Infinity, d.split.test.length),
    sampleUsers: s.analysisUsers };
  const base = buildSasrec({ numItems: d.split.numItems, maxLength: s.maxLength, hiddenDim: s.hiddenDim, numBlocks: 2, numHeads: 1, dropout: 0.2,
    seed: 1, attention: 'mha' });
  const fit = fitSasrec(base, d.split, train);
  baselines.set(d.name, { sasrec: base, epochs: fit.epochs, steps: fit.steps ?? 0, trainSeconds: fit.trainSeconds });
  log(`mha baseline: ${fit.epochs} epochs, ${fit.steps ?? 0} steps (${fit.trainSeconds.toFixed(0)} s, stopped by ${fit.stoppedBy})`);
  (report.results.analysis ??= {})[d.name] = analyse(base.model, d, s);
  const cases = sampleCases(d.split.test, s.sweepTestUsers, 1);
  const fullBytes = attentionBytesPerToken(base.model);
  const baseline = sweepPoint(base, cases, { userDim: 0, poolSize: 0 }, fullBytes, fit, log).point;
  const sweep: SweepResult = { model: 'sasrec', settings, baseline, points: [], bestUserDim: null, bestUserDimByTolerance: null };
  const ranks = new Map<number, Int32Array>();
  (report.results.sweep ??= {})[d.name] = sweep;
  const skipped: string[] = [];
  for (const c of configs) {
    // One point that cannot be converted costs that point, not the sweep.
    let converted: Sasrec;
    try {
      converted = convertSasrec(base, d.split, { ...c, sampleUsers: s.analysisUsers, seed: 1 }).converted;
    } catch (e) {
      skipped.push(`userDim ${c.userDim} pool ${c.poolSize}: ${(e as Error).message}`);
      log(`collectivekv userDim ${c.userDim} pool ${c.poolSize}: skipped (${(e as Error).message})`);
      continue;
    }
    try {
      const { point, ranks: pointRanks } = sweepPoint(converted, cases, c, fullBytes, { epochs: 0, trainSeconds: 0 }, log);
      sweep.points.push(point);
      if (c.poolSize === s.poolSize) ranks.set(c.userDim, pointRanks);
    } finally {
      converted.model.dispose();
    }
    const userDimPoints = sweep.points.filter((x) => x.poolSize === s.poolSize);
    sweep.bestUserDim = bestUserDim(userDimPoints, ranks);
    sweep.bestUserDimByTolerance = bestUserDim(userDimPoints);
    sweep.gapsToTop = gapsToTop(userDimPoints, ranks);
  }
  const notes = [...(fit.stoppedBy === 'maxMinutes' ? [`the baseline was cut by its time share after ${fit.epochs} epochs`] : []),
    ...skipped.map((x) => `skipped ${x}`)];
  return notes.join('; ');
}

/** Share of the sweep's budget its baseline trains for; the rest is the conversions and tests. */
const SWEEP_TRAINING_SHARE = 0.6;

/**
 * The smallest userDim whose NDCG@10 is close to the top point's: at least SWEEP_TOLERANCE of it, or,
 * given each point's per-case ranks on the same test cases, not below it by more than
 * SWEEP_NOISE_STD_ERRS standard errors of the paired per-case difference (on small test sets the
 * points differ by noise-level amounts). Null without points.
 */
export function bestUserDim(points: readonly Pick<SweepPoint, 'userDim' | 'ndcg10'>[], ranks?: ReadonlyMap<number, ArrayLike<number>>): number | null {
  if (points.length === 0) return null;
  const top = topPoint(points);
  const close = (p: Pick<SweepPoint, 'userDim' | 'ndcg10'>) => {
    if (p.ndcg10 >= SWEEP_TOLERANCE * top.ndcg10) return true;
    const [a, b] = [ranks?.get(top.userDim), ranks?.get(p.userDim)];
    if (a == null || b == null) return false;
    const gap = pairedNdcgGap(a, b);
    return gap.mean <= SWEEP_NOISE_STD_ERRS * gap.stdErr;
  };
  return Math.min(...points.filter(close).map((p) => p.userDim));
}

/** Per userDim: the paired NDCG@10 gap (mean, standard error) to the top userDim's, the evidence behind bestUserDim. */
function gapsToTop(points: readonly SweepPoint[], ranks: ReadonlyMap<number, Int32Array>): Record<string, { mean: number; stdErr: number }> {
  if (points.length === 0) return {};
  const topRanks = ranks.get(topPoint(points).userDim);
  const out: Record<string, { mean: number; stdErr: number }> = {};
  for (const p of points) {
    const r = ranks.get(p.userDim);
    if (topRanks != null && r != null) out[String(p.userDim)] = pairedNdcgGap(topRanks, r);
  }
  return out;
}

/** The point of highest NDCG@10 (the first of ties); points must not be empty. */
function topPoint<P extends Pick<SweepPoint, 'ndcg10'>>(points: readonly P[]): P {
  return points.reduce((best, p) => (p.ndcg10 > best.ndcg10 ? p : best));
}

/** Standard errors of the paired difference within which a point counts as tied with the top one. */
const SWEEP_NOISE_STD_ERRS = 2;

/**
 * Mean and standard error of the per-case NDCG@10 difference a - b, from the 1-based ranks of the
 * same cases in the same order.
 */
export function pairedNdcgGap(a: ArrayLike<number>, b: ArrayLike<number>): { mean: number; stdErr: number } {
  if (a.length !== b.length || a.length === 0) throw new Error(`pairedNdcgGap: two rank lists of one non-zero length, received ${a.length} and ${b.length}`);
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < a.length; i++) {
    const d = ndcgAt(a[i], 10) - ndcgAt(b[i], 10);
    sum += d;
    sumSq += d * d;
  }
  const n = a.length;
  const mean = sum / n;
  const variance = n > 1 ? Math.max(0, (sumSq - n * mean * mean) / (n - 1)) : 0;
  return { mean, stdErr: Math.sqrt(variance / n) };
}

function sweepPoint(m: Sasrec, cases: readonly NextItemCase[], c: { userDim: number; poolSize: number }, fullBytes: number,
  fit: { epochs: number; trainSeconds: number; stoppedBy?: string }, log: (line: string) => void): { point: SweepPoint; ranks: Int32Array } {
  const t = evaluateSasrec(m, cases, { ks: [10], keepRanks: true });
  const bytes = attentionBytesPerToken(m.model);
  log(`${c.userDim === 0 ? 'mha' : `collectivekv userDim ${c.userDim} pool ${c.poolSize} (converted)`}: NDCG@10 ${t.ndcg[10].toFixed(4)}, `
    + `HR@10 ${t.hr[10].toFixed(4)}, ${bytes} B/token over ${t.count} test users`);
  const point = { userDim: c.userDim, poolSize: c.poolSize, bytesPerToken: bytes, compressionRatio: fullBytes / bytes, hr10: t.hr[10], ndcg10: t.ndcg[10],
    epochs: fit.epochs, trainSeconds: fit.trainSeconds, ...(fit.stoppedBy != null ? { stoppedBy: fit.stoppedBy } : {}) };
  return { point, ranks: t.ranks as Int32Array };
}

/** A seeded sample of at most `count` test cases (0 = all), in their original order. */
function sampleCases(cases: readonly NextItemCase[], count: number, seed: number): NextItemCase[] {
  if (count <= 0 || count >= cases.length) return [...cases];
  const picked = shuffleInPlace(cases.map((_, i) => i), seededRandom(seed)).slice(0, count).sort((a, b) => a - b);
  return picked.map((i) => cases[i]);
}

/** analyzeKV on the trained baseline: a seeded sample of users' last maxLength training items, left-padded. */
function analyse(model: tfl.LayersModel, d: Dataset, s: Sizes): AnalysisResult {
  const users = d.split.train.filter((x) => x.length > 1).slice(0, s.analysisUsers);
  const rows = new Int32Array(users.length * s.maxLength);
  users.forEach((seq, i) => {
    const tail = seq.slice(-s.maxLength);
    rows.set(tail, i * s.maxLength + s.maxLength - tail.length);
  });
  const ids = tf.tensor2d(rows, [users.length, s.maxLength], 'int32');
  try {
    const a = analyzeKV(model, ids, { maxTokens: 20000 });
    const part = (x: (typeof a.layers)[number]['keys']) => ({ cumulativeEnergy: x.cumulativeEnergy, rank90: x.rank90, rank95: x.rank95, rank99: x.rank99 });
    return { model: 'sasrec (mha)', users: users.length, tokens: a.layers[0]?.keys.tokens ?? 0,
      layers: a.layers.map((l) => ({ layer: l.layer, keys: part(l.keys), values: part(l.values), suggestedUserDim: l.suggestedUserDim, reasoning: l.reasoning })) };
  } finally {
    ids.dispose();
  }
}

/**
 * Converted vs trained-from-scratch CollectiveKV. With the sweep's baseline, from scratch trains for
 * the baseline's time; without it (sweep not selected), baseline and from scratch share the budget.
 */
async function convertPart(d: Dataset, s: Sizes, budget: number, log: (line: string) => void, report: ReportData,
  baseline?: TrainedBaseline): Promise<void> {
  const perFit = baseline != null ? Math.max(1, baseline.trainSeconds) : budget / 2.4;
  const r = await benchConvert({ dataPath: d.path, baseline,
    maxLength: s.maxLength, hiddenDim: s.hiddenDim, epochs: s.epochs, poolSize: s.poolSize, userDim: 1, sampleUsers: s.analysisUsers,
    validationUsers: s.validationUsers, timeBudgetSeconds: perFit, log });
  (report.results.convert ??= {})[d.name] = r;
  report.settings[`convert:${d.name}`] = { model: 'sasrec', maxLength: s.maxLength, hiddenDim: s.hiddenDim, numBlocks: 2, epochs: s.epochs,
    fineTuneFraction: 0.2, fineTuneLearningRate: r.fineTuneLearningRate ?? 'n/a', fineTuneBalanceWeight: r.fineTuneBalanceWeight ?? 'n/a', poolSize: s.poolSize, userDim: 1, sampleUsers: s.analysisUsers,
    timeBudgetSecondsPerFit: Math.round(perFit), baseline: baseline != null ? 'the sweep\'s' : 'trained here' };
}

async function ctrPart(d: Dataset, args: BenchAllArgs, budget: number, log: (line: string) => void, report: ReportData): Promise<void> {
  const q = args.quick;
  const r = await benchCtr({
    model: 'din', data: d.name === 'synthetic' ? undefined : d.path, format: d.name === 'synthetic' ? undefined : d.format,
    maxMinutes: budget / 2 / 60, maxEpochs: q ? 1 : 10, maxUsers: q ? 40 : 0, backend: args.backend, log,
    ...(q ? { attentionWidth: 16, embeddingDim: 8, numHeads: 2, longLength: 20, shortLength: 8, collective: { poolSize: 16 } } : {}),
  });
  (report.results.ctr ??= {})[d.name] = r;
  await tf.setBackend(args.backend);
}
