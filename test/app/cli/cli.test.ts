import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { isFastEmbeddingGradientsEnabled } from 'collectivekv/internal';
import { main } from '../../../src/app/cli/main';
import { benchOps, formatBenchOps } from '../../../src/app/bench/ops';

beforeAll(() => useBackend('cpu'));

/** Runs main and returns its exit code and what it printed on stderr and stdout. */
async function run(argv: string[]): Promise<{ code: number; err: string; out: string }> {
  const err = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  const out = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    const code = await main(argv);
    return { code, err: err.mock.calls.flat().join('\n'), out: out.mock.calls.flat().join('\n') };
  } finally {
    err.mockRestore();
    out.mockRestore();
  }
}

describe('collectivekv command line', () => {
  it('rejects an unknown command with a non-zero code and a useful message', async () => {
    const r = await run(['bogus']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/unknown command 'bogus'/);
    expect(r.err).toMatch(/--help/);
  });

  it('rejects unknown flags and bad values', async () => {
    expect((await run(['demo', '--frobnicate'])).err).toMatch(/frobnicate/);
    const backend = await run(['demo', '--backend', 'tpu']);
    expect(backend.code).toBe(2);
    expect(backend.err).toMatch(/--backend must be one of wasm, cpu, webgpu, received 'tpu'/);
    expect((await run(['demo', '--users', '-3'])).err).toMatch(/--users|-3/);
    expect((await run(['demo', '--epochs', '1.5'])).err).toMatch(/--epochs must be a positive integer/);
    expect((await run(['bench', 'kernels'])).err).toMatch(/unknown bench 'kernels'/);
    expect((await run(['demo', '--train-batch', '4'])).err).toMatch(/--train-batch\/--train-length applies to 'bench ops' only/);
    expect((await run(['train', '--skip-tfjs-embedding'])).err).toMatch(/--skip-tfjs-embedding applies to 'bench ops' only/);
    expect((await run(['bench', 'ops', '--model', 'sasrec'])).err).toMatch(/--model applies to 'train, eval and bench quality' only/);
    expect((await run(['train', '--gate', 'hard'])).err).toMatch(/--gate must be one of scaled, straight-through, received 'hard'/);
    expect((await run(['train', '--router', 'sparse'])).err).toMatch(/--router must be one of dense, nearest-product, received 'sparse'/);
  });

  it('prints help with exit code 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Usage: collectivekv <command>/);
    expect(r.out).toMatch(/bench ops/);
  });
});

describe('bench ops', () => {
  it('reports every measurement in the documented JSON shape (tiny sizes)', async () => {
    const lines: string[] = [];
    const result = await benchOps({
      backend: 'wasm',
      embedding: { rows: 40, width: 8, indices: 300, oursRuns: 2 },
      collectiveAttention: { batch: 2, tk: 16, width: 16, numHeads: 2, poolSize: 8, warmup: 1, iterations: 2 },
      trainStep: { batch: 4, length: 8, hiddenDim: 16, numItems: 30, poolSize: 8, warmup: 1, steps: 2 },
      attentionMatMul: { entries: 6, length: 40, headDim: 32, rounds: 2 },
      catalogLoss: { rows: 50, catalog: 31, width: 8, rounds: 2 },
      log: (line) => lines.push(line),
    });
    const json = JSON.parse(JSON.stringify(result));
    for (const key of ['oursMs', 'tfjsMs', 'speedup']) expect(json.embeddingGradient[key]).toBeGreaterThan(0);
    expect(json.embeddingGradient.tfjsRuns).toBe(1);
    for (const key of ['fusedMs', 'compositeMs', 'speedup']) expect(json.collectiveAttention[key]).toBeGreaterThan(0);
    expect(json.collectiveAttention.maxAbsError).toBeLessThan(1e-3);
    for (const key of ['mhaMs', 'collectivekvMs', 'ratio']) expect(json.trainStep[key]).toBeGreaterThan(0);
    for (const key of ['oursMs', 'tfjsMs', 'speedup']) expect(json.attentionMatMul[key]).toBeGreaterThan(0);
    expect(json.attentionMatMul).toMatchObject({ backend: 'wasm', entries: 6, length: 40, headDim: 32, rounds: 2 });
    expect(json.attentionMatMul.maxRelativeError).toBeLessThan(1e-5);
    for (const key of ['oursMs', 'compositeMs', 'speedup']) expect(json.catalogLoss[key]).toBeGreaterThan(0);
    expect(json.catalogLoss).toMatchObject({ backend: 'wasm', rows: 50, catalog: 31, width: 8, rounds: 2 });
    expect(json.catalogLoss.maxRelativeError).toBeLessThan(1e-4);
    // Read from real cache blocks: d=256, 8 heads, pool 1024 (uint16 index), userDim 1, fp32.
    expect(json.bytesPerToken.d256).toMatchObject({ full: 2048, collectivekv: 12 });
    expect(json.bytesPerToken.d256.ratio).toBeCloseTo(12 / 2048);
    expect(json.bytesPerToken.d64).toMatchObject({ full: 512, collectivekv: 12 });
    expect(formatBenchOps(result)).toMatch(/embedding grad[\s\S]*collectiveAttention[\s\S]*attention products[\s\S]*catalog softmax loss[\s\S]*train step[\s\S]*d256/);
    expect(lines.length).toBeGreaterThan(0);
    // Restores what it found: the backend and tfjs's default embedding gradient.
    expect(tf.getBackend()).toBe('cpu');
    expect(isFastEmbeddingGradientsEnabled()).toBe(false);
  });
});
