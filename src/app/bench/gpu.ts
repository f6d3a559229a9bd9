// `collectivekv bench gpu`: WebGPU on a real GPU (issue 28 item 2), what scripts/gpu-check.sh runs.
// Records what the machine offers for Vulkan, finds an adapter (Dawn in Node, else headless
// Chromium), refuses speeds from a software adapter unless --smoke, and times WebGPU beside wasm
// on the same machine: each custom op vs its composite, a SASRec step (mha vs collectivekv), and a
// decode from a compressed cache vs attention over the full KV cache. Writes one JSON.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { CompressedKV, KVPools, collectiveAttention, dotProductAttention, gatherRows, useFastEmbeddingGradients } from '../../internal';
import { positiveInt } from '../command/flags';
import { benchTrainStep } from './ops';
import { DawnAdapter, KernelCase, KernelSizes, difference, kernelCases, loadNodeWebGPU, medianMs } from './webgpu';
import {
  AdapterReport, DecodeResult, DecodeShape, DecodeTiming, GpuCheckResult, Measured, NotMeasured, OpRow, OpTiming, StepTiming,
  decodeBytes, defaultOutPath, driverVersion, evaluateTargets, isMeasured, isSoftwareAdapter, memoryBandwidth, speedPolicy, summarizeJestReport,
} from './gpuCheck';
import { browserAdapterCheck } from './gpuBrowser';

export const BENCH_GPU_USAGE = `Usage: collectivekv bench gpu [--smoke] [--out FILE] [options]
(usually through scripts/gpu-check.sh, which also runs the webgpu test suite: see docs/gpu.md)

Finds a WebGPU adapter (Dawn in Node through the npm package webgpu, else headless Chromium) and
times WebGPU beside wasm on this machine: each custom op vs its composite, a SASRec training step
(B128 L200, d64 and d256, mha vs collectivekv), and collectiveAttention decode at batch 512 /
history 1000 / d256 from a compressed cache vs attention over the full KV cache, with the bytes it
reads against the GPU's memory bandwidth. Refuses to report speeds from a software adapter
(lavapipe, llvmpipe, SwiftShader): exit code 3. No adapter: exit code 4, with the reasons recorded.

Options:
  --smoke              tiny shapes, software adapter allowed, speeds marked not meaningful
  --out FILE           the JSON (default results/gpu-check-<date>.json)
  --tests-json FILE    a jest --json report of the webgpu suite, summarized into the JSON
  --tests-skipped WHY  the suite was not run, and why (recorded as not measured)
  --chromium PATH      Chromium for the fallback (default /usr/bin/chromium)
  --browser            skip Dawn in Node and use Chromium (to test the fallback)
  --iterations N       timed runs per figure (default 5; smoke 2)
  -h, --help           this text`;

interface GpuArgs {
  smoke: boolean;
  out: string;
  testsJson?: string;
  testsSkipped?: string;
  chromium: string;
  browserOnly: boolean;
  iterations?: number;
}

export function parseBenchGpuArgs(argv: string[], now = new Date()): GpuArgs | null {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      smoke: { type: 'boolean' }, out: { type: 'string' }, 'tests-json': { type: 'string' }, 'tests-skipped': { type: 'string' },
      chromium: { type: 'string' }, browser: { type: 'boolean' }, iterations: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (positionals.length > 0) throw new Error(`unexpected argument '${positionals[0]}'`);
  if (values['tests-json'] != null && values['tests-skipped'] != null) throw new Error('--tests-json and --tests-skipped exclude each other');
  return { smoke: values.smoke ?? false, out: values.out ?? defaultOutPath(now), testsJson: values['tests-json'],
    testsSkipped: values['tests-skipped'], chromium: values.chromium ?? '/usr/bin/chromium', browserOnly: values.browser ?? false,
    iterations: positiveInt('--iterations', values.iterations) };
}

