// Redis cache store on ioredis: the scale-out store. One key per user; Redis Cluster spreads the
// users over its nodes by hash slot (every command here touches a single key, so any key works).
//
// ioredis is an optional peer dependency, loaded on first connect: code that never uses Redis
// (the browser build, the in-memory default) never needs it. The public types describe the client
// structurally (RedisClient), so the package's .d.ts never imports ioredis: a TypeScript user
// without it sees no missing-module error.

import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { AppendPlan } from './codec';
import { CacheStoreError } from './errors';
import {
  checkBytes, checkKey, checkPlan, checkReplace, countReplace, emptyStats,
  type AppendResult, type CacheStore, type ReplaceResult, type StoreStats,
} from './store';

/**
 * Compare-and-swap append, atomic because Redis runs a script without interleaving: if the value
 * starts with ARGV[1] (the header the writer planned from), overwrite it by ARGV[2] (same length)
 * and append ARGV[3]. Returns 1 applied, 0 conflict, -1 missing key. Nothing is written before
 * the check passes; should a write fail mid-script (out of memory), header and chunk counts then
 * disagree and the next decode rejects the entry as corrupt instead of using it.
 */
const APPEND_SCRIPT = `
local n = string.len(ARGV[1])
local cur = redis.call('GETRANGE', KEYS[1], 0, n - 1)
if cur == '' and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if cur ~= ARGV[1] then return 0 end
redis.call('SETRANGE', KEYS[1], 0, ARGV[2])
redis.call('APPEND', KEYS[1], ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
`;

/**
 * Conditional whole-value write, atomic for the same reason: ARGV[1] empty means "only if the key
 * is absent" (SET NX), otherwise the value must start with ARGV[1]. Returns 1 written, 0 conflict.
 */
const REPLACE_SCRIPT = `
local n = string.len(ARGV[1])
if n == 0 then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif redis.call('GETRANGE', KEYS[1], 0, n - 1) ~= ARGV[1] then
  return 0
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
`;

/**
 * The commands RedisStore uses, as an ioredis `Redis` or `Cluster` client has them: any of the two
 * can be passed as `RedisStoreOptions.client`. Bytes are Uint8Array (ioredis's Buffers are), so the
 * type needs neither ioredis nor Node's types; SET is used too, but its ioredis overloads take
 * Node's Buffer, which no structural type can name without Node's types (see BufferCommands).
 */
export interface RedisClient {
  readonly isCluster: boolean;
  defineCommand(name: string, definition: { numberOfKeys?: number; lua: string }): void;
  getBuffer(key: string): Promise<Uint8Array | null>;
  getrangeBuffer(key: string, start: number, end: number): Promise<Uint8Array>;
  del(key: string): Promise<number>;
  pipeline(): RedisPipeline;
  connect(): Promise<void>;
  quit(): Promise<unknown>;
  disconnect(): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
}

/** The part of an ioredis pipeline RedisStore uses. */
export interface RedisPipeline {
  getBuffer(key: string): unknown;
  exec(): Promise<Array<[error: Error | null, result: unknown]> | null>;
}

export interface RedisStoreOptions {
  /** Standalone server: `redis://[:password@]host:port[/db]`, or `rediss://` for TLS. */
  url?: string;
  /** Redis Cluster seed nodes (any subset of the nodes): uses ioredis Cluster. */
  cluster?: Array<{ host: string; port: number }>;
  /** An ioredis client you created (Redis or Cluster); the store does not close it. */
  client?: RedisClient;
  /** Prepended to every key (default 'ckv:'). */
  keyPrefix?: string;
  /** Expire entries this many seconds after their last set/append (default: never). */
  ttlSeconds?: number;
  /** Fail a command after this long instead of waiting on a dead server (default 2000 ms). */
  commandTimeoutMs?: number;
  /** Extra ioredis options (its `RedisOptions`) for `url`, merged over the store's defaults. */
  redisOptions?: object;
  /** Extra ioredis Cluster options (its `ClusterOptions`) for `cluster`. */
  clusterOptions?: object;
}

/** SET as ioredis types it (every Redis client has it; RedisClient cannot name Node's Buffer). */
interface BufferCommands {
  set(key: string, value: Buffer): Promise<unknown>;
  set(key: string, value: Buffer, secondsToken: 'EX', seconds: number): Promise<unknown>;
}

/** The scripts as typed methods (defineCommand adds them at run time; EVALSHA with EVAL fallback). */
interface ScriptCommands {
  ckvAppend(key: string, expect: Buffer, header: Buffer, tail: Buffer, ttl: number): Promise<number>;
  ckvReplace(key: string, expect: Buffer, bytes: Buffer, ttl: number): Promise<number>;
}

