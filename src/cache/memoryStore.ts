// In-process cache store: an LRU map under a byte budget. The embedded default; also the
// reference the Redis store's behaviour is tested against.

import { applyAppend, type AppendPlan } from './codec';
import {
  checkBytes, checkKey, checkPlan, checkReplace, countReplace, emptyStats, startsWith,
  type AppendResult, type CacheStore, type ReplaceResult, type StoreStats,
} from './store';

export interface MemoryStoreOptions {
  /** Budget for the stored values, in bytes (default 256 MiB). Least recently used go first. */
  maxBytes?: number;
}

export class MemoryStore implements CacheStore {
  readonly maxBytes: number;
  /** Map iteration order is insertion order: the first entry is the least recently used. */
  private readonly entries = new Map<string, Uint8Array>();
  private held = 0;
  private readonly counters: StoreStats = emptyStats();
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    const maxBytes = options.maxBytes ?? 256 * 2 ** 20;
    if (!Number.isFinite(maxBytes) || maxBytes < 0) {
      throw new RangeError(`MemoryStore: options.maxBytes must be a non-negative number, received ${maxBytes}`);
    }
    this.maxBytes = maxBytes;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.checkOpen();
    checkKey('MemoryStore.get', key);
    return this.read(key);
  }

  async getMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    this.checkOpen();
    keys.forEach((k) => checkKey('MemoryStore.getMany', k));
    return keys.map((k) => this.read(k));
  }

  async getPrefix(key: string, length: number): Promise<Uint8Array | undefined> {
    this.checkOpen();
    checkKey('MemoryStore.getPrefix', key);
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    const out = value.slice(0, length);
    this.counters.bytesRead += out.length;
    return out;
  }

  async set(key: string, bytes: Uint8Array): Promise<void> {
    this.checkOpen();
    checkKey('MemoryStore.set', key);
    checkBytes('MemoryStore.set', 'bytes', bytes);
    // Copy: the caller may reuse its buffer.
    this.put(key, bytes.slice());
    this.counters.sets++;
    this.counters.bytesWritten += bytes.length;
  }

  async replace(key: string, expect: Uint8Array | undefined, bytes: Uint8Array): Promise<ReplaceResult> {
    this.checkOpen();
    checkReplace('MemoryStore.replace', key, expect, bytes);
    // No await between the check and the write: atomic with respect to every other caller.
    const value = this.entries.get(key);
    const matches = expect === undefined ? value === undefined : value !== undefined && startsWith(value, expect);
    if (matches) this.put(key, bytes.slice());
    return countReplace(this.counters, matches ? 'ok' : 'conflict', bytes);
  }

  async append(key: string, plan: AppendPlan): Promise<AppendResult> {
    this.checkOpen();
    checkKey('MemoryStore.append', key);
    checkPlan('MemoryStore.append', plan);
    // No await between the check and the write: atomic with respect to every other caller.
    const value = this.entries.get(key);
    if (value === undefined) return 'missing';
    if (!startsWith(value, plan.expectHeader)) {
      this.counters.appendConflicts++;
      return 'conflict';
    }
    this.put(key, applyAppend(value, plan));
    this.counters.appends++;
    this.counters.bytesWritten += plan.newHeader.length + plan.tail.length;
    return 'ok';
  }

  async delete(key: string): Promise<boolean> {
    this.checkOpen();
    checkKey('MemoryStore.delete', key);
    const value = this.entries.get(key);
    if (value === undefined) return false;
    this.remove(key, value);
    this.counters.deletes++;
    return true;
  }

  stats(): StoreStats {
    return { ...this.counters, bytes: this.held, entries: this.entries.size };
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.held = 0;
    this.closed = true;
  }

  /** A hit moves the entry to the most recently used end; returns a copy the caller may keep. */
  private read(key: string): Uint8Array | undefined {
    const value = this.entries.get(key);
    if (value === undefined) {
      this.counters.misses++;
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, value);
    this.counters.hits++;
    this.counters.bytesRead += value.length;
    return value.slice();
  }

  private put(key: string, value: Uint8Array): void {
    const old = this.entries.get(key);
    if (old !== undefined) this.remove(key, old);
    this.entries.set(key, value);
    this.held += value.length;
    this.evict();
  }

  private remove(key: string, value: Uint8Array): void {
    this.entries.delete(key);
    this.held -= value.length;
  }

  /** Drops least recently used entries until under budget (an entry alone over budget goes too). */
  private evict(): void {
    for (const [key, value] of this.entries) {
      if (this.held <= this.maxBytes) break;
      this.remove(key, value);
      this.counters.evictions++;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('MemoryStore: the store was closed');
  }
}
