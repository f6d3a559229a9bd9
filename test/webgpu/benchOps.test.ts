/** @jest-environment ./test/util/webgpuEnvironment.js */
// `bench ops --webgpu`: the webgpu section of benchOps (kernels vs cpu on the same inputs), its JSON
// key and its table rows, at tiny sizes. Without the option the result has no `webgpu` key, so the
// documented JSON is unchanged (test/app/cli/cli.test.ts checks the other keys).
import * as tf from '@tensorflow/tfjs-core';
import { benchOps, formatBenchOps } from '../../src/app/bench/ops';
import { describeWebGPU } from '../util/webgpu';

const TINY = {
  backend: 'cpu',
  embedding: { rows: 40, width: 8, indices: 300, oursRuns: 1, skipTfjs: true },
  collectiveAttention: { batch: 2, tk: 16, width: 16, numHeads: 2, poolSize: 8, warmup: 1, iterations: 1 },
  trainStep: { batch: 2, length: 6, hiddenDim: 8, numItems: 20, poolSize: 8, warmup: 0, steps: 1 },
  attentionMatMul: { entries: 2, length: 8, headDim: 4, rounds: 1 },
  catalogLoss: { rows: 16, catalog: 20, width: 8, rounds: 1 },
  bytes: { widths: [64] },
};

describeWebGPU('bench ops --webgpu', () => {
  it('reports per-kernel errors vs cpu and labelled timings', async () => {
    const result = await benchOps({ ...TINY, webgpu: { warmup: 0, iterations: 1, batch: 2, tk: 37, width: 16, numHeads: 2, poolSize: 257,
      tableRows: 65, tableWidth: 5, positions: 130 } });
    const w = JSON.parse(JSON.stringify(result.webgpu));
    console.log('bench ops webgpu', JSON.stringify(w));
    expect(w.available).toBe(true);
    expect(w.error).toBeUndefined();
    expect(Object.keys(w.maxAbsError).sort()).toEqual(['collectiveAttention', 'gatherRows', 'routeTop1Index', 'routingLoss', 'scatterAddRows']);
    for (const [kernel, err] of Object.entries(w.maxAbsError as Record<string, number>)) expect([kernel, err < 1e-4]).toEqual([kernel, true]);
    for (const ms of [...Object.values(w.webgpuMs), ...Object.values(w.cpuMs)]) expect(ms).toBeGreaterThan(0);
    // On a CPU implementation (lavapipe in CI) the numbers must say they are not a speed figure.
    if (/llvmpipe|lavapipe|swiftshader/i.test(w.adapter)) expect(w.software).toBe(true);
    if (w.software) {
      expect(w.note).toMatch(/NOT a measure of WebGPU speed/);
      expect(formatBenchOps(result)).toMatch(/collectiveAttention, software WebGPU, speed not meaningful/);
    }
    expect(tf.getBackend()).toBe('webgpu'); // restored: describeWebGPU made webgpu the active backend
  });

  it('adds no webgpu key without the option', async () => {
    const result = await benchOps(TINY);
    expect('webgpu' in result).toBe(false);
  });
});
