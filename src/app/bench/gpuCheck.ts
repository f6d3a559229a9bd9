// The pure parts of `collectivekv bench gpu` (./gpu.ts): the result's JSON shape, which adapters are
// software, the memory-bandwidth table, the bytes a decode reads, the refusal policy and the
// evaluation of issue 28's GPU targets. No tfjs and no I/O here, so all of it is unit-tested.

/** Where the adapter came from: Dawn in Node (npm package `webgpu`) or a headless Chromium. */
export type AdapterSource = 'node-dawn' | 'chromium';

export interface AdapterReport {
  via: AdapterSource;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** The NVIDIA driver version (nvidia-smi) when present, else what the description says, else null. */
  driver: string | null;
  isFallbackAdapter: boolean;
}

/** A figure that was not taken, and why (never a silent gap). */
export interface NotMeasured {
  notMeasured: string;
}

export type Measured<T> = T | NotMeasured;

export function isMeasured<T extends object>(m: Measured<T>): m is T {
  return !('notMeasured' in m);
}

/** One custom op on one backend: its kernel against its composite on the same device-resident inputs. */
export interface OpTiming {
  kernelMs: number;
  compositeMs: number;
  /** compositeMs / kernelMs. */
  speedup: number;
  /** Max |kernel - composite|; for an index output, the number of positions that differ. */
  maxAbsError: number;
}

export interface OpRow {
  name: string;
  shape: string;
  webgpu: Measured<OpTiming>;
  wasm: Measured<OpTiming>;
}

/** Median ms of one SASRec optimizer step (forward, backward, Adam, the loss read with await data()). */
export interface StepTiming {
  mhaMs: number;
  collectivekvMs: number;
}

export interface TrainStepRow {
  batch: number;
  length: number;
  hiddenDim: number;
  numItems: number;
  poolSize: number;
  webgpu: Measured<StepTiming>;
  wasm: Measured<StepTiming>;
}

export interface DecodeTiming {
  /** Per call when `queued` calls share one read-back (the device's throughput, used for the bandwidth target). */
  compressedMs: number;
  fullKvMs: number;
  /** fullKvMs / compressedMs. */
  speedup: number;
  /** One call and its read-back, median (what a single request waits). */
  compressedLatencyMs: number;
  fullKvLatencyMs: number;
  /** Max |compressed - full KV| over the output (the full cache is the compressed one materialized). */
  maxAbsError: number;
}

export interface DecodeShape {
  batch: number;
  history: number;
  width: number;
  numHeads: number;
  poolSize: number;
  userDim: number;
}

export interface DecodeResult extends DecodeShape {
  queued: number;
  bytesRead: DecodeBytes;
  webgpu: Measured<DecodeTiming>;
  wasm: Measured<DecodeTiming>;
}

export interface TargetResult {
  id: string;
  description: string;
  /** The value must be >= threshold ('atLeast') or <= threshold ('atMost'). */
  threshold: number;
  direction: 'atLeast' | 'atMost';
  value: number | null;
  /** null: not evaluated (see notMeasured). */
  met: boolean | null;
  notMeasured?: string;
}

export interface BandwidthBound {
  /** Bytes per second, or null when the GPU is not in MEMORY_BANDWIDTH. */
  bytesPerSecond: number | null;
  /** The table row used ('unknown' when none). */
  gpu: string;
  /** Which name matched: the adapter's device, its description, or nvidia-smi's name. */
  matchedFrom: string | null;
}

export interface WebgpuTestsSummary {
  success: boolean;
  passed: number;
  failed: number;
  skipped: number;
  suites: number;
}

