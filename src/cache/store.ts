// The store interface shared by the in-memory LRU and Redis, and the append loop on top of it.
//
// Appending is a compare-and-swap on the header: the writer reads the stored header, plans the new
// header and the chunk (codec.planAppend), and the store applies both atomically only if the
// stored value still starts with the header the plan was made from. Two concurrent appenders can
// then never both write "T + n" over the same T: the loser gets 'conflict', re-reads and retries,
// so no tokens are lost and the header always matches the chunks (nothing can tear).

import { peekHeaderBytes, planAppend, type AppendPlan, type DecodeOptions } from './codec';
import { CacheConflictError } from './errors';
import type { UserCache } from './types';

export type { AppendPlan } from './codec';

/** 'ok': applied; 'conflict': the stored header was not `expectHeader`; 'missing': no such key. */
export type AppendResult = 'ok' | 'conflict' | 'missing';

/** 'ok': written; 'conflict': the stored value was not the expected one (nothing written). */
export type ReplaceResult = 'ok' | 'conflict';

export interface StoreStats {
  /** get/getMany keys found. */
  hits: number;
  /** get/getMany keys not found. */
  misses: number;
  sets: number;
  /** Appends applied. */
  appends: number;
  /** Appends refused because another writer changed the header first (then retried). */
  appendConflicts: number;
  /** Conditional whole-value writes applied (replace). */
  replaces: number;
  /** Conditional whole-value writes refused because the stored value had changed. */
  replaceConflicts: number;
  deletes: number;
  /** Entries dropped to stay under the byte budget (MemoryStore; Redis evicts on its own). */
  evictions: number;
  /** Commands that failed (store unreachable, timeout). */
  errors: number;
  /** Value bytes returned by get/getMany/getPrefix. */
  bytesRead: number;
  /** Value bytes sent by set/append. */
  bytesWritten: number;
  /** Value bytes held now, when the store knows (MemoryStore). */
  bytes?: number;
  /** Entries held now, when the store knows (MemoryStore). */
  entries?: number;
}

/** A key-value store of encoded caches (one key per user). Values are opaque bytes to the store. */
export interface CacheStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Many keys in one round trip where the store allows it; results in key order. */
  getMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>>;
  /** The first `length` bytes (fewer if the value is shorter): enough to read a header. */
  getPrefix(key: string, length: number): Promise<Uint8Array | undefined>;
  /** Writes unconditionally. The engine never uses it: a plain write can lose a concurrent one. */
  set(key: string, bytes: Uint8Array): Promise<void>;
  /**
   * Compare-and-swap of a whole value, atomically: with `expect` undefined, writes only when the
   * key is absent; otherwise only when the stored value starts with `expect` (the engine passes
   * an entry's header, whose token count and write id change with every write, or the whole value
   * it found damaged). 'conflict' when the stored value is anything else, or missing.
   */
  replace(key: string, expect: Uint8Array | undefined, bytes: Uint8Array): Promise<ReplaceResult>;
  /**
   * Atomically: if the value of `key` starts with `plan.expectHeader`, overwrite that prefix with
   * `plan.newHeader` (same length) and append `plan.tail`; otherwise change nothing.
   */
  append(key: string, plan: AppendPlan): Promise<AppendResult>;
  /** True when the key existed. */
  delete(key: string): Promise<boolean>;
  stats(): StoreStats;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

export function emptyStats(): StoreStats {
  return {
    hits: 0, misses: 0, sets: 0, appends: 0, appendConflicts: 0, replaces: 0, replaceConflicts: 0, deletes: 0, evictions: 0,
    errors: 0, bytesRead: 0, bytesWritten: 0,
  };
}

/** Headers up to this size (up to 10 layers) come back in the first read. */
const HEADER_GUESS = 256;

/**
 * The stored header of `key` (just the header bytes), or undefined when the key is missing.
 * Throws CacheCorruptError / CacheVersionError when the stored bytes are not a readable header.
 */
export async function readStoredHeader(store: CacheStore, key: string): Promise<Uint8Array | undefined> {
  let prefix = await store.getPrefix(key, HEADER_GUESS);
  if (prefix === undefined) return undefined;
  const headerBytes = peekHeaderBytes(prefix);
  if (headerBytes > prefix.length && prefix.length === HEADER_GUESS) {
    prefix = await store.getPrefix(key, headerBytes);
    if (prefix === undefined) return undefined;
  }
  return prefix.subarray(0, Math.min(headerBytes, prefix.length));
}

export interface AppendOptions extends DecodeOptions {
  /** Tries before CacheConflictError (default 50). */
  maxAttempts?: number;
}

/**
 * Appends `tokens` to the cache stored under `key`, retrying on conflicts with concurrent
 * appenders. 'missing' when there is no cache to append to (the caller prefills instead).
 * Reads only the header and writes only the header and the new chunk.
 */
export async function appendToStore(
  store: CacheStore, key: string, tokens: UserCache, options: AppendOptions = {},
): Promise<'ok' | 'missing'> {
  const maxAttempts = options.maxAttempts ?? 50;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const header = await readStoredHeader(store, key);
    if (header === undefined) return 'missing';
    const result = await store.append(key, planAppend(header, tokens, options));
    if (result !== 'conflict') return result;
    await backoff(attempt);
  }
  throw new CacheConflictError(key, maxAttempts);
}

/** Jittered, capped exponential backoff so colliding appenders spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(50, 2 ** Math.min(attempt, 6));
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function checkKey(fn: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new TypeError(`${fn}: argument 'key' must be a non-empty string, received ${key === '' ? 'an empty string' : typeof key}`);
  }
}

export function checkBytes(fn: string, name: string, bytes: unknown): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`${fn}: argument '${name}' must be a Uint8Array, received ${bytes === null ? 'null' : typeof bytes}`);
  }
}

export function checkReplace(fn: string, key: unknown, expect: unknown, bytes: unknown): void {
  checkKey(fn, key);
  if (expect !== undefined) {
    checkBytes(fn, 'expect', expect);
    if ((expect as Uint8Array).length === 0) throw new RangeError(`${fn}: argument 'expect' must be undefined (key absent) or non-empty bytes, received 0 bytes`);
  }
  checkBytes(fn, 'bytes', bytes);
  if ((bytes as Uint8Array).length === 0) throw new RangeError(`${fn}: argument 'bytes' must not be empty`);
}

/** The bookkeeping of a replace outcome, shared by the stores. */
export function countReplace(stats: StoreStats, result: ReplaceResult, bytes: Uint8Array): ReplaceResult {
  if (result === 'ok') {
    stats.replaces++;
    stats.bytesWritten += bytes.length;
  } else {
    stats.replaceConflicts++;
  }
  return result;
}

export function checkPlan(fn: string, plan: AppendPlan): void {
  checkBytes(fn, 'plan.expectHeader', plan?.expectHeader);
  checkBytes(fn, 'plan.newHeader', plan.newHeader);
  checkBytes(fn, 'plan.tail', plan.tail);
  if (plan.newHeader.length !== plan.expectHeader.length || plan.expectHeader.length === 0) {
    throw new RangeError(`${fn}: plan.newHeader must be as long as plan.expectHeader (${plan.expectHeader.length} bytes), received ${plan.newHeader.length}`);
  }
}

/** True when `value` starts with `prefix`. */
export function startsWith(value: Uint8Array, prefix: Uint8Array): boolean {
  if (value.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (value[i] !== prefix[i]) return false;
  return true;
}
