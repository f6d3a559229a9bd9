// A pure-JS CacheableRecommender for concurrency tests: each token stores its item (the pool
// index), its position and the item before it, so a token computed from the wrong context (a
// stale cache, a lost or duplicated event) is visible, and scores are an exact function of the
// window, equal bit for bit whether read from a cache or recomputed.
import { modelFingerprint } from '../../src/cache/fingerprint';
import type { CacheableRecommender, LayerLayout, UserCache } from '../../src/cache';

export class TraceRecommender implements CacheableRecommender {
  readonly fingerprint = modelFingerprint({ trace: true }, []);
  readonly layouts: LayerLayout[];

  constructor(readonly numItems: number, readonly maxLength: number) {
    this.layouts = [{
      share: 'k',
      keys: { kind: 'pooled', width: 1, poolSize: numItems + 1, indexBytes: numItems + 1 <= 256 ? 1 : numItems + 1 <= 65536 ? 2 : 4 },
      values: { kind: 'full', width: 1, poolSize: 0, indexBytes: 0 },
    }];
  }

  prefill(histories: readonly (readonly number[])[]): UserCache[] {
    return histories.map((h) => this.tokens(h, 0, 0));
  }

  extend(cache: UserCache, events: readonly number[]): UserCache {
    const ids = this.historyOf(cache);
    return this.tokens(events, cache.length, ids[ids.length - 1] ?? 0);
  }

  scoreFromCache(caches: readonly UserCache[], candidates: Int32Array): Float32Array {
    return this.scores(caches.map((c) => this.checkedHistory(c)), candidates);
  }

  recompute(histories: readonly (readonly number[])[], candidates: Int32Array): Float32Array {
    return this.scores(histories, candidates);
  }

  historyOf(cache: UserCache): number[] {
    const k = cache.layers[0].keys;
    return k.kind === 'pooled' ? Array.from(k.index) : [];
  }

  /** The items of a cache, after checking every token's position and previous item. */
  private checkedHistory(cache: UserCache): number[] {
    const ids = this.historyOf(cache);
    const k = cache.layers[0].keys;
    const v = cache.layers[0].values;
    ids.forEach((_, t) => {
      const position = k.kind === 'pooled' ? k.user[t] : NaN;
      const previous = v.kind === 'full' ? v.values[t] : NaN;
      if (position !== t || (t > 0 && previous !== ids[t - 1])) {
        throw new Error(`token ${t} of a cached history was computed from the wrong context (position ${position}, previous ${previous})`);
      }
    });
    return ids;
  }

  private tokens(items: readonly number[], start: number, previous: number): UserCache {
    const n = items.length;
    const user = Float32Array.from({ length: n }, (_, i) => start + i);
    const prev = Float32Array.from({ length: n }, (_, i) => (i === 0 ? previous : items[i - 1]));
    return {
      length: n,
      layers: [{
        keys: { kind: 'pooled', poolSize: this.numItems + 1, userDim: 1, index: Int32Array.from(items), user },
        values: { kind: 'full', width: 1, values: prev },
      }],
    };
  }

  /** An exact order-sensitive function of the window (small integers: no rounding anywhere). */
  private scores(histories: readonly (readonly number[])[], candidates: Int32Array): Float32Array {
    const out = new Float32Array(histories.length * candidates.length);
    histories.forEach((h, u) => {
      let hash = 0;
      for (const x of h) hash = (hash * 31 + x) % 65521;
      candidates.forEach((c, j) => (out[u * candidates.length + j] = (hash * 7 + c) % 65521));
    });
    return out;
  }
}
