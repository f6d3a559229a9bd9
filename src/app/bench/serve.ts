// `collectivekv bench serve`: the same SASRec served three ways, each from the in-memory store and
// from Redis on loopback, timed end to end through CacheEngine.score (fetch + codec decode +
// model decode + candidate scores):
//   collectivekv  its CollectiveKV cache (pool index + userDim floats per token and side)
//   full          the full K/V cache of its 'mha' twin (same sizes, same seed)
//   recompute     no cache: the users' item histories (int32) are fetched and the model runs the
//                 whole history (prefill) before scoring
// Plus a load run: concurrent HTTP clients against startServer on 127.0.0.1 (with a FileHistoryLog
// as the history of record), posting events (half of them to 4 hot users, so appends to one user
// race) and scores for a bounded time, with the store restarted without persistence in the middle
// (Redis killed and started again; the in-memory store emptied); then a check that every
// acknowledged event is in the history and every user's cache entry holds exactly its window.
//
// Figures: p50/p99 over the samples of each configuration (bounded in count and time; the slowest
// configurations get a single sample, see `samples`). bytesPerUser is the mean stored entry of one
// user (header, chunk framing and the SASRec item lane included; for recompute the int32 history).
// Cache bytes for 10,000 users are computed as 10,000 x bytesPerUser, not measured.

import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CacheEngine, DEFAULT_CACHE_DTYPE, MemoryStore, RedisStore, cacheWindowStart, checkCacheDtype, seededRandom,
  type CacheDtype, type CacheStore, type HistoryLog,
} from '../../internal';
import { buildSasrec } from '../../zoo/sequential/sasrec';
import { SasrecRecommender } from '../../zoo/sequential/sasrecRecommender';
import { FileHistoryLog } from '../serve/fileHistoryLog';
import { startServer } from '../serve/server';
import { haveRedisServer, startLocalRedis, type LocalRedis } from './localRedis';

export type ServeMode = 'collectivekv' | 'full' | 'recompute';
export type StoreKind = 'memory' | 'redis';

export interface BenchServeOptions {
  /** Tiny sizes (seconds, for tests and smoke runs). */
  quick?: boolean;
  historyLengths?: number[];
  batchSizes?: number[];
  /** A Redis to use instead of starting redis-server on loopback. */
  redisUrl?: string;
  /** Skip the Redis store (also skipped, with a note, when no redis-server is installed). */
  noRedis?: boolean;
  hiddenDim?: number;
  numBlocks?: number;
  /** Distinct users cached per configuration; larger batches cycle over them (every fetch is still made). */
  distinctUsers?: number;
  candidates?: number;
  /** Time cap per configuration in seconds (at least one sample is always taken). */
  secondsPerConfig?: number;
  maxSamples?: number;
  /**
   * Recompute configurations with batch x history^2 above this are timed on a sub-batch of
   * `recomputeSubBatch` users and scaled linearly (the recompute runs users in independent
   * chunks, so its cost is linear in the batch); the row says so in `extrapolatedFromBatch`.
   * Default 1e8 (batch 512 at history 1000 would take ~4 minutes per sample on 2 cores).
   */
  maxRecomputeWork?: number;
  recomputeSubBatch?: number;
  loadClients?: number;
  loadSeconds?: number;
  /** How the caches store their floats (default fp16, the engine's default). */
  cacheFormat?: CacheDtype;
  log?: (line: string) => void;
}

export interface BenchServeRow {
  mode: ServeMode;
  store: StoreKind;
  historyLength: number;
  batchSize: number;
  p50Ms: number;
  p99Ms: number;
  bytesPerUser: number;
  bytesPerRequest: number;
  /** 10,000 x bytesPerUser (computed). */
  bytesFor10kUsers: number;
  samples: number;
  /** Set when the latency was measured on this many users and scaled linearly to batchSize. */
  extrapolatedFromBatch?: number;
}

