// The `collectivekv` command: `demo` (what `npm start` runs) and `bench ops`.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { benchOps, formatBenchOps } from '../bench/ops';
import { runDemo, DemoOptions, formatDemo } from './demo';

const BACKENDS = ['wasm', 'cpu'] as const;

export const USAGE = `Usage: collectivekv <command> [options]

Commands:
  demo           Train SASRec with ordinary multi-head attention and with CollectiveKV on a synthetic
                 data set (same seed and budget) and compare quality, cache size and decode latency.
  bench ops      Time the kernels and a training step side by side; print a table.

Options:
  --backend NAME   wasm (default) or cpu
  --json FILE      bench ops: also write the results as JSON to FILE
  --users N        demo: number of synthetic users (default 1500)
  --epochs N       demo: maximum epochs per model (default 8)
  --seed N         demo: data and weight seed (default 2026)
  --train-batch N  bench ops: batch of the training-step measurement (default 128)
  --train-length N bench ops: sequence length of the training-step measurement (default 200)
  --webgpu         bench ops: also run the kernels on WebGPU in Node (npm package webgpu) vs cpu;
                   on a software adapter (lavapipe) only the error figures mean anything
  -h, --help       show this help
`;

/** Thrown for bad command lines: printed with a pointer to --help, exit code 2. */
class UsageError extends Error {}

interface ParsedArgs {
  command: string[];
  backend: (typeof BACKENDS)[number];
  json?: string;
  help: boolean;
  demo: DemoOptions;
  trainStep: { batch?: number; length?: number };
  webgpu: boolean;
}

/** Runs the command line `argv` (without node and script); returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
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
    if (e instanceof UsageError) {
      console.error(`collectivekv: ${e.message}\nRun 'collectivekv --help' for usage.`);
      return 2;
    }
    console.error(`collectivekv: ${(e as Error).stack ?? e}`);
    return 1;
  }
}

function parse(argv: string[]): ParsedArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      backend: { type: 'string' },
      json: { type: 'string' },
      users: { type: 'string' },
      epochs: { type: 'string' },
      seed: { type: 'string' },
      'train-batch': { type: 'string' },
      'train-length': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      webgpu: { type: 'boolean' },
    },
  });
  const backend = values.backend ?? 'wasm';
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}, received '${backend}'`);
  }
  const demo: DemoOptions = {
    numUsers: positiveInt('--users', values.users),
    maxEpochs: positiveInt('--epochs', values.epochs),
    seed: positiveInt('--seed', values.seed),
  };
  const trainStep = { batch: positiveInt('--train-batch', values['train-batch']), length: positiveInt('--train-length', values['train-length']) };
  return { command: positionals, backend: backend as ParsedArgs['backend'], json: values.json, help: values.help ?? false, demo, trainStep,
    webgpu: values.webgpu ?? false };
}

function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value == null) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, received '${value}'`);
  return n;
}

async function dispatch(args: ParsedArgs): Promise<number> {
  const [command, sub, ...rest] = args.command;
  if (command == null) {
    console.log(USAGE);
    return 2;
  }
  if (command === 'demo') {
    if (sub != null) throw new UsageError(`demo takes no argument, received '${sub}'`);
    rejectFlag(args.json != null || Object.values(args.trainStep).some((v) => v != null), '--json/--train-batch/--train-length', 'bench ops');
    await useBackend(args.backend);
    const result = await runDemo({ ...args.demo, log: (line) => console.log(line) });
    console.log(`\n${formatDemo(result)}`);
    return 0;
  }
  if (command === 'bench') {
    if (sub !== 'ops') throw new UsageError(`unknown bench '${sub ?? ''}' (available: ops)`);
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
    rejectFlag(Object.values(args.demo).some((v) => v != null), '--users/--epochs/--seed', 'demo');
    await useBackend(args.backend);
    const trainStep = Object.fromEntries(Object.entries(args.trainStep).filter(([, v]) => v != null));
    const result = await benchOps({ backend: args.backend, trainStep, webgpu: args.webgpu, log: (line) => console.log(line) });
    console.log(`\n${formatBenchOps(result)}`);
    if (args.json != null) {
      writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`\nwrote ${args.json}`);
    }
    return 0;
  }
  throw new UsageError(`unknown command '${command}' (available: demo, bench ops)`);
}

function rejectFlag(given: boolean, flag: string, owner: string): void {
  if (given) throw new UsageError(`${flag} applies to '${owner}' only`);
}

async function useBackend(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} failed to initialize`);
  await tf.ready();
}
