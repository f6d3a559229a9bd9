// The cache engine: ties a recommender model to a cache store. prefill writes a user's cache,
// append extends it with only the new tokens' K/V (compare-and-swap on the stored header), score
// decodes batches of users straight from their cached entries.
//
// Failure policy (the one rule: never score from a wrong cache): every entry is decoded with the
// model's fingerprint, so a corrupt (CRC, truncation), foreign-version or other-model (stale) entry
// is rejected by the codec's typed errors. A rejected entry, a missing one, or a store that cannot
// be reached turns into a recompute from the user's history when the caller can supply it (per
// call, or through `options.histories`), followed by a best-effort repair of the entry. Without a
// history the request fails with UnknownUserError; it never falls back to a cache it distrusts.

import { decodeCache, encodeCache, planAppend, type DecodeOptions } from './codec';
import { CacheError, CacheModelMismatchError, CacheStoreError, CacheVersionError } from './errors';
import type { CacheStore } from './store';
import type { CacheDtype, LayerLayout, UserCache } from './types';

/**
 * What the engine needs from a model. Works on host-side UserCache (the codec's shape), so the
 * engine itself never touches tensors; implementations convert with toBlocks/fromBlocks.
 * Item ids are 1..numItems (0 is padding).
 */
export interface CacheableRecommender {
  /** 32 hex chars (modelFingerprint of config and weights); entries of another model are refused. */
  readonly fingerprint: string;
  /** Layout every entry of this model has (attention layers plus any auxiliary lane). */
  readonly layouts: readonly LayerLayout[];
  readonly numItems: number;
  /** Most tokens one cache holds (the model's position window). */
  readonly maxLength: number;
  /** Caches of whole histories (each 1..maxLength items, oldest first). */
  prefill(histories: readonly (readonly number[])[]): UserCache[];
  /** The cache of `events` appended after `cache` (only the new tokens; `cache` is not changed). */
  extend(cache: UserCache, events: readonly number[]): UserCache;
  /** Scores [users x candidates] row-major from users' caches. */
  scoreFromCache(caches: readonly UserCache[], candidates: Int32Array): Float32Array;
  /** The same scores from the histories alone (no cache): the recompute path. */
  recompute(histories: readonly (readonly number[])[], candidates: Int32Array): Float32Array;
  /** The item ids a cache holds, oldest first, when the layout records them (used to slide the window). */
  historyOf?(cache: UserCache): number[];
}

/** Where the engine gets a user's full history when the cache cannot serve (undefined: unknown). */
export type HistorySource = (userIds: readonly string[]) => Promise<Array<readonly number[] | undefined>>;

export interface CacheEngineOptions {
  /** Stored value dtype (default fp32). */
  dtype?: CacheDtype;
  /** Prepended to user ids to form store keys (default 'u:'). */
  keyPrefix?: string;
  /** Fallback histories for recompute-and-repair when a call does not pass them. */
  histories?: HistorySource;
  /** Append attempts against concurrent writers before CacheAppendConflictError (default 50). */
  maxAppendAttempts?: number;
  /** Most users per score() call (default 4096). */
  maxBatch?: number;
  /**
   * Users fetched and decoded together inside one score() call (default 128): bounds the memory a
   * batch of large (full-KV) entries holds at once; chunks run one after the other.
   */
  fetchChunk?: number;
}

export interface EngineStats {
  prefills: number;
  /** append() calls applied (incremental, by CAS). */
  appends: number;
  /** Tokens appended incrementally. */
  tokensAppended: number;
  /** Appends retried because another writer changed the entry first. */
  appendRetries: number;
  /** Appends that rewrote the entry with a trailing window because the position window was full. */
  windowSlides: number;
  /** score()/topK() calls and users scored. */
  scoreCalls: number;
  usersScored: number;
  /** Users served from their cache. */
  cacheHits: number;
  /** Users with no entry. */
  misses: number;
  /** Entries rejected as corrupt or of an unreadable format version. */
  corrupt: number;
  /** Entries written by another model (fingerprint or layout mismatch). */
  stale: number;
  /** Store calls that failed (unreachable, timeout). */
  storeErrors: number;
  /** Users scored or appended by recomputing from their history. */
  recomputes: number;
  /** Entries rewritten after a recompute. */
  repairs: number;
  /** Repairs that failed (store still down); the next request tries again. */
  repairFailures: number;
  /** Cache bytes fetched by score/topK/append. */
  bytesFetched: number;
}

