// report.json + report.md + charts/*.svg from the results of `collectivekv bench all`. Every number
// in report.md is read from report.json, and each table names the JSON path it comes from. The charts
// are Vega-Lite specs (charts.ts) drawn by vega (render.ts), optional packages loaded on first use.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { Chart, buildCharts, slug } from './charts';
import { ChartRenderer, loadChartRenderer } from './render';
import { checkWellFormed } from './xml';
import { REPORT_FORMAT, ReportData, ReportMeta, ReportResults } from './types';

export * from './types';
export { buildCharts } from './charts';
export type { Chart } from './charts';
export { ChartPackageMissingError, loadChartRenderer } from './render';
export type { ChartRenderer } from './render';

export const CAVEAT = 'Caveat (docs/design.md section 4): in pure target-attention models whose K/V source is only the item embedding, '
  + 'both the pool index and the user part are functions of the item id, so nothing per user needs storing at all. Real histories '
  + 'carry per-event context (action type, time gap, position) and self-attention layers mix the whole prefix, which makes the '
  + 'cache truly per user. The next-item models here are self-attention (SASRec): their cache is per user. The CTR models feed '
  + 'per-event features (position, time bucket, action where the data has them) into the K/V source; each table names its setting.';

export interface MetaOptions {
  backend: string;
  command: string;
  quick: boolean;
  maxMinutes: number;
  /** Package root (for versions and the git commit). */
  root?: string;
}

/** Date, machine, versions and git commit of this run. */
export function collectMeta(o: MetaOptions): ReportMeta {
  const root = o.root ?? process.cwd();
  const cpus = os.cpus();
  return {
    format: REPORT_FORMAT, date: new Date().toISOString(),
    machine: { os: `${os.type()} ${os.release()} ${os.arch()}`, cpu: cpus[0]?.model?.trim() ?? 'unknown', cores: cpus.length,
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10 },
    node: process.version, backend: o.backend, versions: versions(root), gitCommit: gitCommit(root), command: o.command,
    quick: o.quick, maxMinutes: o.maxMinutes, totalSeconds: 0, partial: true,
  };
}

function versions(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['collectivekv', '@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-wasm']) {
    const path = name === 'collectivekv' ? join(root, 'package.json') : join(root, 'node_modules', name, 'package.json');
    try {
      out[name] = (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
    } catch {
      out[name] = 'unknown';
    }
  }
  return out;
}

function gitCommit(root: string): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || null;
  } catch {
    return null;
  }
}

export interface WrittenReport {
  json: string;
  markdown: string;
  charts: string[];
}

/**
 * Writes report.json and report.md, then the charts under `dir`/charts, drawn by `render` (default:
 * vega, loaded now; a missing package throws ChartPackageMissingError after the JSON and markdown are
 * written). Every chart is checked for XML well-formedness before it is written.
 */
export async function writeReport(dir: string, data: ReportData, render?: ChartRenderer): Promise<WrittenReport> {
  const charts = buildCharts(data.results);
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'report.json');
  writeFileSync(json, `${JSON.stringify(data, null, 2)}\n`);
  const markdown = join(dir, 'report.md');
  writeFileSync(markdown, renderMarkdown(data, charts));
  return { json, markdown, charts: await writeCharts(dir, charts, render) };
}

/** Draws `charts` under `dir`/charts (render as in writeReport); returns the files written. */
export async function writeCharts(dir: string, charts: Chart[], render?: ChartRenderer): Promise<string[]> {
  if (charts.length === 0) return [];
  const draw = render ?? await loadChartRenderer();
  mkdirSync(join(dir, 'charts'), { recursive: true });
  const paths: string[] = [];
  for (const c of charts) {
    const svg = await draw(c);
    checkWellFormed(svg);
    const path = join(dir, 'charts', c.file);
    writeFileSync(path, svg);
    paths.push(path);
  }
  return paths;
}

// ---------------------------------------------------------------- markdown

