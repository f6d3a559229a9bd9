// The `collectivekv` command: `demo` (what `npm start` runs), `train`, `eval`, `bench ops|quality`,
// and the commands of the serving, CTR and analysis examples (`serve`, `bench serve|ctr|all`, `analyze`).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { benchOps, formatBenchOps } from '../bench/ops';
import { runDemo, DemoOptions, formatDemo } from './demo';
import { NextItemArgs, evalCommand, trainCommand } from './nextItemCommands';
import { UsageError, historyFilter, positiveInt, positiveNumber, rate } from '../command/flags';
import { benchQualityCommand } from '../bench/quality';
import { runServeCommand } from '../serve/command';
import { runBenchServeCommand } from '../bench/serve';
import { runBenchCtrCommand } from '../bench/ctr';
import { runBenchAllCommand } from '../bench/all';
import { runBenchConvertCommand } from '../bench/convert';
import { runBenchGpuCommand } from '../bench/gpu';
import { runAnalyzeCommand } from './analyze';
import { runReportCommand } from '../report/command';
import { Command, findCommand } from '../command/command';
import { CollectiveFlag, collectiveFlagOptions, parseCollectiveFlags } from '../command/collectiveFlags';
import { TRAINING, TrainingFlag } from '../command/trainingFlags';

const BACKENDS = ['wasm', 'cpu', 'webgpu'] as const;
/** Tried in this order when --backend is not given. */
const DEFAULT_BACKENDS = ['wasm', 'cpu'] as const;

/** Commands that parse their own flags: argv after the command words goes to them unparsed. */
const DELEGATED: readonly Command[] = [
  { words: ['serve'], run: (argv) => runServeCommand(argv) },
  { words: ['analyze'], run: (argv) => runAnalyzeCommand(argv) },
  { words: ['bench', 'serve'], run: (argv) => runBenchServeCommand(argv) },
  { words: ['bench', 'ctr'], run: (argv) => runBenchCtrCommand(argv) },
  { words: ['bench', 'all'], run: (argv) => runBenchAllCommand(argv) },
  { words: ['bench', 'convert'], run: (argv) => runBenchConvertCommand(argv) },
  { words: ['bench', 'gpu'], run: (argv) => runBenchGpuCommand(argv) },
  { words: ['report'], run: (argv) => runReportCommand(argv) },
];