type IoRedis = typeof import('ioredis');

async function loadIoredis(): Promise<IoRedis> {
  try {
    return await import('ioredis');
  } catch (e) {
    throw new CacheStoreError("RedisStore needs the 'ioredis' package, an optional peer dependency of collectivekv: npm install ioredis", e);
  }
}

function buffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A Buffer from ioredis as a plain Uint8Array the caller owns (ioredis may pool its buffers). */
function owned(b: Uint8Array | null): Uint8Array | undefined {
  return b === null ? undefined : new Uint8Array(b);
}

export class RedisStore implements CacheStore {
  private readonly counters: StoreStats = emptyStats();

  private constructor(
    private readonly client: RedisClient,
    private readonly isCluster: boolean,
    private readonly ownsClient: boolean,
    readonly keyPrefix: string,
    readonly ttlSeconds: number,
  ) {
    client.defineCommand('ckvAppend', { numberOfKeys: 1, lua: APPEND_SCRIPT });
    client.defineCommand('ckvReplace', { numberOfKeys: 1, lua: REPLACE_SCRIPT });
  }

  /** Connects (standalone `url`, `cluster` seed nodes, or an existing `client`). */
  static async connect(options: RedisStoreOptions): Promise<RedisStore> {
    const given = [options.url, options.cluster, options.client].filter((x) => x !== undefined).length;
    if (given !== 1) {
      throw new TypeError(`RedisStore.connect: give exactly one of options.url, options.cluster, options.client, received ${given}`);
    }
    const ttl = options.ttlSeconds ?? 0;
    if (!Number.isInteger(ttl) || ttl < 0) {
      throw new RangeError(`RedisStore.connect: options.ttlSeconds must be a non-negative integer, received ${ttl}`);
    }
    const prefix = options.keyPrefix ?? 'ckv:';
    if (options.client !== undefined) {
      return new RedisStore(options.client, options.client.isCluster, false, prefix, ttl);
    }
    const io = await loadIoredis();
    const client = options.url !== undefined ? await connectStandalone(io, options) : await connectCluster(io, options);
    return new RedisStore(client, options.url === undefined, true, prefix, ttl);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    checkKey('RedisStore.get', key);
    const value = await this.run('get', () => this.client.getBuffer(this.keyPrefix + key));
    this.countRead(value);
    return owned(value);
  }

  /** Standalone: one pipeline, one round trip. Cluster: auto-pipelined per node in one tick. */
  async getMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    keys.forEach((k) => checkKey('RedisStore.getMany', k));
    if (keys.length === 0) return [];
    const values = await this.run('getMany', () => (this.isCluster ? this.getEach(keys) : this.getPipelined(keys)));
    values.forEach((v) => this.countRead(v));
    return values.map(owned);
  }

  async getPrefix(key: string, length: number): Promise<Uint8Array | undefined> {
    checkKey('RedisStore.getPrefix', key);
    if (!Number.isInteger(length) || length < 1) {
      throw new RangeError(`RedisStore.getPrefix: argument 'length' must be a positive integer, received ${length}`);
    }
    const value = await this.run('getPrefix', () => this.client.getrangeBuffer(this.keyPrefix + key, 0, length - 1));
    // Our values are never empty (a header is at least 64 bytes), so '' means a missing key.
    if (value.length === 0) return undefined;
    this.counters.bytesRead += value.length;
    return new Uint8Array(value);
  }

  async set(key: string, bytes: Uint8Array): Promise<void> {
    checkKey('RedisStore.set', key);
    checkBytes('RedisStore.set', 'bytes', bytes);
    const k = this.keyPrefix + key;
    const cmd = this.client as unknown as BufferCommands;
    await this.run('set', () => (this.ttlSeconds > 0 ? cmd.set(k, buffer(bytes), 'EX', this.ttlSeconds) : cmd.set(k, buffer(bytes))));
    this.counters.sets++;
    this.counters.bytesWritten += bytes.length;
  }

  async append(key: string, plan: AppendPlan): Promise<AppendResult> {
    checkKey('RedisStore.append', key);
    checkPlan('RedisStore.append', plan);
    const cmd = this.client as unknown as ScriptCommands;
    const r = await this.run('append', () =>
      cmd.ckvAppend(this.keyPrefix + key, buffer(plan.expectHeader), buffer(plan.newHeader), buffer(plan.tail), this.ttlSeconds));
    if (r === -1) return 'missing';
    if (r === 0) {
      this.counters.appendConflicts++;
      return 'conflict';
    }
    this.counters.appends++;
    this.counters.bytesWritten += plan.newHeader.length + plan.tail.length;
    return 'ok';
  }

  async replace(key: string, expect: Uint8Array | undefined, bytes: Uint8Array): Promise<ReplaceResult> {
    checkReplace('RedisStore.replace', key, expect, bytes);
    const cmd = this.client as unknown as ScriptCommands;
    const r = await this.run('replace', () =>
      cmd.ckvReplace(this.keyPrefix + key, expect === undefined ? Buffer.alloc(0) : buffer(expect), buffer(bytes), this.ttlSeconds));
    return countReplace(this.counters, r === 1 ? 'ok' : 'conflict', bytes);
  }

  async delete(key: string): Promise<boolean> {
    checkKey('RedisStore.delete', key);
    const n = await this.run('delete', () => this.client.del(this.keyPrefix + key));
    if (n > 0) this.counters.deletes++;
    return n > 0;
  }

  stats(): StoreStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (!this.ownsClient) return;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  private async getPipelined(keys: readonly string[]): Promise<Array<Uint8Array | null>> {
    const pipe = this.client.pipeline();
    keys.forEach((k) => pipe.getBuffer(this.keyPrefix + k));
    const results = (await pipe.exec()) ?? [];
    return results.map(([err, value]) => {
      if (err) throw err;
      return value as Uint8Array | null;
    });
  }

  private getEach(keys: readonly string[]): Promise<Array<Uint8Array | null>> {
    return Promise.all(keys.map((k) => this.client.getBuffer(this.keyPrefix + k)));
  }

  private countRead(value: Uint8Array | null): void {
    if (value === null) {
      this.counters.misses++;
    } else {
      this.counters.hits++;
      this.counters.bytesRead += value.length;
    }
  }

  /** Runs a command; a failure (outage, timeout, script error) becomes a counted CacheStoreError. */
  private async run<T>(op: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (e) {
      this.counters.errors++;
      throw new CacheStoreError(`RedisStore.${op} failed: ${e instanceof Error ? e.message : String(e)}`, e);
    }
  }
}

