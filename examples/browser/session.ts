// One person's session in the demo: their click history, the model's compressed KV cache for it
// (tensors, on the page's backend) and its persisted copy in a CacheStore (IndexedDB on the page).
//
// A click is one decode step: the new item's K/V source is appended to each block's cache with
// `appendToCache` (zoo `decodeStep`) and the next-item scores come from attending over that cache;
// the history is never re-run. Only the new token's bytes go to the store (CAS append).
// A reload decodes the stored entry, uploads it as cache tensors and scores the last item over it:
// again no recompute. Only a corrupt or stale entry (or a full window) is rebuilt from the history,
// which the store keeps beside the cache as the source of truth (as a server keeps its event log).
// Every tensor read here is asynchronous (`data()`, the recommender's *Async methods): on webgpu,
// tfjs-backend-webgpu 4.22's synchronous readback returns zeros on SwiftShader and loses the device.
import * as tf from '@tensorflow/tfjs-core';
import {
  CacheError, CacheModelMismatchError, appendToStore, decodeCache, encodeCache, fromBlocksAsync, toBlocks,
  type CacheStore, type UserCache, type UserCacheLayer,
} from 'collectivekv';
import { decodeStep, disposeCache, scoreHidden, type SasrecCache } from '../../src/zoo/sequential/sasrec';
import type { DemoModel } from './model';

/** Where a set of scores came from. */
export type ScoreSource = 'empty' | 'prefill' | 'decode' | 'restored' | 'rebuilt';

export interface StepResult {
  /** Scores over item ids 0..numItems (0 = padding, never recommended); empty when there is no history. */
  scores: Float32Array;
  source: ScoreSource;
  /** Model time of this step (ms), scores read back included; storage excluded. */
  decodeMs: number;
  /** Time of the store writes/reads of this step (ms). */
  storeMs: number;
  /** Why the entry was rebuilt, when it was. */
  note?: string;
}

export interface CacheFigures {
  tokens: number;
  /** Bytes of the stored entry (header, CRCs, item lane included). */
  entryBytes: number;
  /** The same tokens as a full fp32 K and V cache of every block (payload only). */
  fullKvBytes: number;
  /** Per token, over all blocks, attention part only, in the stored format (fp16, the codec's default). */
  bytesPerToken: number;
  fullKvBytesPerToken: number;
}

export class DemoSession {
  history: number[] = [];
  private cache: SasrecCache | null = null;
  private entryBytes = 0;
  private readonly candidates: Int32Array;

  constructor(private readonly model: DemoModel, private readonly store: CacheStore, readonly user = 'demo') {
    this.candidates = Int32Array.from({ length: model.recommender.numItems + 1 }, (_, i) => i);
  }

  get cacheKey(): string {
    return `cache:${this.user}`;
  }

  get historyKey(): string {
    return `history:${this.user}`;
  }

  /** Loads the stored session: decodes the entry (no recompute), or rebuilds it when it is corrupt or stale. */
  async restore(): Promise<StepResult> {
    const t0 = performance.now();
    const [bytes, historyBytes] = await this.store.getMany([this.cacheKey, this.historyKey]);
    const history = historyBytes === undefined ? [] : decodeHistory(historyBytes);
    const storeMs = performance.now() - t0;
    if (bytes === undefined && history.length === 0) return { scores: new Float32Array(0), source: 'empty', decodeMs: 0, storeMs };
    let cache: UserCache;
    try {
      if (bytes === undefined) throw new CacheError('the cache entry is missing');
      cache = decodeCache(bytes, { fingerprint: this.model.recommender.fingerprint }).cache;
    } catch (e) {
      if (!(e instanceof CacheError)) throw e;
      return this.rebuild(history, describeRejection(e));
    }
    const cachedItems = this.model.recommender.historyOf(cache);
    if (!sameItems(cachedItems, history)) {
      return this.rebuild(history, `the cache holds ${cachedItems.length} items, the history ${history.length}`);
    }
    this.history = cachedItems;
    this.entryBytes = bytes.length;
    const t1 = performance.now();
    const scores = await this.open(cache);
    return { scores, source: 'restored', decodeMs: performance.now() - t1, storeMs };
  }

  /** Adds `item` to the history: one decode step from the cache, then the new token's bytes to the store. */
  async click(item: number): Promise<StepResult> {
    if (!Number.isInteger(item) || item < 1 || item > this.model.recommender.numItems) {
      throw new RangeError(`DemoSession.click: item must be an id in 1..${this.model.recommender.numItems}, received ${item}`);
    }
    if (this.cache == null) return this.start(item);
    if (this.cache.length >= this.model.recommender.maxLength) {
      // The position window is full: keep the most recent half and start a new cache from it.
      const kept = [...this.history, item].slice(-Math.floor(this.model.recommender.maxLength / 2));
      return this.rebuild(kept, `the window of ${this.model.recommender.maxLength} positions was full; kept the last ${kept.length} items`);
    }
    const t0 = performance.now();
    const ids = tf.tensor1d([item], 'int32');
    const step = decodeStep(this.model.sasrec, this.cache, ids);
    ids.dispose();
    this.cache = step.cache;
    const scoreTensor = scoreHidden(this.model.sasrec, step.hidden);
    const scores = (await scoreTensor.data()) as Float32Array;
    tf.dispose([scoreTensor, step.hidden]);
    const decodeMs = performance.now() - t0;
    const t1 = performance.now();
    const current = await fromBlocksAsync(this.cache.blocks, 0);
    const token = withLane(lastToken(current), [item], this.model.recommender.numItems);
    this.history.push(item);
    const appended = await appendToStore(this.store, this.cacheKey, token, { fingerprint: this.model.recommender.fingerprint });
    if (appended === 'missing') await this.writeEntry(withLane(current, this.history, this.model.recommender.numItems));
    else this.entryBytes = (await this.store.get(this.cacheKey))?.length ?? 0;
    await this.store.set(this.historyKey, encodeHistory(this.history));
    return { scores, source: 'decode', decodeMs, storeMs: performance.now() - t1 };
  }

