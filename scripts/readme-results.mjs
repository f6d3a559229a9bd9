#!/usr/bin/env node
// Regenerates the README's results table between the results markers, from one or more of
//   - a `collectivekv bench all` report.json (detected by its meta.format / results / parts),
//   - a `collectivekv bench ops --json` file (detected by bytesPerToken.d256 and embeddingGradient),
//   - a `collectivekv bench quality --json` file (model, options, mha and collectivekv rows),
//   - a `collectivekv bench convert --json` file (rows and convertedRatio),
//   - a `collectivekv train --json` file (model, attention, test metrics, epochs),
//   - a `collectivekv eval --json` file (model, attention, modelDir, test metrics),
//   - a `collectivekv bench ctr --json` file (mha and collectivekv AUC rows and a comparison).
// An mha train (or eval) file followed by the collectivekv one of the same model and data makes one row.
// Rows follow the order of the files. Idempotent: the same JSON gives the same README (nothing
// depends on the clock or the file system).
import { readFileSync, writeFileSync } from 'node:fs';

const fmt = (x, digits = 1) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const f4 = (x) => fmt(x, 4);
const pct = (x, digits = 2) => (typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : 'n/a');
const HEADER = [['Measure', 'Ours / CollectiveKV', 'Reference', 'Ratio'], ['---', '---:', '---:', '---:']];

export function isReport(json) {
  return json != null && typeof json === 'object' && json.results != null && Array.isArray(json.parts) && json.meta != null;
}

export function isBenchOps(json) {
  return json != null && typeof json === 'object' && json.bytesPerToken?.d256 != null && json.embeddingGradient != null;
}

export function isBenchQuality(json) {
  return json != null && typeof json === 'object' && json.mha?.ndcg10 != null && json.collectivekv?.ndcg10 != null && json.options != null;
}

export function isBenchConvert(json) {
  return json != null && typeof json === 'object' && Array.isArray(json.rows) && json.convertedRatio != null;
}

export function isTrainRun(json) {
  return json != null && typeof json === 'object' && json.test?.ndcg10 != null && json.attention != null && json.model != null;
}

/** An `eval` JSON: a saved model's test metrics (no training record). */
export function isEvalRun(json) {
  return isTrainRun(json) && json.modelDir != null && json.epochs == null;
}

export function isBenchCtr(json) {
  return json != null && typeof json === 'object' && json.mha?.auc != null && json.collectivekv?.auc != null && json.comparison != null;
}

const baseName = (path) => String(path ?? '').split('/').pop();
/** The training loss, when a run records one other than the default catalog softmax. */
const lossNote = (t) => (t.loss != null && t.loss !== 'softmax' ? `, ${t.loss} loss` : '');
/** How the test ranking treated history items, when a run says it filtered them. */
const filtered = (t) => {
  if (!t.test?.filterHistory) return '';
  return t.test.historyWindow == null ? ', history items filtered from the ranking'
    : `, the last ${t.test.historyWindow} history items (the model's input) filtered from the ranking`;
};

/** One row per `bench quality` file: CollectiveKV vs its mha baseline under one budget. */
/**
 * Collective settings with the router flat, as files before 0.2 recorded them (router: 'nearest-product',
 * quantizationWeight, gate, balanceTokens beside it); later files record a router config.
 */
function flatCollective(c) {
  const r = c?.router;
  if (r == null || typeof r !== 'object') return c;
  const tokens = r.balanceTokens ?? r.lossTokens;
  return { ...c, router: r.kind, ...(r.gate != null ? { gate: r.gate } : {}),
    ...(r.quantizationWeight != null ? { quantizationWeight: r.quantizationWeight } : {}), ...(tokens != null && tokens !== 2048 ? { balanceTokens: tokens } : {}) };
}

