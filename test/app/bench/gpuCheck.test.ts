// The pure parts of `bench gpu`: the bandwidth table, the software-adapter refusal, the bytes a
// decode reads, target evaluation and the JSON's shape; and the command line.
import {
  AdapterReport, DecodeResult, GpuCheckResult, boundMs, decodeBytes, defaultOutPath, driverVersion, evaluateTargets, isSoftwareAdapter,
  memoryBandwidth, speedPolicy, summarizeJestReport,
} from '../../../src/app/bench/gpuCheck';
import { parseBenchGpuArgs } from '../../../src/app/bench/gpu';

const adapter = (over: Partial<AdapterReport>): AdapterReport => ({ via: 'node-dawn', vendor: 'nvidia', architecture: 'hopper',
  device: 'NVIDIA H100 80GB HBM3', description: 'NVIDIA: 550.54.15 550.54.15.0', driver: '550.54.15', isFallbackAdapter: false, ...over });

describe('memoryBandwidth', () => {
  it.each([
    ['NVIDIA H100 80GB HBM3', 3.35e12, 'H100 SXM (HBM3)'],
    ['NVIDIA H100 PCIe', 2.0e12, 'H100 PCIe'],
    ['NVIDIA H100 NVL', 3.9e12, 'H100 NVL'],
    ['NVIDIA H200', 4.8e12, 'H200 (HBM3e)'],
    ['NVIDIA A100-SXM4-80GB', 2.0e12, 'A100 80GB'],
    ['NVIDIA A100-PCIE-40GB', 1.6e12, 'A100 40GB'],
    ['NVIDIA L4', 0.3e12, 'L4'],
    ['NVIDIA L40S', 0.864e12, 'L40 / L40S'],
    ['NVIDIA A10G', 0.6e12, 'A10G'],
  ])('%s -> %d B/s', (device, bytesPerSecond, gpu) => {
    expect(memoryBandwidth({ device })).toEqual({ bytesPerSecond, gpu, matchedFrom: `adapter device: ${device}` });
  });

  it('falls back to the description, then nvidia-smi, else unknown', () => {
    expect(memoryBandwidth({ device: '0x2330', description: 'NVIDIA H200 NVL driver' }).gpu).toBe('H200 (HBM3e)');
    expect(memoryBandwidth({ device: '', description: 'NVIDIA: 550.54', nvidiaSmi: 'NVIDIA L4' })).toEqual(
      { bytesPerSecond: 0.3e12, gpu: 'L4', matchedFrom: 'nvidia-smi: NVIDIA L4' });
    expect(memoryBandwidth({ device: 'llvmpipe', description: 'Mesa' })).toEqual({ bytesPerSecond: null, gpu: 'unknown', matchedFrom: null });
  });
});

