// The Chromium fallback of `bench gpu` (./gpu.ts): when Dawn in Node finds no adapter, a headless
// Chromium (playwright-core, the system's chromium, Vulkan) loads tfjs's UMD builds and ours
// (dist/, as test/browser does), reports its adapter and, when allowed, times the webgpu kernels
// against their composites (the same ops with this package's webgpu kernels unregistered) and the
// decode from a compressed cache against attention over the full KV cache.
import { existsSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { KernelSizes } from './webgpu';
import type { AdapterReport, DecodeShape, DecodeTiming, Measured, OpTiming } from './gpuCheck';

export interface BrowserCheckOptions {
  chromium: string;
  ops: KernelSizes;
  decode: DecodeShape;
  queued: number;
  warmup: number;
  iterations: number;
  /** Whether to time anything on this adapter (the refusal policy). */
  measure(adapter: AdapterReport): boolean;
}

export interface BrowserCheckResult {
  adapter: AdapterReport | null;
  reason?: string;
  ops: Measured<Record<string, OpTiming>>;
  decode: Measured<DecodeTiming>;
}

const ARGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=vulkan', '--enable-webgpu-developer-features', '--no-sandbox',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

/** The repository root: the nearest folder above this file with collectivekv's package.json. */
function packageRoot(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'collectivekv') return dir;
  }
  return process.cwd();
}

export async function browserAdapterCheck(o: BrowserCheckOptions): Promise<BrowserCheckResult> {
  const none = (reason: string): BrowserCheckResult => ({ adapter: null, reason, ops: { notMeasured: reason }, decode: { notMeasured: reason } });
  if (!existsSync(o.chromium)) return none(`no Chromium at ${o.chromium} (Debian: apt-get install chromium; or --chromium PATH)`);
  const root = packageRoot();
  let scripts: Record<string, string>;
  try {
    scripts = {
      '/tf-core.js': require.resolve('@tensorflow/tfjs-core/dist/tf-core.min.js'),
      '/tf-layers.js': require.resolve('@tensorflow/tfjs-layers/dist/tf-layers.min.js'),
      '/tf-backend-cpu.js': require.resolve('@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.min.js'),
      '/tf-backend-webgpu.js': require.resolve('@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js'),
      '/collectivekv.umd.js': join(root, 'dist', 'collectivekv.umd.js'),
      '/collectivekv.webgpu.umd.js': join(root, 'dist', 'collectivekv.webgpu.umd.js'),
    };
  } catch (e) {
    return none(`tfjs's UMD builds not found (${(e as Error).message})`);
  }
  const missing = Object.values(scripts).filter((f) => !existsSync(f));
  if (missing.length > 0) return none(`missing ${missing.join(', ')} (npm run build makes dist/)`);
  let chromium: { launch(o: { executablePath: string; args: string[] }): Promise<Browser> };
  try {
    const name = 'playwright-core';
    chromium = ((await import(name)) as { chromium: typeof chromium }).chromium;
  } catch (e) {
    return none(`npm package playwright-core failed to load (${(e as Error).message})`);
  }
  const server = await serve(scripts);
  let browser: Browser | null = null;
  try {
    browser = await chromium.launch({ executablePath: o.chromium, args: ARGS });
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    const found = await page.evaluate(pageAdapter);
    if (found.info == null) return none(`Chromium: ${found.reason}`);
    const adapter: AdapterReport = { via: 'chromium', vendor: found.info.vendor, architecture: found.info.architecture, device: found.info.device,
      description: found.info.description, driver: null, isFallbackAdapter: found.info.isFallbackAdapter };
    if (!o.measure(adapter)) return { adapter, ops: { notMeasured: 'refused' }, decode: { notMeasured: 'refused' } };
    const timed = await page.evaluate(pageMeasure, { ops: o.ops, decode: o.decode, queued: o.queued, warmup: o.warmup, iterations: o.iterations });
    return { adapter, ops: timed.ops, decode: timed.decode };
  } catch (e) {
    return none(`Chromium failed: ${(e as Error).message}`);
  } finally {
    await browser?.close();
    server.close();
  }
}

interface Browser {
  newPage(): Promise<{
    goto(url: string): Promise<unknown>;
    evaluate<R, A>(f: (arg: A) => Promise<R>, arg?: A): Promise<R>;
  }>;
  close(): Promise<void>;
}

function serve(scripts: Record<string, string>): Promise<http.Server> {
  const tags = Object.keys(scripts).map((src) => `<script src="${src}"></script>`).join('');
  const html = `<!doctype html><meta charset="utf-8"><title>collectivekv bench gpu</title>${tags}`;
  const server = http.createServer((req, res) => {
    const file = scripts[req.url ?? ''];
    res.writeHead(200, { 'content-type': file != null ? 'text/javascript' : 'text/html' });
    res.end(file != null ? readFileSync(file) : html);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// ---------------------------------------------------------------- run inside the page
// These functions are serialized into the page: they may use only their argument and the page's
// globals (tf, collectivekv, collectivekvWebGPU), nothing from this module.

interface PageAdapterInfo { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter: boolean }

async function pageAdapter(): Promise<{ info: PageAdapterInfo | null; reason: string }> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(o: object): Promise<{ info?: Record<string, unknown>;
    isFallbackAdapter?: boolean } | null> } }).gpu;
  if (gpu == null) return { info: null, reason: 'navigator.gpu is undefined (WebGPU disabled or unsupported)' };
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter == null) return { info: null, reason: 'navigator.gpu.requestAdapter() returned null' };
  const info = adapter.info ?? {};
  const text = (k: string) => (typeof info[k] === 'string' ? (info[k] as string) : '');
  return { info: { vendor: text('vendor'), architecture: text('architecture'), device: text('device'), description: text('description'),
    isFallbackAdapter: adapter.isFallbackAdapter === true || info.isFallbackAdapter === true }, reason: '' };
}