/** Scores of score(): row-major [userIds.length x candidates.length]. */
export interface ScoreResult {
  scores: Float32Array;
  rows: number;
  cols: number;
  /** Per user: served from its cache, or recomputed from its history. */
  sources: Array<'cache' | 'recompute'>;
}

export interface ScoreCallOptions {
  /** Histories by user id for the users whose cache cannot serve (overrides options.histories). */
  histories?: Readonly<Record<string, readonly number[]>>;
}

export interface AppendCallOptions {
  /** The user's history BEFORE `events` (used when the entry is missing, corrupt or stale). */
  history?: readonly number[];
}

export interface AppendOutcome {
  /** 'appended': new tokens only; 'created': a new user's first events; 'rebuilt': recomputed from history;
   *  'slid': rewritten with a trailing window because the position window was full. */
  kind: 'appended' | 'created' | 'rebuilt' | 'slid';
  /** Tokens in the entry after this call. */
  length: number;
}

/** The user has no usable cache and no history was given to rebuild it. */
export class UnknownUserError extends CacheError {
  constructor(readonly userIds: readonly string[], readonly reason: string) {
    super(`no usable cache for user${userIds.length > 1 ? 's' : ''} ${userIds.slice(0, 5).map((u) => JSON.stringify(u)).join(', ')}${userIds.length > 5 ? ', ...' : ''} (${reason}) and no history to recompute from`);
  }
}

type Lookup =
  | { kind: 'hit'; cache: UserCache; /** The stored header, as read (what an append must expect). */ bytes: Uint8Array }
  | { kind: 'miss' | 'corrupt' | 'stale' | 'outage'; error?: unknown };

const MAX_USER_ID = 256;

export class CacheEngine {
  readonly dtype: CacheDtype;
  readonly keyPrefix: string;
  private readonly historySource?: HistorySource;
  private readonly maxAppendAttempts: number;
  private readonly maxBatch: number;
  private readonly fetchChunk: number;
  private readonly counters: EngineStats = emptyEngineStats();
  private readonly decodeOptions: DecodeOptions;

  constructor(readonly model: CacheableRecommender, readonly store: CacheStore, options: CacheEngineOptions = {}) {
    checkModel(model);
    if (store == null || typeof store.getMany !== 'function') {
      throw new TypeError(`CacheEngine: argument 'store' must be a CacheStore (MemoryStore, RedisStore), received ${describe(store)}`);
    }
    this.dtype = options.dtype ?? 'fp32';
    if (!['fp32', 'fp16', 'int8'].includes(this.dtype)) {
      throw new RangeError(`CacheEngine: options.dtype must be 'fp32', 'fp16' or 'int8', received ${String(this.dtype)}`);
    }
    this.keyPrefix = options.keyPrefix ?? 'u:';
    this.historySource = options.histories;
    this.maxAppendAttempts = positiveInt('options.maxAppendAttempts', options.maxAppendAttempts ?? 50);
    this.maxBatch = positiveInt('options.maxBatch', options.maxBatch ?? 4096);
    this.fetchChunk = positiveInt('options.fetchChunk', options.fetchChunk ?? 128);
    this.decodeOptions = { fingerprint: model.fingerprint };
  }

  // ------------------------------------------------------------------ writes

  /** Computes and stores the cache of a whole history (replaces any entry). Returns the entry's bytes. */
  async prefill(userId: string, history: readonly number[]): Promise<number> {
    checkUserId('prefill', userId);
    const items = this.checkItems('prefill', 'history', history, 1);
    const bytes = this.encode(this.model.prefill([this.window(items)])[0]);
    await this.store.set(this.key(userId), bytes);
    this.counters.prefills++;
    return bytes.length;
  }