export interface LoadResult {
  clients: number;
  seconds: number;
  requests: number;
  /** Requests answered with anything but 2xx (or not answered), outside the restart window. */
  failed: number;
  /** The same during the restart window (503s with Retry-After are expected there). */
  failedDuringRestart: number;
  p99Ms: number;
  p50Ms: number;
  /** p99 of the requests started in the restart window (store down until it came back, plus 1 s). */
  restartP99Ms: number;
  /** How long the store was unreachable, as the server saw it. */
  restartSeconds: number;
  requestsPerSecond: number;
  /** Events in requests answered 2xx. */
  eventsAcknowledged: number;
  /** Acknowledged events found in the history of record (as a multiset per user). */
  eventsStored: number;
  /** eventsAcknowledged - eventsStored: must be 0. */
  eventsLost: number;
  /** Users whose cache entry, after one score, did not hold exactly the window of their history. */
  usersInconsistent: number;
  /** Responses by HTTP status ('error': no answer). */
  statuses: Record<string, number>;
  /** The first few distinct failures, for diagnosis. */
  errors: string[];
  /** eventsLost is 0 and every entry matches its history. */
  exact: boolean;
  store: StoreKind;
}

export interface BenchServeResult {
  results: BenchServeRow[];
  load: LoadResult;
  model: { hiddenDim: number; numBlocks: number; numHeads: number; poolSize: number; userDim: number; maxLength: number; numItems: number;
    /** The value format of every cache entry of the run; bytesPerToken is in it (absent in results of earlier builds: fp32). */
    cacheFormat?: CacheDtype;
    bytesPerToken: { collectivekv: number; full: number; lane: number } };
  backend: string;
  notes: string[];
}

interface Resolved {
  historyLengths: number[];
  batchSizes: number[];
  hiddenDim: number;
  numBlocks: number;
  distinctUsers: number;
  candidates: number;
  secondsPerConfig: number;
  maxSamples: number;
  maxRecomputeWork: number;
  recomputeSubBatch: number;
  loadClients: number;
  loadSeconds: number;
  numItems: number;
  poolSize: number;
  cacheFormat: CacheDtype;
}

function resolve(o: BenchServeOptions): Resolved {
  const quick = o.quick === true;
  return {
    historyLengths: o.historyLengths ?? (quick ? [20, 50] : [200, 1000]),
    batchSizes: o.batchSizes ?? (quick ? [1, 8] : [1, 64, 512]),
    hiddenDim: o.hiddenDim ?? (quick ? 16 : 64),
    numBlocks: o.numBlocks ?? 2,
    distinctUsers: o.distinctUsers ?? (quick ? 8 : 64),
    candidates: o.candidates ?? (quick ? 20 : 100),
    secondsPerConfig: o.secondsPerConfig ?? (quick ? 0.5 : 4),
    maxSamples: o.maxSamples ?? (quick ? 5 : 30),
    maxRecomputeWork: o.maxRecomputeWork ?? 1e8,
    recomputeSubBatch: o.recomputeSubBatch ?? 64,
    loadClients: o.loadClients ?? (quick ? 4 : 8),
    loadSeconds: o.loadSeconds ?? (quick ? 2 : 20),
    numItems: quick ? 200 : 2000,
    poolSize: quick ? 64 : 1024,
    cacheFormat: checkCacheDtype(o.cacheFormat ?? DEFAULT_CACHE_DTYPE, 'benchServe: options.cacheFormat'),
  };
}

/** Runs the whole benchmark; prints progress lines through options.log. */
export async function benchServe(options: BenchServeOptions = {}): Promise<BenchServeResult> {
  const o = resolve(options);
  const log = options.log ?? (() => undefined);
  const notes: string[] = [];
  const maxLength = Math.max(...o.historyLengths);
  const base = { numItems: o.numItems, maxLength, hiddenDim: o.hiddenDim, numBlocks: o.numBlocks, numHeads: 2, dropout: 0, seed: 42,
    collective: { poolSize: o.poolSize, userDim: 1 } };
  const ckv = buildSasrec({ ...base, attention: 'collectivekv' });
  const mha = buildSasrec({ ...base, attention: 'mha' });
  const recs: Record<'collectivekv' | 'full', SasrecRecommender> = { collectivekv: new SasrecRecommender(ckv), full: new SasrecRecommender(mha) };
  const stores = await openStores(options, notes, log);
  try {
    const results: BenchServeRow[] = [];
    for (const t of o.historyLengths) {
      const histories = makeHistories(o.distinctUsers, t, o.numItems, t);
      await populate(stores, recs, histories, t, o.cacheFormat, log);
      for (const mode of ['collectivekv', 'full', 'recompute'] as const) {
        for (const [kind, store] of stores) {
          for (const b of o.batchSizes) results.push(await timeConfig(o, mode, kind, store, recs, t, b, log));
        }
      }
    }
    const loadStore = stores.find(([k]) => k === 'redis') ?? stores[0];
    log(`cache format ${o.cacheFormat}`);
    const load = await loadRun(o, recs.collectivekv, loadStore, stores.localRedis, log);
    return {
      results, load, backend: tf.getBackend(), notes,
      model: { hiddenDim: o.hiddenDim, numBlocks: o.numBlocks, numHeads: 2, poolSize: o.poolSize, userDim: 1, maxLength, numItems: o.numItems,
        cacheFormat: o.cacheFormat,
        bytesPerToken: { collectivekv: recs.collectivekv.attentionBytesIn(o.cacheFormat), full: recs.full.attentionBytesIn(o.cacheFormat), lane: recs.collectivekv.laneBytesPerToken } },
    };
  } finally {
    for (const [, store] of stores) await store.close();
    await stores.localRedis?.stop();
    ckv.model.dispose();
    mha.model.dispose();
  }
}