export const USAGE = `Usage: collectivekv <command> [options]

Commands:
  demo           Train SASRec with ordinary multi-head attention and with CollectiveKV on a synthetic
                 data set (same seed, epoch budget and early stopping) and compare quality, cache size
                 and decode latency.
  train          Train a zoo model: --model sasrec|bert4rec|hstu --attention mha|collectivekv
                 --data PATH --format pairs|lines|movielens|recbole [--out DIR] [--max-minutes N];
                 --model-dir DIR continues training a saved model (no model flags)
  eval           Evaluate a saved model on a data set: --model-dir DIR --data PATH --format F
  bench quality  mha vs collectivekv under identical budget, seed and early stopping:
                 --model M --data PATH --format F [--json FILE] [--max-minutes N]
  bench ops      Time the kernels and a training step side by side; print a table.
  bench serve    Serving benchmark (see 'collectivekv bench serve --help').
  bench ctr      CTR models, mha vs collectivekv (see 'collectivekv bench ctr --help').
  bench convert  Convert a trained mha SASRec to CollectiveKV, fine-tune briefly, compare
                 (see 'collectivekv bench convert --help').
  bench gpu      WebGPU beside wasm on this machine's GPU; refuses software adapters
                 (see 'collectivekv bench gpu --help', docs/gpu.md).
  bench all      Every benchmark the data allows, then report.md/report.json/SVG charts
                 (see 'collectivekv bench all --help').
  report         Draw report.md and the charts again from a bench-all report.json
                 (see 'collectivekv report --help'; needs the npm packages vega and vega-lite).
  serve          HTTP scoring service (see 'collectivekv serve --help').
  analyze        SVD analysis of a trained model's K/V (see 'collectivekv analyze --help').

Options:
  --backend NAME     wasm, cpu or webgpu (default: the fastest available, wasm then cpu)
  --json FILE        also write the results as JSON to FILE
  --seed N           data and weight seed (demo default 2026, others 1)
  --epochs N         maximum epochs per model (demo default 8, others 20)
  --users N          demo: number of synthetic users (default 1500)
  --data PATH, --format F   interaction file and its format (pairs, lines, movielens, recbole)
  --model NAME       sasrec, bert4rec or hstu
  --attention KIND   mha (default) or collectivekv
  --out DIR          train: save the model there (tfjs model.json + weights.bin + options.json)
  --model-dir DIR    eval, train: the directory written by train --out (train continues it)
  --max-minutes N    train, bench quality: bound on the whole run's time
  --max-steps N      train: stop after N optimizer steps (e.g. another run's step count: a budget the
                     machine's load does not change)
  --arm A            bench quality: run only mha or collectivekv (e.g. one process per core; the JSON
                     keeps each test user's rank, so the two runs of a seed pair up)
  --switch-by-step N bench quality --arm collectivekv: the recipe switches at this step at the latest
                     (the baseline's steps, from its run's JSON; with both arms it is taken from it)
  --training KIND    train, bench quality: how collectivekv trains: recipe (default: full K/V until
                     validation plateaus, then pools built by k-means from the model's own K/V and a
                     fine-tune of at most a quarter more epochs; docs/recipe.md) or single-stage
                     (the paper's: pools from the start)
  --max-length N     window (default 50)     --hidden-dim N  width (default 64)
  --blocks N         blocks (default 2)      --heads N       heads (default 1)
  --dropout X        (default 0.2)           --lr X          Adam learning rate (default 0.001)
  --batch-size N     (default 128)           --patience N    validations without improvement (default 3)
  --loss NAME        softmax (default), sampled (512 shared uniform negatives per batch) or bce
                     (SASRec/HSTU)
  --pool-size N      CollectiveKV pool rows (default 4096; 1024 single-stage)   --user-dim N  user part width (default 1)
  --gate MODE        CollectiveKV gate in training: scaled (default, the paper's: rows times the gate,
                     unlike inference) or straight-through (inference's rows; gradient through the gate)
  --router KIND      CollectiveKV router: dense (default, the paper's) or nearest-product (the row
                     of a product-quantized pool nearest to a learned projection, trained as a
                     VQ-VAE codebook; pool size a square). See docs/routing.md
  --quantization-weight X  CollectiveKV, router nearest-product: weight of the VQ loss
                     (default 1/64)
  --validate-every N validate every N epochs (default 1)
  --validation-users N  validate on the first N users only (default all)
  --filter-history   train, eval, bench quality: test metrics without each user's history items in the
                     ranking (default: they stay in; the JSON says which)
  --filter-window    as --filter-history, but only the history items in the model's input window (the
                     protocol of the published ML-1M anchors: the HSTU reference code filters those)
  --train-batch N    bench ops: batch of the training-step measurement (default 128)
  --train-length N   bench ops: sequence length of the training-step measurement (default 200)
  --skip-tfjs-embedding  bench ops: time only our embedding gradient, not tfjs's default (which
                     takes minutes: a loop per table row)
  --webgpu           bench ops: also run the kernels on WebGPU in Node (npm package webgpu) vs cpu;
                     on a software adapter (lavapipe) only the error figures mean anything
  -h, --help         show this help
`;

interface ParsedArgs {
  command: string[];
  backend?: (typeof BACKENDS)[number];
  json?: string;
  help: boolean;
  demo: DemoOptions;
  trainStep: { batch?: number; length?: number };
  webgpu: boolean;
  skipTfjsEmbedding: boolean;
  nextItem: Omit<NextItemArgs, 'log'>;
  /** Flags given that only the next-item commands take. */
  nextItemFlags: string[];
}

