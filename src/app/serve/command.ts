// `collectivekv serve --model DIR --store memory|redis://...|rediss://... [--port N] [--history-log PATH]`
// (or --demo-model instead of --model: trains a tiny synthetic SASRec at start). Runs until
// SIGINT/SIGTERM (or options.signal), then shuts down gracefully. The bearer token comes from
// COLLECTIVEKV_TOKEN or --token-file (--token works but shows in the process list and shell
// history). Start-up failures print one line, `collectivekv serve: <message>`, and exit 1 (2 for
// usage errors).

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { DEFAULT_CACHE_DTYPE, MemoryStore, RedisStore, checkCacheDtype, type CacheDtype, type CacheStore } from '../../internal';
import { SasrecRecommender } from '../../zoo/sequential/sasrecRecommender';
import type { Sasrec } from '../../zoo/sequential/sasrec';
import { FileHistoryLog } from './fileHistoryLog';
import { loadSasrecModel, trainDemoModel } from './modelFiles';
import { startServer, type RunningServer } from './server';

export const SERVE_USAGE = `Usage: collectivekv serve (--model DIR | --demo-model) [--store memory|redis://[:password@]host:port[/db]|rediss://...]
                        [--port N] [--host ADDR] [--token-file PATH] [--history-log PATH] [--memory-mb N]
                        [--cache-format fp16|fp32|int8] [--backend wasm|cpu]

  --model DIR         a SASRec saved with saveSasrecModel (DIR/model.json + DIR/weights.bin)
  --demo-model        train a tiny SASRec on synthetic data at start instead (a few seconds)
  --store             memory (default; in-process LRU) or a Redis URL (password and TLS via rediss://)
  --port              default 8080 (0: any free port)
  --host              default 127.0.0.1; another interface needs a token (without one, only loopback)
  --token-file PATH   read the bearer token required on every endpoint but /healthz and /readyz from
                      PATH (its first line); or set the environment variable COLLECTIVEKV_TOKEN.
                      Do not pass the token on the command line: --token TOKEN still works, with a
                      warning, but shows in the process list and the shell history
  --history-log PATH  keep every user's events in PATH (append-only JSON lines, fsynced before each
                      answer): evicted or lost cache entries are rebuilt from it
  --cache-format      how new cache entries store their floats: fp16 (default; scores within 1e-3
                      of fp32), fp32 (exact) or int8 (1 B per value, a scale per chunk); entries
                      already stored keep theirs`;

export interface ServeCommandIo {
  /** Aborting shuts the server down (tests); SIGINT/SIGTERM do too. */
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Errors and warnings (default console.error). */
  error?: (line: string) => void;
  /** Called once the server listens. */
  onListening?: (server: RunningServer) => void;
  /** The environment (default process.env). */
  env?: Record<string, string | undefined>;
}

/** A bad command line: exit code 2. */
class UsageError extends Error {}

/** Runs the command; resolves with the exit code once the server has shut down (1: start-up failed, 2: usage error). */
export async function runServeCommand(argv: string[], io: ServeCommandIo = {}): Promise<number> {
  const log = io.log ?? ((line: string) => console.log(line));
  const error = io.error ?? ((line: string) => console.error(line));
  let args: Args;
  try {
    args = parse(argv, io.env ?? process.env, error);
  } catch (e) {
    error(`collectivekv serve: ${oneLine(e)} (collectivekv serve --help for usage)`);
    return 2;
  }
  if (args.help) {
    log(SERVE_USAGE);
    return 0;
  }
  let sasrec: Sasrec | undefined;
  let store: CacheStore | undefined;
  let histories: FileHistoryLog | undefined;
  let server: RunningServer;
  try {
    if (!(await tf.setBackend(args.backend))) throw new Error(`--backend ${args.backend} failed to initialize`);
    await tf.ready();
    sasrec = args.model !== undefined ? loadSasrecModel(args.model) : trainDemoModel({ log });
    store = await openStore(args.store, args.memoryMb);
    if (args.historyLog !== undefined) {
      histories = await FileHistoryLog.open(args.historyLog, {
        onRecover: (message) => error(`collectivekv serve: warning: --history-log: ${message}`),
      }).catch((e) => {
        throw new Error(`--history-log: ${oneLine(e)}`);
      });
    }
    server = await startServer({
      model: new SasrecRecommender(sasrec), store, port: args.port, host: args.host, token: args.token, histories, closeStore: true,
      engine: { dtype: args.cacheFormat },
    }).catch((e) => {
      throw new Error(listenError(e, args));
    });
  } catch (e) {
    error(`collectivekv serve: ${oneLine(e)}`);
    await histories?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    sasrec?.model.dispose();
    return 1;
  }
  log(`collectivekv serve: listening on ${server.url} (store ${redact(args.store)}, cache format ${args.cacheFormat}, model ${args.model ?? 'demo'}, `
    + `${args.token ? 'token required' : 'no token: loopback only'}${histories ? `, history log ${args.historyLog}` : ''})`);
  io.onListening?.(server);
  await stopped(io.signal);
  log('collectivekv serve: shutting down (finishing requests in flight)');
  await server.close();
  await histories?.close();
  sasrec.model.dispose();
  return 0;
}