  /**
   * Appends `events` to the user's cache, computing only their K/V. The entry is read, the new
   * tokens computed from it, and the store applies them only if the header is still the one read
   * (CAS): a concurrent append forces a re-read and a recompute of the new tokens, whose positions
   * and attention context depend on everything before them. A missing entry is created from
   * `history` + events (or from the events alone: a new user); a corrupt or stale one is rebuilt
   * from `history`, or refused with UnknownUserError when none is given.
   */
  async append(userId: string, events: readonly number[], options: AppendCallOptions = {}): Promise<AppendOutcome> {
    checkUserId('append', userId);
    const items = this.checkItems('append', 'events', events, 1);
    const history = options.history === undefined ? undefined : this.checkItems('append', 'options.history', options.history, 0);
    const key = this.key(userId);
    for (let attempt = 1; attempt <= this.maxAppendAttempts; attempt++) {
      const found = await this.lookup(key, true);
      if (found.kind !== 'hit') return this.rebuildForAppend(userId, key, found, items, history);
      if (found.cache.length + items.length > this.model.maxLength) return this.slide(key, found.cache, items);
      const tokens = this.model.extend(found.cache, items);
      const result = await this.storeCall(() => this.store.append(key, planAppend(found.bytes, tokens, this.decodeOptions)));
      if (result === 'ok') {
        this.counters.appends++;
        this.counters.tokensAppended += items.length;
        return { kind: 'appended', length: found.cache.length + items.length };
      }
      this.counters.appendRetries++;
      await backoff(attempt);
    }
    throw new CacheError(`CacheEngine.append: the entry of user ${JSON.stringify(userId)} kept changing under ${this.maxAppendAttempts} attempts`);
  }

  private async rebuildForAppend(
    userId: string, key: string, found: Lookup, items: readonly number[], history: readonly number[] | undefined,
  ): Promise<AppendOutcome> {
    if (found.kind === 'outage') throw new CacheStoreError(`CacheEngine.append: store unreachable for user ${JSON.stringify(userId)}`, found.error);
    const prior = history ?? (found.kind === 'miss' ? [] : undefined);
    if (prior === undefined) throw new UnknownUserError([userId], `${found.kind} entry`);
    const full = this.window([...prior, ...items]);
    await this.storeCall(() => this.store.set(key, this.encode(this.model.prefill([full])[0])));
    if (found.kind === 'miss' && history === undefined) {
      this.counters.prefills++;
      return { kind: 'created', length: full.length };
    }
    this.counters.recomputes++;
    this.counters.repairs++;
    return { kind: 'rebuilt', length: full.length };
  }

  /**
   * The position window is full: rewrite the entry with the most recent half window plus the new
   * events (amortizes the full prefill over maxLength/2 appends). Needs the item ids, which the
   * model must be able to read back from the cache (historyOf). This rewrite is a plain set: an
   * append racing with it can be lost (appends themselves are CAS).
   */
  private async slide(key: string, cache: UserCache, items: readonly number[]): Promise<AppendOutcome> {
    if (this.model.historyOf === undefined) {
      throw new RangeError(`CacheEngine.append: the history would exceed the model's window of ${this.model.maxLength} tokens and the model cannot read item ids back from its cache (historyOf)`);
    }
    const keep = Math.max(0, Math.floor(this.model.maxLength / 2) - items.length);
    const full = this.window([...this.model.historyOf(cache).slice(cache.length - keep), ...items]);
    await this.storeCall(() => this.store.set(key, this.encode(this.model.prefill([full])[0])));
    this.counters.windowSlides++;
    return { kind: 'slid', length: full.length };
  }

  /** Deletes the user's entry; true when there was one. */
  async delete(userId: string): Promise<boolean> {
    checkUserId('delete', userId);
    return this.storeCall(() => this.store.delete(this.key(userId)));
  }

  // ------------------------------------------------------------------ reads