/** Runs the command line `argv` (without node and script); returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const delegated = findCommand(DELEGATED, argv);
  if (delegated != null) return delegated.run(argv.slice(delegated.words.length));
  let args: ParsedArgs;
  try {
    args = parse(argv);
  } catch (e) {
    console.error(`collectivekv: ${(e as Error).message}\nRun 'collectivekv --help' for usage.`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    return await dispatch(args);
  } catch (e) {
    if (e instanceof UsageError || (e as Error).name === 'DataFormatError') {
      console.error(`collectivekv: ${(e as Error).message}\nRun 'collectivekv --help' for usage.`);
      return 2;
    }
    console.error(`collectivekv: ${(e as Error).stack ?? e}`);
    return 1;
  }
}

const NEXT_ITEM_FLAGS = ['model', 'attention', 'data', 'format', 'out', 'model-dir', 'max-minutes', 'max-length', 'hidden-dim', 'blocks',
  'heads', 'dropout', 'patience', 'loss', 'validate-every', 'validation-users', 'max-steps',
  'training', 'arm', 'switch-by-step'] as const;
/** The CollectiveKV flags of train, eval and bench quality (src/app/command/collectiveFlags.ts). */
const NEXT_ITEM_COLLECTIVE_FLAGS: readonly CollectiveFlag[] = ['pool-size', 'user-dim', 'gate', 'router', 'quantization-weight'];
/** The training flags of train, eval and bench quality only (--epochs is demo's too). */
const NEXT_ITEM_TRAINING_FLAGS: readonly TrainingFlag[] = ['batch-size', 'lr'];