type T = { dispose(): void; data(): Promise<ArrayLike<number>> };

async function pageMeasure(p: { ops: KernelSizes; decode: DecodeShape; queued: number; warmup: number; iterations: number }):
  Promise<{ ops: Measured<Record<string, OpTiming>>; decode: Measured<DecodeTiming> }> {
  // The page's UMD globals, untyped: this function is serialized and cannot import their types.
  const g = globalThis as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const tf = g.tf;
  const ckv = g.collectivekv;
  const kernels = g.collectivekvWebGPU;
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
  const read = async (t: T) => {
    const v = Float32Array.from(await t.data());
    t.dispose();
    return v;
  };
  const time = async (f: () => T, queued: number) => {
    const runs: number[] = [];
    for (let i = 0; i < p.warmup + p.iterations; i++) {
      const start = performance.now();
      let last: T | null = null;
      for (let j = 0; j < queued; j++) {
        last?.dispose();
        last = f();
      }
      await read(last as T);
      if (i >= p.warmup) runs.push((performance.now() - start) / queued);
    }
    return median(runs);
  };
  const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  /** The op with this package's webgpu kernels unregistered: what it runs on a backend without them. */
  const composite = <R>(f: () => R): R => {
    for (const c of kernels.webgpuKernelConfigs) tf.unregisterKernel(c.kernelName, 'webgpu');
    try {
      return f();
    } finally {
      kernels.registerWebGPUKernels();
    }
  };
  if (!(await tf.setBackend('webgpu'))) return { ops: { notMeasured: 'tf.setBackend(webgpu) failed' }, decode: { notMeasured: 'tf.setBackend(webgpu) failed' } };
  await tf.ready();
  const s = p.ops;
  const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
  const idx = (shape: number[], max: number, seed: number) => tf.randomUniform(shape, 0, max, 'int32', seed);
  const attention = { query: rand([s.batch, 1, s.width], 1), cache: { indexK: idx([s.batch, s.tk], s.poolSize, 2), indexV: idx([s.batch, s.tk], s.poolSize, 3),
    userK: rand([s.batch, s.tk, 1], 4), userV: rand([s.batch, s.tk, 1], 5) }, pools: { poolK: rand([s.poolSize, s.width - 1], 6), poolV: rand([s.poolSize, s.width - 1], 7) } };
  const table = rand([s.tableRows, s.tableWidth], 8);
  const index = idx([s.positions], s.tableRows, 9);
  const rows = rand([s.positions, s.tableWidth], 10);
  const logits = rand([s.positions, s.poolSize], 11);
  const ops: Record<string, () => T> = {
    collectiveAttention: () => ckv.collectiveAttention(attention.query, attention.cache, attention.pools, { numHeads: s.numHeads }),
    gatherRows: () => ckv.gatherRows(table, index),
    scatterAddRows: () => ckv.scatterAddRows(rows, index, s.tableRows),
    routeTop1Index: () => {
      const r = ckv.routeTop1(logits);
      r.gate.dispose();
      return r.index;
    },
  };
  const opTimes: Record<string, OpTiming> = {};
  for (const [name, f] of Object.entries(ops)) {
    const [a, b] = [await read(f()), await read(composite(f))];
    const kernelMs = await time(f, 1);
    const compositeMs = await time(() => composite(f), 1);
    opTimes[name] = { kernelMs, compositeMs, speedup: compositeMs / kernelMs, maxAbsError: name.endsWith('Index') ? a.filter((x, i) => x !== b[i]).length : maxAbs(a, b) };
  }
  const d = p.decode;
  const q = rand([d.batch, 1, d.width], 21);
  const cache = { indexK: idx([d.batch, d.history], d.poolSize, 22), indexV: idx([d.batch, d.history], d.poolSize, 23),
    userK: rand([d.batch, d.history, d.userDim], 24), userV: rand([d.batch, d.history, d.userDim], 25) };
  const pools = { poolK: rand([d.poolSize, d.width - d.userDim], 26), poolV: rand([d.poolSize, d.width - d.userDim], 27) };
  const fullK = ckv.gatherRows(pools.poolK, cache.indexK, undefined, cache.userK);
  const fullV = ckv.gatherRows(pools.poolV, cache.indexV, undefined, cache.userV);
  const compressed = () => ckv.collectiveAttention(q, cache, pools, { numHeads: d.numHeads });
  const full = () => ckv.dotProductAttention(q, fullK, fullV, { numHeads: d.numHeads });
  const [a, b] = [await read(compressed()), await read(full())];
  const compressedMs = await time(compressed, p.queued);
  const fullKvMs = await time(full, p.queued);
  const decode: DecodeTiming = { compressedMs, fullKvMs, speedup: fullKvMs / compressedMs, compressedLatencyMs: await time(compressed, 1),
    fullKvLatencyMs: await time(full, 1), maxAbsError: maxAbs(a, b) };
  return { ops: opTimes, decode };
}
