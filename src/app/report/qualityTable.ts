// The multi-seed quality table (results/README.md) and the README's headline, generated from
// `bench quality --json` files (both arms in one file, or one file per arm with --arm): runs of one
// configuration are grouped over seeds; each arm's NDCG@10 is given as mean +- sd under both
// protocols, beside the popularity and Markov anchors, with the per-seed ratio and the paired
// per-user difference. Nothing depends on the clock or the file system: the same files, the same text.
import { pairedNdcg10 } from '../../internal';

const PROTOCOLS = ['unfiltered', 'window'] as const;
type Protocol = (typeof PROTOCOLS)[number];
type Arm = 'mha' | 'collectivekv';
type Metrics = { hr10: number; ndcg10: number; mrr10: number };

/** The fields of a bench quality JSON the table reads. */
export interface QualityJson {
  model: string;
  data: string;
  format?: string;
  seed: number;
  training: string;
  loss?: string;
  protocol: Protocol;
  options: { maxLength?: number; hiddenDim?: number; numBlocks?: number; numHeads?: number; dropout?: number;
    collective?: { poolSize?: number; userDim?: number; router?: { kind?: string } } };
  fit: { maxEpochs?: number; patience?: number; batchSize?: number; learningRate?: number; validationUsers?: number };
  anchors: Record<'popularity' | 'markov', Record<Protocol, Metrics>>;
  arm?: Arm;
  /** The recipe arm's latest switch step (the baseline's steps); absent from runs whose full phase was not bounded by it. */
  switchByStep?: number | null;
  mha?: ArmRow;
  collectivekv?: ArmRow;
  testRanks?: Partial<Record<Arm, Record<Protocol, number[]>>>;
}

interface ArmRow {
  protocols: Record<Protocol, Metrics>;
  bytesPerToken: number;
  epochs: number;
  steps: number;
  trainSeconds: number;
}

/** A JSON file of the new bench quality format (anchors, both protocols); older files are not. */
export function isQualityJson(json: unknown): json is QualityJson {
  const j = json as Partial<QualityJson> | null;
  return j != null && typeof j === 'object' && j.anchors != null && typeof j.training === 'string' && j.protocol != null
    && (j.mha?.protocols != null || j.collectivekv?.protocols != null);
}

interface SeedRun {
  seed: number;
  arms: Partial<Record<Arm, ArmRow>>;
  ranks: Partial<Record<Arm, Record<Protocol, number[]>>>;
  files: string[];
}

export interface QualityGroup {
  key: string;
  first: QualityJson;
  seeds: SeedRun[];
}

/**
 * Whether a run can stand in the table: a recipe run whose full phase was not bounded by its
 * baseline's steps (no switchByStep) may have trained longer than the baseline, so its ratio is not
 * at equal budget.
 */
export function withinBudget(j: QualityJson): boolean {
  return !(j.training === 'recipe' && j.collectivekv != null && j.switchByStep == null);
}

/** Groups runs by configuration, and within one by seed (one-arm files of a seed pair up). */
export function groupRuns(files: ReadonlyArray<{ path: string; json: QualityJson }>): QualityGroup[] {
  const groups = new Map<string, QualityGroup>();
  for (const { path, json } of files) {
    const key = configKey(json);
    const group = groups.get(key) ?? { key, first: json, seeds: [] };
    groups.set(key, group);
    let run = group.seeds.find((s) => s.seed === json.seed);
    if (run == null) {
      run = { seed: json.seed, arms: {}, ranks: {}, files: [] };
      group.seeds.push(run);
    }
    for (const arm of ['mha', 'collectivekv'] as const) {
      const row = json[arm];
      if (row == null) continue;
      run.arms[arm] = row;
      const ranks = json.testRanks?.[arm];
      if (ranks != null) run.ranks[arm] = ranks;
    }
    run.files.push(path);
  }
  for (const g of groups.values()) g.seeds.sort((a, b) => a.seed - b.seed);
  return [...groups.values()].sort((a, b) => a.key.localeCompare(b.key));
}

function configKey(j: QualityJson): string {
  const o = j.options;
  const c = o.collective ?? {};
  return [j.model, baseName(j.data), j.training, j.loss ?? 'softmax', `L${o.maxLength}`, `d${o.hiddenDim}`, `b${o.numBlocks}`, `h${o.numHeads}`,
    `drop${o.dropout}`, `pool${c.poolSize}`, `du${c.userDim}`, c.router?.kind ?? 'dense', `e${j.fit.maxEpochs}`, `p${j.fit.patience}`,
    `bs${j.fit.batchSize}`, `lr${j.fit.learningRate}`, `val${j.fit.validationUsers || 'all'}`].join(' ');
}

