// `collectivekv bench ops`: the library's performance claims measured side by side in one run:
// embedding-gradient speed, fused vs composite compressed attention, the cost of a training step
// with each attention layer, and cache bytes per token read from real cache blocks.
import * as tf from '@tensorflow/tfjs-core';
import {
  CollectiveKVAttention, MultiHeadAttention, SequenceBatch, batchedMatMul, catalogCrossEntropy, catalogCrossEntropyComposite,
  isFastEmbeddingGradientsEnabled, restoreDefaultEmbeddingGradients, trainingBatches, trainingExamples, useFastEmbeddingGradients,
} from '../../internal';
import { benchCollectiveAttention, CollectiveAttentionBenchOptions } from './collectiveAttention';
import { benchWebGPU, WebGPUBenchOptions, WebGPUBenchResult, webgpuTableRows } from './webgpu';
import { buildSasrec } from '../../zoo/sequential/sasrec';
import { trainStepAsync } from '../../zoo/sequential/sasrecTraining';

export type { WebGPUBenchOptions, WebGPUBenchResult } from './webgpu';

export interface EmbeddingBenchOptions {
  rows?: number;
  width?: number;
  indices?: number;
  /** Timed runs of our kernel (tfjs's default is timed once: it can take minutes). */
  oursRuns?: number;
  /** Skip tfjs's default (then tfjsMs and speedup are null). */
  skipTfjs?: boolean;
}

export interface TrainStepBenchOptions {
  batch?: number;
  length?: number;
  hiddenDim?: number;
  numItems?: number;
  numBlocks?: number;
  numHeads?: number;
  poolSize?: number;
  userDim?: number;
  warmup?: number;
  steps?: number;
}

export interface AttentionMatMulBenchOptions {
  /** Batch entries (batch x heads). Default 1024 (HSTU-CTR's 256 x 4 heads). */
  entries?: number;
  /** Tokens. Default 101. */
  length?: number;
  /** Width per head. Default 64. */
  headDim?: number;
  /** Interleaved timed rounds (each times both). Default 3. */
  rounds?: number;
}

export interface CatalogLossBenchOptions {
  /** Scored positions. Default 6400 (a full batch of 32 x 200). */
  rows?: number;
  /** Catalog items. Default 3417 (ML-1M's items and padding). */
  catalog?: number;
  /** Hidden width. Default 64. */
  width?: number;
  /** Interleaved timed rounds (each times both). Default 3. */
  rounds?: number;
}

export interface BytesBenchOptions {
  widths?: number[];
  numHeads?: number;
  poolSize?: number;
  userDim?: number;
}

export interface BenchOpsOptions {
  /** Backend of the attention and training-step measurements (the embedding gradient is always cpu). Default wasm. */
  backend?: string;
  embedding?: EmbeddingBenchOptions;
  collectiveAttention?: CollectiveAttentionBenchOptions;
  trainStep?: TrainStepBenchOptions;
  attentionMatMul?: AttentionMatMulBenchOptions;
  catalogLoss?: CatalogLossBenchOptions;
  bytes?: BytesBenchOptions;
  /**
   * Also run the kernels on tfjs's webgpu backend in Node (npm package `webgpu`) against cpu: the
   * `webgpu` key of the result (absent without this option). CLI flag `--webgpu`.
   */
  webgpu?: boolean | WebGPUBenchOptions;
  log?: (line: string) => void;
}