  /** Forgets the history and deletes the stored entry. */
  async reset(): Promise<void> {
    this.dropCache();
    this.history = [];
    this.entryBytes = 0;
    await this.store.delete(this.cacheKey);
    await this.store.delete(this.historyKey);
  }

  figures(): CacheFigures {
    const tokens = this.cache?.length ?? 0;
    const o = this.model.sasrec.options;
    const fullKvBytesPerToken = o.numBlocks * 2 * o.hiddenDim * 4;
    return {
      tokens, entryBytes: this.entryBytes, fullKvBytes: tokens * fullKvBytesPerToken,
      bytesPerToken: this.model.recommender.attentionBytesIn(), fullKvBytesPerToken,
    };
  }

  dispose(): void {
    this.dropCache();
  }

  /** The first click: a one-token prefill (there is no cache to append to yet). */
  private async start(item: number): Promise<StepResult> {
    const t0 = performance.now();
    const cache = (await this.model.recommender.prefillAsync([[item]]))[0];
    const scores = await this.open(cache);
    const decodeMs = performance.now() - t0;
    const t1 = performance.now();
    this.history = [item];
    await this.writeEntry(cache);
    return { scores, source: 'prefill', decodeMs, storeMs: performance.now() - t1 };
  }

  /** Recomputes the cache of `history` (prefill), stores it, and scores from it. */
  private async rebuild(history: readonly number[], note: string): Promise<StepResult> {
    if (history.length === 0) {
      await this.reset();
      return { scores: new Float32Array(0), source: 'rebuilt', decodeMs: 0, storeMs: 0, note: `${note}; no history to rebuild from, starting over` };
    }
    const t0 = performance.now();
    const cache = (await this.model.recommender.prefillAsync([history]))[0];
    const scores = await this.open(cache);
    const decodeMs = performance.now() - t0;
    const t1 = performance.now();
    this.history = history.slice();
    await this.writeEntry(cache);
    return { scores, source: 'rebuilt', decodeMs, storeMs: performance.now() - t1, note };
  }

  /** Makes `cache` the session's tensor cache and scores the last item over it. */
  private open(cache: UserCache): Promise<Float32Array> {
    this.dropCache();
    const attention: UserCache = { length: cache.length, layers: cache.layers.slice(0, -1) };
    this.cache = { blocks: toBlocks([attention]), length: cache.length };
    return this.model.recommender.scoreFromCacheAsync([cache], this.candidates);
  }

  private async writeEntry(cache: UserCache): Promise<void> {
    const bytes = encodeCache(cache, { fingerprint: this.model.recommender.fingerprint });
    await this.store.set(this.cacheKey, bytes);
    await this.store.set(this.historyKey, encodeHistory(this.history));
    this.entryBytes = bytes.length;
  }

  private dropCache(): void {
    if (this.cache != null) disposeCache(this.cache);
    this.cache = null;
  }
}

/** The cache's last token alone (what one append adds). */
function lastToken(cache: UserCache): UserCache {
  const t = cache.length - 1;
  const side = (s: UserCacheLayer['keys']): UserCacheLayer['keys'] => (s.kind === 'full'
    ? { ...s, values: s.values.slice(t * s.width, (t + 1) * s.width) }
    : { ...s, index: s.index.slice(t, t + 1), user: s.user.slice(t * s.userDim, (t + 1) * s.userDim) });
  return { length: 1, layers: cache.layers.map((l) => ({ keys: side(l.keys), values: side(l.values) })) };
}

/**
 * The recommender's item lane (see sasrecRecommender.ts): K index = item id over numItems + 1 rows,
 * V index = 0 over a 1-row pool. It must match the recommender's layout byte for byte, which the
 * codec checks on every append.
 */
function withLane(cache: UserCache, items: readonly number[], numItems: number): UserCache {
  const lane: UserCacheLayer = {
    keys: { kind: 'pooled', poolSize: numItems + 1, userDim: 0, index: Int32Array.from(items), user: new Float32Array(0) },
    values: { kind: 'pooled', poolSize: 1, userDim: 0, index: new Int32Array(items.length), user: new Float32Array(0) },
  };
  return { length: cache.length, layers: [...cache.layers, lane] };
}

function encodeHistory(items: readonly number[]): Uint8Array {
  return new Uint8Array(Int32Array.from(items).buffer);
}

function decodeHistory(bytes: Uint8Array): number[] {
  if (bytes.length % 4 !== 0) return [];
  return Array.from(new Int32Array(bytes.slice().buffer));
}

function sameItems(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A short reason for the page: corrupt (bad bytes) vs stale (another model's entry). */
function describeRejection(e: CacheError): string {
  if (e instanceof CacheModelMismatchError) return `the stored cache is stale (written by model ${e.found.slice(0, 8)}…, this is ${e.expected.slice(0, 8)}…)`;
  return `the stored cache is unreadable (${e.message})`;
}