export function renderMarkdown(data: ReportData, charts: Chart[]): string {
  const m = data.meta;
  const out: string[] = [
    '# CollectiveKV benchmark report', '',
    m.partial ? '**Partial report: the run is still in progress or was interrupted.**\n' : '',
    `Generated ${m.date} by \`${m.command}\`${m.quick ? ' (--quick: tiny sizes, numbers are a smoke test, not results)' : ''}. `
    + `Every number below is in \`report.json\`; each table names its JSON path.`, '',
    table(['', ''], [
      ['machine', `${m.machine.cpu}, ${m.machine.cores} cores, ${m.machine.memoryGiB} GiB, ${m.machine.os}`],
      ['node / backend', `${m.node} / ${m.backend}`],
      ['versions', Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['git commit', m.gitCommit ?? 'unknown'],
      ['time budget / used', `${m.maxMinutes} min / ${(m.totalSeconds / 60).toFixed(1)} min`],
    ]), '',
    '## Data sets', '', '`datasets`', '',
    table(['data set', 'found', 'used', 'users', 'items', 'path / note'], data.datasets.map((d) => [
      d.name, yes(d.found), yes(d.used), num(d.users), num(d.items), [d.path ?? '', d.note ?? ''].filter(Boolean).join('; ')])), '',
    '## Parts', '', '`parts`', '',
    table(['part', 'status', 'seconds', 'budget s', 'error / note'], data.parts.map((p) => [
      p.name, p.status, p.seconds.toFixed(0), p.budgetSeconds.toFixed(0), (p.error ?? p.note ?? '').split('\n')[0].replace(/\|/g, '\\|')])), '',
    `> ${CAVEAT}`, '',
  ];
  const sections = [qualitySection, sweepSection, analysisSection, convertSection, ctrSection, serveSection, opsSection];
  for (const section of sections) out.push(...section(data.results, charts, data.settings));
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trim()}\n`;
}

type Section = (r: ReportResults, charts: Chart[], settings: ReportData['settings']) => string[];

const qualitySection: Section = (r) => {
  const entries = Object.entries(r.quality ?? {});
  if (entries.length === 0) return [];
  const rows = entries.flatMap(([d, q]) => (['mha', 'collectivekv'] as const).map((arm) => [
    d, q.model, arm, f4(q[arm].hr10), f4(q[arm].ndcg10), f4(q[arm].mrr10), String(q[arm].bytesPerToken), `${q[arm].compressionRatio.toFixed(1)}x`,
    String(q[arm].epochs), q[arm].trainSeconds.toFixed(0)]));
  return ['## Next-item quality: MultiHeadAttention vs CollectiveKV', '',
    'Same data, leave-one-out split, seed, epochs budget and early-stopping rule for both (`collectivekv bench quality`); full ranking.', '',
    '`results.quality.<data set>`', '',
    table(['data set', 'model', 'attention', 'HR@10', 'NDCG@10', 'MRR@10', 'bytes/token', 'compression', 'epochs', 'train s'], rows), '',
    ...entries.map(([d, q]) => `- ${d}: CollectiveKV NDCG@10 = ${pct(q.collectivekv.ndcg10 / q.mha.ndcg10)} of mha`
      + `${q.truncatedByTime ? ' (WARNING: cut by the time bound, not at equal budget)' : ''}; settings: ${settingsText(q.options)}`), ''];
};

const sweepSection: Section = (r, charts) => {
  const entries = Object.entries(r.sweep ?? {});
  if (entries.length === 0) return [];
  const out = ['## Quality vs compression (userDim and pool size sweep)', '',
    'One mha SASRec is trained; each point is that model converted to CollectiveKV (`swapAttention`: k-means pools over its own K/V, '
    + 'no fine-tune), all tested on the same users, so the points differ only by the cache format. Compression = full-KV bytes per token '
    + '/ CollectiveKV bytes per token (fp32 user part, index width from the pool size; pools are shared weights, not per-user bytes). '
    + 'Best userDim = the smallest whose NDCG@10 is at least 97% of the top userDim\'s, or below it by at most 2 standard errors of the '
    + 'paired per-user difference (the same test users score every point): more user width buys nothing measurable beyond it. '
    + 'By the 97% rule alone it is given in brackets.', ''];
  for (const [d, s] of entries) {
    out.push(`### ${d}`, '', `\`results.sweep.${d}\`; settings: ${settingsText(s.settings)}`, '',
      table(['userDim', 'pool', 'bytes/token', 'compression', 'HR@10', 'NDCG@10', 'epochs', 'train s'], [
        ['mha', '-', String(s.baseline.bytesPerToken), '1.0x', f4(s.baseline.hr10), f4(s.baseline.ndcg10), String(s.baseline.epochs), s.baseline.trainSeconds.toFixed(0)],
        ...s.points.map((p) => [String(p.userDim), String(p.poolSize), String(p.bytesPerToken), `${p.compressionRatio.toFixed(1)}x`, f4(p.hr10), f4(p.ndcg10),
          p.epochs > 0 ? String(p.epochs) : '-', p.trainSeconds > 0 ? p.trainSeconds.toFixed(0) : '-']),
      ]), '', `Best userDim: ${s.bestUserDim ?? 'n/a'}${s.bestUserDimByTolerance != null ? ` (97% rule alone: ${s.bestUserDimByTolerance})` : ''}.`
        + `${s.gapsToTop != null && Object.keys(s.gapsToTop).length > 0 ? ` NDCG@10 gap to the top userDim per test user (mean ± standard error): ${
          Object.entries(s.gapsToTop).map(([u, g]) => `userDim ${u} ${g.mean.toFixed(4)} ± ${g.stdErr.toFixed(4)}`).join(', ')}.` : ''}`, '',
      ...images(charts, 'quality-vs-compression-', d));
  }
  return out;
};