  /**
   * Scores [userIds x candidates] from the users' caches in one batched fetch and one batched
   * decode. Users whose entry is missing, corrupt, stale or unreachable are recomputed from their
   * history (options.histories, else the engine's history source) and their entry repaired.
   */
  async score(userIds: readonly string[], candidates: readonly number[], options: ScoreCallOptions = {}): Promise<ScoreResult> {
    if (!Array.isArray(userIds) || userIds.length < 1 || userIds.length > this.maxBatch) {
      throw new RangeError(`CacheEngine.score: argument 'userIds' must be an array of 1..${this.maxBatch} user ids, received ${Array.isArray(userIds) ? `${userIds.length} ids` : describe(userIds)}`);
    }
    userIds.forEach((u, i) => checkUserId('score', u, `userIds[${i}]`));
    const cands = Int32Array.from(this.checkItems('score', 'candidates', candidates, 1));
    const scores = new Float32Array(userIds.length * cands.length);
    const sources: Array<'cache' | 'recompute'> = [];
    for (let from = 0; from < userIds.length; from += this.fetchChunk) {
      const ids = userIds.slice(from, from + this.fetchChunk);
      const part = await this.scoreChunk(ids, cands, options);
      scores.set(part.scores, from * cands.length);
      sources.push(...part.sources);
    }
    this.counters.scoreCalls++;
    this.counters.usersScored += userIds.length;
    return { scores, rows: userIds.length, cols: cands.length, sources };
  }

  private async scoreChunk(userIds: readonly string[], cands: Int32Array, options: ScoreCallOptions): Promise<Omit<ScoreResult, 'rows' | 'cols'>> {
    const lookups = await this.lookupMany(userIds.map((u) => this.key(u)));
    const scores = new Float32Array(userIds.length * cands.length);
    const hits: number[] = [];
    const fallbacks: number[] = [];
    lookups.forEach((l, i) => (l.kind === 'hit' ? hits : fallbacks).push(i));
    if (hits.length > 0) {
      const caches = hits.map((i) => (lookups[i] as Extract<Lookup, { kind: 'hit' }>).cache);
      placeRows(scores, this.model.scoreFromCache(caches, cands), hits, cands.length);
    }
    if (fallbacks.length > 0) await this.recomputeRows(userIds, lookups, fallbacks, cands, scores, options);
    return { scores, sources: lookups.map((l) => (l.kind === 'hit' ? 'cache' : 'recompute')) };
  }

  /** The k best next items over the whole catalog (ids 1..numItems), best first. */
  async topK(userId: string, k: number, options: ScoreCallOptions = {}): Promise<Array<{ item: number; score: number }>> {
    checkUserId('topK', userId);
    if (!Number.isInteger(k) || k < 1 || k > this.model.numItems) {
      throw new RangeError(`CacheEngine.topK: argument 'k' must be an integer in [1, ${this.model.numItems}], received ${String(k)}`);
    }
    const all = Array.from({ length: this.model.numItems }, (_, i) => i + 1);
    const { scores } = await this.score([userId], all, options);
    return topIndices(scores, k).map((i) => ({ item: i + 1, score: scores[i] }));
  }

  /** Tokens in the user's entry, or undefined when it has none or it is unusable. */
  async length(userId: string): Promise<number | undefined> {
    checkUserId('length', userId);
    const found = await this.lookup(this.key(userId), false);
    return found.kind === 'hit' ? found.cache.length : undefined;
  }

  /** The item ids stored for a user (needs model.historyOf), or undefined. */
  async storedHistory(userId: string): Promise<number[] | undefined> {
    checkUserId('storedHistory', userId);
    const found = await this.lookup(this.key(userId), false);
    return found.kind === 'hit' && this.model.historyOf ? this.model.historyOf(found.cache) : undefined;
  }

  stats(): EngineStats {
    return { ...this.counters };
  }

  // ------------------------------------------------------------------ internals