export interface GpuCheckResult {
  schema: 'collectivekv-gpu-check/1';
  date: string;
  mode: 'full' | 'smoke';
  /** False on a software adapter or at smoke sizes: then no timing here is a speed figure. */
  speedsMeaningful: boolean;
  note: string;
  machine: Record<string, unknown>;
  /** What the machine offers for Vulkan and WebGPU (recorded whether or not an adapter appeared). */
  environment: Record<string, unknown>;
  adapter: AdapterReport | null;
  software: boolean | null;
  /** Every way an adapter was sought, in order, with why it failed. */
  adapterAttempts: { via: AdapterSource; ok: boolean; reason?: string }[];
  /** Set when speeds were refused (software adapter without --smoke) or no adapter appeared. */
  refused?: string;
  webgpuTests: Measured<WebgpuTestsSummary>;
  ops: Measured<OpRow[]>;
  trainStep: Measured<TrainStepRow[]>;
  decode: Measured<DecodeResult>;
  bandwidth: BandwidthBound;
  targets: TargetResult[];
}

// ---------------------------------------------------------------- software adapters

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|\bcpu\b/i;

/** True for a CPU implementation: lavapipe / llvmpipe, SwiftShader, or an adapter that says it is a fallback. */
export function isSoftwareAdapter(info: { vendor?: string; architecture?: string; device?: string; description?: string;
  isFallbackAdapter?: boolean }): boolean {
  const text = [info.vendor, info.architecture, info.device, info.description].filter((s) => s != null && s !== '').join(' / ');
  return info.isFallbackAdapter === true || SOFTWARE.test(text);
}

// ---------------------------------------------------------------- memory bandwidth

/**
 * Peak DRAM bandwidth of known GPUs (vendor data sheets), most specific name first. The decode
 * target compares against bytes / this figure; a GPU not listed gives 'unknown' and no verdict.
 */
export const MEMORY_BANDWIDTH: readonly { pattern: RegExp; gpu: string; bytesPerSecond: number }[] = [
  { pattern: /H200/i, gpu: 'H200 (HBM3e)', bytesPerSecond: 4.8e12 },
  { pattern: /H100.*NVL/i, gpu: 'H100 NVL', bytesPerSecond: 3.9e12 },
  { pattern: /H100.*PCIe/i, gpu: 'H100 PCIe', bytesPerSecond: 2.0e12 },
  { pattern: /H100/i, gpu: 'H100 SXM (HBM3)', bytesPerSecond: 3.35e12 },
  { pattern: /GH200/i, gpu: 'GH200', bytesPerSecond: 4.0e12 },
  { pattern: /A100.*(80\s*GB|SXM4-80)/i, gpu: 'A100 80GB', bytesPerSecond: 2.0e12 },
  { pattern: /A100/i, gpu: 'A100 40GB', bytesPerSecond: 1.6e12 },
  { pattern: /L40S?\b/i, gpu: 'L40 / L40S', bytesPerSecond: 0.864e12 },
  { pattern: /\bL4\b/i, gpu: 'L4', bytesPerSecond: 0.3e12 },
  { pattern: /A10G\b/i, gpu: 'A10G', bytesPerSecond: 0.6e12 },
  { pattern: /\bA10\b/i, gpu: 'A10', bytesPerSecond: 0.6e12 },
  { pattern: /V100/i, gpu: 'V100', bytesPerSecond: 0.9e12 },
  { pattern: /\bT4\b/i, gpu: 'T4', bytesPerSecond: 0.32e12 },
  { pattern: /RTX\s*4090/i, gpu: 'RTX 4090', bytesPerSecond: 1.008e12 },
];

/** The first table row matching the adapter's device, then its description, then nvidia-smi's GPU name. */
export function memoryBandwidth(names: { device?: string | null; description?: string | null; nvidiaSmi?: string | null }): BandwidthBound {
  for (const [from, name] of [['adapter device', names.device], ['adapter description', names.description], ['nvidia-smi', names.nvidiaSmi]] as const) {
    if (name == null || name === '') continue;
    const row = MEMORY_BANDWIDTH.find((r) => r.pattern.test(name));
    if (row != null) return { bytesPerSecond: row.bytesPerSecond, gpu: row.gpu, matchedFrom: `${from}: ${name}` };
  }
  return { bytesPerSecond: null, gpu: 'unknown', matchedFrom: null };
}

