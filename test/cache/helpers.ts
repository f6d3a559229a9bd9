// Random user caches for the cache tests (seeded, so failures reproduce).
import type { UserCache, UserCacheSide } from '../../src/cache/types';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface LayerSpec {
  /** Pool size for a pooled side, or undefined for a full side. */
  kPool?: number;
  vPool?: number;
  /** userDim for pooled sides, width for full sides. */
  kWidth: number;
  vWidth: number;
}

function side(pool: number | undefined, width: number, length: number, next: () => number, scale: number): UserCacheSide {
  const floats = Float32Array.from({ length: length * width }, () => (next() * 2 - 1) * scale);
  if (pool === undefined) return { kind: 'full', width, values: floats };
  const index = Int32Array.from({ length }, () => Math.floor(next() * pool));
  // Exercise the extremes of the index width too.
  if (length > 0) index[0] = pool - 1;
  if (length > 1) index[1] = 0;
  return { kind: 'pooled', poolSize: pool, userDim: width, index, user: floats };
}

export function randomCache(specs: LayerSpec[], length: number, seed = 1, scale = 4): UserCache {
  const next = rng(seed);
  return {
    length,
    layers: specs.map((s) => ({
      keys: side(s.kPool, s.kWidth, length, next, scale),
      values: side(s.vPool, s.vWidth, length, next, scale),
    })),
  };
}

/** Tokens [from, to) of a cache, as a cache of their own. */
export function sliceCache(cache: UserCache, from: number, to: number): UserCache {
  const cut = (s: UserCacheSide): UserCacheSide =>
    s.kind === 'full'
      ? { kind: 'full', width: s.width, values: s.values.slice(from * s.width, to * s.width) }
      : { kind: 'pooled', poolSize: s.poolSize, userDim: s.userDim, index: s.index.slice(from, to), user: s.user.slice(from * s.userDim, to * s.userDim) };
  return { length: to - from, layers: cache.layers.map((l) => ({ keys: cut(l.keys), values: cut(l.values) })) };
}

/** Bit-level equality of float arrays (distinguishes -0 and +0). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.every((v, i) => v === y[i]);
}

export function maxAbsError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