const analysisSection: Section = (r, charts) => {
  const entries = Object.entries(r.analysis ?? {});
  if (entries.length === 0) return [];
  const out = ['## SVD analysis of the trained baseline\'s K/V', '',
    'Singular values of the stacked K (and V) of sampled users\' valid tokens (`analyzeKV`); ranks for 90/95/99% of the energy and the suggested userDim.', ''];
  for (const [d, a] of entries) {
    const best = r.sweep?.[d]?.bestUserDim;
    out.push(`### ${d}`, '', `\`results.analysis.${d}\`: ${a.model}, ${a.users} users, ${a.tokens} tokens`, '',
      table(['layer', 'K rank 90/95/99%', 'V rank 90/95/99%', 'suggested userDim'], a.layers.map((l) => [
        l.layer, `${l.keys.rank90}/${l.keys.rank95}/${l.keys.rank99}`, `${l.values.rank90}/${l.values.rank95}/${l.values.rank99}`, String(l.suggestedUserDim)])), '',
      best != null ? `Suggested userDim vs best of the sweep (\`results.sweep.${d}.bestUserDim\`): ${a.layers.map((l) => l.suggestedUserDim).join(', ')} vs ${best}`
        + ` (${a.layers.every((l) => withinOneStep(l.suggestedUserDim, best)) ? 'within one step: target met' : 'more than one step apart: target missed'}).` : '',
      '', ...images(charts, 'svd-energy-', d));
  }
  return out;
};

const convertSection: Section = (r, charts) => {
  const entries = Object.entries(r.convert ?? {});
  if (entries.length === 0) return [];
  return ['## Converting a trained model vs training CollectiveKV from scratch', '',
    '`swapAttention` on the trained baseline (pools by k-means over its own K/V), then a fine-tune of at most 20% of the baseline\'s epochs.', '',
    '`results.convert.<data set>.rows`', '',
    table(['data set', 'model', 'epochs', 'HR@10', 'NDCG@10', 'seconds'], entries.flatMap(([d, c]) => c.rows.map((row) => [
      d, row.model, String(row.epochs), f4(row.testHr10), f4(row.testNdcg10), row.seconds.toFixed(0)]))), '',
    ...entries.map(([d, c]) => `- ${d}: converted + fine-tune reaches ${pct(c.convertedRatio)} of the baseline NDCG@10 after ${pct(c.fineTuneShare ?? NaN)} of its training steps (target: at least 97%: ${c.convertedRatio >= 0.97 ? 'met' : 'missed'}).`),
    '', ...images(charts, 'convert-vs-scratch', '')];
};

const ctrSection: Section = (r) => {
  const entries = Object.entries(r.ctr ?? {});
  if (entries.length === 0) return [];
  return ['## CTR (target attention)', '',
    'Per user: history prefix -> next item positive, sampled untouched items negative; chronological split. K/V sources carry per-event features, see settings.', '',
    '`results.ctr.<data set>`', '',
    table(['data set', 'model', 'attention', 'AUC', 'gAUC', 'logloss', 'bytes/token', 'train s'], entries.flatMap(([d, c]) => (['mha', 'collectivekv'] as const).map((arm) => [
      d, c.model, arm, f4(c[arm].auc), f4(c[arm].gauc), f4(c[arm].logloss), String(c[arm].bytesPerToken), c[arm].trainSeconds.toFixed(0)]))), '',
    ...entries.map(([d, c]) => `- ${d}: settings: ${settingsText(c.settings)}${c.popularity ? `; popularity-only AUC ${f4(c.popularity.auc)}` : ''}`), ''];
};