/** Defaults for a cache: fail fast (the caller recomputes) rather than queue behind a dead server. */
function failFast(timeoutMs: number): RedisOptions {
  return { lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: timeoutMs, connectTimeout: timeoutMs, enableAutoPipelining: true };
}

async function connectStandalone(io: IoRedis, options: RedisStoreOptions): Promise<Redis> {
  const url = options.url as string;
  if (!/^rediss?:\/\//.test(url)) {
    throw new TypeError(`RedisStore.connect: options.url must start with redis:// or rediss://, received ${JSON.stringify(url.replace(/\/\/[^@/]*@/, '//***@'))}`);
  }
  // No offline queue: a write issued while the server is down must fail now, not be replayed
  // after a reconnect (a late repair or set could land over newer data).
  const client = new io.Redis(url, { ...failFast(options.commandTimeoutMs ?? 2000), enableOfflineQueue: false, ...(options.redisOptions as RedisOptions | undefined) });
  await connectOrThrow(client, url.replace(/\/\/[^@/]*@/, '//***@'));
  return client;
}

async function connectCluster(io: IoRedis, options: RedisStoreOptions): Promise<Cluster> {
  const nodes = options.cluster as Array<{ host: string; port: number }>;
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new TypeError('RedisStore.connect: options.cluster must be a non-empty array of {host, port}, received an empty array');
  }
  const timeout = options.commandTimeoutMs ?? 2000;
  const { lazyConnect: _lazy, enableAutoPipelining: _auto, ...redisOptions } = failFast(timeout);
  void _lazy;
  void _auto;
  const client = new io.Cluster(nodes, {
    lazyConnect: true,
    enableAutoPipelining: true,
    redisOptions,
    ...(options.clusterOptions as ClusterOptions | undefined),
  });
  await connectOrThrow(client, nodes.map((n) => `${n.host}:${n.port}`).join(','));
  return client;
}

async function connectOrThrow(client: RedisClient, where: string): Promise<void> {
  // ioredis reports the real cause (refused, NOAUTH, TLS) as an 'error' event and then rejects
  // connect() with a generic "Connection is closed": keep the cause for the message.
  let cause: Error | undefined;
  const onError = (e: Error) => (cause = e);
  client.on('error', onError);
  try {
    await client.connect();
  } catch (e) {
    client.disconnect();
    const reason = [cause?.message, e instanceof Error ? e.message : String(e)].filter(Boolean).join(' / ');
    throw new CacheStoreError(`RedisStore.connect: cannot reach ${where}: ${reason}`, cause ?? e);
  } finally {
    client.off('error', onError);
  }
  // Later errors surface on the commands (as CacheStoreError); without a listener ioredis would
  // print every reconnect failure as an unhandled 'error' event.
  client.on('error', () => undefined);
}