interface Args {
  help: boolean;
  model?: string;
  store: string;
  port: number;
  host: string;
  token?: string;
  historyLog?: string;
  memoryMb: number;
  backend: 'wasm' | 'cpu';
  cacheFormat: CacheDtype;
}

function parse(argv: string[], env: Record<string, string | undefined>, warn: (line: string) => void): Args {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' }, 'demo-model': { type: 'boolean' }, store: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' },
        token: { type: 'string' }, 'token-file': { type: 'string' }, 'history-log': { type: 'string' }, 'memory-mb': { type: 'string' },
        backend: { type: 'string' }, 'cache-format': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return { help: true, store: 'memory', port: 0, host: '127.0.0.1', memoryMb: 0, backend: 'wasm', cacheFormat: DEFAULT_CACHE_DTYPE };
  if ((values.model === undefined) === (values['demo-model'] !== true)) throw new UsageError('give exactly one of --model DIR or --demo-model');
  const store = values.store ?? 'memory';
  if (store !== 'memory' && !/^rediss?:\/\/.+/.test(store)) throw new UsageError(`--store must be 'memory', redis://... or rediss://..., received ${JSON.stringify(redact(store))}`);
  const port = intFlag('--port', values.port ?? '8080', 0, 65535);
  const memoryMb = intFlag('--memory-mb', values['memory-mb'] ?? '256', 1, 1 << 20);
  const backend = values.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') throw new UsageError(`--backend must be wasm or cpu, received ${JSON.stringify(backend)}`);
  let cacheFormat: CacheDtype;
  try {
    cacheFormat = checkCacheDtype(values['cache-format'] ?? DEFAULT_CACHE_DTYPE, '--cache-format');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.token !== undefined && values['token-file'] !== undefined) throw new UsageError('give at most one of --token-file PATH and --token');
  let token: string | undefined;
  if (values['token-file'] !== undefined) {
    token = readTokenFile(values['token-file']);
  } else if (values.token !== undefined) {
    warn('collectivekv serve: warning: --token shows the token in the process list and the shell history; use COLLECTIVEKV_TOKEN or --token-file PATH instead');
    token = values.token;
  } else {
    token = env.COLLECTIVEKV_TOKEN;
  }
  if (token === '') token = undefined;
  if (token !== undefined && /\s/.test(token)) throw new UsageError('the token must not contain whitespace (a bearer token is one word)');
  const host = values.host ?? '127.0.0.1';
  if (host === '') throw new UsageError('--host must not be empty');
  if (token === undefined && !isLoopback(host)) {
    throw new UsageError(`--host ${JSON.stringify(host)} is not a loopback address: listening on other interfaces needs a token (COLLECTIVEKV_TOKEN or --token-file)`);
  }
  const historyLog = values['history-log'];
  if (historyLog === '') throw new UsageError('--history-log must be a file path, received an empty string');
  return { help: false, model: values.model, store, port, host, token, historyLog, memoryMb, backend, cacheFormat };
}

/** The token file's first line, trimmed. */
function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--token-file: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const token = text.split(/\r?\n/)[0].trim();
  if (token === '') throw new UsageError(`--token-file: ${path} is empty (expected the token on its first line)`);
  return token;
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function intFlag(name: string, raw: string, min: number, max: number): number {
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${name} must be an integer in [${min}, ${max}], received ${JSON.stringify(raw)}`);
  return n;
}

async function openStore(spec: string, memoryMb: number): Promise<CacheStore> {
  if (spec === 'memory') return new MemoryStore({ maxBytes: memoryMb * 2 ** 20 });
  try {
    return await RedisStore.connect({ url: spec });
  } catch (e) {
    throw new Error(`--store ${redact(spec)}: ${oneLine(e)}`);
  }
}

/** The listen failure in the flags' terms. */
function listenError(e: unknown, args: Args): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE': return `--port ${args.port}: the port is already in use on ${args.host}`;
    case 'EACCES': return `--port ${args.port}: no permission to listen on this port (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL': return `--host ${args.host}: not an address of this machine`;
    case 'ENOTFOUND': case 'EAI_AGAIN': return `--host ${args.host}: cannot resolve this name`;
    default: return oneLine(e);
  }
}

/** An error's message on one line (no stack). */
function oneLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/\s*\n\s*/g, ' ').trim() || (e instanceof Error ? e.name : 'unknown error');
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