export function qualityRows(q, label) {
  const o = { ...q.options, collective: flatCollective(q.options?.collective) };
  const ws = q.collectivekv.warmStart;
  // Files before 2026-12 do not record the fine-tune rate (it was 0.25 then).
  const rate = ws?.fineTuneRate != null && ws.fineTuneRate !== 0.25 ? ` at ${ws.fineTuneRate} of the learning rate` : '';
  // forkedBaseline: the mha part is the baseline's own run (files before 2026-11-30 evening trained a second one).
  const part = ws?.forkedBaseline ? `the mha run to step ${ws.mhaSteps}` : `${ws?.mhaSteps} mha steps`;
  const warm = ws ? `; collectivekv by warm start: ${part}, converted, ${ws.fineTuneSteps} steps${rate}` : '';
  const budget = `${q.mha.epochs} vs ${q.collectivekv.epochs} epochs, ${q.mha.steps ?? '?'} vs ${q.collectivekv.steps ?? '?'} steps${warm}${lossNote(q)}${label ? `; ${label}` : ''}`;
  // Nearest routers' VQ loss weight where the file records it (bench quality files before 2026-11-30 do not).
  const weight = o.collective?.quantizationWeight != null ? ` (quantizationWeight ${o.collective.quantizationWeight})` : '';
  const router = o.collective?.router != null && o.collective.router !== 'dense' ? `, ${o.collective.router} router${weight}` : '';
  return [[`Next-item test NDCG@10, ${q.model} on ${baseName(q.data)} (L=${o.maxLength}, d=${o.hiddenDim}, pool ${o.collective?.poolSize}, userDim ${o.collective?.userDim}${router}; ${budget})`,
    `${f4(q.collectivekv.ndcg10)} (${q.collectivekv.bytesPerToken} B/token)`, `${f4(q.mha.ndcg10)} (${q.mha.bytesPerToken} B/token, full KV)`,
    `${pct(q.collectivekv.ndcg10 / q.mha.ndcg10, 1)} of NDCG@10, ${fmt(q.collectivekv.compressionRatio)}x smaller cache`]];
}

/** One row per `bench convert` file. */
export function convertRows(c, label) {
  const base = c.rows.find((x) => x.model === 'baseline mha');
  const conv = c.rows.find((x) => x.model === 'converted + fine-tune');
  const gate = `${c.gate === 'straight-through' ? ', straight-through gate' : ''}${c.fineTuneBalanceWeight === 0 ? ', balance loss off' : ''}`
    + `${c.loss != null && c.loss !== 'softmax' ? `, ${c.loss} loss` : ''}`;
  return [[`Converted SASRec + fine-tune (${pct(c.fineTuneShare, 0)} of the baseline's steps${gate}), test NDCG@10 (${label})`, f4(conv?.testNdcg10),
    `${f4(base?.testNdcg10)} (trained mha)`, pct(c.convertedRatio, 1)]];
}

/** Two `train` files of one model and data set, mha and collectivekv: one comparison row. */
export function trainPairRow(mha, ckv, ckvPath) {
  const run = (t) => `${t.attention} ${t.total?.epochs ?? t.epochs} epochs / ${t.total?.steps ?? t.steps} steps in ${fmt((t.total?.trainSeconds ?? t.trainSeconds) / 60)} min`;
  const what = isEvalRun(mha) ? `saved models ${baseName(mha.modelDir)}, ${baseName(ckv.modelDir)}`
    : `train runs: ${run(mha)}; ${run(ckv)}${ckvPath ? ` (${baseName(ckvPath)})` : ''}`;
  return [`Next-item test NDCG@10, ${mha.model} on ${baseName(mha.data)} (${what}${lossNote(mha)}${filtered(mha)})`,
    `${f4(ckv.test.ndcg10)} (${ckv.bytesPerToken} B/token)`, `${f4(mha.test.ndcg10)} (${mha.bytesPerToken} B/token, full KV)`,
    `${pct(ckv.test.ndcg10 / mha.test.ndcg10, 1)} of NDCG@10, ${fmt(mha.bytesPerToken / ckv.bytesPerToken)}x smaller cache`];
}

/** One row per `train` (or `eval`) file. */
export function trainRows(t) {
  const what = isEvalRun(t) ? `saved model ${baseName(t.modelDir)}` : `${t.epochs} epochs in ${fmt(t.trainSeconds / 60)} min`;
  return [[`Test NDCG@10, ${t.model} (${t.attention}) on ${baseName(t.data)}, ${what}${lossNote(t)}${filtered(t)}`, f4(t.test.ndcg10),
    `HR@10 ${f4(t.test.hr10)}`, '']];
}

