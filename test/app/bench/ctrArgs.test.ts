import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BENCH_CTR_USAGE, benchCtr, formatCtr, parseBenchCtrArgs, resolveModelOptions, runBenchCtrCommand, subsetUsers,
} from '../../../src/app/bench/ctr';
import { cacheBytesPerToken } from '../../../src/zoo/ctr/common';
import { buildSim } from '../../../src/zoo/ctr/sim';

describe('bench ctr command line', () => {
  it('parses the documented flags', () => {
    const o = parseBenchCtrArgs(['--model', 'twin', '--data', 'x.txt', '--format', 'pairs', '--share', 'k', '--user-dim', '2', '--pool-size', '512',
      '--balance-tokens', '0', '--max-minutes', '1.5', '--label', 'rating>=4', '--backend', 'cpu', '--json', 'out.json']);
    expect(o).toMatchObject({ model: 'twin', data: 'x.txt', format: 'pairs', collective: { share: 'k', userDim: 2, poolSize: 512, router: { kind: 'dense', balanceTokens: 0 } }, maxMinutes: 1.5,
      label: { kind: 'rating', minRating: 4 }, backend: 'cpu', json: 'out.json' });
  });

  it('prints its usage on --help and -h, exit code 0', async () => {
    for (const flag of ['--help', '-h']) {
      const lines: string[] = [];
      expect(await runBenchCtrCommand([flag], (line) => lines.push(line))).toBe(0);
      expect(lines).toEqual([BENCH_CTR_USAGE]);
    }
    expect(BENCH_CTR_USAGE).toMatch(/--model din\|sim\|eta\|sdim\|twin\|hstu-ctr/);
  });

  it('names the flag, what it expects and what it received', () => {
    expect(() => parseBenchCtrArgs(['--model', 'deepfm'])).toThrow("--model must be one of din, sim, eta, sdim, twin, hstu-ctr, received 'deepfm'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--pool-size', '0'])).toThrow("--pool-size must be a positive integer, received '0'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--balance-tokens', '2.5'])).toThrow("--balance-tokens must be an integer >= 0, received '2.5'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--router-dim', '32'])).toThrow(/router-dim/);
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--share', 'q'])).toThrow("--share must be one of k, v, kv, received 'q'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--router', 'hash'])).toThrow("--router must be one of dense, nearest-product, received 'hash'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--router', 'nearest'])).toThrow("--router must be one of dense, nearest-product, received 'nearest'");
    expect(parseBenchCtrArgs(['--model', 'sim', '--router', 'nearest-product', '--commitment-weight', '0.5', '--balance-tokens', '64']))
      .toMatchObject({ collective: { router: { kind: 'nearest-product', commitmentWeight: 0.5, lossTokens: 64 } } });
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--commitment-weight=-1'])).toThrow("--commitment-weight must be a number >= 0, received '-1'");
    expect(parseBenchCtrArgs(['--model', 'sim', '--router', 'nearest-product', '--quantization-weight', '4'])).toMatchObject({ collective: { router: { kind: 'nearest-product', quantizationWeight: 4 } } });
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--quantization-weight', 'x'])).toThrow("--quantization-weight must be a number >= 0, received 'x'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--gate', 'soft'])).toThrow("--gate must be one of scaled, straight-through, received 'soft'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--timing-rounds', '1.5'])).toThrow("--timing-rounds must be an integer >= 0, received '1.5'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--max-minutes=-1'])).toThrow("--max-minutes must be a number >= 0, received '-1'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--negatives', '0'])).toThrow("--negatives must be a positive integer, received '0'");
    expect(parseBenchCtrArgs(['--model', 'sim', '--negatives', '4'])).toMatchObject({ negatives: 4 });
    expect(parseBenchCtrArgs(['--model', 'sim', '--pool-stddev', '0.2'])).toMatchObject({ collective: { poolStddev: 0.2 } });
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--pool-stddev', '0'])).toThrow("--pool-stddev must be a positive number, received '0'");
    expect(parseBenchCtrArgs(['--model', 'sim', '--gate', 'straight-through', '--timing-rounds', '0']))
      .toMatchObject({ collective: { router: { kind: 'dense', gate: 'straight-through' } }, timingRounds: 0 });
    // The recipe's default router for target attention is nearest-product; single-stage keeps the layer's (dense).
    expect(parseBenchCtrArgs(['--model', 'sim']).collective).toMatchObject({ router: { kind: 'nearest-product' } });
    expect(parseBenchCtrArgs(['--model', 'sim', '--training', 'single-stage']).collective).toEqual({});
  });

  it('bench ctr end to end (tiny, single-stage): both variants, the interleaved step timing, the straight-through gate, no leaked tensors', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const r = await benchCtr({ model: 'sim', maxUsers: 24, maxEpochs: 1, trainPositions: 2, longLength: 30, shortLength: 8, topK: 6,
      attentionWidth: 16, embeddingDim: 8, numHeads: 2, batchSize: 16, timingRounds: 2, collective: { poolSize: 16, router: { kind: 'dense', gate: 'straight-through' } }, backend: 'wasm',
      negatives: 3, training: 'single-stage' });
    expect(r.training).toBe('single-stage');
    expect(r.collectivekv.recipe).toBeUndefined();
    expect(r.settings.collective).not.toHaveProperty('kvPhase');
    // Three sampled negatives per positive: every user's test position gives four samples.
    expect(r.settings.negatives).toBe(3);
    expect(r.samples.test).toBe(4 * r.users);
    for (const v of [r.mha, r.collectivekv]) {
      for (const key of ['auc', 'gauc', 'logloss', 'bytesPerToken', 'compressionRatio', 'epochs', 'trainSeconds', 'samplesPerSecond']) {
        expect(Number.isFinite((v as unknown as Record<string, number>)[key])).toBe(true);
      }
      // One epoch: its validation AUC is the best one, restored.
      expect(v.validationAuc).toEqual([v.bestValidationAuc]);
      expect(v.bestEpoch).toBe(1);
    }
    // Every router option recorded, defaults included.
    expect(r.settings.collective).toMatchObject({ poolSize: 16, router: { kind: 'dense', gate: 'straight-through', peakWeight: 0.01, balanceWeight: 1, balanceTokens: 2048 } });
    expect(r.stepTiming).toMatchObject({ batchSize: 16, rounds: 2 });
    expect(r.stepTiming!.mhaMs).toBeGreaterThan(0);
    expect(r.comparison.stepThroughputRatio).toBeCloseTo(r.stepTiming!.mhaMs / r.stepTiming!.collectivekvMs, 10);
    // The paired differences are the differences of the reported metrics, with a positive error.
    expect(r.comparison.aucDelta).toBeCloseTo(r.collectivekv.auc - r.mha.auc, 10);
    expect(r.comparison.aucDeltaStandardError).toBeGreaterThan(0);
    expect(r.comparison.gaucDeltaStandardError).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
  }, 120000);

  it('--training: recipe (default) or single-stage, each with its pool size default; the warm start\'s flags are gone', () => {
    expect(parseBenchCtrArgs(['--model', 'sim']).training).toBeUndefined();
    expect(parseBenchCtrArgs(['--model', 'sim', '--training', 'single-stage']).training).toBe('single-stage');
    expect(parseBenchCtrArgs(['--model', 'sim', '--training', 'recipe']).training).toBe('recipe');
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--training', 'warm-start'])).toThrow("--training must be one of recipe, single-stage, received 'warm-start'");
    for (const flag of ['--warm-start', '--fine-tune-rate']) {
      expect(() => parseBenchCtrArgs(['--model', 'sim', flag, '0.2'])).toThrow(`Unknown option '${flag}'`);
      expect(BENCH_CTR_USAGE).not.toContain(flag);
    }
    expect(BENCH_CTR_USAGE).toContain('--training recipe|single-stage');
    expect(resolveModelOptions({ model: 'sim' }, 10, 1).collective?.poolSize).toBe(4096);
    expect(resolveModelOptions({ model: 'sim', training: 'recipe' }, 10, 1).collective?.poolSize).toBe(4096);
    expect(resolveModelOptions({ model: 'sim', training: 'single-stage' }, 10, 1).collective?.poolSize).toBe(1024);
    expect(resolveModelOptions({ model: 'sim', collective: { poolSize: 64 } }, 10, 1).collective?.poolSize).toBe(64);
  });

  it('bench ctr by the recipe (tiny, the default): collectivekv switches to compressed pools, the summary and the popularity anchor reported', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const lines: string[] = [];
    const sizes = { longLength: 30, shortLength: 8, topK: 6, attentionWidth: 16, embeddingDim: 8, numHeads: 2 };
    const r = await benchCtr({ model: 'sim', maxUsers: 24, maxEpochs: 4, trainPositions: 3, ...sizes, batchSize: 16, timingRounds: 0,
      collective: { poolSize: 16 }, backend: 'wasm', log: (l) => lines.push(l) });
    expect(r.training).toBe('recipe');
    expect(r.settings).toMatchObject({ training: 'recipe', collective: { poolSize: 16, kvPhase: 'full' } });
    const recipe = r.collectivekv.recipe!;
    const perEpoch = Math.ceil(r.samples.train / 16);
    expect(recipe.fullPhaseEpochs).toBeLessThanOrEqual(4);
    expect(recipe.fullPhaseSteps).toBe(recipe.fullPhaseEpochs * perEpoch);
    expect(recipe.fullPhaseBestEpoch).toBeLessThanOrEqual(recipe.fullPhaseEpochs);
    for (const key of ['fullPhaseValidAuc', 'switchedValidAuc', 'switchSeconds', 'relativeInertia'] as const) expect(Number.isFinite(recipe[key])).toBe(true);
    // The fine-tune adds at most ceil(0.25 x the full phase's epochs).
    expect(r.collectivekv.steps! - recipe.fullPhaseSteps).toBeLessThanOrEqual(Math.ceil(0.25 * recipe.fullPhaseEpochs) * perEpoch);
    expect(r.comparison.stepsRatio).toBeCloseTo(r.collectivekv.steps! / r.mha.steps!, 10);
    expect(r.mha.recipe).toBeUndefined();
    // Pooled at the end: the cache is the one of a single-stage model of the same options.
    const pooled = buildSim({ numItems: r.items, ...sizes, collectiveExact: true, attention: 'collectivekv', collective: { poolSize: 16, userDim: 1, share: 'kv' } });
    expect(r.collectivekv.bytesPerToken).toBe(cacheBytesPerToken(pooled));
    pooled.dispose();
    expect(r.collectivekv.compressionRatio).toBeLessThan(0.25);
    expect(lines.some((l) => l.startsWith(`[collectivekv] recipe: full K/V for ${recipe.fullPhaseEpochs} epochs`))).toBe(true);
    const table = formatCtr(r);
    expect(table.split('\n')[0]).toMatch(/^sim \(synthetic, next-item\) +mha +collectivekv +popularity$/);
    expect(table).toContain(`test AUC`);
    expect(table).toMatch(new RegExp(`test AUC .*${r.popularity.auc.toFixed(4)}`));
    expect(table).toContain(`collectivekv by the recipe: full K/V for ${recipe.fullPhaseEpochs} epochs (${recipe.fullPhaseSteps} steps`);
    expect(table).toMatch(/mha (beats|does NOT beat) the popularity anchor/);
    expect(tf.memory().numTensors).toBe(before);
  }, 180000);

  it('--baseline-dir: trains and saves the mha baseline once, reuses it for other CollectiveKV settings, refuses other training settings', async () => {
    await useBackend('wasm');
    const dir = mkdtempSync(join(tmpdir(), 'ckv-baseline-'));
    try {
      const base = { model: 'sim' as const, maxUsers: 24, maxEpochs: 2, trainPositions: 3, longLength: 30, shortLength: 8, topK: 6,
        attentionWidth: 16, embeddingDim: 8, numHeads: 2, batchSize: 16, timingRounds: 0, backend: 'wasm' as const, baselineDir: dir };
      const first: string[] = [];
      const a = await benchCtr({ ...base, collective: { poolSize: 16 }, training: 'single-stage', log: (l) => first.push(l) });
      expect(first.some((l) => l.startsWith('[mha] sim epoch'))).toBe(true);
      expect(first).toContain(`[mha] saved the baseline in ${dir}`);
      expect(a.mha.reusedBaseline).toBeUndefined();
      const before = tf.memory().numTensors;
      const second: string[] = [];
      const b = await benchCtr({ ...base, collective: { poolSize: 8 }, log: (l) => second.push(l) });
      // No mha training the second time; the same baseline, scored again, beside a collectivekv by the recipe.
      expect(second.some((l) => l.startsWith('[mha] sim epoch'))).toBe(false);
      expect(second.some((l) => l.startsWith(`[mha] reusing the baseline in ${dir}`))).toBe(true);
      expect(b.mha.auc).toBe(a.mha.auc);
      expect(b.mha.trainSeconds).toBe(a.mha.trainSeconds);
      expect(b.mha.steps).toBe(a.mha.steps);
      expect(b.mha.reusedBaseline?.dir).toBe(dir);
      expect(b.collectivekv.recipe).toBeDefined();
      // Two epochs: the recipe's fine-tune of ceil(2 / 4) = 1 epoch is cut to a quarter of the budget's steps.
      expect(b.mha.steps).toBe(2 * Math.ceil(b.samples.train / 16));
      expect(b.collectivekv.steps).toBe(Math.floor(1.25 * b.mha.steps!));
      expect(b.collectivekv.stoppedBy).toBe('maxSteps');
      expect(tf.memory().numTensors).toBe(before);
      await expect(benchCtr({ ...base, learningRate: 0.002 })).rejects.toThrow(/its baseline was trained with other settings \(learningRate 0.001, here 0.002\)/);
      expect(() => parseBenchCtrArgs(['--model', 'sim', '--baseline-dir', dir, '--max-minutes', '3'])).toThrow(/--baseline-dir reuses a baseline trained to a step budget/);
      expect(parseBenchCtrArgs(['--model', 'sim', '--baseline-dir', dir])).toMatchObject({ baselineDir: dir });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180000);

  it('samples users reproducibly and keeps the per-event columns aligned', () => {
    const data = { sequences: [[1], [2, 3], [4], [5, 6, 7]], numItems: 7, ratings: [[1], [2, 3], [4], [5, 5, 5]] };
    const a = subsetUsers(data, 2, 3);
    expect(subsetUsers(data, 2, 3)).toEqual(a);
    expect(a.sequences).toHaveLength(2);
    a.sequences.forEach((seq, i) => expect((a.ratings as number[][])[i]).toHaveLength(seq.length));
  });
});