export async function runBenchGpuCommand(argv: string[], log: (line: string) => void = console.log): Promise<number> {
  let args: GpuArgs | null;
  try {
    args = parseBenchGpuArgs(argv);
  } catch (e) {
    console.error(`collectivekv bench gpu: ${(e as Error).message}\n\n${BENCH_GPU_USAGE}`);
    return 2;
  }
  if (args == null) {
    log(BENCH_GPU_USAGE);
    return 0;
  }
  const { result, exitCode } = await benchGpu(args, log);
  mkdirSync(dirname(args.out) || '.', { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
  log('');
  log(formatGpuCheck(result));
  log(`\nwrote ${args.out}`);
  return exitCode;
}

// ---------------------------------------------------------------- sizes

interface Sizes {
  ops: KernelSizes;
  steps: { batch: number; length: number; hiddenDim: number; numItems: number; poolSize: number }[];
  decode: DecodeShape;
  queued: number;
  warmup: number;
  iterations: number;
  /** wasm is single-threaded and slow: fewer timed steps there. */
  wasmSteps: number;
}

function sizesFor(smoke: boolean, iterations?: number): Sizes {
  if (smoke) {
    return { ops: { batch: 2, tk: 37, width: 16, numHeads: 2, poolSize: 257, tableRows: 65, tableWidth: 5, positions: 130 },
      steps: [{ batch: 4, length: 8, hiddenDim: 16, numItems: 50, poolSize: 16 }],
      decode: { batch: 4, history: 20, width: 16, numHeads: 2, poolSize: 32, userDim: 1 }, queued: 2, warmup: 1, iterations: iterations ?? 2,
      wasmSteps: 1 };
  }
  return { ops: { batch: 64, tk: 1000, width: 256, numHeads: 8, poolSize: 1024, tableRows: 3416, tableWidth: 64, positions: 12800 },
    steps: [64, 256].map((hiddenDim) => ({ batch: 128, length: 200, hiddenDim, numItems: 3416, poolSize: 1024 })),
    decode: { batch: 512, history: 1000, width: 256, numHeads: 8, poolSize: 1024, userDim: 1 }, queued: 10, warmup: 2,
    iterations: iterations ?? 5, wasmSteps: 3 };
}

// ---------------------------------------------------------------- the run

export async function benchGpu(args: GpuArgs, log: (line: string) => void): Promise<{ result: GpuCheckResult; exitCode: number }> {
  const sizes = sizesFor(args.smoke, args.iterations);
  log('machine and Vulkan environment ...');
  const machine = machineReport();
  const environment = environmentReport(args.chromium);
  const nvidia = machine.nvidiaSmi as { gpus?: { name: string; driverVersion: string }[] } | null;
  const attempts: GpuCheckResult['adapterAttempts'] = [];
  let adapter: AdapterReport | null = null;
  let browserResult: Awaited<ReturnType<typeof browserAdapterCheck>> | null = null;

  if (!args.browserOnly) {
    log('adapter: Dawn in Node (npm package webgpu) ...');
    const loaded = await loadNodeWebGPU();
    if ('reason' in loaded) {
      const probe = environment.dawnProbe as { stderr?: string } | undefined;
      attempts.push({ via: 'node-dawn', ok: false, reason: `${loaded.reason}${probe?.stderr ? `; Dawn printed: ${probe.stderr}` : ''}` });
    } else {
      attempts.push({ via: 'node-dawn', ok: true });
      adapter = adapterReport('node-dawn', loaded.adapter, nvidia?.gpus?.[0]?.driverVersion ?? null);
    }
  }
  const policyFor = (a: AdapterReport | null) => speedPolicy(a, args.smoke, attempts.map((x) => `${x.via}: ${x.reason ?? 'ok'}`).join('; '));
  if (adapter == null) {
    log(`adapter: headless Chromium (${args.chromium}) ...`);
    browserResult = await browserAdapterCheck({ chromium: args.chromium, ops: sizes.ops, decode: sizes.decode, queued: sizes.queued,
      warmup: sizes.warmup, iterations: sizes.iterations, measure: (a) => policyFor(a).measure });
    attempts.push(browserResult.adapter == null ? { via: 'chromium', ok: false, reason: browserResult.reason } : { via: 'chromium', ok: true });
    if (browserResult.adapter != null) adapter = { ...browserResult.adapter, driver: driverVersion(browserResult.adapter.description, nvidia?.gpus?.[0]?.driverVersion ?? null) };
  }

  const policy = policyFor(adapter);
  log(`  ${policy.message}`);
  const bandwidth = memoryBandwidth({ device: adapter?.device, description: adapter?.description, nvidiaSmi: nvidia?.gpus?.[0]?.name });
  const skipped = (why: string): NotMeasured => ({ notMeasured: why });
  const why = adapter == null ? 'no WebGPU adapter (see adapterAttempts and environment)' : 'refused: a software adapter (see refused)';
  const result: GpuCheckResult = {
    schema: 'collectivekv-gpu-check/1', date: new Date().toISOString(), mode: args.smoke ? 'smoke' : 'full', speedsMeaningful: policy.meaningful,
    note: policy.message, machine, environment, adapter, software: adapter == null ? null : isSoftwareAdapter(adapter), adapterAttempts: attempts,
    webgpuTests: testsSummary(args), ops: skipped(why), trainStep: skipped(why), decode: skipped(why), bandwidth,
    targets: [],
  };
  if (!policy.measure) result.refused = policy.message;
  else if (adapter?.via === 'chromium' && browserResult != null) {
    // The page timed the ops and the decode on WebGPU; wasm beside them runs here in Node.
    const wasm = await measureWasm(sizes, log);
    result.ops = mergeOps(browserResult.ops, wasm.ops, sizes.ops);
    result.decode = mergeDecode(browserResult.decode, wasm.decode, sizes);
    result.trainStep = skipped('the Chromium fallback times the ops and the decode only (the SASRec step needs the zoo, which has no browser bundle)');
  } else {
    const gpu = await measureBackend('webgpu', sizes, log);
    const wasm = await measureWasm(sizes, log);
    result.ops = mergeOps(gpu.ops, wasm.ops, sizes.ops);
    result.trainStep = sizes.steps.map((s, i) => ({ ...s, webgpu: pick(gpu.steps, i), wasm: pick(wasm.steps, i) }));
    result.decode = mergeDecode(gpu.decode, wasm.decode, sizes);
  }
  result.targets = evaluateTargets(result, policy.meaningful ? undefined : args.smoke ? 'smoke run: speeds not meaningful' : why);
  return { result, exitCode: policy.exitCode };
}

function pick<T extends object>(list: Measured<T[]>, i: number): Measured<T> {
  return isMeasured(list) ? list[i] : list;
}

function mergeOps(gpu: Measured<Record<string, OpTiming>>, wasm: Measured<Record<string, OpTiming>>, shapes: KernelSizes): Measured<OpRow[]> {
  const names = [...new Set([...(isMeasured(gpu) ? Object.keys(gpu) : []), ...(isMeasured(wasm) ? Object.keys(wasm) : [])])];
  if (names.length === 0) return { notMeasured: `webgpu: ${(gpu as NotMeasured).notMeasured}; wasm: ${(wasm as NotMeasured).notMeasured}` };
  const of = (m: Measured<Record<string, OpTiming>>, name: string): Measured<OpTiming> =>
    !isMeasured(m) ? m : m[name] ?? { notMeasured: 'not timed on this path' };
  return names.map((name) => ({ name, shape: opShape(name, shapes), webgpu: of(gpu, name), wasm: of(wasm, name) }));
}

function opShape(name: string, s: KernelSizes): string {
  if (name === 'collectiveAttention') return `query [${s.batch}, 1, ${s.width}], history ${s.tk}, pool ${s.poolSize}, ${s.numHeads} heads`;
  if (name === 'gatherRows' || name === 'scatterAddRows') return `table [${s.tableRows}, ${s.tableWidth}], ${s.positions} rows`;
  return `logits [${s.positions}, ${s.poolSize}]`;
}

function mergeDecode(gpu: Measured<DecodeTiming>, wasm: Measured<DecodeTiming>, sizes: Sizes): DecodeResult {
  return { ...sizes.decode, queued: sizes.queued, bytesRead: decodeBytes(sizes.decode), webgpu: gpu, wasm };
}

function testsSummary(args: GpuArgs): GpuCheckResult['webgpuTests'] {
  if (args.testsSkipped != null) return { notMeasured: args.testsSkipped };
  if (args.testsJson == null) return { notMeasured: 'the webgpu suite was not run (scripts/gpu-check.sh runs it and passes --tests-json)' };
  try {
    return summarizeJestReport(JSON.parse(readFileSync(args.testsJson, 'utf8')));
  } catch (e) {
    return { notMeasured: `could not read the jest report ${args.testsJson}: ${(e as Error).message}` };
  }
}

function adapterReport(via: AdapterReport['via'], a: DawnAdapter, nvidiaDriver: string | null): AdapterReport {
  const info = a.info ?? {};
  return { via, vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: info.device ?? '', description: info.description ?? '',
    driver: driverVersion(info.description ?? '', nvidiaDriver), isFallbackAdapter: a.isFallbackAdapter === true || info.isFallbackAdapter === true };
}

// ---------------------------------------------------------------- measurements

interface BackendFigures {
  ops: Measured<Record<string, OpTiming>>;
  steps: Measured<Measured<StepTiming>[]>;
  decode: Measured<DecodeTiming>;
}

async function measureWasm(sizes: Sizes, log: (line: string) => void): Promise<BackendFigures> {
  return measureBackend('wasm', { ...sizes, iterations: Math.min(sizes.iterations, 3) }, log);
}

/** Every figure on one backend; a failing part is recorded as not measured and the rest still runs. */
async function measureBackend(backend: 'webgpu' | 'wasm', sizes: Sizes, log: (line: string) => void): Promise<BackendFigures> {
  const started = tf.getBackend();
  const failed = (what: string, e: unknown): NotMeasured => {
    log(`  ${backend} ${what} failed: ${(e as Error).message}`);
    return { notMeasured: `${what} failed on ${backend}: ${(e as Error).message}` };
  };
  try {
    if (!(await tf.setBackend(backend))) {
      const why = { notMeasured: `the ${backend} backend failed to initialize` };
      return { ops: why, steps: why, decode: why };
    }
    await tf.ready();
    if (backend === 'webgpu') await import('../../webgpu');
    // tfjs's Embedding gradient needs a scatter-add on wasm (as bench ops sets it).
    useFastEmbeddingGradients();
    const out: BackendFigures = { ops: { notMeasured: 'not run' }, steps: { notMeasured: 'not run' }, decode: { notMeasured: 'not run' } };
    log(`${backend}: ops, kernel vs composite ...`);
    try {
      out.ops = await timeOps(kernelCases(sizes.ops), sizes, log);
    } catch (e) {
      out.ops = failed('ops', e);
    }
    log(`${backend}: SASRec training step ...`);
    const steps: Measured<StepTiming>[] = [];
    for (const s of sizes.steps) {
      const r = await benchTrainStep({ ...s, warmup: 1, steps: backend === 'wasm' ? sizes.wasmSteps : sizes.iterations }, backend, (l) => log(`  d${s.hiddenDim}${l}`));
      steps.push(r.mhaMs != null && r.collectivekvMs != null ? { mhaMs: r.mhaMs, collectivekvMs: r.collectivekvMs }
        : { notMeasured: r.error ?? 'the step failed' });
    }
    out.steps = steps;
    // Last: the full KV cache is the largest allocation (a wasm out-of-memory abort costs no other figure).
    log(`${backend}: decode, compressed cache vs full KV ...`);
    try {
      out.decode = await timeDecode(sizes);
    } catch (e) {
      out.decode = failed('decode', e);
    }
    return out;
  } finally {
    if (started && tf.getBackend() !== started) await tf.setBackend(started);
  }
}

async function timeOps(cases: Record<string, KernelCase>, sizes: Sizes, log: (line: string) => void): Promise<Record<string, OpTiming>> {
  const out: Record<string, OpTiming> = {};
  for (const [name, c] of Object.entries(cases)) {
    const inputs = c.inputs();
    try {
      const [a, b] = [await read(c.kernel(inputs)), await read(c.composite(inputs))];
      const kernelMs = await medianMs(() => c.kernel(inputs), sizes.warmup, sizes.iterations);
      const compositeMs = await medianMs(() => c.composite(inputs), sizes.warmup, sizes.iterations);
      out[name] = { kernelMs, compositeMs, speedup: compositeMs / kernelMs, maxAbsError: difference(name, a, b) };
      log(`  ${name}: kernel ${kernelMs.toFixed(2)} ms, composite ${compositeMs.toFixed(2)} ms`);
    } finally {
      tf.dispose(Object.values(inputs));
    }
  }
  return out;
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  try {
    return Float32Array.from(await t.data());
  } finally {
    t.dispose();
  }
}

/** Median over `iterations` of (ms for `queued` calls, one read-back at the end) / queued. */
async function queuedMs(run: () => tf.Tensor, queued: number, warmup: number, iterations: number): Promise<number> {
  const once = async () => {
    const start = performance.now();
    let last: tf.Tensor | null = null;
    for (let i = 0; i < queued; i++) {
      last?.dispose();
      last = run();
    }
    await read(last as tf.Tensor);
    return (performance.now() - start) / queued;
  };
  for (let i = 0; i < warmup; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) times.push(await once());
  times.sort((x, y) => x - y);
  return times[times.length >> 1];
}

/**
 * One decode step (a query per user) from device-resident caches: collectiveAttention over the
 * compressed cache against dotProductAttention over K/V materialized from the same cache (so the
 * outputs must agree).
 */
async function timeDecode(sizes: Sizes): Promise<DecodeTiming> {
  const d = sizes.decode;
  const dg = d.width - d.userDim;
  const random = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
  const index = (seed: number) => tf.randomUniform([d.batch, d.history], 0, d.poolSize, 'int32', seed);
  const query = random([d.batch, 1, d.width], 1);
  const cache: CompressedKV = { indexK: index(2), indexV: index(3), userK: random([d.batch, d.history, d.userDim], 4),
    userV: random([d.batch, d.history, d.userDim], 5) };
  const pools: KVPools = { poolK: random([d.poolSize, dg], 6), poolV: random([d.poolSize, dg], 7) };
  const fullK = gatherRows(pools.poolK, cache.indexK, undefined, cache.userK);
  const fullV = gatherRows(pools.poolV, cache.indexV, undefined, cache.userV);
  const options = { numHeads: d.numHeads };
  const compressed = () => collectiveAttention(query, cache, pools, options);
  const full = () => dotProductAttention(query, fullK, fullV, options);
  try {
    const [a, b] = [await read(compressed()), await read(full())];
    const compressedMs = await queuedMs(compressed, sizes.queued, sizes.warmup, sizes.iterations);
    const fullKvMs = await queuedMs(full, sizes.queued, sizes.warmup, sizes.iterations);
    const compressedLatencyMs = await medianMs(compressed, sizes.warmup, sizes.iterations);
    const fullKvLatencyMs = await medianMs(full, sizes.warmup, sizes.iterations);
    return { compressedMs, fullKvMs, speedup: fullKvMs / compressedMs, compressedLatencyMs, fullKvLatencyMs, maxAbsError: difference('decode', a, b) };
  } finally {
    tf.dispose([query, cache.indexK, cache.indexV, cache.userK, cache.userV, pools.poolK, pools.poolV, fullK, fullV]);
  }
}

// ---------------------------------------------------------------- the machine

function run(cmd: string, argv: string[], timeout = 15000): { ok: boolean; stdout: string; stderr: string; error?: string } {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout });
  if (r.error != null) return { ok: false, stdout: '', stderr: '', error: r.error.message };
  return { ok: r.status === 0, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

function machineReport(): Record<string, unknown> {
  const smi = run('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader']);
  const gpus = smi.ok ? smi.stdout.split('\n').filter(Boolean).map((line) => {
    const [name, driverVersion, memory] = line.split(',').map((x) => x.trim());
    return { name, driverVersion, memory };
  }) : null;
  return { hostname: hostname(), platform: process.platform, arch: process.arch, kernel: release(), node: process.version,
    cpus: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown'}`, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    nvidiaSmi: gpus == null ? null : { gpus }, nvidiaSmiError: gpus == null ? (smi.error ?? (smi.stderr || smi.stdout || 'failed')) : undefined };
}

const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

/** Vulkan ICDs, the loader, the container's NVIDIA capabilities, and Dawn's own account in a child process. */
function environmentReport(chromium: string): Record<string, unknown> {
  const icds = ICD_DIRS.flatMap((dir) => {
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => {
      const path = join(dir, f);
      try {
        const json = JSON.parse(readFileSync(path, 'utf8')) as { ICD?: { library_path?: string; api_version?: string } };
        return { path, libraryPath: json.ICD?.library_path ?? null, apiVersion: json.ICD?.api_version ?? null };
      } catch (e) {
        return { path, error: (e as Error).message };
      }
    });
  });
  const env = Object.fromEntries(['VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'NVIDIA_DRIVER_CAPABILITIES', 'NVIDIA_VISIBLE_DEVICES', 'LD_LIBRARY_PATH']
    .map((k) => [k, process.env[k] ?? null]));
  return { icdDirs: ICD_DIRS, icds, libvulkan: dlopenable('libvulkan.so.1'), nvidiaVulkanLibrary: dlopenable('libGLX_nvidia.so.0'), env,
    webgpuPackage: webgpuPackage(), chromium: { path: chromium, present: existsSync(chromium) }, dawnProbe: dawnProbe() };
}

/**
 * Whether the dynamic linker can load a library: process.dlopen loads it, then fails for want of a
 * Node module in it ('did not self-register'), which proves the load worked.
 */
export function dlopenable(lib: string): { loads: boolean; detail: string } {
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, lib);
    return { loads: true, detail: 'loaded' };
  } catch (e) {
    const message = (e as Error).message;
    return /self-register|did not self|not a valid/i.test(message) ? { loads: true, detail: 'loads' } : { loads: false, detail: message };
  }
}