/** A nearest-routed bench ctr run ('nearest' before 0.2); files without quantizationWeight ran at the then default, 1. */
function nearestRouter(s) {
  return s.collective?.router === 'nearest' || s.collective?.router === 'nearest-product';
}

/** History windows that differ from the defaults (long 1000, short 50); DIN and HSTU-CTR read only the short one. */
function historyLengths(model, s) {
  const long = s.longLength != null && s.longLength !== 1000 && model !== 'din' && model !== 'hstu-ctr' ? `, long history ${s.longLength}` : '';
  return `${long}${s.shortLength != null && s.shortLength !== 50 ? `, short history ${s.shortLength}` : ''}`;
}

/** The AUC difference, and with runs that record them, the gAUC one and both standard errors. */
function ctrDifference(c) {
  const d = c.comparison ?? {};
  if (d.aucDeltaStandardError == null) return `${fmt(c.collectivekv.auc - c.mha.auc, 4)} AUC`;
  return `${fmt(d.aucDelta, 4)} +- ${fmt(d.aucDeltaStandardError, 4)} AUC, ${fmt(d.gaucDelta, 4)} +- ${fmt(d.gaucDeltaStandardError, 4)} gAUC`;
}

/** How a warm-started collectivekv was trained (bench ctr --warm-start). */
function ctrWarmStart(ws) {
  if (ws == null) return '';
  return `; collectivekv by warm start: the mha run to step ${ws.forkStep} of ${ws.budgetSteps}, converted, ${ws.fineTuneSteps} steps`
    + `${ws.fineTuneRate !== 0.25 ? ` at ${ws.fineTuneRate} of the learning rate` : ''}`;
}

/** How collectivekv trained by the recipe (bench ctr's default since the warm start was removed), or single-stage. */
function ctrTraining(c) {
  const r = c.collectivekv.recipe;
  if (r != null) {
    return `; collectivekv by the recipe: full K/V ${r.fullPhaseEpochs} epoch(s) (${r.fullPhaseSteps} steps), switched, fine-tuned to ${c.collectivekv.steps} steps`;
  }
  return c.training === 'single-stage' ? '; collectivekv single-stage' : '';
}

/** Two rows per `bench ctr` file: AUC and gAUC side by side, and training throughput. */
export function ctrRows(c) {
  const s = { ...c.settings, collective: flatCollective(c.settings?.collective) };
  const setting = `${c.model} on ${baseName(c.data)}, ${c.users ?? '?'} users, ${c.mha.epochs} epoch(s), pool ${s.collective?.poolSize ?? '?'}, width ${s.attentionWidth ?? '?'}`
    + historyLengths(c.model, s)
    + `${s.collective?.balanceTokens != null ? `, balanceTokens ${s.collective.balanceTokens}` : ''}`
    + `${s.collective?.routerDim ? `, routerDim ${s.collective.routerDim}` : ''}`
    + `${s.collective?.router === 'product' ? ', product-key router' : ''}`
    + `${s.collective?.router === 'nearest' ? ', nearest-row router' : ''}`
    + `${s.collective?.router === 'nearest-product' ? ', nearest-row router over a product-quantized pool' : ''}`
    + `${nearestRouter(s) ? `, quantizationWeight ${s.collective.quantizationWeight ?? 1}` : ''}`
    + `${s.collective?.gate === 'straight-through' ? ', straight-through gate' : ''}`
    + `${s.learningRate != null && s.learningRate !== 0.001 ? `, lr ${s.learningRate}` : ''}`
    + ctrWarmStart(c.collectivekv.warmStart) + ctrTraining(c);
  return [
    [`CTR test AUC / gAUC, ${setting}`, `${f4(c.collectivekv.auc)} / ${f4(c.collectivekv.gauc)} (${c.collectivekv.bytesPerToken} B/token)`,
      `${f4(c.mha.auc)} / ${f4(c.mha.gauc)} (${c.mha.bytesPerToken} B/token); popularity ${f4(c.popularity?.auc)}`, ctrDifference(c)],
    [`CTR training throughput, ${setting}`, `${fmt(c.collectivekv.samplesPerSecond, 0)} samples/s`, `${fmt(c.mha.samplesPerSecond, 0)} samples/s`,
      `${fmt(c.comparison.throughputRatio, 2)}x${c.comparison.stepThroughputRatio != null
        ? ` (steps timed side by side: ${fmt(c.comparison.stepThroughputRatio, 2)}x)` : ''}`],
  ];
}