const serveSection: Section = (r, charts) => {
  const s = r.serve;
  if (s == null) return [];
  return ['## Serving: cached scoring latency', '',
    `\`results.serve\`: SASRec hidden ${s.model.hiddenDim}, ${s.model.numBlocks} blocks, pool ${s.model.poolSize}, userDim ${s.model.userDim}, `
    + `bytes/token ${s.model.bytesPerToken.collectivekv} (collectivekv) vs ${s.model.bytesPerToken.full} (full); backend ${s.backend}. `
    + 'Modes: collectivekv (compressed cache), full (full KV cache), recompute (no cache: re-run the history).', '',
    table(['mode', 'store', 'history', 'batch', 'p50 ms', 'p99 ms', 'bytes/user', 'samples'], s.results.map((row) => [
      row.mode, row.store, String(row.historyLength), String(row.batchSize), row.p50Ms.toFixed(2), row.p99Ms.toFixed(2), String(row.bytesPerUser),
      `${row.samples}${row.extrapolatedFromBatch ? ` (scaled from batch ${row.extrapolatedFromBatch})` : ''}`])), '',
    `Load test (\`results.serve.load\`): ${s.load.clients} clients, ${s.load.requestsPerSecond.toFixed(0)} requests/s, p99 ${s.load.p99Ms.toFixed(1)} ms, `
    + `${s.load.failed} failed (+${s.load.failedDuringRestart} while the store restarted), ${s.load.eventsAcknowledged} events acknowledged, ${s.load.eventsLost} lost, every entry matches its history: ${yes(s.load.exact)} (${s.load.store}).`,
    ...s.notes.map((n) => `- ${n}`), '', ...images(charts, 'latency-vs-batch-', ''), ...images(charts, 'cache-bytes-per-user', '')];
};

const opsSection: Section = (r) => {
  const o = r.ops;
  if (o == null) return [];
  const e = o.embeddingGradient;
  const c = o.collectiveAttention;
  const t = o.trainStep;
  return ['## Ops', '', '`results.ops`', '',
    table(['measure', 'ours / collectivekv', 'reference', 'ratio'], [
      ...Object.entries(o.bytesPerToken).map(([k, b]) => [`bytes per cached token, ${k}`, `${b.collectivekv} B`, `${b.full} B (full KV)`, pct(b.ratio)]),
      [`decode attention from the cache (${c.backend})`, `${c.fusedMs.toFixed(2)} ms fused`, `${c.compositeMs.toFixed(2)} ms composite`, `${c.speedup.toFixed(2)}x`],
      [`embedding gradient (cpu, ${e.rows}x${e.width}, ${e.indices} indices)`, `${e.oursMs.toFixed(2)} ms`, e.tfjsMs == null ? 'skipped' : `${e.tfjsMs.toFixed(0)} ms (tfjs)`,
        e.speedup == null ? 'n/a' : `${e.speedup.toFixed(0)}x`],
      [`training step (${t.backend}, batch ${t.batch}, length ${t.length}, d=${t.hiddenDim})`, t.collectivekvMs == null ? 'n/a' : `${t.collectivekvMs.toFixed(1)} ms`,
        t.mhaMs == null ? 'n/a' : `${t.mhaMs.toFixed(1)} ms (mha)`, t.ratio == null ? (t.error ?? 'n/a') : `${t.ratio.toFixed(2)}x the time`],
    ]), ''];
};

// ---------------------------------------------------------------- helpers

function images(charts: Chart[], prefix: string, dataset: string): string[] {
  const want = dataset ? `${prefix}${slug(dataset)}.svg` : null;
  return charts.filter((c) => (want ? c.file === want : c.file.startsWith(prefix))).flatMap((c) => [`![${c.title}](charts/${c.file})`, '']);
}

export function table(header: string[], rows: string[][]): string {
  const align = header.map((_, i) => (i === 0 ? '---' : '---:'));
  return [header, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** userDim values 1, 2, 4, 8 are one step apart each. */
export function withinOneStep(a: number, b: number): boolean {
  return Math.abs(Math.log2(Math.max(1, a)) - Math.log2(Math.max(1, b))) <= 1;
}

function settingsText(s: Record<string, unknown> | undefined): string {
  if (s == null) return 'n/a';
  return Object.entries(s).filter(([, v]) => v == null || typeof v !== 'object').map(([k, v]) => `${k} ${String(v)}`).join(', ')
    + Object.entries(s).filter(([, v]) => v != null && typeof v === 'object').map(([k, v]) => `, ${k} ${JSON.stringify(v)}`).join('');
}

const f4 = (x: number | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : 'n/a');
const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');
const num = (x: number | undefined) => (x == null ? '' : String(x));
const yes = (b: boolean) => (b ? 'yes' : 'no');