function webgpuPackage(): Record<string, unknown> {
  try {
    const pkg = require.resolve('webgpu/package.json');
    const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
    const binary = join(dirname(pkg), 'dist', `${process.platform}-${process.arch}`, 'dawn.node');
    return { version, binary, binaryPresent: existsSync(binary) };
  } catch (e) {
    return { missing: `npm package 'webgpu' not found (${(e as Error).message}); it is a devDependency: npm ci installs it` };
  }
}

/** Dawn in a child process, so its native stderr ("Couldn't load Vulkan", ...) can be recorded. */
function dawnProbe(): Record<string, unknown> {
  const script = `process.env.XDG_RUNTIME_DIR ??= '/tmp';
const { create } = await import('webgpu');
const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
console.log(JSON.stringify(a == null ? null : { ...Object.fromEntries(['vendor', 'architecture', 'device', 'description'].map((k) => [k, a.info[k]])), isFallbackAdapter: a.info.isFallbackAdapter ?? a.isFallbackAdapter }));
process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60000, cwd: process.cwd() });
  if (r.error != null) return { error: r.error.message };
  const lines = r.stdout.trim().split('\n');
  let adapter: unknown = 'unparsed';
  try {
    adapter = JSON.parse(lines[lines.length - 1] ?? 'null');
  } catch {
    // stays 'unparsed'; stdout is recorded below
  }
  return { exitCode: r.status, adapter, stdout: r.stdout.trim().slice(-2000), stderr: r.stderr.trim().slice(-2000) };
}

// ---------------------------------------------------------------- the table

export function formatGpuCheck(r: GpuCheckResult): string {
  const ms = (x: number) => `${x.toFixed(x < 10 ? 3 : 1)} ms`;
  const lines: string[] = [];
  const a = r.adapter;
  lines.push(`adapter: ${a == null ? 'none' : `${a.vendor} / ${a.architecture} / ${a.device} / ${a.description} (via ${a.via}, driver ${a.driver ?? 'unknown'})`}`);
  lines.push(`software: ${r.software}; speeds meaningful: ${r.speedsMeaningful}; ${r.note}`);
  for (const attempt of r.adapterAttempts) if (!attempt.ok) lines.push(`  ${attempt.via}: ${attempt.reason}`);
  const t = r.webgpuTests;
  lines.push(`webgpu suite: ${isMeasured(t) ? `${t.success ? 'passed' : 'FAILED'} (${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped)` : `not run: ${t.notMeasured}`}`);
  const cell = <T extends object>(m: Measured<T>, f: (x: T) => string) => (isMeasured(m) ? f(m) : `n/a (${m.notMeasured.slice(0, 60)})`);
  if (isMeasured(r.ops)) {
    for (const o of r.ops) {
      lines.push(`op ${o.name}: webgpu ${cell(o.webgpu, (x) => `${ms(x.kernelMs)} vs composite ${ms(x.compositeMs)} (${x.speedup.toFixed(2)}x)`)}; ` +
        `wasm ${cell(o.wasm, (x) => `${ms(x.kernelMs)} vs ${ms(x.compositeMs)} (${x.speedup.toFixed(2)}x)`)}`);
    }
  } else lines.push(`ops: not measured (${r.ops.notMeasured})`);
  if (isMeasured(r.trainStep)) {
    for (const s of r.trainStep) {
      lines.push(`SASRec step B${s.batch} L${s.length} d${s.hiddenDim}: webgpu ${cell(s.webgpu, (x) => `mha ${ms(x.mhaMs)}, collectivekv ${ms(x.collectivekvMs)}`)}; ` +
        `wasm ${cell(s.wasm, (x) => `mha ${ms(x.mhaMs)}, collectivekv ${ms(x.collectivekvMs)}`)}`);
    }
  } else lines.push(`SASRec step: not measured (${r.trainStep.notMeasured})`);
  if (isMeasured(r.decode)) {
    const d = r.decode;
    const f = (x: DecodeTiming) => `compressed ${ms(x.compressedMs)}, full KV ${ms(x.fullKvMs)} (${x.speedup.toFixed(2)}x, max err ${x.maxAbsError.toExponential(1)})`;
    lines.push(`decode B${d.batch} history ${d.history} d${d.width} (${d.queued} calls per read-back): webgpu ${cell(d.webgpu, f)}; wasm ${cell(d.wasm, f)}`);
    const size = (b: number) => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
    lines.push(`  bytes read: compressed ${size(d.bytesRead.compressed)}, full KV ${size(d.bytesRead.fullKv)}; ` +
      `bandwidth bound: ${r.bandwidth.bytesPerSecond == null ? 'unknown' : `${r.bandwidth.gpu}, ${r.bandwidth.bytesPerSecond / 1e12} TB/s`}`);
  } else lines.push(`decode: not measured (${r.decode.notMeasured})`);
  for (const target of r.targets) {
    const verdict = target.met == null ? `not evaluated: ${target.notMeasured}` : target.met ? 'MET' : 'NOT MET';
    lines.push(`target ${target.id} (${target.direction === 'atLeast' ? '>=' : '<='} ${target.threshold}): ${target.value == null ? '-' : target.value.toFixed(2)}, ${verdict}`);
  }
  return lines.join('\n');
}
