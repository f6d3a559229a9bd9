// Browser cache store on IndexedDB: the per-user cache lives on the user's own device and survives
// page reloads. Same interface (and the same CAS semantics) as MemoryStore and RedisStore.
//
// Atomic append: the header check and the write happen inside ONE readwrite transaction. IndexedDB
// serializes readwrite transactions over the same object store, so a concurrent appender (another
// tab) either sees the old value or the new one, never a torn one, and the loser gets 'conflict'.
// No promise is awaited inside a transaction: IndexedDB commits a transaction as soon as control
// returns to the event loop with no pending request, so every step is chained on request callbacks.

import { applyAppend, type AppendPlan } from './codec';
import { CacheStoreError } from './errors';
import {
  checkBytes, checkKey, checkPlan, checkReplace, countReplace, emptyStats, startsWith,
  type AppendResult, type CacheStore, type ReplaceResult, type StoreStats,
} from './store';

export interface IndexedDBStoreOptions {
  /** Database name (default 'collectivekv'). */
  dbName?: string;
  /** Object store inside it (default 'caches'). */
  storeName?: string;
  /** The IndexedDB factory (default globalThis.indexedDB); tests may pass another. */
  indexedDB?: IDBFactory;
}

const DB_VERSION = 1;

export class IndexedDBStore implements CacheStore {
  readonly dbName: string;
  readonly storeName: string;
  private readonly counters: StoreStats = emptyStats();
  private db: Promise<IDBDatabase> | null = null;
  private readonly factory: IDBFactory | undefined;
  private closed = false;

  constructor(options: IndexedDBStoreOptions = {}) {
    this.dbName = options.dbName ?? 'collectivekv';
    this.storeName = options.storeName ?? 'caches';
    this.factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (this.factory == null) throw new Error('IndexedDBStore: no IndexedDB in this environment (pass options.indexedDB)');
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    checkKey('IndexedDBStore.get', key);
    const [value] = await this.readMany([key]);
    return value;
  }

