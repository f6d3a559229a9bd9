// The `collectivekv` command end to end on a tiny generated data set: train (saves), eval (loads),
// bench quality (--json), and the error paths.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { generateSynthetic } from 'collectivekv/internal';
import { main } from '../../../src/app/cli/main';

let dir: string;
let pairs: string;

beforeAll(async () => {
  await useBackend('wasm');
  dir = mkdtempSync(join(tmpdir(), 'ckv-cli-'));
  const data = generateSynthetic({ numUsers: 40, numItems: 30, numTopics: 3, minLength: 5, maxLength: 10, seed: 9 });
  pairs = join(dir, 'tiny.txt');
  writeFileSync(pairs, data.sequences.flatMap((seq, u) => seq.map((item) => `${u + 1} ${item}`)).join('\n') + '\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[]): Promise<{ code: number; err: string; out: string }> {
  const err = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  const out = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  const progress = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await main(argv);
    return { code, err: err.mock.calls.flat().join('\n'), out: out.mock.calls.flat().join('\n') };
  } finally {
    err.mockRestore();
    out.mockRestore();
    progress.mockRestore();
  }
}

const small = ['--max-length', '8', '--hidden-dim', '16', '--heads', '2', '--pool-size', '16', '--epochs', '2', '--batch-size', '16', '--lr', '0.01'];

describe('collectivekv train / eval', () => {
  it.each(['sasrec', 'bert4rec', 'hstu'])('trains %s with collectivekv, saves it, and eval reloads it with the same metrics', async (model) => {
    const out = join(dir, `${model}-model`);
    const trainJson = join(dir, `${model}-train.json`);
    // hstu also takes the straight-through gate through the command line.
    const extra = model === 'hstu' ? ['--gate', 'straight-through'] : [];
    const train = await run(['train', '--model', model, '--attention', 'collectivekv', '--data', pairs, '--format', 'pairs', '--out', out,
      '--json', trainJson, '--backend', 'wasm', ...small, ...extra]);
    expect(train.err).toBe('');
    expect(train.code).toBe(0);
    for (const file of ['model.json', 'weights.bin', 'options.json']) expect(existsSync(join(out, file))).toBe(true);
    if (model === 'hstu') {
      const saved = JSON.parse(readFileSync(join(out, 'options.json'), 'utf8'));
      expect(saved.options.collective).toMatchObject({ router: { kind: 'dense', gate: 'straight-through' } });
      const topology = readFileSync(join(out, 'model.json'), 'utf8');
      expect(topology).toMatch(/"router":\s*\{\s*"kind":\s*"dense",\s*"gate":\s*"straight-through"/);
    }
    const trained = JSON.parse(readFileSync(trainJson, 'utf8'));
    // The recipe: 2 epochs with full K/V (the epoch budget), the switch, ceil(2 / 4) = 1 epoch of fine-tune.
    expect(trained).toMatchObject({ model, attention: 'collectivekv', epochs: 3, recipe: { fullPhaseEpochs: 2 } });
    expect(trained.options.collective.kvPhase).toBe('full');
    expect(trained.test.users).toBe(40);
    expect(trained.bytesPerToken).toBe(2 * 2 * (1 + 4));

    const evalJson = join(dir, `${model}-eval.json`);
    const evaluated = await run(['eval', '--model-dir', out, '--data', pairs, '--format', 'pairs', '--json', evalJson]);
    expect(evaluated.code).toBe(0);
    const e = JSON.parse(readFileSync(evalJson, 'utf8'));
    expect(e.test.ndcg10).toBeCloseTo(trained.test.ndcg10, 6);
    expect(e.test.hr10).toBeCloseTo(trained.test.hr10, 6);
    expect(evaluated.out).toMatch(new RegExp(`${model} \\(collectivekv\\) from .*NDCG@10`));
    expect(e.test.filterHistory).toBe(false);

    // --filter-history: history items leave the ranking, so no target ranks lower; the JSON and the line say so.
    const filteredJson = join(dir, `${model}-eval-filtered.json`);
    const filtered = await run(['eval', '--model-dir', out, '--data', pairs, '--format', 'pairs', '--filter-history', '--json', filteredJson]);
    expect(filtered.code).toBe(0);
    const f = JSON.parse(readFileSync(filteredJson, 'utf8'));
    expect(f.test.filterHistory).toBe(true);
    expect(f.test.hr10).toBeGreaterThanOrEqual(e.test.hr10);
    expect(f.test.ndcg10).toBeGreaterThanOrEqual(e.test.ndcg10 - 1e-9);
    expect(filtered.out).toMatch(/history items filtered from the ranking/);

    // --filter-window: only the items the model reads leave the ranking (histories here run past the window of 8).
    const windowJson = join(dir, `${model}-eval-window.json`);
    const windowed = await run(['eval', '--model-dir', out, '--data', pairs, '--format', 'pairs', '--filter-window', '--json', windowJson]);
    expect(windowed.code).toBe(0);
    const w = JSON.parse(readFileSync(windowJson, 'utf8'));
    const window = model === 'bert4rec' ? 7 : 8;
    expect(w.test).toMatchObject({ filterHistory: true, historyWindow: window });
    expect(w.test.ndcg10).toBeGreaterThanOrEqual(e.test.ndcg10 - 1e-9);
    expect(w.test.ndcg10).toBeLessThanOrEqual(f.test.ndcg10 + 1e-9);
    expect(windowed.out).toContain(`(the last ${window} history items, the model's input, filtered from the ranking)`);
  });

  it('refuses --filter-history with --filter-window', async () => {
    const r = await run(['eval', '--model-dir', dir, '--data', pairs, '--format', 'pairs', '--filter-history', '--filter-window']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--filter-history and --filter-window exclude each other/);
  });

  it('train --max-steps stops after that many steps; eval and bench quality refuse it', async () => {
    const json = join(dir, 'steps.json');
    const r = await run(['train', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--max-steps', '3', '--json', json, ...small]);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(json, 'utf8'))).toMatchObject({ steps: 3, stoppedBy: 'maxSteps' });
    const e = await run(['eval', '--model-dir', dir, '--data', pairs, '--format', 'pairs', '--max-steps', '3']);
    expect(e.code).toBe(2);
    expect(e.err).toMatch(/--max-steps applies to train only/);
    const q = await run(['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--max-steps', '3']);
    expect(q.code).toBe(2);
    expect(q.err).toMatch(/--max-steps applies to train only/);
  });

  it('bench quality writes mha and collectivekv results with the documented keys', async () => {
    const json = join(dir, 'quality.json');
    const r = await run(['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--json', json, '--max-minutes', '5', ...small]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const q = JSON.parse(readFileSync(json, 'utf8'));
    for (const key of ['mha', 'collectivekv']) {
      for (const field of ['hr10', 'ndcg10', 'mrr10', 'bytesPerToken', 'compressionRatio', 'epochs', 'trainSeconds']) {
        expect(typeof q[key][field]).toBe('number');
      }
      for (const protocol of ['unfiltered', 'window']) expect(typeof q[key].protocols[protocol].ndcg10).toBe('number');
    }
    expect(q.mha.epochs).toBe(2);
    expect(q.collectivekv.epochs).toBe(3);
    expect(q.collectivekv.recipe).toMatchObject({ fullPhaseEpochs: 2 });
    // The full phase switches at the baseline's steps at the latest, so the recipe stays within 1.25x of them.
    expect(q.switchByStep).toBe(q.mha.steps);
    expect(q.collectivekv.recipe.fullPhaseSteps).toBeLessThanOrEqual(q.mha.steps);
    expect(q.collectivekv.steps).toBeLessThanOrEqual(Math.floor(1.25 * q.mha.steps));
    expect(q.mha.bytesPerToken).toBe(2 * 2 * 16 * 4);
    expect(q.mha.compressionRatio).toBe(1);
    expect(q.collectivekv.compressionRatio).toBeCloseTo((2 * 2 * 16 * 4) / (2 * 2 * 5));
    expect(q.truncatedByTime).toBe(false);
    for (const anchor of ['markov', 'popularity']) expect(typeof q.anchors[anchor].window.ndcg10).toBe('number');
    expect(q.testRanks.mha.unfiltered).toHaveLength(40);
    expect(Number.isFinite(q.pairedNdcg10.unfiltered.standardError)).toBe(true);
    expect(r.out).toMatch(/unfiltered: collectivekv NDCG@10 = [\d.]+% of mha \(paired difference/);
    expect(r.out).toMatch(/mha (beats|does NOT beat) the Markov anchor/);
  });
});

describe('bench quality: the recipe, single-stage training, one arm', () => {
  it('--training single-stage trains the pools from the start (no switch), pool 1024 by default', async () => {
    const json = join(dir, 'quality-single.json');
    const r = await run(['bench', 'quality', '--model', 'hstu', '--data', pairs, '--format', 'pairs', '--json', json, '--training', 'single-stage',
      ...small.filter((_, i, all) => all[i] !== '--pool-size' && all[i - 1] !== '--pool-size'), '--pool-size', '16']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const q = JSON.parse(readFileSync(json, 'utf8'));
    expect(q.training).toBe('single-stage');
    expect(q.collectivekv.epochs).toBe(2);
    expect(q.collectivekv.recipe).toBeUndefined();
    expect(q.options.collective.kvPhase).toBeUndefined();
  });

  it('--arm runs one arm and keeps its test ranks; bad values and misplaced flags are refused', async () => {
    const json = join(dir, 'quality-arm.json');
    const r = await run(['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--json', json, '--arm', 'collectivekv', ...small]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const q = JSON.parse(readFileSync(json, 'utf8'));
    expect(q.arm).toBe('collectivekv');
    expect(q.mha).toBeUndefined();
    expect(q.collectivekv.epochs).toBe(3);
    expect(q.testRanks.collectivekv.window).toHaveLength(40);
    // --switch-by-step bounds the full phase (here 2 steps: a partial first epoch), recorded in the JSON.
    const bounded = join(dir, 'quality-arm-bounded.json');
    const b = await run(['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--json', bounded, '--arm', 'collectivekv',
      '--switch-by-step', '2', ...small]);
    expect(b.err).toBe('');
    const qb = JSON.parse(readFileSync(bounded, 'utf8'));
    expect(qb.switchByStep).toBe(2);
    expect(qb.collectivekv.recipe.fullPhaseSteps).toBe(2);
    const cases: [string[], RegExp][] = [
      [['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--arm', 'both'], /--arm must be one of mha, collectivekv, received 'both'/],
      [['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--arm', 'mha', '--max-minutes', '1'], /--arm runs one arm alone/],
      [['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--training', 'warm'], /--training must be one of recipe, single-stage, received 'warm'/],
      [['train', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--arm', 'mha'], /--arm applies to bench quality only/],
      [['train', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--switch-by-step', '9'], /--switch-by-step applies to bench quality only/],
      [['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--switch-by-step', '9'], /--switch-by-step applies to --arm collectivekv/],
      [['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--arm', 'collectivekv', '--switch-by-step', '0'], /--switch-by-step must be/],
      [['train', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--training', 'recipe'], /--training applies to --attention collectivekv only/],
      [['eval', '--model-dir', dir, '--data', pairs, '--format', 'pairs', '--training', 'recipe'], /--training applies to training commands, not eval/],
      [['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--warm-start', '0.2'], /Unknown option '--warm-start'/],
    ];
    for (const [argv, message] of cases) {
      const bad = await run(argv);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(message);
    }
  });

  it('passes --quantization-weight to the nearest-product router (recorded in the options), and refuses it with the dense router', async () => {
    const json = join(dir, 'quality-qweight.json');
    const r = await run(['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', '--json', json,
      '--router', 'nearest-product', '--quantization-weight', '0.25', ...small]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const q = JSON.parse(readFileSync(json, 'utf8'));
    expect(q.options.collective.router).toMatchObject({ kind: 'nearest-product', quantizationWeight: 0.25 });
    expect(q.collectivekv.bytesPerToken).toBe(2 * 2 * (1 + 4));
    for (const router of [[], ['--router', 'dense']]) {
      const bad = await run(['bench', 'quality', '--model', 'sasrec', '--data', pairs, '--format', 'pairs', ...router, '--quantization-weight', '0.25', ...small]);
      expect(bad.code).toBe(2);
      expect(bad.err).toContain(`--quantization-weight applies to --router nearest-product, received router '${router[1] ?? 'dense'}'`);
    }
    expect((await run(['train', '--quantization-weight', 'x'])).err).toMatch(/--quantization-weight must be/);
  });
});

describe('collectivekv command errors', () => {
  const base = ['--data', 'PATH', '--format', 'pairs', '--model', 'sasrec'];
  const withData = (argv: string[]) => argv.map((a) => (a === 'PATH' ? pairs : a));

  it('a missing data file: exit 2 naming the file', async () => {
    const r = await run(['train', ...base.map((a) => (a === 'PATH' ? join(dir, 'nope.txt') : a))]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--data: file not found: .*nope\.txt/);
  });

  it('an unknown format: exit 2 listing the formats', async () => {
    const r = await run(['train', ...withData(base.map((a) => (a === 'pairs' ? 'csv' : a)))]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown format 'csv': expected one of pairs, lines, movielens, recbole/);
  });

  it('an unknown model: exit 2 listing the models (train and bench quality)', async () => {
    for (const cmd of [['train'], ['bench', 'quality']]) {
      const r = await run([...cmd, ...withData(base.map((a) => (a === 'sasrec' ? 'gpt' : a)))]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/unknown model 'gpt': expected one of sasrec, bert4rec, hstu/);
    }
  });

  it('an unknown loss: exit 2 listing the losses', async () => {
    const r = await run(['train', ...withData(base), '--loss', 'hinge']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown loss 'hinge': expected one of softmax, sampled, bce/);
  });

  it('a file that does not parse in the given format: exit 2 naming file and line', async () => {
    const bad = join(dir, 'bad.txt');
    writeFileSync(bad, '1 2\n1 x y z\n');
    const r = await run(['train', '--data', bad, '--format', 'pairs', '--model', 'sasrec']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.txt:2: malformed pairs line "1 x y z"/);
  });

  it('eval without a model directory, and with one that is not a model', async () => {
    expect((await run(['eval', ...withData(base)])).err).toMatch(/eval needs --model-dir DIR/);
    const r = await run(['eval', '--model-dir', dir, ...withData(base)]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/options\.json not found/);
  });

  it('leaves no tensors behind after a failed command', async () => {
    const before = tf.memory().numTensors;
    await run(['train', ...withData(base.map((a) => (a === 'sasrec' ? 'gpt' : a)))]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('collectivekv bench convert', () => {
  it('converts a trained mha sasrec from its directory, fine-tunes within the step share, and writes JSON', async () => {
    const out = join(dir, 'sasrec-mha-model');
    const train = await run(['train', '--model', 'sasrec', '--attention', 'mha', '--data', pairs, '--format', 'pairs', '--out', out, ...small]);
    expect(train.code).toBe(0);
    const saved = JSON.parse(readFileSync(join(out, 'options.json'), 'utf8'));
    expect(saved.training).toMatchObject({ epochs: 2 });
    expect(saved.training.steps).toBeGreaterThan(0);
    const json = join(dir, 'convert.json');
    const r = await run(['bench', 'convert', '--model-dir', out, '--data', pairs, '--format', 'pairs', '--pool-size', '8', '--sample-users', '16',
      '--fine-tune-fraction', '0.5', '--no-scratch', '--json', json]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(readFileSync(json, 'utf8'));
    expect(result.rows.map((row: { model: string }) => row.model)).toEqual(['baseline mha', 'converted (no fine-tune)', 'converted + fine-tune']);
    expect(result.rows[2].steps).toBe(Math.floor(0.5 * saved.training.steps));
    expect(result.fineTuneShare).toBeLessThanOrEqual(0.5);
    expect(result.convertedRatio).toBeCloseTo(result.rows[2].testNdcg10 / result.rows[0].testNdcg10, 10);
    // One sample user holds at most 8 tokens, too few for 16 pool rows: the sample grows to enough users.
    const fewUsers = join(dir, 'convert-few.json');
    const few = await run(['bench', 'convert', '--model-dir', out, '--data', pairs, '--format', 'pairs', '--pool-size', '16', '--sample-users', '1',
      '--fine-tune-fraction', '0.1', '--no-scratch', '--gate', 'straight-through', '--fine-tune-balance-weight', '1', '--fine-tune-rate', '0.5', '--json', fewUsers]);
    expect(few.err).toBe('');
    const fewResult = JSON.parse(readFileSync(fewUsers, 'utf8'));
    expect(fewResult.conversion[0].key.tokens).toBeGreaterThanOrEqual(16);
    expect(fewResult).toMatchObject({ gate: 'straight-through', fineTuneBalanceWeight: 1 });
    expect(result).toMatchObject({ gate: 'scaled', fineTuneBalanceWeight: 0 });
    // The fine-tune's rate: a share of --lr (default 1e-3), a quarter by default.
    expect(fewResult.fineTuneLearningRate).toBeCloseTo(0.5e-3, 12);
    expect(result.fineTuneLearningRate).toBeCloseTo(0.25e-3, 12);
    // The baseline row is the saved model's test score, as eval gives it.
    const evaluated = await run(['eval', '--model-dir', out, '--data', pairs, '--format', 'pairs', '--json', join(dir, 'mha-eval.json')]);
    expect(evaluated.code).toBe(0);
    expect(result.rows[0].testNdcg10).toBeCloseTo(JSON.parse(readFileSync(join(dir, 'mha-eval.json'), 'utf8')).test.ndcg10, 6);
  });

  it('trains the fine-tune with the saved model\'s loss, and refuses another --loss for it', async () => {
    const out = join(dir, 'sasrec-mha-sampled');
    expect((await run(['train', '--model', 'sasrec', '--attention', 'mha', '--data', pairs, '--format', 'pairs', '--loss', 'sampled', '--out', out, ...small])).code).toBe(0);
    const json = join(dir, 'convert-sampled.json');
    const r = await run(['bench', 'convert', '--model-dir', out, '--data', pairs, '--format', 'pairs', '--pool-size', '8', '--sample-users', '16',
      '--no-scratch', '--json', json]);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/fine-tune: \d+ steps .*, loss sampled/);
    expect(JSON.parse(readFileSync(json, 'utf8')).loss).toBe('sampled');
    const other = await run(['bench', 'convert', '--model-dir', out, '--data', pairs, '--format', 'pairs', '--loss', 'softmax']);
    expect(other.code).toBe(2);
    expect(other.err).toContain(`--loss softmax: the model in ${out} was trained with loss 'sampled'`);
  });

  it('fails with a clear message on a missing directory, a collectivekv model, a bad fraction or no data', async () => {
    const missing = await run(['bench', 'convert', '--model-dir', join(dir, 'nope'), '--data', pairs]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--model-dir: .*nope\/options.json not found/);
    const ckv = await run(['bench', 'convert', '--model-dir', join(dir, 'sasrec-model'), '--data', pairs]);
    expect(ckv.code).toBe(2);
    expect(ckv.err).toMatch(/expected an mha sasrec, received attention 'collectivekv'/);
    const fraction = await run(['bench', 'convert', '--data', pairs, '--fine-tune-fraction', '1.5']);
    expect(fraction.code).toBe(2);
    expect(fraction.err).toMatch(/--fine-tune-fraction must be in \(0, 1\], received '1.5'/);
    const both = await run(['bench', 'convert', '--data', pairs, '--fine-tune-rate', '0.5', '--fine-tune-lr', '1e-4']);
    expect(both.code).toBe(2);
    expect(both.err).toContain('give --fine-tune-rate (a share of --lr) or --fine-tune-lr (absolute), not both');
    const noData = await run(['bench', 'convert']);
    expect(noData.code).toBe(2);
    expect(noData.err).toMatch(/--data PATH is required/);
  });
});

describe('collectivekv train --model-dir (continue a saved model)', () => {
  it('continues from the saved weights, adds up epochs and steps, and refuses model flags', async () => {
    const first = join(dir, 'continue-1');
    const firstJson = join(dir, 'continue-1.json');
    expect((await run(['train', '--model', 'sasrec', '--attention', 'mha', '--data', pairs, '--format', 'pairs', '--out', first, '--json', firstJson,
      ...small])).code).toBe(0);
    const before = JSON.parse(readFileSync(join(first, 'options.json'), 'utf8'));
    const second = join(dir, 'continue-2');
    const json = join(dir, 'continue.json');
    // A learning rate of 1e-9: the continued model must score as the saved one (a fresh one would not).
    const r = await run(['train', '--model-dir', first, '--data', pairs, '--format', 'pairs', '--out', second, '--epochs', '1', '--batch-size', '16',
      '--lr', '1e-9', '--json', json]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/continuing .*continue-1 \(2 epochs/);
    const after = JSON.parse(readFileSync(join(second, 'options.json'), 'utf8'));
    expect(after.options).toEqual(before.options);
    expect(after.training.epochs).toBe(3);
    const continued = JSON.parse(readFileSync(json, 'utf8'));
    expect(after.training.steps).toBe(before.training.steps + continued.steps);
    expect(continued.test.ndcg10).toBeCloseTo(JSON.parse(readFileSync(firstJson, 'utf8')).test.ndcg10, 5);
    const refused = await run(['train', '--model-dir', first, '--model', 'sasrec', '--hidden-dim', '8', '--data', pairs, '--format', 'pairs']);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/continues the saved model as it is; drop --model, --hidden-dim/);
  });
});
