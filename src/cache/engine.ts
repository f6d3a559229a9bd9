// The cache engine: ties a recommender model to a cache store. prefill writes a user's cache,
// append extends it with only the new tokens' K/V, score decodes batches of users straight from
// their cached entries. docs/cache.md states the guarantees and what a deployment must provide.
//
// Two rules. (1) Never score from a wrong cache: every entry is decoded with the model's
// fingerprint and its key, so a corrupt, foreign-version, other-model or other-user entry is
// rejected by the codec's typed errors and recomputed from the user's history (then repaired).
// (2) Never lose an acknowledged event: every write is a compare-and-swap against the entry the
// writer read (the stores' append and replace), so a concurrent write is never overwritten; the
// loser re-reads and retries, and gives up with a retryable CacheConflictError. With a HistoryLog
// the events are recorded there first, and each entry's header counts the history events it
// reflects, so an entry rebuilt from the log and a racing append never both add the same events.

import { DEFAULT_CACHE_DTYPE, checkCacheDtype, decodeCache, encodeCache, planAppend, readHeader, recordBytesFor } from './codec';
import {
  CacheConflictError, CacheError, CacheModelMismatchError, CacheStoreError, CacheVersionError, HistoryRequiredError,
} from './errors';
import { isHistoryLog, type HistoryLog, type HistorySource } from './history';
import type { CacheStore } from './store';
import type { CacheDtype, CacheHeader, LayerLayout, UserCache } from './types';

export type { HistoryLog, HistorySource } from './history';

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

export interface CacheEngineOptions {
  /**
   * How new entries store their floats: 'fp16' (the default: 2 B per value, scores within 1e-3 of
   * fp32), 'fp32' (exact) or 'int8' (1 B per value, a scale per chunk). docs/cache.md has the sizes
   * and measured errors. Appends keep the format an entry was written in.
   */
  dtype?: CacheDtype;
  /** Prepended to user ids to form store keys (default 'u:'). */
  keyPrefix?: string;
  /**
   * Users' histories of record. A HistoryLog (read and append) makes every append durable: events
   * are recorded in it before the cache changes, and a missing, corrupt or stale entry is rebuilt
   * from it. A read-only HistorySource serves scores and repairs only.
   */
  histories?: HistorySource | HistoryLog;
  /** Write attempts against concurrent writers before CacheConflictError (default 50). */
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
  /** append() calls applied incrementally (by CAS on the header). */
  appends: number;
  /** Tokens appended incrementally. */
  tokensAppended: number;
  /** Writes retried because another writer changed the entry first. */
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
  /** Repairs not written because another writer changed the entry meanwhile (its write stands). */
  repairsSuperseded: number;
  /** Events recorded in the history log by append(). */
  eventsLogged: number;
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
  /**
   * The user's history BEFORE `events` ([] for a new user), used when the entry is missing,
   * corrupt or stale and the engine has no HistoryLog. Refused together with a HistoryLog, which
   * is the history of record then.
   */
  history?: readonly number[];
}

export interface AppendOutcome {
  /** 'appended': new tokens only; 'created': a new user's first events; 'rebuilt': recomputed from history;
   *  'slid': rewritten with a trailing window because the position window was full;
   *  'present': a concurrent rebuild from the history log already included the events. */
  kind: 'appended' | 'created' | 'rebuilt' | 'slid' | 'present';
  /** Tokens in the entry after this call. */
  length: number;
}

/** The user has no usable cache and no history was given to rebuild it. */
export class UnknownUserError extends CacheError {
  constructor(readonly userIds: readonly string[], readonly reason: string) {
    super(`no usable cache for user${userIds.length > 1 ? 's' : ''} ${userIds.slice(0, 5).map((u) => JSON.stringify(u.slice(0, 64))).join(', ')}${userIds.length > 5 ? ', ...' : ''} (${reason}) and no history to recompute from`);
  }
}

type Hit = { kind: 'hit'; cache: UserCache; header: CacheHeader; /** The stored header, as read: what a write must expect. */ headerBytes: Uint8Array };
type Lookup =
  | Hit
  | { kind: 'corrupt' | 'stale'; /** The stored value, as read. */ found: Uint8Array; error: unknown }
  | { kind: 'miss' }
  | { kind: 'outage'; error: unknown };

/** A conditional write planned from one lookup: applied only if the entry is still as read. */
type PlannedWrite =
  | { kind: 'append'; plan: ReturnType<typeof planAppend>; outcome: AppendOutcome; tokens: number }
  | { kind: 'replace'; expect: Uint8Array | undefined; bytes: Uint8Array; outcome: AppendOutcome }
  | { kind: 'none'; outcome: AppendOutcome };