describe('software adapters', () => {
  it.each([
    [{ vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15', description: 'llvmpipe: Mesa 25.0.7' }, true],
    [{ vendor: 'google', architecture: 'swiftshader', device: '0xc0de', description: 'SwiftShader Device (Subzero)' }, true],
    [{ vendor: 'mesa', device: 'lavapipe' }, true],
    [{ vendor: 'x', isFallbackAdapter: true }, true],
    [{ vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H100 80GB HBM3', description: 'NVIDIA: 550.54.15' }, false],
  ])('%j -> %s', (info, software) => expect(isSoftwareAdapter(info)).toBe(software));

  it('refuses speeds from a software adapter unless --smoke, and says why', () => {
    const lavapipe = adapter({ vendor: 'mesa', architecture: 'software', device: 'llvmpipe', description: 'llvmpipe: Mesa', isFallbackAdapter: true });
    const refused = speedPolicy(lavapipe, false, '');
    expect(refused).toMatchObject({ measure: false, meaningful: false, exitCode: 3 });
    expect(refused.message).toMatch(/refusing to report speeds.*software.*llvmpipe.*--smoke/);
    expect(speedPolicy(lavapipe, true, '')).toMatchObject({ measure: true, meaningful: false, exitCode: 0 });
    expect(speedPolicy(adapter({}), false, '')).toMatchObject({ measure: true, meaningful: true, exitCode: 0 });
    expect(speedPolicy(adapter({}), true, '')).toMatchObject({ measure: true, meaningful: false, exitCode: 0 });
    expect(speedPolicy(null, true, "node-dawn: Couldn't load Vulkan")).toEqual({ measure: false, meaningful: false, exitCode: 4,
      message: "no WebGPU adapter: node-dawn: Couldn't load Vulkan" });
  });

  it('reads the driver from nvidia-smi, else from the description', () => {
    expect(driverVersion('NVIDIA: 550.54.15 550.54.15.0', '550.54.15')).toBe('550.54.15');
    expect(driverVersion('llvmpipe: Mesa 25.0.7', null)).toBe('Mesa 25.0.7');
    expect(driverVersion('', null)).toBeNull();
  });
});

describe('decode bytes and targets', () => {
  const shape = { batch: 512, history: 1000, width: 256, numHeads: 8, poolSize: 1024, userDim: 1 };

  it('counts the bytes each decode reads', () => {
    const b = decodeBytes(shape);
    const io = 2 * 512 * 256 * 4;
    expect(b.compressed).toBe(512 * 1000 * 16 + 2 * 1024 * 255 * 4 + io);
    expect(b.fullKv).toBe(2 * 512 * 1000 * 256 * 4 + io);
    // 1 GiB of K/V at H100 SXM's 3.35 TB/s: about a third of a millisecond.
    expect(boundMs(b.fullKv, memoryBandwidth({ device: 'H100' }))).toBeCloseTo((b.fullKv / 3.35e12) * 1000, 9);
    expect(boundMs(b.fullKv, memoryBandwidth({ device: 'unknown' }))).toBeNull();
  });

  const decode = (compressedMs: number, fullKvMs: number): DecodeResult => ({ ...shape, queued: 10, bytesRead: decodeBytes(shape),
    webgpu: { compressedMs, fullKvMs, speedup: fullKvMs / compressedMs, compressedLatencyMs: compressedMs, fullKvLatencyMs: fullKvMs, maxAbsError: 0 },
    wasm: { notMeasured: 'x' } });
  const step = (hiddenDim: number, gpuMs: number, wasmMs: number) => ({ batch: 128, length: 200, hiddenDim, numItems: 3416, poolSize: 1024,
    webgpu: { mhaMs: gpuMs, collectivekvMs: gpuMs }, wasm: { mhaMs: wasmMs, collectivekvMs: wasmMs } });
  const h100 = memoryBandwidth({ device: 'NVIDIA H100 80GB HBM3' });

  it('evaluates each target on meaningful speeds', () => {
    const boundOfCompressed = boundMs(decodeBytes(shape).compressed, h100) as number;
    const targets = evaluateTargets({ speedsMeaningful: true, bandwidth: h100, trainStep: [step(64, 100, 1500), step(256, 100, 500)],
      decode: decode(boundOfCompressed * 3, boundOfCompressed * 30) });
    const byId = Object.fromEntries(targets.map((t) => [t.id, t]));
    expect(Object.keys(byId)).toEqual(['trainStep.d64.mha.webgpuVsWasm', 'trainStep.d64.collectivekv.webgpuVsWasm', 'trainStep.d256.mha.webgpuVsWasm',
      'trainStep.d256.collectivekv.webgpuVsWasm', 'decode.compressedVsFullKv', 'decode.bandwidthBound']);
    expect(byId['trainStep.d64.collectivekv.webgpuVsWasm']).toMatchObject({ value: 15, met: true });
    expect(byId['trainStep.d256.mha.webgpuVsWasm']).toMatchObject({ value: 5, met: false });
    expect(byId['decode.compressedVsFullKv']).toMatchObject({ value: 10, met: true });
    expect(byId['decode.bandwidthBound'].value).toBeCloseTo(3, 9);
    expect(byId['decode.bandwidthBound'].met).toBe(false);
    expect(byId['decode.bandwidthBound'].description).toMatch(/H100 SXM \(HBM3\), 3\.35 TB\/s/);
  });

  it('gives no verdict on speeds that are not meaningful, or not measured, and says why', () => {
    const smoke = evaluateTargets({ speedsMeaningful: false, bandwidth: h100, trainStep: [step(64, 1, 100)], decode: decode(1, 10) }, 'smoke run');
    expect(smoke.every((t) => t.met === null && typeof t.notMeasured === 'string')).toBe(true);
    expect(smoke[0]).toMatchObject({ value: 100, notMeasured: 'smoke run' });
    expect(smoke[2].notMeasured).toMatch(/no d256 row/);
    const none = evaluateTargets({ speedsMeaningful: false, bandwidth: memoryBandwidth({}), trainStep: { notMeasured: 'no adapter' },
      decode: { notMeasured: 'no adapter' } });
    expect(none.map((t) => [t.met, t.notMeasured])).toEqual(Array(6).fill([null, 'no adapter']));
    const unknownGpu = evaluateTargets({ speedsMeaningful: true, bandwidth: memoryBandwidth({ device: 'Some GPU' }), trainStep: [], decode: decode(1, 10) });
    expect(unknownGpu[5]).toMatchObject({ met: null, notMeasured: expect.stringMatching(/bandwidth unknown/) });
    expect(unknownGpu[4]).toMatchObject({ met: true, value: 10 });
  });
});

describe('the JSON and the command line', () => {
  it('a result round-trips through JSON with every documented key', () => {
    const result: GpuCheckResult = { schema: 'collectivekv-gpu-check/1', date: '2026-12-08T00:00:00.000Z', mode: 'smoke', speedsMeaningful: false, note: 'n',
      machine: {}, environment: {}, adapter: null, software: null, adapterAttempts: [{ via: 'node-dawn', ok: false, reason: 'r' }], refused: 'no adapter',
      webgpuTests: summarizeJestReport({ success: true, numPassedTests: 40, numFailedTests: 0, numPendingTests: 2, numTotalTestSuites: 10 }),
      ops: { notMeasured: 'no adapter' }, trainStep: { notMeasured: 'no adapter' }, decode: { notMeasured: 'no adapter' },
      bandwidth: memoryBandwidth({}), targets: [] };
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
    expect(Object.keys(result).sort()).toEqual(['adapter', 'adapterAttempts', 'bandwidth', 'date', 'decode', 'environment', 'machine', 'mode', 'note',
      'ops', 'refused', 'schema', 'software', 'speedsMeaningful', 'targets', 'trainStep', 'webgpuTests']);
    expect(result.webgpuTests).toEqual({ success: true, passed: 40, failed: 0, skipped: 2, suites: 10 });
  });

  it('parses flags, defaults the output to results/gpu-check-<date>.json, rejects the rest by name', () => {
    const day = new Date('2026-12-08T12:00:00Z');
    expect(defaultOutPath(day)).toBe('results/gpu-check-2026-12-08.json');
    expect(parseBenchGpuArgs([], day)).toMatchObject({ smoke: false, out: 'results/gpu-check-2026-12-08.json', browserOnly: false });
    expect(parseBenchGpuArgs(['--smoke', '--out', 'x.json', '--iterations', '3'], day)).toMatchObject({ smoke: true, out: 'x.json', iterations: 3 });
    expect(parseBenchGpuArgs(['--help'])).toBeNull();
    expect(() => parseBenchGpuArgs(['--iterations', '0'])).toThrow(/--iterations must be a positive integer, received '0'/);
    expect(() => parseBenchGpuArgs(['--fast'])).toThrow(/--fast/);
    expect(() => parseBenchGpuArgs(['--tests-json', 'a', '--tests-skipped=b'])).toThrow(/exclude each other/);
  });
});