type Stores = Array<[StoreKind, CacheStore]> & { localRedis?: LocalRedis };

async function openStores(options: BenchServeOptions, notes: string[], log: (l: string) => void): Promise<Stores> {
  const stores: Stores = [['memory', new MemoryStore({ maxBytes: 8 * 2 ** 30 })]];
  if (options.noRedis) return stores;
  let url = options.redisUrl;
  if (url === undefined) {
    if (!haveRedisServer()) {
      notes.push('redis-server is not installed: Redis rows skipped (install it, or pass --redis URL)');
      log(`note: ${notes[notes.length - 1]}`);
      return stores;
    }
    stores.localRedis = await startLocalRedis();
    url = stores.localRedis.url;
  }
  if (!/^rediss?:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(url.replace(/\/\/[^@/]*@/, '//'))) {
    throw new Error(`bench serve: --redis must be a loopback URL (127.0.0.1, localhost, [::1]), received ${JSON.stringify(url.replace(/\/\/[^@/]*@/, '//***@'))}`);
  }
  stores.push(['redis', await RedisStore.connect({ url, keyPrefix: 'ckvbench:', commandTimeoutMs: 60000 })]);
  log(`redis: ${url.replace(/\/\/[^@/]*@/, '//***@')}`);
  return stores;
}

/** `users` seeded random histories of `length` items. */
function makeHistories(users: number, length: number, numItems: number, seed: number): number[][] {
  const rand = seededRandom(seed);
  return Array.from({ length: users }, () => Array.from({ length }, () => 1 + Math.floor(rand() * numItems)));
}

const userId = (t: number, u: number) => `t${t}-u${u}`;