const MAX_USER_ID = 256;

export class CacheEngine {
  readonly dtype: CacheDtype;
  readonly keyPrefix: string;
  private readonly historySource?: HistorySource;
  private readonly historyLog?: HistoryLog;
  private readonly maxAppendAttempts: number;
  private readonly maxBatch: number;
  private readonly fetchChunk: number;
  private readonly counters: EngineStats = emptyEngineStats();
  private readonly fingerprint: string;
  /**
   * Users whose events reached the history log but whose entry could not be updated (store down,
   * lost races): their entry may lag the log, so score() recomputes them until a write succeeds.
   */
  private readonly lagging = new Set<string>();

  constructor(readonly model: CacheableRecommender, readonly store: CacheStore, options: CacheEngineOptions = {}) {
    checkModel(model);
    if (store == null || typeof store.getMany !== 'function' || typeof store.replace !== 'function') {
      throw new TypeError(`CacheEngine: argument 'store' must be a CacheStore (MemoryStore, RedisStore, IndexedDBStore), received ${describe(store)}`);
    }
    this.dtype = checkCacheDtype(options.dtype ?? DEFAULT_CACHE_DTYPE, 'CacheEngine: options.dtype');
    this.keyPrefix = options.keyPrefix ?? 'u:';
    const histories = options.histories;
    if (isHistoryLog(histories)) this.historyLog = histories;
    else if (typeof histories === 'function') this.historySource = histories;
    else if (histories !== undefined) {
      throw new TypeError(`CacheEngine: options.histories must be a HistorySource function or a HistoryLog ({read, append}), received ${describe(histories)}`);
    }
    this.maxAppendAttempts = positiveInt('options.maxAppendAttempts', options.maxAppendAttempts ?? 50);
    this.maxBatch = positiveInt('options.maxBatch', options.maxBatch ?? 4096);
    this.fetchChunk = positiveInt('options.fetchChunk', options.fetchChunk ?? 128);
    this.fingerprint = model.fingerprint.toLowerCase();
  }

  // ------------------------------------------------------------------ writes

  /**
   * Computes and stores the cache of a whole history (`history` is declared to be the user's
   * complete history: it replaces whatever entry the call reads, by compare-and-swap, so a write
   * landing meanwhile makes it re-read and retry). Returns the entry's bytes.
   */
  async prefill(userId: string, history: readonly number[]): Promise<number> {
    checkUserId('prefill', userId);
    const items = this.checkItems('prefill', 'history', history, 1);
    const key = this.key(userId);
    const bytes = this.encode(key, this.model.prefill([this.window(items)])[0], items.length);
    for (let attempt = 1; ; attempt++) {
      const stored = await this.storeCall(() => this.store.get(key));
      const result = await this.storeCall(() => this.store.replace(key, stored === undefined ? undefined : storedHeaderOrValue(stored), bytes));
      if (result === 'ok') break;
      if (attempt === this.maxAppendAttempts) throw new CacheConflictError(key, attempt);
      this.counters.appendRetries++;
      await backoff(attempt);
    }
    this.counters.prefills++;
    return bytes.length;
  }

  /**
   * Appends `events` to the user's cache, computing only their K/V. With a HistoryLog the events
   * are recorded there first. The entry is read, the new tokens computed from it, and the store
   * applies them only if the entry is still the one read (CAS): a concurrent write forces a
   * re-read and a recompute of the new tokens, whose positions and attention context depend on
   * everything before them. A missing, corrupt or stale entry is rebuilt from the history log, or
   * from `options.history` + events without one; with neither the call fails with
   * HistoryRequiredError rather than create a truncated cache.
   */
  async append(userId: string, events: readonly number[], options: AppendCallOptions = {}): Promise<AppendOutcome> {
    checkUserId('append', userId);
    const items = this.checkItems('append', 'events', events, 1);
    const history = options.history === undefined ? undefined : this.checkItems('append', 'options.history', options.history, 0);
    if (history !== undefined && this.historyLog !== undefined) {
      throw new RangeError("CacheEngine.append: options.history cannot be combined with a history log (options.histories): the log is the user's history of record");
    }
    const key = this.key(userId);
    const logged = this.historyLog === undefined ? undefined : await this.record(userId, items);
    try {
      const outcome = await this.writeLoop(key, (found) =>
        (found.kind === 'hit' ? this.planOnEntry(userId, key, found, items, logged) : this.planRebuild(userId, key, found, items, history, logged)));
      if (logged !== undefined) this.lagging.delete(userId);
      return outcome;
    } catch (e) {
      // The events are in the log: until a write succeeds, scores for this user recompute from it.
      if (logged !== undefined) this.lagging.add(userId);
      throw e;
    }
  }