  private async recomputeRows(
    userIds: readonly string[], lookups: readonly Lookup[], rows: readonly number[], cands: Int32Array,
    scores: Float32Array, options: ScoreCallOptions,
  ): Promise<void> {
    const ids = rows.map((i) => userIds[i]);
    const histories = await this.historiesFor(ids, options);
    const unknown = ids.filter((_, j) => histories[j] === undefined || histories[j]!.length === 0);
    if (unknown.length > 0) {
      const reasons = [...new Set(rows.filter((_, j) => histories[j] === undefined).map((i) => lookups[i].kind))].join('/');
      throw new UnknownUserError(unknown, `${reasons || 'empty history'}`);
    }
    const windows = histories.map((h, j) => this.window(this.checkItems('score', `history of ${ids[j]}`, h as readonly number[], 1)));
    placeRows(scores, this.model.recompute(windows, cands), rows, cands.length);
    this.counters.recomputes += rows.length;
    await this.repair(ids, windows);
  }

  private async historiesFor(ids: readonly string[], options: ScoreCallOptions): Promise<Array<readonly number[] | undefined>> {
    const given = options.histories;
    const out: Array<readonly number[] | undefined> = ids.map((u) => (given && Object.prototype.hasOwnProperty.call(given, u) ? given[u] : undefined));
    const missing = ids.filter((_, j) => out[j] === undefined);
    if (missing.length > 0 && this.historySource) {
      const found = await this.historySource(missing);
      let m = 0;
      out.forEach((h, j) => {
        if (h === undefined) out[j] = found[m++];
      });
    }
    return out;
  }

  /** Rewrites recomputed users' entries; a store still down is counted, not thrown (the scores stand). */
  private async repair(ids: readonly string[], windows: readonly (readonly number[])[]): Promise<void> {
    const caches = this.model.prefill(windows);
    for (let j = 0; j < ids.length; j++) {
      try {
        await this.store.set(this.key(ids[j]), this.encode(caches[j]));
        this.counters.repairs++;
      } catch (e) {
        if (!(e instanceof CacheStoreError)) throw e;
        this.counters.storeErrors++;
        this.counters.repairFailures++;
      }
    }
  }

  private async lookup(key: string, throwOnOutage: boolean): Promise<Lookup> {
    const [found] = await this.lookupMany([key], throwOnOutage);
    return found;
  }

  /** Fetches and decodes entries; classifies each as hit / miss / corrupt / stale / outage. */
  private async lookupMany(keys: readonly string[], throwOnOutage = false): Promise<Lookup[]> {
    let values: Array<Uint8Array | undefined>;
    try {
      values = await this.store.getMany(keys);
    } catch (e) {
      if (!(e instanceof CacheStoreError)) throw e;
      this.counters.storeErrors++;
      if (throwOnOutage) throw e;
      return keys.map(() => ({ kind: 'outage', error: e }));
    }
    return values.map((v) => this.classify(v));
  }

  private classify(bytes: Uint8Array | undefined): Lookup {
    if (bytes === undefined) {
      this.counters.misses++;
      return { kind: 'miss' };
    }
    this.counters.bytesFetched += bytes.length;
    try {
      const { cache, header } = decodeCache(bytes, this.decodeOptions);
      if (!sameLayouts(header.layers, this.model.layouts)) {
        this.counters.stale++;
        return { kind: 'stale', error: new CacheModelMismatchError(this.model.fingerprint, `${header.fingerprint} (other layout)`) };
      }
      this.counters.cacheHits++;
      return { kind: 'hit', cache, bytes: bytes.subarray(0, header.headerBytes) };
    } catch (e) {
      if (e instanceof CacheModelMismatchError) {
        this.counters.stale++;
        return { kind: 'stale', error: e };
      }
      if (e instanceof CacheError || e instanceof CacheVersionError) {
        this.counters.corrupt++;
        return { kind: 'corrupt', error: e };
      }
      throw e;
    }
  }

