// `collectivekv serve --model DIR --store memory|redis://...|rediss://... [--port N] [--token T]`
// (or --demo-model instead of --model: trains a tiny synthetic SASRec at start). Runs until
// SIGINT/SIGTERM (or options.signal), then shuts down gracefully.

import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { MemoryStore, RedisStore, type CacheStore } from 'collectivekv';
import { SasrecRecommender } from '../zoo/sasrecRecommender';
import { loadSasrecModel, trainDemoModel } from './modelFiles';
import { startServer, type RunningServer } from './server';

export const SERVE_USAGE = `Usage: collectivekv serve (--model DIR | --demo-model) [--store memory|redis://[:password@]host:port[/db]|rediss://...]
                        [--port N] [--token TOKEN] [--memory-mb N] [--backend wasm|cpu]

  --model DIR     a SASRec saved with saveSasrecModel (DIR/model.json + DIR/weights.bin)
  --demo-model    train a tiny SASRec on synthetic data at start instead (a few seconds)
  --store         memory (default; in-process LRU) or a Redis URL (password and TLS via rediss://)
  --port          default 8080 (0: any free port); the service listens on 127.0.0.1 only
  --token         bearer token required on every endpoint but /healthz (default: env COLLECTIVEKV_TOKEN)`;

export interface ServeCommandIo {
  /** Aborting shuts the server down (tests); SIGINT/SIGTERM do too. */
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Called once the server listens. */
  onListening?: (server: RunningServer) => void;
}

/** Runs the command; resolves with the exit code once the server has shut down (2: usage error). */
export async function runServeCommand(argv: string[], io: ServeCommandIo = {}): Promise<number> {
  const log = io.log ?? ((line: string) => console.log(line));
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (e) {
    console.error(`collectivekv serve: ${(e as Error).message}\n${SERVE_USAGE}`);
    return 2;
  }
  if (args.help) {
    log(SERVE_USAGE);
    return 0;
  }
  if (!(await tf.setBackend(args.backend))) throw new Error(`backend ${args.backend} failed to initialize`);
  await tf.ready();
  const sasrec = args.model !== undefined ? loadSasrecModel(args.model) : trainDemoModel({ log });
  const store = await openStore(args.store, args.memoryMb);
  const server = await startServer({ model: new SasrecRecommender(sasrec), store, port: args.port, token: args.token, closeStore: true });
  log(`collectivekv serve: listening on ${server.url} (store ${redact(args.store)}, model ${args.model ?? 'demo'}, ${args.token ? 'token required' : 'no token'})`);
  io.onListening?.(server);
  await stopped(io.signal);
  log('collectivekv serve: shutting down (finishing requests in flight)');
  await server.close();
  sasrec.model.dispose();
  return 0;
}

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, 'demo-model': { type: 'boolean' }, store: { type: 'string' }, port: { type: 'string' },
      token: { type: 'string' }, 'memory-mb': { type: 'string' }, backend: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return { help: true as const, model: undefined, store: 'memory', port: 0, token: undefined, memoryMb: 0, backend: 'wasm' };
  if ((values.model === undefined) === (values['demo-model'] !== true)) throw new Error('give exactly one of --model DIR or --demo-model');
  const store = values.store ?? 'memory';
  if (store !== 'memory' && !/^rediss?:\/\/.+/.test(store)) throw new Error(`--store must be 'memory', redis://... or rediss://..., received ${JSON.stringify(redact(store))}`);
  const port = intFlag('--port', values.port ?? '8080', 0, 65535);
  const memoryMb = intFlag('--memory-mb', values['memory-mb'] ?? '256', 1, 1 << 20);
  const backend = values.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') throw new Error(`--backend must be wasm or cpu, received ${JSON.stringify(backend)}`);
  const token = values.token ?? process.env.COLLECTIVEKV_TOKEN;
  return { help: false as const, model: values.model, store, port, token: token === '' ? undefined : token, memoryMb, backend };
}

function intFlag(name: string, raw: string, min: number, max: number): number {
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer in [${min}, ${max}], received ${JSON.stringify(raw)}`);
  return n;
}

async function openStore(spec: string, memoryMb: number): Promise<CacheStore> {
  if (spec === 'memory') return new MemoryStore({ maxBytes: memoryMb * 2 ** 20 });
  return RedisStore.connect({ url: spec });
}

/** The URL without its password, for logs and errors. */
function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

function stopped(signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    if (signal?.aborted) done();
    signal?.addEventListener('abort', done, { once: true });
  });
}