export interface BenchOpsResult {
  embeddingGradient: { oursMs: number; tfjsMs: number | null; speedup: number | null; oursRuns: number; tfjsRuns: number;
    backend: 'cpu'; rows: number; width: number; indices: number };
  collectiveAttention: { fusedMs: number; compositeMs: number; speedup: number; maxAbsError: number; backend: string };
  /** Null times and an `error` when a step failed (reported, not thrown, so the other numbers survive). */
  trainStep: { mhaMs: number | null; collectivekvMs: number | null; ratio: number | null; backend: string; loss: 'bce'; batch: number;
    length: number; hiddenDim: number; numItems: number; poolSize: number; steps: number; error?: string };
  /**
   * Attention's two products with their gradients (scores = q k^T, out = weights v), batchedMatMul
   * against tf.matMul on the same inputs, timed alternately (medians).
   */
  attentionMatMul: { oursMs: number; tfjsMs: number; speedup: number; maxRelativeError: number; backend: string; entries: number;
    length: number; headDim: number; rounds: number };
  /**
   * The next-item loss with its gradients: catalogCrossEntropy against the composite (tf.matMul,
   * logSumExp and autodiff) on the same inputs, timed alternately (medians).
   */
  catalogLoss: { oursMs: number; compositeMs: number; speedup: number; maxRelativeError: number; backend: string; rows: number; catalog: number;
    width: number; rounds: number };
  bytesPerToken: Record<string, { full: number; collectivekv: number; ratio: number; compression: number }>;
  /** Only with the webgpu option: correctness vs cpu; timings labelled software when the adapter is. */
  webgpu?: WebGPUBenchResult;
}

/** Runs every measurement in turn; restores the embedding-gradient setting and the backend it found. */
export async function benchOps(options: BenchOpsOptions = {}): Promise<BenchOpsResult> {
  const log = options.log ?? (() => undefined);
  const backend = options.backend ?? 'wasm';
  const startBackend = tf.getBackend();
  const wasFast = isFastEmbeddingGradientsEnabled();
  try {
    log('embedding gradient (cpu) ...');
    const embeddingGradient = await benchEmbeddingGradient(options.embedding ?? {});
    // The rest trains and attends on `backend`; tfjs's Embedding needs the scatter-add there (wasm has no kernel).
    await switchBackend(backend);
    useFastEmbeddingGradients();
    const bytesPerToken = benchBytes(options.bytes ?? {});
    log(`collective attention (${backend}) ...`);
    const c = await benchCollectiveAttention({ ...options.collectiveAttention, backend });
    const collectiveAttention = { fusedMs: c.fusedMs, compositeMs: c.compositeMs, speedup: c.speedup, maxAbsError: c.maxAbsError, backend: c.backend };
    log(`attention products (${backend}) ...`);
    const attentionMatMul = benchAttentionMatMul(options.attentionMatMul ?? {}, backend);
    log(`catalog loss (${backend}) ...`);
    const catalogLoss = benchCatalogLoss(options.catalogLoss ?? {}, backend);
    // Last: a failure here (a wasm abort leaves the wasm backend unusable) costs no other number.
    log(`training step (${backend}) ...`);
    const trainStepResult = await benchTrainStep(options.trainStep ?? {}, backend, log);
    const result: BenchOpsResult = { embeddingGradient, collectiveAttention, trainStep: trainStepResult, attentionMatMul, catalogLoss, bytesPerToken };
    if (options.webgpu) {
      log('webgpu kernels vs cpu ...');
      result.webgpu = await benchWebGPU(options.webgpu === true ? {} : options.webgpu);
      if (result.webgpu.available) log(`  ${result.webgpu.note}`);
      else log(`  webgpu unavailable: ${result.webgpu.reason}`);
    }
    return result;
  } finally {
    if (wasFast) useFastEmbeddingGradients();
    else restoreDefaultEmbeddingGradients();
    if (startBackend && tf.getBackend() !== startBackend) await switchBackend(startBackend);
  }
}