/** Rows of the bench-ops table (the original format of this script). */
export function opsRows(bench) {
  return [
    ['Bytes per cached token, d=256, userDim 1 (fp32, uint16 index)', `${bench.bytesPerToken.d256.collectivekv} B`, `${bench.bytesPerToken.d256.full} B (full KV)`, pct(bench.bytesPerToken.d256.ratio)],
    ...(bench.bytesPerToken.d64 ? [['Bytes per cached token, d=64, userDim 1', `${bench.bytesPerToken.d64.collectivekv} B`, `${bench.bytesPerToken.d64.full} B (full KV)`, pct(bench.bytesPerToken.d64.ratio)]] : []),
    [`Decode attention from the cache (${bench.collectiveAttention.backend ?? 'wasm'})`, `${fmt(bench.collectiveAttention.fusedMs)} ms (fused)`, `${fmt(bench.collectiveAttention.compositeMs)} ms (gather + attention)`, `${fmt(bench.collectiveAttention.speedup, 2)}x faster`],
    [`Embedding gradient (cpu; ${bench.embeddingGradient.rows ?? 3416}x${bench.embeddingGradient.width ?? 64} table, ${bench.embeddingGradient.indices ?? 12800} indices)`, `${fmt(bench.embeddingGradient.oursMs, 2)} ms`,
      bench.embeddingGradient.tfjsMs == null ? 'tfjs default not run here' : `${fmt(bench.embeddingGradient.tfjsMs)} ms (tfjs default)`,
      bench.embeddingGradient.speedup == null ? '' : `${fmt(bench.embeddingGradient.speedup, 0)}x faster`],
    [`Training step, 2-block SASRec (${bench.trainStep.backend ?? 'wasm'}; batch ${bench.trainStep.batch ?? 128}, length ${bench.trainStep.length ?? 200}, d=${bench.trainStep.hiddenDim ?? 64})`, `${fmt(bench.trainStep.collectivekvMs)} ms`, `${fmt(bench.trainStep.mhaMs)} ms (MultiHeadAttention)`, `${fmt(bench.trainStep.ratio, 2)}x the time`],
    // Older runs had no attentionMatMul measurement.
    ...(bench.attentionMatMul ? [[`Attention's two products and their gradients (${bench.attentionMatMul.backend}; ${bench.attentionMatMul.entries} x [${bench.attentionMatMul.length} x ${bench.attentionMatMul.headDim}] per-head matrices)`,
      `${fmt(bench.attentionMatMul.oursMs)} ms (batchedMatMul)`, `${fmt(bench.attentionMatMul.tfjsMs)} ms (tf.matMul)`, `${fmt(bench.attentionMatMul.speedup, 2)}x faster`]] : []),
    // Runs before 2026-11-30 had no catalogLoss measurement.
    ...(bench.catalogLoss ? [[`Next-item catalog softmax loss and its gradients (${bench.catalogLoss.backend}; ${bench.catalogLoss.rows} positions x ${bench.catalogLoss.catalog} items, d=${bench.catalogLoss.width})`,
      `${fmt(bench.catalogLoss.oursMs)} ms (catalogCrossEntropy)`, `${fmt(bench.catalogLoss.compositeMs)} ms (matMul + logSumExp)`, `${fmt(bench.catalogLoss.speedup, 2)}x faster`]] : []),
  ];
}