// ---------------------------------------------------------------- bytes a decode reads

export interface DecodeBytes {
  /** indexK, indexV (int32), userK, userV (float32) over batch x history, both pools, query and output. */
  compressed: number;
  /** K and V (float32 [batch, history, width] each), query and output. */
  fullKv: number;
  note: string;
}

/**
 * The bytes one decode call must move at least once, as the tensors sit on the device (float32 and
 * int32: a 16-bit store is widened when loaded). Pool rows are counted once: gathered rows repeat
 * and come from cache, not DRAM.
 */
export function decodeBytes(s: DecodeShape): DecodeBytes {
  const tokens = s.batch * s.history;
  const io = 2 * s.batch * s.width * 4;
  const compressed = tokens * (2 * 4 + 2 * s.userDim * 4) + 2 * s.poolSize * (s.width - s.userDim) * 4 + io;
  const fullKv = 2 * tokens * s.width * 4 + io;
  return { compressed, fullKv, note: 'device tensors: int32 indices, float32 values; pools counted once; query and output included' };
}

/** Milliseconds to move `bytes` at the bound's bandwidth, or null when the bandwidth is unknown. */
export function boundMs(bytes: number, bound: BandwidthBound): number | null {
  return bound.bytesPerSecond == null ? null : (bytes / bound.bytesPerSecond) * 1000;
}

// ---------------------------------------------------------------- the policy on software adapters

export interface SpeedPolicy {
  /** Whether to take timings at all. */
  measure: boolean;
  /** Whether the timings are a speed figure (hardware adapter, full sizes). */
  meaningful: boolean;
  exitCode: number;
  message: string;
}

/** Exit codes: 0 done, 3 refused (software adapter without --smoke), 4 no adapter. */
export function speedPolicy(adapter: AdapterReport | null, smoke: boolean, whyNone: string): SpeedPolicy {
  if (adapter == null) {
    return { measure: false, meaningful: false, exitCode: 4, message: `no WebGPU adapter: ${whyNone}` };
  }
  const name = [adapter.vendor, adapter.architecture, adapter.device, adapter.description].filter((s) => s !== '').join(' / ');
  const software = isSoftwareAdapter(adapter);
  if (software && !smoke) {
    return { measure: false, meaningful: false, exitCode: 3, message: `refusing to report speeds: the WebGPU adapter is a software ` +
      `implementation on the CPU (${name}), whose timings say nothing about a GPU. Run on a machine with a GPU and its Vulkan ` +
      `driver, or pass --smoke for a dry run whose speeds are marked not meaningful.` };
  }
  if (smoke) {
    return { measure: true, meaningful: false, exitCode: 0,
      message: `smoke run on ${software ? 'a software adapter' : 'a hardware adapter at tiny sizes'} (${name}): speeds not meaningful` };
  }
  return { measure: true, meaningful: true, exitCode: 0, message: `hardware WebGPU adapter (${name})` };
}

// ---------------------------------------------------------------- targets

const STEP_TARGET = 10;
const DECODE_TARGET = 5;
const BANDWIDTH_TARGET = 2;