async function switchBackend(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} failed to initialize`);
  await tf.ready();
}

// ---------------------------------------------------------------- embedding gradient

/** Gradient of sum(gather(table, idx) * w) w.r.t. table on cpu: ours (scatter-add) vs tfjs's UnsortedSegmentSum. */
async function benchEmbeddingGradient(o: EmbeddingBenchOptions): Promise<BenchOpsResult['embeddingGradient']> {
  const rows = o.rows ?? 3416;
  const width = o.width ?? 64;
  const indices = o.indices ?? 12800;
  const oursRuns = o.oursRuns ?? 5;
  await switchBackend('cpu');
  const table = tf.randomNormal([rows, width], 0, 1, 'float32', 1);
  const index = tf.randomUniform([indices], 0, rows, 'int32', 2);
  const weights = tf.randomNormal([indices, width], 0, 1, 'float32', 3);
  const gradient = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, index), weights)));
  const once = () => {
    const start = performance.now();
    const g = gradient(table);
    g.dataSync();
    g.dispose();
    return performance.now() - start;
  };
  try {
    useFastEmbeddingGradients();
    once();
    const oursMs = median(Array.from({ length: oursRuns }, once));
    restoreDefaultEmbeddingGradients();
    const tfjsMs = o.skipTfjs ? null : once();
    return { oursMs, tfjsMs, speedup: tfjsMs == null ? null : tfjsMs / oursMs, oursRuns, tfjsRuns: o.skipTfjs ? 0 : 1,
      backend: 'cpu', rows, width, indices };
  } finally {
    tf.dispose([table, index, weights]);
  }
}

// ---------------------------------------------------------------- attention products

/** Forward and backward of attention's two products, ours and tfjs's alternately on the same inputs. */
function benchAttentionMatMul(o: AttentionMatMulBenchOptions, backend: string): BenchOpsResult['attentionMatMul'] {
  const s = { entries: 1024, length: 101, headDim: 64, rounds: 3, ...o };
  const [q, k, v, up] = [1, 2, 3, 4].map((seed) => tf.randomNormal([s.entries, s.length, s.headDim], 0, 1, 'float32', seed));
  type Product = (a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean) => tf.Tensor;
  const attend = (product: Product) => (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
    tf.sum(tf.mul(product(tf.sigmoid(product(qq, kk, false, true)), vv, false, false), up));
  const ours = tf.grads(attend(batchedMatMul));
  const theirs = tf.grads(attend((a, b, ta, tb) => tf.matMul(a, b, ta, tb)));
  try {
    // Relative to the gradients' largest entry: their scale grows with the length.
    const c = compareAlternately(() => ours([q, k, v]), () => theirs([q, k, v]), s.rounds);
    return { oursMs: c.oursMs, tfjsMs: c.referenceMs, speedup: c.referenceMs / c.oursMs, maxRelativeError: c.maxRelativeError, backend, ...s };
  } finally {
    tf.dispose([q, k, v, up]);
  }
}

/** Loss and gradients of the catalog softmax, ours against the composite; errors relative to each result's largest entry. */
function benchCatalogLoss(o: CatalogLossBenchOptions, backend: string): BenchOpsResult['catalogLoss'] {
  const s = { rows: 6400, catalog: 3417, width: 64, rounds: 3, ...o };
  const hidden = tf.randomNormal([s.rows, s.width], 0, 0.3, 'float32', 5) as tf.Tensor2D;
  const table = tf.randomNormal([s.catalog, s.width], 0, 0.3, 'float32', 6) as tf.Tensor2D;
  const targets = tf.tensor1d(Array.from({ length: s.rows }, (_, i) => (i * 7919) % s.catalog), 'int32');
  type Loss = (h: tf.Tensor2D, t: tf.Tensor2D, y: tf.Tensor1D) => tf.Scalar;
  const withGrads = (loss: Loss) => tf.valueAndGrads((h: tf.Tensor, t: tf.Tensor) => loss(h as tf.Tensor2D, t as tf.Tensor2D, targets));
  const [ours, composite] = [withGrads(catalogCrossEntropy), withGrads(catalogCrossEntropyComposite)];
  const outputs = (f: typeof ours) => () => {
    const { value, grads } = f([hidden, table]);
    return [value, ...grads];
  };
  try {
    const c = compareAlternately(outputs(ours), outputs(composite), s.rounds);
    return { oursMs: c.oursMs, compositeMs: c.referenceMs, speedup: c.referenceMs / c.oursMs, maxRelativeError: c.maxRelativeError, backend, ...s };
  } finally {
    tf.dispose([hidden, table, targets]);
  }
}

/**
 * Two computations of the same tensors, ours and a reference: the largest error of each output
 * relative to the reference output's largest entry, and the median ms of `rounds` runs of each,
 * alternated (a run ends when its outputs are read back).
 */
function compareAlternately(ours: () => tf.Tensor[], reference: () => tf.Tensor[], rounds: number):
  { oursMs: number; referenceMs: number; maxRelativeError: number } {
  const maxRelativeError = tf.tidy(() => {
    const [a, b] = [ours(), reference()];
    return Math.max(...a.map((x, i) => tf.max(tf.abs(tf.sub(x, b[i]))).dataSync()[0] / Math.max(1e-30, tf.max(tf.abs(b[i])).dataSync()[0])));
  });
  const once = (f: () => tf.Tensor[]) => {
    const start = performance.now();
    const out = f();
    out.forEach((t) => t.dataSync());
    tf.dispose(out);
    return performance.now() - start;
  };
  const [oursTimes, referenceTimes] = [[] as number[], [] as number[]];
  for (let round = 0; round < rounds; round++) {
    oursTimes.push(once(ours));
    referenceTimes.push(once(reference));
  }
  return { oursMs: median(oursTimes), referenceMs: median(referenceTimes), maxRelativeError };
}

// ---------------------------------------------------------------- training step

/**
 * Median ms of forward + backward + Adam of a SASRec with each attention layer on the active
 * backend, after warm-up; each step ends when its loss is read with await data() (webgpu in Node
 * has no synchronous read). `bench gpu` times it on webgpu and wasm.
 */
export async function benchTrainStep(o: TrainStepBenchOptions, backend: string, log: (line: string) => void): Promise<BenchOpsResult['trainStep']> {
  const s = { batch: 128, length: 200, hiddenDim: 64, numItems: 3416, numBlocks: 2, numHeads: 2, poolSize: 1024, userDim: 1,
    warmup: 1, steps: 3, ...o };
  const batch = syntheticBatch(s.batch, s.length, s.numItems);
  const time = async (attention: 'mha' | 'collectivekv') => {
    const sasrec = buildSasrec({ numItems: s.numItems, maxLength: s.length, hiddenDim: s.hiddenDim, numBlocks: s.numBlocks,
      numHeads: s.numHeads, dropout: 0.2, attention, collective: { poolSize: s.poolSize, userDim: s.userDim }, seed: 1 });
    const optimizer = tf.train.adam(1e-3);
    try {
      const times: number[] = [];
      for (let i = 0; i < s.warmup + s.steps; i++) {
        const start = performance.now();
        await trainStepAsync(sasrec, optimizer, batch, 'bce', i);
        if (i >= s.warmup) times.push(performance.now() - start);
      }
      log(`  ${attention}: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
      return median(times);
    } finally {
      optimizer.dispose();
      sasrec.model.dispose();
    }
  };
  const base = { backend, loss: 'bce' as const, batch: s.batch, length: s.length, hiddenDim: s.hiddenDim, numItems: s.numItems,
    poolSize: s.poolSize, steps: s.steps };
  let mhaMs: number | null = null;
  try {
    mhaMs = await time('mha');
    const collectivekvMs = await time('collectivekv');
    return { ...base, mhaMs, collectivekvMs, ratio: collectivekvMs / mhaMs };
  } catch (e) {
    const error = `${mhaMs == null ? 'mha' : 'collectivekv'} step failed: ${(e as Error).message}`;
    log(`  ${error}`);
    return { ...base, mhaMs, collectivekvMs: null, ratio: null, error };
  }
}