/** Rows from a bench-all report: one or two per result kind and data set, each naming its setting. */
export function reportRows(report) {
  const r = report.results ?? {};
  const rows = [];
  for (const [d, q] of Object.entries(r.quality ?? {})) {
    const o = q.options ?? {};
    rows.push([`Next-item test NDCG@10, ${q.model} on ${d} (d=${o.hiddenDim ?? '?'}, pool ${o.collective?.poolSize ?? '?'}, userDim ${o.collective?.userDim ?? '?'})`,
      `${f4(q.collectivekv.ndcg10)} (${q.collectivekv.bytesPerToken} B/token)`, `${f4(q.mha.ndcg10)} (${q.mha.bytesPerToken} B/token, full KV)`,
      `${pct(q.collectivekv.ndcg10 / q.mha.ndcg10, 1)} of NDCG@10, ${fmt(q.collectivekv.compressionRatio)}x smaller cache`]);
  }
  for (const [d, s] of Object.entries(r.sweep ?? {})) {
    if (s.bestUserDim == null) continue;
    const suggested = r.analysis?.[d]?.layers?.map((l) => l.suggestedUserDim).join('/') ?? 'n/a';
    const byTolerance = s.bestUserDimByTolerance != null && s.bestUserDimByTolerance !== s.bestUserDim ? ` (97% rule alone: ${s.bestUserDimByTolerance})` : '';
    // Reports written before the paired rule existed chose by the 97% rule alone.
    const rule = s.bestUserDimByTolerance === undefined ? 'within 97% of the top' : 'within 97% or 2 paired standard errors of the top';
    rows.push([`userDim suggested by the SVD analysis vs best of the sweep (${rule}), ${s.model} on ${d}`,
      suggested, `${s.bestUserDim}${byTolerance}`, '']);
  }
  for (const [d, c] of Object.entries(r.convert ?? {})) {
    const base = c.rows.find((x) => x.model === 'baseline mha');
    const conv = c.rows.find((x) => x.model === 'converted + fine-tune');
    rows.push([`Converted SASRec + fine-tune (<= 20% of the epochs), test NDCG@10 on ${d}`, f4(conv?.testNdcg10), `${f4(base?.testNdcg10)} (trained mha)`, `${pct(c.convertedRatio, 1)}`]);
  }
  for (const [d, c] of Object.entries(r.ctr ?? {})) {
    rows.push([`CTR test AUC, ${c.model} on ${d} (per-event K/V features)`, `${f4(c.collectivekv.auc)} (${c.collectivekv.bytesPerToken} B/token)`,
      `${f4(c.mha.auc)} (${c.mha.bytesPerToken} B/token)`, `${fmt(c.collectivekv.auc - c.mha.auc, 4)} AUC`]);
  }
  if (r.serve) {
    const mem = r.serve.results.filter((x) => x.store === 'memory');
    const h = Math.max(...mem.map((x) => x.historyLength));
    const b = Math.max(...mem.filter((x) => x.historyLength === h).map((x) => x.batchSize));
    const at = (mode) => mem.find((x) => x.mode === mode && x.historyLength === h && x.batchSize === b);
    const [ckv, full, re] = [at('collectivekv'), at('full'), at('recompute')];
    if (ckv && full) {
      rows.push([`Scoring p50 latency, batch ${b}, history ${h} (in-memory store, ${r.serve.backend})`, `${fmt(ckv.p50Ms, 2)} ms`,
        `${fmt(full.p50Ms, 2)} ms (full KV)${re ? `, ${fmt(re.p50Ms, 2)} ms (recompute)` : ''}`, `${fmt(full.p50Ms / ckv.p50Ms, 2)}x`]);
      rows.push([`Cache bytes per user, history ${h}`, `${ckv.bytesPerUser} B`, `${full.bytesPerUser} B (full KV)`, pct(ckv.bytesPerUser / full.bytesPerUser)]);
    }
  }
  if (r.ops) rows.push(...opsRows(r.ops));
  return rows;
}