  private async storeCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof CacheStoreError) this.counters.storeErrors++;
      throw e;
    }
  }

  private encode(cache: UserCache): Uint8Array {
    return encodeCache(cache, { fingerprint: this.model.fingerprint, dtype: this.dtype });
  }

  private key(userId: string): string {
    return this.keyPrefix + userId;
  }

  /** The most recent maxLength items (the model's window). */
  private window(items: readonly number[]): readonly number[] {
    return items.length > this.model.maxLength ? items.slice(items.length - this.model.maxLength) : items;
  }

  private checkItems(fn: string, name: string, items: unknown, min: number): number[] {
    if (!Array.isArray(items) || items.length < min) {
      throw new TypeError(`CacheEngine.${fn}: argument '${name}' must be an array of at least ${min} item id${min === 1 ? '' : 's'}, received ${Array.isArray(items) ? `${items.length} items` : describe(items)}`);
    }
    const n = this.model.numItems;
    items.forEach((x: unknown, i: number) => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > n) {
        throw new RangeError(`CacheEngine.${fn}: ${name}[${i}] must be an item id in [1, ${n}], received ${JSON.stringify(x)}`);
      }
    });
    return items as number[];
  }
}

export function emptyEngineStats(): EngineStats {
  return {
    prefills: 0, appends: 0, tokensAppended: 0, appendRetries: 0, windowSlides: 0, scoreCalls: 0, usersScored: 0,
    cacheHits: 0, misses: 0, corrupt: 0, stale: 0, storeErrors: 0, recomputes: 0, repairs: 0, repairFailures: 0, bytesFetched: 0,
  };
}

function placeRows(out: Float32Array, block: Float32Array, rows: readonly number[], cols: number): void {
  if (block.length !== rows.length * cols) {
    throw new RangeError(`CacheEngine: the model returned ${block.length} scores, expected ${rows.length} x ${cols}`);
  }
  rows.forEach((r, j) => out.set(block.subarray(j * cols, (j + 1) * cols), r * cols));
}

/** Indices of the k largest scores, best first (ties: lower index first). */
function topIndices(scores: Float32Array, k: number): number[] {
  const order = Array.from(scores.keys());
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, k);
}

function sameLayouts(a: readonly LayerLayout[], b: readonly LayerLayout[]): boolean {
  const side = (x: LayerLayout['keys'], y: LayerLayout['keys']) =>
    x.kind === y.kind && x.width === y.width && x.poolSize === y.poolSize && x.indexBytes === y.indexBytes;
  return a.length === b.length && a.every((l, i) => l.share === b[i].share && side(l.keys, b[i].keys) && side(l.values, b[i].values));
}

export function checkUserId(fn: string, userId: unknown, name = 'userId'): asserts userId is string {
  if (typeof userId !== 'string' || userId.length < 1 || userId.length > MAX_USER_ID) {
    throw new TypeError(`CacheEngine.${fn}: argument '${name}' must be a string of 1..${MAX_USER_ID} characters, received ${typeof userId === 'string' ? `${userId.length} characters` : describe(userId)}`);
  }
}

function checkModel(model: CacheableRecommender): void {
  const need = ['prefill', 'extend', 'scoreFromCache', 'recompute'] as const;
  const missing = model == null ? [...need] : need.filter((m) => typeof model[m] !== 'function');
  if (missing.length > 0) {
    throw new TypeError(`CacheEngine: argument 'model' must implement CacheableRecommender, missing ${missing.join(', ')}`);
  }
  if (!/^[0-9a-f]{32}$/i.test(model.fingerprint)) {
    throw new TypeError(`CacheEngine: model.fingerprint must be 32 hex characters, received ${JSON.stringify(model.fingerprint)}`);
  }
  positiveInt('model.numItems', model.numItems);
  positiveInt('model.maxLength', model.maxLength);
}

function positiveInt(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`CacheEngine: ${name} must be a positive integer, received ${String(n)}`);
  return n;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  return typeof x;
}

/** Jittered capped backoff so colliding appenders spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(20, 2 ** Math.min(attempt, 5));
  return new Promise((resolve) => setTimeout(resolve, ms));
}