/** Prefills every user once per cache mode (memory store), copies the entries to Redis, and stores the histories for recompute. */
async function populate(stores: Stores, recs: Record<'collectivekv' | 'full', SasrecRecommender>, histories: number[][], t: number,
  dtype: CacheDtype, log: (l: string) => void): Promise<void> {
  const started = performance.now();
  const memory = stores[0][1];
  for (const mode of ['collectivekv', 'full'] as const) {
    const engine = new CacheEngine(recs[mode], memory, { keyPrefix: `${mode}:`, dtype });
    for (let u = 0; u < histories.length; u++) await engine.prefill(userId(t, u), histories[u]);
  }
  const keys = histories.flatMap((_, u) => [`collectivekv:${userId(t, u)}`, `full:${userId(t, u)}`]);
  const values = await memory.getMany(keys);
  histories.forEach((h, u) => {
    keys.push(`hist:${userId(t, u)}`);
    values.push(new Uint8Array(Int32Array.from(h).buffer));
  });
  for (const [kind, store] of stores) {
    // The memory store already holds the cache entries; Redis gets byte-identical copies.
    for (let i = 0; i < keys.length; i++) if (kind !== 'memory' || keys[i].startsWith('hist:')) await store.set(keys[i], values[i]!);
  }
  log(`history ${t}: cached ${histories.length} users x 2 models in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

async function timeConfig(o: Resolved, mode: ServeMode, kind: StoreKind, store: CacheStore, recs: Record<'collectivekv' | 'full', SasrecRecommender>,
  t: number, batch: number, log: (l: string) => void): Promise<BenchServeRow> {
  const extrapolate = mode === 'recompute' && batch * t * t > o.maxRecomputeWork && o.recomputeSubBatch < batch;
  const measured = extrapolate ? o.recomputeSubBatch : batch;
  const scale = batch / measured;
  const users = Array.from({ length: measured }, (_, i) => userId(t, i % o.distinctUsers));
  const candidates = Array.from({ length: o.candidates }, (_, i) => 1 + ((i * 7919) % o.numItems));
  const request = mode === 'recompute'
    ? recomputeRequest(store, recs.collectivekv, users, candidates)
    : cachedRequest(new CacheEngine(recs[mode], store, { keyPrefix: `${mode}:`, maxBatch: 1024, dtype: o.cacheFormat }), users, candidates);
  const bytesPerUser = await entryBytes(store, mode, t, o.distinctUsers);
  const samples: number[] = [];
  const budget = performance.now() + o.secondsPerConfig * 1000;
  const first = await timed(request);
  // A warm-up sample is dropped when the configuration is cheap enough to afford it.
  if (first > 1000) samples.push(first);
  while (samples.length < o.maxSamples && (samples.length === 0 || performance.now() < budget)) samples.push(await timed(request));
  const row: BenchServeRow = {
    mode, store: kind, historyLength: t, batchSize: batch, p50Ms: scale * percentile(samples, 0.5), p99Ms: scale * percentile(samples, 0.99),
    bytesPerUser, bytesPerRequest: bytesPerUser * batch, bytesFor10kUsers: bytesPerUser * 10000, samples: samples.length,
    ...(extrapolate ? { extrapolatedFromBatch: measured } : {}),
  };
  log(`${mode.padEnd(12)} ${kind.padEnd(6)} T=${String(t).padStart(4)} B=${String(batch).padStart(3)}  p50 ${fmtMs(row.p50Ms)}  p99 ${fmtMs(row.p99Ms)}  ${fmtBytes(bytesPerUser)}/user  (${samples.length} samples${extrapolate ? `, measured on ${measured} users, scaled x${scale}` : ''})`);
  return row;
}

function cachedRequest(engine: CacheEngine, users: string[], candidates: number[]): () => Promise<void> {
  return async () => {
    const result = await engine.score(users, candidates);
    if (result.sources.some((s) => s !== 'cache')) throw new Error('bench serve: a cache-mode request was not served from the cache');
  };
}

/** No cache: fetch the histories (int32) and run the model on them. */
function recomputeRequest(store: CacheStore, rec: SasrecRecommender, users: string[], candidates: number[]): () => Promise<void> {
  const cands = Int32Array.from(candidates);
  return async () => {
    const values = await store.getMany(users.map((u) => `hist:${u}`));
    const histories = values.map((v, i) => {
      if (v === undefined) throw new Error(`bench serve: history of ${users[i]} missing`);
      return Array.from(new Int32Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)));
    });
    rec.recompute(histories, cands);
  };
}

async function entryBytes(store: CacheStore, mode: ServeMode, t: number, users: number): Promise<number> {
  const prefix = mode === 'recompute' ? 'hist' : mode;
  const values = await store.getMany(Array.from({ length: users }, (_, u) => `${prefix}:${userId(t, u)}`));
  return values.reduce((s, v) => s + (v?.length ?? 0), 0) / users;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

function percentile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

// ---------------------------------------------------------------- load run

const LOAD_USERS = 32;
const HOT_USERS = 4;
const MAX_LOAD_REQUESTS = 200000;

interface Timed {
  startedAt: number;
  ms: number;
  ok: boolean;
  /** HTTP status, or 'error' when no answer came. */
  status: string;
}

/**
 * `clients` concurrent loops against startServer on 127.0.0.1 for `loadSeconds` (and at most
 * MAX_LOAD_REQUESTS requests): 70% POST events (1-3 items; half of them to one of 4 hot users),
 * 30% POST /score for 8 users. At 40% of the time the store restarts without persistence. Then
 * every acknowledged event must be in the history log and every cache entry hold its window.
 */
async function loadRun(o: Resolved, rec: SasrecRecommender, [kind, store]: [StoreKind, CacheStore], localRedis: LocalRedis | undefined,
  log: (l: string) => void): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ckv-bench-history-'));
  const history = await FileHistoryLog.open(join(dir, 'history.jsonl'));
  const server = await startServer({ model: rec, store, histories: history, engine: { keyPrefix: 'load:', dtype: o.cacheFormat } });
  const users = Array.from({ length: LOAD_USERS }, (_, u) => `load-${Date.now().toString(36)}-${u}`);
  const acknowledged = new Map<string, number[]>(users.map((u) => [u, []]));
  const timed: Timed[] = [];
  const errors = new Set<string>();
  const post = async (path: string, body: unknown): Promise<boolean> => {
    const startedAt = performance.now();
    let ok = false;
    let status = 'error';
    try {
      const res = await fetch(server.url + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      const text = await res.text();
      ok = res.status >= 200 && res.status < 300;
      status = String(res.status);
      if (!ok && errors.size < 5) errors.add(`${res.status} ${text.slice(0, 200)}`);
    } catch (e) {
      if (errors.size < 5) errors.add(`no answer: ${(e as Error).message}`);
    }
    timed.push({ startedAt, ms: performance.now() - startedAt, ok, status });
    return ok;
  };
  try {
    // Every user has one event before the clock starts: scoring a user nobody has seen is a 404.
    for (const u of users) if (await post(`/users/${u}/events`, { events: [1] })) acknowledged.get(u)!.push(1);
    timed.length = 0;
    log(`load: ${o.loadClients} clients for ${o.loadSeconds} s against ${server.url} (${kind} store, history log ${join(dir, 'history.jsonl')}), store restart at 40%`);
    const started = performance.now();
    const deadline = started + o.loadSeconds * 1000;
    let issued = 0;
    const client = async (c: number) => {
      const rand = seededRandom(1000 + c);
      while (performance.now() < deadline && issued < MAX_LOAD_REQUESTS) {
        issued++;
        if (rand() < 0.7) {
          const u = users[Math.floor(rand() * (rand() < 0.5 ? HOT_USERS : users.length))];
          const events = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => 1 + Math.floor(rand() * rec.numItems));
          if (await post(`/users/${u}/events`, { events })) acknowledged.get(u)!.push(...events);
        } else {
          const batch = Array.from({ length: 8 }, () => users[Math.floor(rand() * users.length)]);
          await post('/score', { userIds: batch, candidates: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] });
        }
      }
    };
    const restart = (async () => {
      await new Promise((r) => setTimeout(r, o.loadSeconds * 400));
      const at = performance.now();
      if (localRedis !== undefined && kind === 'redis') {
        log('load: killing redis-server (no persistence) and starting it again');
        await localRedis.restart(300);
      } else {
        log('load: emptying the store (every entry evicted at once)');
        await Promise.all(users.map((u) => store.delete(`load:${u}`)));
      }
      while (!(await store.getPrefix('load:probe', 1).then(() => true, () => false))) await new Promise((r) => setTimeout(r, 20));
      return { at, back: performance.now() };
    })();
    await Promise.all(Array.from({ length: o.loadClients }, (_, c) => client(c)));
    const window = await restart;
    const seconds = (performance.now() - started) / 1000;
    const inRestart = (t: Timed) => t.startedAt >= window.at - 1000 && t.startedAt <= window.back + 1000;
    const verified = await verifyLoad(server.engine, history, users, acknowledged);
    const eventsAcknowledged = [...acknowledged.values()].reduce((n, e) => n + e.length, 0);
    const latencies = timed.map((t) => t.ms);
    const result: LoadResult = {
      clients: o.loadClients, seconds, requests: timed.length,
      failed: timed.filter((t) => !t.ok && !inRestart(t)).length,
      failedDuringRestart: timed.filter((t) => !t.ok && inRestart(t)).length,
      p99Ms: percentile(latencies, 0.99), p50Ms: percentile(latencies, 0.5),
      restartP99Ms: percentile(timed.filter(inRestart).map((t) => t.ms), 0.99),
      restartSeconds: (window.back - window.at) / 1000,
      requestsPerSecond: timed.length / seconds,
      eventsAcknowledged, eventsStored: verified.eventsStored, eventsLost: eventsAcknowledged - verified.eventsStored,
      usersInconsistent: verified.usersInconsistent,
      statuses: countBy(timed.map((t) => t.status)), errors: [...errors],
      exact: eventsAcknowledged === verified.eventsStored && verified.usersInconsistent === 0, store: kind,
    };
    log(`load: ${result.requests} requests in ${seconds.toFixed(1)} s (${result.requestsPerSecond.toFixed(0)}/s), failed ${result.failed} (+${result.failedDuringRestart} during the restart; statuses ${JSON.stringify(result.statuses)}), p50 ${fmtMs(result.p50Ms)}, p99 ${fmtMs(result.p99Ms)}, p99 during the restart ${fmtMs(result.restartP99Ms)} (store down ${result.restartSeconds.toFixed(2)} s); events acknowledged ${eventsAcknowledged}, stored ${result.eventsStored}, lost ${result.eventsLost}; entries not matching their history ${result.usersInconsistent}`);
    return result;
  } finally {
    await server.close();
    await history.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** Acknowledged events found in each user's history (multiset), and entries that differ from their window after a score. */
async function verifyLoad(engine: CacheEngine, history: HistoryLog, users: readonly string[], acknowledged: ReadonlyMap<string, number[]>): Promise<{ eventsStored: number; usersInconsistent: number }> {
  const histories = await history.read(users);
  let eventsStored = 0;
  let usersInconsistent = 0;
  for (let i = 0; i < users.length; i++) {
    const h = histories[i] ?? [];
    const left = new Map<number, number>();
    for (const x of h) left.set(x, (left.get(x) ?? 0) + 1);
    for (const x of acknowledged.get(users[i]) ?? []) {
      const n = left.get(x) ?? 0;
      if (n > 0) {
        eventsStored++;
        left.set(x, n - 1);
      }
    }
    if (h.length === 0) continue;
    await engine.score([users[i]], [1]);
    const stored = await engine.storedHistory(users[i]);
    const window = h.slice(cacheWindowStart(h.length, engine.model.maxLength));
    if (stored === undefined || stored.length !== window.length || stored.some((x, j) => x !== window[j])) usersInconsistent++;
  }
  return { eventsStored, usersInconsistent };
}

// ---------------------------------------------------------------- report

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

/** The side-by-side table: per store, history and batch, the three modes' p50/p99 and the ratios. */
export function formatBenchServe(r: BenchServeResult): string {
  const m = r.model;
  const lines = [
    `SASRec d=${m.hiddenDim}, ${m.numBlocks} blocks, ${m.numHeads} heads, pool ${m.poolSize}, userDim ${m.userDim}, window ${m.maxLength}, ${m.numItems} items; backend ${r.backend}`,
    `bytes per token (cache format ${m.cacheFormat ?? 'fp32'}): CollectiveKV ${m.bytesPerToken.collectivekv} B, full KV ${m.bytesPerToken.full} B, + item lane ${m.bytesPerToken.lane} B in both (${pct((m.bytesPerToken.collectivekv + m.bytesPerToken.lane) / (m.bytesPerToken.full + m.bytesPerToken.lane))} of full)`,
    '',
    'store   hist  batch | CollectiveKV p50/p99   | full KV p50/p99        | recompute p50/p99      | full/ckv  recomp/ckv | bytes/user ckv / full (ratio) | 10k users ckv / full (computed)',
  ];
  const find = (mode: ServeMode, s: StoreKind, t: number, b: number) => r.results.find((x) => x.mode === mode && x.store === s && x.historyLength === t && x.batchSize === b);
  const keys = [...new Set(r.results.map((x) => `${x.store}|${x.historyLength}|${x.batchSize}`))];
  for (const key of keys) {
    const [s, t, b] = key.split('|');
    const [c, f, n] = (['collectivekv', 'full', 'recompute'] as const).map((mode) => find(mode, s as StoreKind, Number(t), Number(b)));
    if (!c || !f || !n) continue;
    const pair = (x: BenchServeRow) => `${fmtMs(x.p50Ms)} / ${fmtMs(x.p99Ms)}${x.extrapolatedFromBatch ? ' *' : ''}`.padEnd(22);
    lines.push(`${s.padEnd(7)} ${t.padStart(4)}  ${b.padStart(5)} | ${pair(c)} | ${pair(f)} | ${pair(n)} | ${(f.p50Ms / c.p50Ms).toFixed(1).padStart(7)}x ${(n.p50Ms / c.p50Ms).toFixed(1).padStart(9)}x | ${fmtBytes(c.bytesPerUser)} / ${fmtBytes(f.bytesPerUser)} (${pct(c.bytesPerUser / f.bytesPerUser)}) | ${fmtBytes(c.bytesFor10kUsers)} / ${fmtBytes(f.bytesFor10kUsers)}`);
  }
  const l = r.load;
  lines.push('', `load (${l.store} store, restarted mid-run): ${l.clients} clients, ${l.seconds.toFixed(1)} s, ${l.requests} requests (${l.requestsPerSecond.toFixed(0)}/s), failed ${l.failed} (+${l.failedDuringRestart} during the restart), p50 ${fmtMs(l.p50Ms)}, p99 ${fmtMs(l.p99Ms)}, p99 during the restart ${fmtMs(l.restartP99Ms)}; events acknowledged ${l.eventsAcknowledged}, stored ${l.eventsStored}, lost ${l.eventsLost}${l.exact ? ' (exact)' : ' (MISMATCH)'}`);
  if (r.results.some((x) => x.extrapolatedFromBatch)) lines.push('* measured on a sub-batch and scaled linearly to the batch (see extrapolatedFromBatch in the JSON)');
  lines.push('10k-user figures are computed as 10,000 x bytes per user, not measured.');
  for (const note of r.notes) lines.push(`note: ${note}`);
  return lines.join('\n');
}

function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

// ---------------------------------------------------------------- command

export const BENCH_SERVE_USAGE = `Usage: collectivekv bench serve [--json FILE] [--quick] [--redis URL | --no-redis] [--seconds N] [--clients N]
                              [--cache-format fp16|fp32|int8] [--backend wasm|cpu]

  --json FILE   also write the results as JSON
  --quick       tiny sizes (seconds)
  --redis URL   a loopback Redis to use (default: start redis-server on 127.0.0.1 when installed)
  --seconds N   load run length (default 20)
  --clients N   load run clients (default 8)
  --cache-format fp16|fp32|int8
                how cache entries store their floats (default fp16; docs/cache.md)`;

/** The `bench serve` command; resolves with the exit code. */
export async function runBenchServeCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv, strict: true, allowPositionals: false,
      options: { json: { type: 'string' }, quick: { type: 'boolean' }, redis: { type: 'string' }, 'no-redis': { type: 'boolean' },
        seconds: { type: 'string' }, clients: { type: 'string' }, backend: { type: 'string' }, 'cache-format': { type: 'string' },
        help: { type: 'boolean', short: 'h' } },
    }));
    for (const flag of ['seconds', 'clients'] as const) {
      const raw = values[flag];
      if (raw !== undefined && !(/^\d+$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 3600)) throw new Error(`--${flag} must be an integer in [1, 3600], received ${JSON.stringify(raw)}`);
    }
    if (values.backend !== undefined && values.backend !== 'wasm' && values.backend !== 'cpu') throw new Error(`--backend must be wasm or cpu, received ${JSON.stringify(values.backend)}`);
    if (values['cache-format'] !== undefined) checkCacheDtype(values['cache-format'], '--cache-format');
  } catch (e) {
    console.error(`collectivekv bench serve: ${(e as Error).message}\n${BENCH_SERVE_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(BENCH_SERVE_USAGE);
    return 0;
  }
  if (!(await tf.setBackend(values.backend ?? 'wasm'))) throw new Error(`backend ${values.backend ?? 'wasm'} failed to initialize`);
  await tf.ready();
  const result = await benchServe({
    quick: values.quick, redisUrl: values.redis, noRedis: values['no-redis'],
    loadSeconds: values.seconds === undefined ? undefined : Number(values.seconds),
    loadClients: values.clients === undefined ? undefined : Number(values.clients),
    cacheFormat: values['cache-format'] as CacheDtype | undefined,
    log: (line) => console.log(line),
  });
  console.log(`\n${formatBenchServe(result)}`);
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${values.json}`);
  }
  return result.load.failed === 0 && result.load.exact ? 0 : 1;
}