function baseName(path: string): string {
  return path.split('/').pop() ?? path;
}

export interface Spread {
  mean: number;
  sd: number;
  n: number;
}

export function spread(values: readonly number[]): Spread {
  const n = values.length;
  if (n === 0) return { mean: NaN, sd: NaN, n };
  const mean = values.reduce((t, v) => t + v, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((t, v) => t + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, n };
}

/** A configuration's figures over its complete seeds (both arms present). */
export interface GroupSummary {
  group: QualityGroup;
  complete: SeedRun[];
  ndcg: Record<Arm, Record<Protocol, Spread>>;
  /** collectivekv / mha NDCG@10 per seed. */
  ratio: Record<Protocol, Spread>;
  /** Mean over seeds of the paired per-user difference, and its standard error (seeds independent). */
  paired: Record<Protocol, { mean: number; standardError: number }>;
  /** Whether the baseline's mean beats the Markov anchor under each protocol. */
  beatsMarkov: Record<Protocol, boolean>;
}

export function summarize(group: QualityGroup): GroupSummary {
  const complete = group.seeds.filter((s) => s.arms.mha != null && s.arms.collectivekv != null);
  const ndcgOf = (arm: Arm, p: Protocol) => spread(complete.map((s) => (s.arms[arm] as ArmRow).protocols[p].ndcg10));
  const ndcg = { mha: perProtocol((p) => ndcgOf('mha', p)), collectivekv: perProtocol((p) => ndcgOf('collectivekv', p)) };
  const ratio = perProtocol((p) => spread(complete.map((s) => (s.arms.collectivekv as ArmRow).protocols[p].ndcg10 / (s.arms.mha as ArmRow).protocols[p].ndcg10)));
  const paired = perProtocol((p) => {
    const diffs = complete.map((s) => pairedNdcg10(s.ranks.collectivekv?.[p], s.ranks.mha?.[p])).filter((d) => Number.isFinite(d.mean));
    if (diffs.length === 0) return { mean: NaN, standardError: NaN };
    return { mean: diffs.reduce((t, d) => t + d.mean, 0) / diffs.length,
      standardError: Math.sqrt(diffs.reduce((t, d) => t + d.standardError ** 2, 0)) / diffs.length };
  });
  const beatsMarkov = perProtocol((p) => ndcg.mha[p].mean > group.first.anchors.markov[p].ndcg10);
  return { group, complete, ndcg, ratio, paired, beatsMarkov };
}

function perProtocol<T>(f: (p: Protocol) => T): Record<Protocol, T> {
  return { unfiltered: f('unfiltered'), window: f('window') };
}

const f4 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : 'n/a');
const pm = (s: Spread, digits = 4) => (s.n === 0 ? 'n/a' : s.n === 1 ? s.mean.toFixed(digits) : `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}`);
const pct = (s: Spread) => (s.n === 0 ? 'n/a' : s.n === 1 ? `${(100 * s.mean).toFixed(1)}%` : `${(100 * s.mean).toFixed(1)}% ± ${(100 * s.sd).toFixed(1)}`);
const MODEL_NAMES: Record<string, string> = { sasrec: 'SASRec', hstu: 'HSTU', bert4rec: 'BERT4Rec' };

function label(j: QualityJson): { model: string; data: string } {
  return { model: MODEL_NAMES[j.model] ?? j.model, data: baseName(j.data).replace(/\.(txt|csv|inter)$/, '') };
}

/** The protocol a claim uses: the reported one when the baseline beats Markov under it, else the other one that does, else none. */
function claimProtocol(s: GroupSummary): Protocol | null {
  const preferred = s.group.first.protocol;
  if (s.beatsMarkov[preferred]) return preferred;
  const other = PROTOCOLS.find((p) => s.beatsMarkov[p]);
  return other ?? null;
}