  /** Records events in the history log; returns the history's length after them. */
  private async record(userId: string, items: readonly number[]): Promise<number> {
    const length = await (this.historyLog as HistoryLog).append(userId, items);
    if (!Number.isInteger(length) || length < items.length) {
      throw new CacheError(`CacheEngine.append: the history log returned length ${String(length)} after appending ${items.length} events for user ${JSON.stringify(userId.slice(0, 64))}`);
    }
    this.counters.eventsLogged += items.length;
    return length;
  }

  /**
   * Reads the entry, plans a conditional write from it and applies it, retrying from a fresh read
   * while other writers get there first.
   */
  private async writeLoop(key: string, plan: (found: Lookup) => Promise<PlannedWrite> | PlannedWrite): Promise<AppendOutcome> {
    for (let attempt = 1; attempt <= this.maxAppendAttempts; attempt++) {
      const found = await this.lookup(key, true);
      const write = await plan(found);
      if (write.kind === 'none') return write.outcome;
      const result = await this.storeCall(() =>
        (write.kind === 'append' ? this.store.append(key, write.plan) : this.store.replace(key, write.expect, write.bytes)));
      if (result === 'ok') {
        this.count(write);
        return write.outcome;
      }
      this.counters.appendRetries++;
      await backoff(attempt);
    }
    throw new CacheConflictError(key, this.maxAppendAttempts);
  }

  private count(write: PlannedWrite): void {
    if (write.kind === 'append') {
      this.counters.appends++;
      this.counters.tokensAppended += write.tokens;
    } else if (write.outcome.kind === 'slid') {
      this.counters.windowSlides++;
    } else if (write.outcome.kind === 'rebuilt') {
      this.counters.recomputes++;
      this.counters.repairs++;
    } else if (write.outcome.kind === 'created' && write.outcome.length > 0) {
      this.counters.prefills++;
    }
  }

  /**
   * The write that brings an existing entry up to date: `items` after it, or, with a log, the
   * events the entry lacks (it may miss events of an append whose write failed, or already hold
   * these ones when a concurrent rebuild read the log after they were recorded).
   */
  private async planOnEntry(userId: string, key: string, found: Hit, items: readonly number[], logged: number | undefined): Promise<PlannedWrite> {
    const have = found.header.events;
    let missing = items;
    if (logged !== undefined && have !== logged - items.length) {
      if (have >= logged) return { kind: 'none', outcome: { kind: 'present', length: found.cache.length } };
      const history = await this.logHistory(userId, logged);
      missing = history.slice(have);
    }
    const events = have + missing.length;
    const stays = cacheWindowStart(events, this.model.maxLength) === have - found.cache.length;
    if (!stays || found.cache.length + missing.length > this.model.maxLength) return this.planSlide(key, found, missing);
    const tokens = this.model.extend(found.cache, missing);
    return {
      kind: 'append', plan: planAppend(found.headerBytes, tokens), tokens: missing.length,
      outcome: { kind: 'appended', length: found.cache.length + missing.length },
    };
  }

  /**
   * The window moves (cacheWindowStart): rewrite the entry as the new window, read from the
   * entry's item ids (historyOf) and the new events.
   */
  private planSlide(key: string, found: Hit, items: readonly number[]): PlannedWrite {
    const events = found.header.events + items.length;
    const start = cacheWindowStart(events, this.model.maxLength);
    const held = found.header.events - found.cache.length;
    let ids: readonly number[] = [];
    if (start < found.header.events) {
      if (this.model.historyOf === undefined) {
        throw new RangeError(`CacheEngine.append: the history would exceed the model's window of ${this.model.maxLength} tokens and the model cannot read item ids back from its cache (historyOf)`);
      }
      ids = this.model.historyOf(found.cache).slice(Math.max(0, start - held));
    }
    const window = [...ids, ...items.slice(Math.max(0, start - found.header.events))];
    const bytes = this.encode(key, this.model.prefill([window])[0], events);
    return { kind: 'replace', expect: found.headerBytes, bytes, outcome: { kind: 'slid', length: window.length } };
  }