function parse(argv: string[]): ParsedArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      backend: { type: 'string' },
      json: { type: 'string' },
      users: { type: 'string' },
      seed: { type: 'string' },
      'train-batch': { type: 'string' },
      'train-length': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      webgpu: { type: 'boolean' },
      'skip-tfjs-embedding': { type: 'boolean' },
      'filter-history': { type: 'boolean' },
      'filter-window': { type: 'boolean' },
      ...Object.fromEntries(NEXT_ITEM_FLAGS.map((f) => [f, { type: 'string' as const }])),
      ...collectiveFlagOptions(NEXT_ITEM_COLLECTIVE_FLAGS),
      ...TRAINING.options(),
    },
  });
  const v = values as Record<string, string | boolean | undefined>;
  const str = (key: string) => v[key] as string | undefined;
  const backend = str('backend');
  if (backend != null && !(BACKENDS as readonly string[]).includes(backend)) {
    throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, received '${backend}'`);
  }
  const training = TRAINING.parse(v);
  const demo: DemoOptions = {
    numUsers: positiveInt('--users', str('users')),
    maxEpochs: training.epochs,
    seed: positiveInt('--seed', str('seed')),
  };
  const trainStep = { batch: positiveInt('--train-batch', str('train-batch')), length: positiveInt('--train-length', str('train-length')) };
  const nextItem: Omit<NextItemArgs, 'log'> = {
    model: str('model'), attention: str('attention'), data: str('data'), format: str('format'), out: str('out'), modelDir: str('model-dir'),
    json: str('json'), maxMinutes: positiveNumber('--max-minutes', str('max-minutes')), epochs: demo.maxEpochs, seed: demo.seed,
    maxLength: positiveInt('--max-length', str('max-length')), hiddenDim: positiveInt('--hidden-dim', str('hidden-dim')),
    blocks: positiveInt('--blocks', str('blocks')), heads: positiveInt('--heads', str('heads')), dropout: rate('--dropout', str('dropout')),
    learningRate: training.learningRate, batchSize: training.batchSize,
    patience: positiveInt('--patience', str('patience')), loss: str('loss'),
    ...parseCollectiveFlags(v, NEXT_ITEM_COLLECTIVE_FLAGS), validateEvery: positiveInt('--validate-every', str('validate-every')),
    validationUsers: positiveInt('--validation-users', str('validation-users')),
    filterHistory: historyFilter(v['filter-history'] === true, v['filter-window'] === true),
    maxSteps: positiveInt('--max-steps', str('max-steps')),
    training: str('training'),
    arm: str('arm'),
    switchByStep: positiveInt('--switch-by-step', str('switch-by-step')),
  };
  const nextItemFlags = [...NEXT_ITEM_FLAGS, ...NEXT_ITEM_COLLECTIVE_FLAGS, ...NEXT_ITEM_TRAINING_FLAGS, 'filter-history', 'filter-window'].filter((f) => v[f] != null).map((f) => `--${f}`);
  return { command: positionals, backend: backend as ParsedArgs['backend'], json: str('json'), help: (v.help as boolean | undefined) ?? false,
    demo, trainStep, nextItem, nextItemFlags, webgpu: (v.webgpu as boolean | undefined) ?? false,
    skipTfjsEmbedding: (v['skip-tfjs-embedding'] as boolean | undefined) ?? false };
}




async function dispatch(args: ParsedArgs): Promise<number> {
  const [command, sub, ...rest] = args.command;
  if (command == null) {
    console.log(USAGE);
    return 2;
  }
  const log = (line: string) => console.log(line);
  rejectFlag(args.skipTfjsEmbedding && !(command === 'bench' && sub === 'ops'), '--skip-tfjs-embedding', 'bench ops');
  if (command === 'demo') {
    if (sub != null) throw new UsageError(`demo takes no argument, received '${sub}'`);
    rejectFlag(Object.values(args.trainStep).some((x) => x != null), '--train-batch/--train-length', 'bench ops');
    rejectFlag(args.nextItemFlags.length > 0, args.nextItemFlags.join('/'), 'train, eval and bench quality');
    await useBackend(args.backend);
    const result = await runDemo({ ...args.demo, log });
    console.log(`\n${formatDemo(result)}`);
    writeJson(args.json, result);
    return 0;
  }
  if (command === 'train' || command === 'eval') {
    if (sub != null) throw new UsageError(`${command} takes no positional argument, received '${sub}'`);
    rejectFlag(Object.values(args.trainStep).some((x) => x != null), '--train-batch/--train-length', 'bench ops');
    rejectFlag(args.demo.numUsers != null, '--users', 'demo');
    await useBackend(args.backend);
    return command === 'train' ? trainCommand({ ...args.nextItem, log }) : evalCommand({ ...args.nextItem, log });
  }
  if (command === 'bench') {
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
    if (sub === 'quality') {
      rejectFlag(Object.values(args.trainStep).some((x) => x != null), '--train-batch/--train-length', 'bench ops');
      rejectFlag(args.demo.numUsers != null, '--users', 'demo');
      await useBackend(args.backend);
      return benchQualityCommand({ ...args.nextItem, log });
    }
    if (sub !== 'ops') throw new UsageError(`unknown bench '${sub ?? ''}' (available: ops, quality, serve, ctr, convert, gpu, all)`);
    rejectFlag(Object.values(args.demo).some((x) => x != null), '--users/--epochs/--seed', 'demo');
    rejectFlag(args.nextItemFlags.length > 0, args.nextItemFlags.join('/'), 'train, eval and bench quality');
    const backend = await useBackend(args.backend);
    const trainStep = Object.fromEntries(Object.entries(args.trainStep).filter(([, x]) => x != null));
    const result = await benchOps({ backend: backend as 'wasm' | 'cpu', trainStep, webgpu: args.webgpu, log,
      ...(args.skipTfjsEmbedding ? { embedding: { skipTfjs: true } } : {}) });
    console.log(`\n${formatBenchOps(result)}`);
    writeJson(args.json, result);
    return 0;
  }
  throw new UsageError(`unknown command '${command}' (available: demo, train, eval, bench ops|quality|serve|ctr|convert|gpu|all, serve, analyze, report)`);
}

function writeJson(path: string | undefined, value: unknown): void {
  if (path == null) return;
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
  console.log(`\nwrote ${path}`);
}

function rejectFlag(given: boolean, flag: string, owner: string): void {
  if (given) throw new UsageError(`${flag} applies to '${owner}' only`);
}

/** Sets the named backend, or the first of DEFAULT_BACKENDS that initializes; returns its name. */
async function useBackend(name: string | undefined): Promise<string> {
  if (name === 'webgpu') {
    await import('@tensorflow/tfjs-backend-webgpu');
    await import('../../webgpu');
  }
  for (const candidate of name != null ? [name] : DEFAULT_BACKENDS) {
    try {
      if (await tf.setBackend(candidate)) {
        await tf.ready();
        return candidate;
      }
    } catch {
      // falls through to the next candidate, or to the error below
    }
  }
  throw new Error(name != null ? `backend ${name} failed to initialize` : `no backend initialized (tried ${DEFAULT_BACKENDS.join(', ')})`);
}
