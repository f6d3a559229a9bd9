#!/usr/bin/env node
// Regenerates the README's results table from a `collectivekv bench ops --json` file, between the
// results markers. Idempotent: the same JSON gives the same README.
import { readFileSync, writeFileSync } from 'node:fs';

const [jsonPath, readmePath = 'README.md'] = process.argv.slice(2);
if (!jsonPath) {
  console.error('usage: node scripts/readme-results.mjs BENCH_OPS_JSON [README]');
  process.exit(2);
}
const bench = JSON.parse(readFileSync(jsonPath, 'utf8'));
const fmt = (x, digits = 1) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const pct = (x) => (typeof x === 'number' ? `${(x * 100).toFixed(2)}%` : 'n/a');

const rows = [
  ['Measure', 'Ours / CollectiveKV', 'Reference', 'Ratio'],
  ['---', '---:', '---:', '---:'],
  ['Bytes per cached token, d=256, userDim 1 (fp32, uint16 index)', `${bench.bytesPerToken.d256.collectivekv} B`, `${bench.bytesPerToken.d256.full} B (full KV)`, pct(bench.bytesPerToken.d256.ratio)],
  ['Bytes per cached token, d=64, userDim 1', `${bench.bytesPerToken.d64.collectivekv} B`, `${bench.bytesPerToken.d64.full} B (full KV)`, pct(bench.bytesPerToken.d64.ratio)],
  ['Decode attention from the cache (wasm; batch 64, history 1000, d=256)', `${fmt(bench.collectiveAttention.fusedMs)} ms (fused)`, `${fmt(bench.collectiveAttention.compositeMs)} ms (gather + attention)`, `${fmt(bench.collectiveAttention.speedup, 2)}x faster`],
  ['Embedding gradient (cpu; 3416x64 table, 12800 indices)', `${fmt(bench.embeddingGradient.oursMs, 2)} ms`, `${fmt(bench.embeddingGradient.tfjsMs)} ms (tfjs default)`, `${fmt(bench.embeddingGradient.speedup, 0)}x faster`],
  ['Training step, 2-block SASRec (wasm; batch 128, length 200, d=64)', `${fmt(bench.trainStep.collectivekvMs)} ms`, `${fmt(bench.trainStep.mhaMs)} ms (MultiHeadAttention)`, `${fmt(bench.trainStep.ratio, 2)}x the time`],
];
const table = rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
const when = bench.meta?.date ? ` Measured ${bench.meta.date}${bench.meta.machine ? ` on ${bench.meta.machine}` : ''}.` : '';
const block = `<!-- results:start -->\n${table}\n\nGenerated from \`${jsonPath}\` by \`scripts/readme-results.mjs\`; do not edit by hand.${when}\n<!-- results:end -->`;

const readme = readFileSync(readmePath, 'utf8');
const re = /<!-- results:start -->[\s\S]*?<!-- results:end -->/;
if (!re.test(readme)) {
  console.error(`${readmePath}: no results markers found`);
  process.exit(1);
}
writeFileSync(readmePath, readme.replace(re, block));
console.log(`updated ${readmePath} from ${jsonPath}`);