/** The full table of results/README.md (markdown). */
export function qualityTableMarkdown(summaries: readonly GroupSummary[]): string {
  const lines = [
    '| Model | Data | Seeds | mha NDCG@10 (unfiltered / window) | collectivekv NDCG@10 (unfiltered / window) | Markov (unf. / win.) | Ratio (window) | Paired diff ± se (window) | Bytes/token | Epochs mha / ckv | Minutes mha / ckv |',
    '| --- | --- | ---: | --- | --- | --- | ---: | ---: | --- | --- | --- |',
  ];
  for (const s of summaries) {
    const j = s.group.first;
    const { model, data } = label(j);
    const arms = s.complete;
    const mean = (arm: Arm, f: (r: ArmRow) => number) => spread(arms.map((r) => f(r.arms[arm] as ArmRow))).mean;
    const markov = j.anchors.markov;
    const bytes = arms.length ? `${mean('collectivekv', (r) => r.bytesPerToken)} vs ${mean('mha', (r) => r.bytesPerToken)}` : 'n/a';
    const epochs = arms.length ? `${mean('mha', (r) => r.epochs).toFixed(1)} / ${mean('collectivekv', (r) => r.epochs).toFixed(1)}` : 'n/a';
    const minutes = arms.length ? `${(mean('mha', (r) => r.trainSeconds) / 60).toFixed(0)} / ${(mean('collectivekv', (r) => r.trainSeconds) / 60).toFixed(0)}` : 'n/a';
    const pending = s.group.seeds.length - arms.length;
    lines.push(`| ${model} (${j.training}) | ${data} | ${arms.length}${pending > 0 ? ` (+${pending} incomplete)` : ''} | ` +
      `${pm(s.ndcg.mha.unfiltered)} / ${pm(s.ndcg.mha.window)} | ${pm(s.ndcg.collectivekv.unfiltered)} / ${pm(s.ndcg.collectivekv.window)} | ` +
      `${f4(markov.unfiltered.ndcg10)} / ${f4(markov.window.ndcg10)} | ${pct(s.ratio.window)} | ` +
      `${f4(s.paired.window.mean)} ± ${f4(s.paired.window.standardError)} | ${bytes} | ${epochs} | ${minutes} |`);
  }
  return lines.join('\n');
}

/** The README's headline: one row per configuration (at most `max`), a claim only where the baseline beats Markov. */
export function headlineMarkdown(summaries: readonly GroupSummary[], max = 10): string {
  const lines = ['| Model, data | Baseline NDCG@10 | CollectiveKV NDCG@10 | Ratio | Cache bytes/token | Seeds |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const s of summaries.filter((x) => x.complete.length > 0).slice(0, max)) {
    const { model, data } = label(s.group.first);
    const p = claimProtocol(s);
    const bytes = `${spread(s.complete.map((r) => (r.arms.collectivekv as ArmRow).bytesPerToken)).mean} vs ${spread(s.complete.map((r) => (r.arms.mha as ArmRow).bytesPerToken)).mean}`;
    const seeds = s.complete.length >= 3 ? String(s.complete.length) : `${s.complete.length} (3 planned)`;
    if (p == null) {
      lines.push(`| ${model}, ${data} | ${pm(s.ndcg.mha.window)} (below Markov) | ${pm(s.ndcg.collectivekv.window)} | no claim | ${bytes} | ${seeds} |`);
      continue;
    }
    const protocol = p === 'window' ? ', window-filtered' : '';
    lines.push(`| ${model}, ${data}${protocol} | ${pm(s.ndcg.mha[p])} | ${pm(s.ndcg.collectivekv[p])} | ${pct(s.ratio[p])} | ${bytes} | ${seeds} |`);
  }
  return lines.join('\n');
}

/** The commands that reproduce a configuration's runs (one per arm, seeds in braces). */
export function commandsOf(group: QualityGroup): string {
  const j = group.first;
  const o = j.options;
  const c = o.collective ?? {};
  const seeds = group.seeds.map((s) => s.seed);
  const flags = [`--model ${j.model}`, `--data ${j.data}`, `--format ${j.format ?? 'lines'}`, `--max-length ${o.maxLength}`, `--hidden-dim ${o.hiddenDim}`,
    `--blocks ${o.numBlocks}`, `--heads ${o.numHeads}`, `--dropout ${o.dropout}`, `--epochs ${j.fit.maxEpochs}`, `--patience ${j.fit.patience}`,
    `--batch-size ${j.fit.batchSize}`, `--lr ${j.fit.learningRate}`, ...(j.fit.validationUsers ? [`--validation-users ${j.fit.validationUsers}`] : []),
    `--pool-size ${c.poolSize}`, `--user-dim ${c.userDim}`, `--training ${j.training}`,
    ...(j.protocol === 'window' ? ['--filter-window'] : [])];
  const seed = seeds.length === 1 ? String(seeds[0]) : `{${seeds.join(',')}}`;
  return `collectivekv bench quality ${flags.join(' ')} --seed ${seed} [--arm mha|collectivekv] --json FILE`;
}

/** Replaces the text between `<!-- name:start -->` and `<!-- name:end -->` (both kept); fails when the markers are missing. */
export function replaceBetweenMarkers(text: string, name: string, body: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`markers ${start} ... ${end} not found`);
  return `${text.slice(0, a + start.length)}\n${body}\n${text.slice(b)}`;
}