/** Issue 28's GPU targets, each with its value, or not measured and why. */
export function evaluateTargets(r: Pick<GpuCheckResult, 'speedsMeaningful' | 'trainStep' | 'decode' | 'bandwidth'>, whyNot?: string): TargetResult[] {
  const notMeaningful = whyNot ?? 'speeds not meaningful here (a software adapter or smoke sizes)';
  const verdict = (base: Omit<TargetResult, 'value' | 'met' | 'notMeasured'>, value: number | null, missing: string | null): TargetResult => {
    if (missing != null) return { ...base, value, met: null, notMeasured: missing };
    if (value == null || !Number.isFinite(value)) return { ...base, value: null, met: null, notMeasured: 'no finite value' };
    if (!r.speedsMeaningful) return { ...base, value, met: null, notMeasured: notMeaningful };
    return { ...base, value, met: base.direction === 'atLeast' ? value >= base.threshold : value <= base.threshold };
  };
  const targets: TargetResult[] = [];
  const rows = isMeasured(r.trainStep) ? r.trainStep : [];
  for (const width of [64, 256]) {
    for (const attention of ['mha', 'collectivekv'] as const) {
      const base = { id: `trainStep.d${width}.${attention}.webgpuVsWasm`, threshold: STEP_TARGET, direction: 'atLeast' as const,
        description: `SASRec training step B128 L200 d${width} (${attention}): wasm ms / WebGPU ms on the same machine` };
      const row = rows.find((x) => x.hiddenDim === width);
      const key = attention === 'mha' ? 'mhaMs' : 'collectivekvMs';
      const missing = !isMeasured(r.trainStep) ? r.trainStep.notMeasured : row == null ? `no d${width} row (smoke sizes)`
        : !isMeasured(row.webgpu) ? `webgpu: ${row.webgpu.notMeasured}` : !isMeasured(row.wasm) ? `wasm: ${row.wasm.notMeasured}` : null;
      const value = missing == null && row != null && isMeasured(row.webgpu) && isMeasured(row.wasm) ? row.wasm[key] / row.webgpu[key] : null;
      targets.push(verdict(base, value, missing));
    }
  }
  const d = r.decode;
  const decodeMissing = !isMeasured(d) ? d.notMeasured : !isMeasured(d.webgpu) ? `webgpu: ${d.webgpu.notMeasured}` : null;
  const w = isMeasured(d) && isMeasured(d.webgpu) ? d.webgpu : null;
  targets.push(verdict({ id: 'decode.compressedVsFullKv', threshold: DECODE_TARGET, direction: 'atLeast',
    description: 'collectiveAttention decode from the compressed cache vs composite attention over the full KV cache, WebGPU: full ms / compressed ms' },
  w == null ? null : w.fullKvMs / w.compressedMs, decodeMissing));
  const bound = isMeasured(d) ? boundMs(d.bytesRead.compressed, r.bandwidth) : null;
  targets.push(verdict({ id: 'decode.bandwidthBound', threshold: BANDWIDTH_TARGET, direction: 'atMost',
    description: `compressed decode ms / (bytes it reads / memory bandwidth of ${r.bandwidth.gpu}${r.bandwidth.bytesPerSecond == null ? '' : `, ${r.bandwidth.bytesPerSecond / 1e12} TB/s`})` },
  w == null || bound == null ? null : w.compressedMs / bound,
  decodeMissing ?? (bound == null ? `memory bandwidth unknown for this GPU (not in MEMORY_BANDWIDTH)` : null)));
  return targets;
}

/**
 * The driver: nvidia-smi's version when there is one, else what follows 'vendor:' in the adapter's
 * description (Dawn writes e.g. 'NVIDIA: 550.54.15 ...' or 'llvmpipe: Mesa 25.0.7 ...'), else null.
 */
export function driverVersion(description: string, nvidiaSmi: string | null): string | null {
  if (nvidiaSmi != null && nvidiaSmi !== '') return nvidiaSmi;
  const match = /^[^:]+:\s*(.+)$/.exec(description.trim());
  return match == null ? null : match[1];
}

/** results/gpu-check-YYYY-MM-DD.json for the given day (UTC). */
export function defaultOutPath(date: Date): string {
  return `results/gpu-check-${date.toISOString().slice(0, 10)}.json`;
}

/** A jest --json report reduced to what the check records. */
export function summarizeJestReport(report: { success?: boolean; numPassedTests?: number; numFailedTests?: number; numPendingTests?: number;
  numTotalTestSuites?: number }): WebgpuTestsSummary {
  return { success: report.success === true, passed: report.numPassedTests ?? 0, failed: report.numFailedTests ?? 0,
    skipped: report.numPendingTests ?? 0, suites: report.numTotalTestSuites ?? 0 };
}