/** Full-length random sequences (every position valid: the worst case for the step). */
function syntheticBatch(batch: number, length: number, numItems: number): SequenceBatch {
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const train = Array.from({ length: batch }, () => Array.from({ length: length + 1 }, () => 1 + (next() % numItems)));
  return trainingBatches(trainingExamples(train, length), batch, 0).next().value as SequenceBatch;
}

// ---------------------------------------------------------------- bytes per token

/** bytesPerToken('fp32') of real cache blocks from built layers of each width. */
function benchBytes(o: BytesBenchOptions): BenchOpsResult['bytesPerToken'] {
  const out: BenchOpsResult['bytesPerToken'] = {};
  for (const width of o.widths ?? [256, 64]) {
    const heads = o.numHeads ?? 8;
    const common = { numHeads: heads, keyDim: width / heads };
    const full = cacheBytes(new MultiHeadAttention(common), width);
    const collectivekv = cacheBytes(new CollectiveKVAttention({ ...common, poolSize: o.poolSize ?? 1024, userDim: o.userDim ?? 1 }), width);
    out[`d${width}`] = { full, collectivekv, ratio: collectivekv / full, compression: full / collectivekv };
  }
  return out;
}

function cacheBytes(layer: MultiHeadAttention | CollectiveKVAttention, width: number): number {
  const x = tf.ones([1, 2, width]);
  try {
    tf.dispose(layer.apply(x) as tf.Tensor);
    const block = layer.computeCache(x);
    const bytes = block.bytesPerToken('fp32');
    block.dispose();
    return bytes;
  } finally {
    x.dispose();
    layer.dispose();
  }
}