  async getMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    keys.forEach((k) => checkKey('IndexedDBStore.getMany', k));
    return this.readMany(keys);
  }

  async getPrefix(key: string, length: number): Promise<Uint8Array | undefined> {
    checkKey('IndexedDBStore.getPrefix', key);
    // IndexedDB has no partial reads; the value is small (a few KiB per user), so read it whole.
    const value = await this.transact<Uint8Array | undefined>('readonly', (store, done) => {
      onSuccess(store.get(key), (raw) => done(toBytes(raw)));
    });
    if (value === undefined) return undefined;
    const out = value.slice(0, length);
    this.counters.bytesRead += out.length;
    return out;
  }

  async set(key: string, bytes: Uint8Array): Promise<void> {
    checkKey('IndexedDBStore.set', key);
    checkBytes('IndexedDBStore.set', 'bytes', bytes);
    // A copy of exactly the view's bytes: structured clone of a subarray would store the whole buffer.
    const copy = bytes.slice();
    await this.transact('readwrite', (store, done) => onSuccess(store.put(copy, key), () => done(undefined)));
    this.counters.sets++;
    this.counters.bytesWritten += bytes.length;
  }

  async replace(key: string, expect: Uint8Array | undefined, bytes: Uint8Array): Promise<ReplaceResult> {
    checkReplace('IndexedDBStore.replace', key, expect, bytes);
    const copy = bytes.slice();
    const result = await this.transact<ReplaceResult>('readwrite', (store, done) => {
      onSuccess(store.get(key), (raw) => {
        const value = toBytes(raw);
        const matches = expect === undefined ? value === undefined : value !== undefined && startsWith(value, expect);
        if (!matches) return done('conflict');
        // Still inside the transaction: the put is queued before it can commit.
        onSuccess(store.put(copy, key), () => done('ok'));
      });
    });
    return countReplace(this.counters, result, bytes);
  }

  async append(key: string, plan: AppendPlan): Promise<AppendResult> {
    checkKey('IndexedDBStore.append', key);
    checkPlan('IndexedDBStore.append', plan);
    const result = await this.transact<AppendResult>('readwrite', (store, done) => {
      onSuccess(store.get(key), (raw) => {
        const value = toBytes(raw);
        if (value === undefined) return done('missing');
        if (!startsWith(value, plan.expectHeader)) return done('conflict');
        // Still inside the transaction: the put is queued before it can commit.
        onSuccess(store.put(applyAppend(value, plan), key), () => done('ok'));
      });
    });
    if (result === 'ok') {
      this.counters.appends++;
      this.counters.bytesWritten += plan.newHeader.length + plan.tail.length;
    } else if (result === 'conflict') {
      this.counters.appendConflicts++;
    }
    return result;
  }

  async delete(key: string): Promise<boolean> {
    checkKey('IndexedDBStore.delete', key);
    const existed = await this.transact<boolean>('readwrite', (store, done) => {
      onSuccess(store.count(key), (n) => {
        if (n === 0) return done(false);
        onSuccess(store.delete(key), () => done(true));
      });
    });
    if (existed) this.counters.deletes++;
    return existed;
  }

  stats(): StoreStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.db != null) (await this.db).close();
    this.db = null;
  }

  private async readMany(keys: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    if (keys.length === 0) return [];
    const values = await this.transact<Array<Uint8Array | undefined>>('readonly', (store, done) => {
      const out = new Array<Uint8Array | undefined>(keys.length);
      let pending = keys.length;
      keys.forEach((key, i) => onSuccess(store.get(key), (raw) => {
        out[i] = toBytes(raw);
        if (--pending === 0) done(out);
      }));
    });
    for (const v of values) {
      if (v === undefined) this.counters.misses++;
      else {
        this.counters.hits++;
        this.counters.bytesRead += v.length;
      }
    }
    return values;
  }

  /**
   * Runs `body` in one transaction; resolves with the value passed to `done` once the transaction
   * has COMMITTED (so a resolved write is durable), rejects with CacheStoreError if it aborts.
   */
  private async transact<T>(mode: IDBTransactionMode, body: (store: IDBObjectStore, done: (value: T) => void) => void): Promise<T> {
    if (this.closed) throw new Error('IndexedDBStore: the store was closed');
    const db = await this.open();
    return new Promise<T>((resolve, reject) => {
      let result: { value: T } | null = null;
      let tx: IDBTransaction;
      try {
        tx = db.transaction(this.storeName, mode);
      } catch (e) {
        this.counters.errors++;
        reject(new CacheStoreError(`IndexedDBStore: cannot start a transaction on '${this.storeName}'`, e));
        return;
      }
      tx.oncomplete = () => (result ? resolve(result.value) : reject(new CacheStoreError('IndexedDBStore: transaction ended without a result')));
      tx.onabort = tx.onerror = () => {
        this.counters.errors++;
        reject(new CacheStoreError(`IndexedDBStore: transaction failed: ${tx.error?.message ?? 'aborted'}`, tx.error));
      };
      body(tx.objectStore(this.storeName), (value) => {
        result = { value };
      });
    });
  }

  private open(): Promise<IDBDatabase> {
    if (this.db == null) {
      this.db = new Promise<IDBDatabase>((resolve, reject) => {
        const request = (this.factory as IDBFactory).open(this.dbName, DB_VERSION);
        request.onupgradeneeded = () => {
          if (!request.result.objectStoreNames.contains(this.storeName)) request.result.createObjectStore(this.storeName);
        };
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(new CacheStoreError(`IndexedDBStore: cannot open database '${this.dbName}'`, request.error));
        request.onblocked = () => reject(new CacheStoreError(`IndexedDBStore: database '${this.dbName}' is blocked by another connection`));
      });
      // A failed open is retried on the next call rather than cached forever.
      this.db.catch(() => { this.db = null; });
    }
    return this.db;
  }
}

function onSuccess<R>(request: IDBRequest<R>, then: (result: R) => void): void {
  request.onsuccess = () => then(request.result);
}

/** Stored values are Uint8Arrays; anything else (written by other code) reads as corrupt bytes, not a crash. */
function toBytes(raw: unknown): Uint8Array | undefined {
  if (raw === undefined) return undefined;
  if (raw instanceof Uint8Array) return raw;
  if (raw instanceof ArrayBuffer) return new Uint8Array(raw);
  return new Uint8Array(0);
}