  /** The write that replaces a missing, corrupt or stale entry by one rebuilt from the history. */
  private async planRebuild(
    userId: string, key: string, found: Exclude<Lookup, Hit>, items: readonly number[], history: readonly number[] | undefined, logged: number | undefined,
  ): Promise<PlannedWrite> {
    if (found.kind === 'outage') throw new CacheStoreError(`CacheEngine.append: store unreachable for user ${JSON.stringify(userId.slice(0, 64))}`, found.error);
    let full: readonly number[];
    if (logged !== undefined) {
      full = await this.logHistory(userId, logged);
    } else if (history !== undefined) {
      full = [...history, ...items];
    } else {
      const why = found.kind === 'miss' ? 'no entry' : `${found.kind} entry`;
      throw new HistoryRequiredError(userId, this.historySource ? `${why}; a read-only history source cannot rebuild an append` : why);
    }
    const created = found.kind === 'miss' && full.length === items.length;
    const bytes = this.encode(key, this.model.prefill([this.window(full)])[0], full.length);
    return { kind: 'replace', expect: expectedValue(found), bytes, outcome: { kind: created ? 'created' : 'rebuilt', length: Math.min(full.length, this.model.maxLength) } };
  }

  /** The user's history in the log, which must hold at least the `logged` events recorded. */
  private async logHistory(userId: string, logged: number): Promise<readonly number[]> {
    const [history] = await (this.historyLog as HistoryLog).read([userId]);
    if (history === undefined || history.length < logged) {
      throw new CacheError(`CacheEngine.append: the history log holds ${history?.length ?? 0} events for user ${JSON.stringify(userId.slice(0, 64))} after recording ${logged}`);
    }
    return this.checkItems('append', `logged history of ${userId.slice(0, 64)}`, history, 1);
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
    lookups.forEach((l, i) => (l.kind === 'hit' && !this.lagging.has(userIds[i]) ? hits : fallbacks).push(i));
    if (hits.length > 0) {
      const caches = hits.map((i) => (lookups[i] as Hit).cache);
      placeRows(scores, this.model.scoreFromCache(caches, cands), hits, cands.length);
    }
    if (fallbacks.length > 0) await this.recomputeRows(userIds, lookups, fallbacks, cands, scores, options);
    const fromCache = new Set(hits);
    return { scores, sources: lookups.map((_, i) => (fromCache.has(i) ? 'cache' : 'recompute')) };
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

  /** Bytes one token adds to an entry this engine writes: every layer of the model's layout in `dtype` (chunk framing aside). */
  get bytesPerToken(): number {
    return recordBytesFor(this.model.layouts, this.dtype);
  }

  // ------------------------------------------------------------------ internals

  private async recomputeRows(
    userIds: readonly string[], lookups: readonly Lookup[], rows: readonly number[], cands: Int32Array,
    scores: Float32Array, options: ScoreCallOptions,
  ): Promise<void> {
    const ids = rows.map((i) => userIds[i]);
    const histories = await this.historiesFor(ids, options);
    const unknown = rows.filter((_, j) => histories[j] === undefined || histories[j]!.length === 0);
    if (unknown.length > 0) {
      const outage = unknown.find((i) => lookups[i].kind === 'outage');
      if (outage !== undefined) {
        throw new CacheStoreError(`CacheEngine.score: store unreachable and no history to recompute user ${JSON.stringify(userIds[outage].slice(0, 64))}`, (lookups[outage] as { error: unknown }).error);
      }
      const reasons = [...new Set(unknown.map((i) => (histories[rows.indexOf(i)] === undefined ? lookups[i].kind : 'empty history')))].join('/');
      throw new UnknownUserError(unknown.map((i) => userIds[i]), reasons);
    }
    const full = histories.map((h, j) => this.checkItems('score', `history of ${ids[j].slice(0, 64)}`, h as readonly number[], 1));
    const windows = full.map((h) => this.window(h));
    placeRows(scores, this.model.recompute(windows, cands), rows, cands.length);
    this.counters.recomputes += rows.length;
    await this.repair(ids, rows.map((i) => lookups[i]), windows, full.map((h) => h.length));
  }

  private async historiesFor(ids: readonly string[], options: ScoreCallOptions): Promise<Array<readonly number[] | undefined>> {
    const given = options.histories;
    const out: Array<readonly number[] | undefined> = ids.map((u) => (given && Object.prototype.hasOwnProperty.call(given, u) ? given[u] : undefined));
    const missing = ids.filter((_, j) => out[j] === undefined);
    const source = this.historyLog?.read ?? this.historySource;
    if (missing.length > 0 && source) {
      const found = await source(missing);
      let m = 0;
      out.forEach((h, j) => {
        if (h === undefined) out[j] = found[m++];
      });
    }
    return out;
  }

  /**
   * Rewrites recomputed users' entries, each only over the entry it read (a newer write stands);
   * a store still down is counted, not thrown (the scores stand).
   */
  private async repair(ids: readonly string[], found: readonly Lookup[], windows: readonly (readonly number[])[], events: readonly number[]): Promise<void> {
    const caches = this.model.prefill(windows);
    for (let j = 0; j < ids.length; j++) {
      const lookup = found[j];
      if (lookup.kind === 'outage') {
        this.counters.repairFailures++;
        continue;
      }
      const key = this.key(ids[j]);
      try {
        const result = await this.storeCall(() => this.store.replace(key, expectedValue(lookup), this.encode(key, caches[j], events[j])));
        if (result === 'ok') {
          this.counters.repairs++;
          this.lagging.delete(ids[j]);
        } else {
          this.counters.repairsSuperseded++;
        }
      } catch (e) {
        if (!(e instanceof CacheStoreError)) throw e;
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
    return values.map((v, i) => this.classify(keys[i], v));
  }

  private classify(key: string, bytes: Uint8Array | undefined): Lookup {
    if (bytes === undefined) {
      this.counters.misses++;
      return { kind: 'miss' };
    }
    this.counters.bytesFetched += bytes.length;
    try {
      const { cache, header } = decodeCache(bytes, { fingerprint: this.fingerprint, key });
      if (!sameLayouts(header.layers, this.model.layouts)) {
        this.counters.stale++;
        return { kind: 'stale', found: bytes, error: new CacheModelMismatchError(this.fingerprint, `${header.fingerprint} (other layout)`) };
      }
      this.counters.cacheHits++;
      return { kind: 'hit', cache, header, headerBytes: bytes.subarray(0, header.headerBytes) };
    } catch (e) {
      if (e instanceof CacheModelMismatchError) {
        this.counters.stale++;
        return { kind: 'stale', found: bytes, error: e };
      }
      if (e instanceof CacheError || e instanceof CacheVersionError) {
        this.counters.corrupt++;
        return { kind: 'corrupt', found: bytes, error: e };
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

  private encode(key: string, cache: UserCache, events: number): Uint8Array {
    return encodeCache(cache, { fingerprint: this.fingerprint, dtype: this.dtype, key, events });
  }

  private key(userId: string): string {
    return this.keyPrefix + userId;
  }

  /** The part of a history the cache holds and a recompute reads (cacheWindowStart). */
  private window(items: readonly number[]): readonly number[] {
    return items.slice(cacheWindowStart(items.length, this.model.maxLength));
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

/** The header of a readable entry, else the whole (damaged) value: what a write over it must expect. */
function storedHeaderOrValue(bytes: Uint8Array): Uint8Array {
  try {
    return bytes.subarray(0, readHeader(bytes).headerBytes);
  } catch {
    return bytes;
  }
}

/** What a write over `found` must expect: its header (an entry), the whole damaged value, or absence. */
function expectedValue(found: Lookup): Uint8Array | undefined {
  if (found.kind === 'hit') return found.headerBytes;
  if (found.kind === 'corrupt' || found.kind === 'stale') return found.found;
  if (found.kind === 'miss') return undefined;
  throw new CacheStoreError('CacheEngine: store unreachable', found.error);
}

/**
 * Where the cached window of a history of `events` items starts, for a model window of
 * `maxLength`: 0 until the history outgrows the window, then it jumps by half a window at a time,
 * so the cache is rewritten once per maxLength/2 events (not at every event) and holds between
 * maxLength/2 + 1 and maxLength items. A deterministic function of the history's length, so an
 * entry built by appends, by slides or by a rebuild holds the same items, and a recompute reads
 * exactly those.
 */
export function cacheWindowStart(events: number, maxLength: number): number {
  if (events <= maxLength) return 0;
  const step = Math.max(1, Math.floor(maxLength / 2));
  return Math.ceil((events - maxLength) / step) * step;
}

export function emptyEngineStats(): EngineStats {
  return {
    prefills: 0, appends: 0, tokensAppended: 0, appendRetries: 0, windowSlides: 0, scoreCalls: 0, usersScored: 0,
    cacheHits: 0, misses: 0, corrupt: 0, stale: 0, storeErrors: 0, recomputes: 0, repairs: 0, repairFailures: 0, repairsSuperseded: 0,
    eventsLogged: 0, bytesFetched: 0,
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