/** Rows and a provenance note for one JSON file; throws on a shape this script does not know. */
export function rowsOf(json, jsonPath) {
  if (isReport(json)) {
    const m = json.meta;
    return { rows: reportRows(json), when: ` Measured ${m.date} on ${m.machine?.cpu ?? 'unknown'} (${m.machine?.cores ?? '?'} cores), backend ${m.backend}`
      + `${m.gitCommit ? `, commit ${String(m.gitCommit).slice(0, 10)}` : ''}${m.quick ? ' (--quick: smoke-test sizes, not results)' : ''}`
      + `${m.partial ? ' (partial run)' : ''}; settings and every figure in its report.md.` };
  }
  if (isBenchOps(json)) {
    return { rows: opsRows(json), when: json.meta?.date ? ` Measured ${json.meta.date}${json.meta.machine ? ` on ${json.meta.machine}` : ''}.` : '' };
  }
  if (isBenchQuality(json)) return { rows: qualityRows(json, baseName(jsonPath)), when: '' };
  if (isBenchConvert(json)) return { rows: convertRows(json, baseName(jsonPath)), when: '' };
  if (isTrainRun(json)) return { rows: trainRows(json), when: '' };
  if (isBenchCtr(json)) return { rows: ctrRows(json), when: '' };
  throw new Error(`${jsonPath}: neither a bench-all report.json nor a bench ops, bench quality, bench convert, bench ctr, train or eval JSON`);
}

/** The whole marked block for `inputs` ([{ json, path }], or one json and its path). */
export function resultsBlock(inputs, jsonPath) {
  const list = Array.isArray(inputs) ? inputs : [{ json: inputs, path: jsonPath }];
  let rows = [];
  const notes = [];
  for (let i = 0; i < list.length; i++) {
    const { json, path } = list[i];
    const next = list[i + 1]?.json;
    // An mha train run followed by the collectivekv run of the same model and data: one row.
    if (isTrainRun(json) && isTrainRun(next) && isEvalRun(json) === isEvalRun(next) && json.attention === 'mha' && next.attention === 'collectivekv'
      && json.model === next.model && baseName(json.data) === baseName(next.data) && Boolean(json.test.filterHistory) === Boolean(next.test.filterHistory) && json.test.historyWindow === next.test.historyWindow) {
      rows.push(trainPairRow(json, next, list[i + 1].path));
      i++;
      continue;
    }
    const r = rowsOf(json, path);
    rows.push(...r.rows);
    if (r.when) notes.push(r.when.trim());
  }
  if (rows.length === 0) rows = [['(no results in this report)', '', '', '']];
  const table = [...HEADER, ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
  const sources = list.map((x) => `\`${x.path}\``).join(', ');
  return `<!-- results:start -->\n${table}\n\nGenerated from ${sources} by \`scripts/readme-results.mjs\`; do not edit by hand.${notes.length ? ` ${notes.join(' ')}` : ''}\n<!-- results:end -->`;
}

/** README text with the marked block replaced; throws when the markers are missing. */
export function updateReadme(readme, block) {
  const re = /<!-- results:start -->[\s\S]*?<!-- results:end -->/;
  if (!re.test(readme)) throw new Error('no results markers found');
  return readme.replace(re, () => block);
}

function main(argv) {
  // JSON inputs in order; a final argument ending in .md is the README (default README.md).
  const readmePath = argv.length > 1 && argv[argv.length - 1].endsWith('.md') ? argv[argv.length - 1] : 'README.md';
  const jsonPaths = argv.filter((a, i) => !(i === argv.length - 1 && a === readmePath && a.endsWith('.md')));
  if (jsonPaths.length === 0) {
    console.error('usage: node scripts/readme-results.mjs JSON [JSON ...] [README.md]  (bench all report.json, bench ops/quality/convert/ctr, train or eval JSON)');
    return 2;
  }
  try {
    const block = resultsBlock(jsonPaths.map((path) => ({ path, json: JSON.parse(readFileSync(path, 'utf8')) })));
    writeFileSync(readmePath, updateReadme(readFileSync(readmePath, 'utf8'), block));
  } catch (e) {
    console.error(`${readmePath}: ${e.message}`);
    return 1;
  }
  console.log(`updated ${readmePath} from ${jsonPaths.join(', ')}`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
