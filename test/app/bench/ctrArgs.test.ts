import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_CTR_USAGE, benchCtr, parseBenchCtrArgs, runBenchCtrCommand, subsetUsers } from '../../../src/app/bench/ctr';
import { checkpointSteps } from '../../../src/app/bench/ctrBaseline';
import { forkStepOf } from '../../../src/zoo/sequential/conversion';

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
    expect(parseBenchCtrArgs(['--model', 'sim']).collective).toEqual({});
  });

  it('bench ctr end to end (tiny): both variants, the interleaved step timing, the straight-through gate, no leaked tensors', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const r = await benchCtr({ model: 'sim', maxUsers: 24, maxEpochs: 1, trainPositions: 2, longLength: 30, shortLength: 8, topK: 6,
      attentionWidth: 16, embeddingDim: 8, numHeads: 2, batchSize: 16, timingRounds: 2, collective: { poolSize: 16, router: { kind: 'dense', gate: 'straight-through' } }, backend: 'wasm',
      negatives: 3 });
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

  it('--warm-start and --fine-tune-rate: parsed, and refused where they cannot apply', () => {
    expect(parseBenchCtrArgs(['--model', 'sim', '--warm-start', '0.2', '--fine-tune-rate', '1'])).toMatchObject({ warmStart: 0.2, fineTuneRate: 1 });
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--warm-start', '1'])).toThrow("--warm-start must be a number in (0, 1), received '1'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--fine-tune-rate', '0.5'])).toThrow('--fine-tune-rate applies with --warm-start only');
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--warm-start', '0.2', '--max-minutes', '5'])).toThrow('--warm-start forks a step budget (--epochs); drop --max-minutes');
  });

  it('bench ctr --warm-start (tiny): collectivekv forks the mha run, converts, and fine-tunes to the end of the budget', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const lines: string[] = [];
    const r = await benchCtr({ model: 'twin', maxUsers: 24, maxEpochs: 2, trainPositions: 3, longLength: 30, shortLength: 8, topK: 6,
      attentionWidth: 16, embeddingDim: 8, numHeads: 2, batchSize: 16, timingRounds: 0, collective: { poolSize: 16, router: 'nearest-product' },
      backend: 'wasm', warmStart: 0.25, fineTuneRate: 0.5, learningRate: 0.002, log: (line) => lines.push(line) });
    const w = r.collectivekv.warmStart!;
    const perEpoch = Math.ceil(r.samples.train / 16);
    expect(w.budgetSteps).toBe(2 * perEpoch);
    expect(w.forkStep).toBe(Math.round(0.75 * w.budgetSteps));
    expect(w.fineTuneSteps).toBe(w.budgetSteps - w.forkStep);
    expect(w.fineTuneRate).toBe(0.5);
    expect(lines.some((l) => l.includes(`then ${w.fineTuneSteps} steps at learning rate 0.001`))).toBe(true);
    expect(w.layers.map((l) => l.layer)).toEqual(['short_attention', 'exact_attention']);
    for (const key of ['mhaPartAuc', 'convertedAuc', 'mhaPartSeconds', 'convertSeconds', 'fineTuneSeconds'] as const) expect(Number.isFinite(w[key])).toBe(true);
    expect(r.collectivekv.trainSeconds).toBeCloseTo(w.mhaPartSeconds + w.convertSeconds + w.fineTuneSeconds, 6);
    // The fine-tune ends where the mha run did: its epochs are on the same scale.
    expect(r.collectivekv.epochs).toBe(2);
    expect(r.collectivekv.validationAuc).toHaveLength(1);
    expect(r.mha.warmStart).toBeUndefined();
    expect(r.collectivekv.bytesPerToken).toBeLessThan(r.mha.bytesPerToken / 10);
    expect(tf.memory().numTensors).toBe(before);
  }, 120000);

  it('--baseline-dir: trains and saves the mha baseline once, reuses it for other CollectiveKV settings, refuses other training settings', async () => {
    await useBackend('wasm');
    const dir = mkdtempSync(join(tmpdir(), 'ckv-baseline-'));
    try {
      const base = { model: 'sim' as const, maxUsers: 24, maxEpochs: 2, trainPositions: 3, longLength: 30, shortLength: 8, topK: 6,
        attentionWidth: 16, embeddingDim: 8, numHeads: 2, batchSize: 16, timingRounds: 0, backend: 'wasm' as const, baselineDir: dir };
      const first: string[] = [];
      const a = await benchCtr({ ...base, collective: { poolSize: 16, router: 'nearest-product' }, warmStart: 0.25, log: (l) => first.push(l) });
      expect(first.some((l) => l.startsWith('[mha] sim epoch'))).toBe(true);
      expect(first).toContain(`[mha] saved the baseline in ${dir} (final weights and ${checkpointSteps(a.collectivekv.warmStart!.budgetSteps).length} checkpoints)`);
      expect(a.mha.reusedBaseline).toBeUndefined();
      const before = tf.memory().numTensors;
      const second: string[] = [];
      const b = await benchCtr({ ...base, collective: { poolSize: 4, router: 'nearest-product' }, warmStart: 0.5, log: (l) => second.push(l) });
      // No mha training the second time; the same baseline, scored again.
      expect(second.some((l) => l.startsWith('[mha] sim epoch'))).toBe(false);
      expect(second.some((l) => l.startsWith(`[mha] reusing the baseline in ${dir}`))).toBe(true);
      expect(b.mha.auc).toBe(a.mha.auc);
      expect(b.mha.trainSeconds).toBe(a.mha.trainSeconds);
      expect(b.mha.reusedBaseline?.dir).toBe(dir);
      // The fork of share 0.5 is a saved checkpoint, with the run's seconds at that step.
      expect(b.collectivekv.warmStart!.forkStep).toBe(forkStepOf(b.collectivekv.warmStart!.budgetSteps, 0.5));
      expect(b.collectivekv.warmStart!.mhaPartSeconds).toBeGreaterThan(0);
      expect(b.collectivekv.warmStart!.mhaPartSeconds).toBeLessThan(a.mha.trainSeconds);
      expect(tf.memory().numTensors).toBe(before);
      await expect(benchCtr({ ...base, learningRate: 0.002 })).rejects.toThrow(/its baseline was trained with other settings \(learningRate 0.001, here 0.002\)/);
      // A baseline without the checkpoint a warm start needs (fewer saved, as by an early stop) says so.
      const record = JSON.parse(readFileSync(join(dir, 'baseline.json'), 'utf8'));
      const forkStep = a.collectivekv.warmStart!.forkStep;
      record.checkpoints = record.checkpoints.filter((c: { step: number }) => c.step !== forkStep);
      writeFileSync(join(dir, 'baseline.json'), JSON.stringify(record));
      await expect(benchCtr({ ...base, collective: { poolSize: 16 }, warmStart: 0.25 })).rejects.toThrow(`no checkpoint at step ${forkStep}, where --warm-start 0.25 forks`);
      expect(() => parseBenchCtrArgs(['--model', 'sim', '--baseline-dir', dir, '--max-minutes', '3'])).toThrow(/--baseline-dir keeps a step budget's checkpoints/);
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