// ---------------------------------------------------------------- report

export function median(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The readable table printed by `collectivekv bench ops`. */
export function formatBenchOps(r: BenchOpsResult): string {
  const ms = (x: number | null) => (x == null ? 'n/a' : `${x.toFixed(x < 10 ? 2 : 1)} ms`);
  const times = (x: number | null) => (x == null ? '-' : `${x.toFixed(1)}x`);
  const e = r.embeddingGradient;
  const c = r.collectiveAttention;
  const t = r.trainStep;
  const rows: string[][] = [
    ['measurement', 'ours / CollectiveKV', 'baseline', 'ratio'],
    [`embedding grad, cpu, ${e.rows}x${e.width} table, ${e.indices} idx`, `${ms(e.oursMs)} (median of ${e.oursRuns})`,
      e.tfjsMs == null ? 'skipped' : `${ms(e.tfjsMs)} (tfjs default, one run)`, e.speedup == null ? '-' : `${times(e.speedup)} faster`],
    [`collectiveAttention, ${c.backend}, fused vs composite`, ms(c.fusedMs), ms(c.compositeMs), `${times(c.speedup)} faster (max err ${c.maxAbsError.toExponential(1)})`],
    [`attention products + grads, ${r.attentionMatMul.backend}, [${r.attentionMatMul.entries}, ${r.attentionMatMul.length}, ${r.attentionMatMul.headDim}]`,
      `${ms(r.attentionMatMul.oursMs)} (batchedMatMul)`, `${ms(r.attentionMatMul.tfjsMs)} (tf.matMul)`,
      `${times(r.attentionMatMul.speedup)} faster (max rel err ${r.attentionMatMul.maxRelativeError.toExponential(1)})`],
    [`catalog softmax loss + grads, ${r.catalogLoss.backend}, ${r.catalogLoss.rows} x ${r.catalogLoss.catalog} items, d${r.catalogLoss.width}`,
      `${ms(r.catalogLoss.oursMs)} (catalogCrossEntropy)`, `${ms(r.catalogLoss.compositeMs)} (matMul + logSumExp)`,
      `${times(r.catalogLoss.speedup)} faster (max rel err ${r.catalogLoss.maxRelativeError.toExponential(1)})`],
    [`SASRec train step, ${t.backend}, B${t.batch} L${t.length} d${t.hiddenDim} pool ${t.poolSize}`, `${ms(t.collectivekvMs)} (CollectiveKV)`,
      `${ms(t.mhaMs)} (MHA)`, t.ratio == null ? `failed: ${t.error ?? ''}` : `${t.ratio.toFixed(2)}x the MHA step`],
    ...Object.entries(r.bytesPerToken).map(([key, b]) => [`cache bytes/token/module, ${key}, fp32`, `${b.collectivekv} B`, `${b.full} B`,
      `${(100 * b.ratio).toFixed(2)}% (${b.compression.toFixed(0)}x smaller)`]),
    ...(r.webgpu == null ? [] : webgpuTableRows(r.webgpu, ms)),
  ];
  return formatTable(rows);
}

export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, col) => Math.max(...rows.map((r) => r[col].length)));
  const line = (r: string[]) => r.map((cell, col) => cell.padEnd(widths[col])).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}
