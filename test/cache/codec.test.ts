import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  appendTokens, compactCache, decodeCache, encodeCache, encodedBytesFor, headerBytesFor, int8Scale, layoutOf, planAppend, readHeader,
} from '../../src/cache/codec';
import { crc32 } from '../../src/cache/crc32';
import { CacheCorruptError, CacheError, CacheModelMismatchError, CacheVersionError } from '../../src/cache/errors';
import { modelFingerprint } from '../../src/cache/fingerprint';
import { fromHalfBits, toHalfBits } from '../../src/cache/fp16';
import { sha256 } from '../../src/cache/sha256';
import type { CacheDtype, UserCache } from '../../src/cache/types';
import { LayerSpec, maxAbsError, randomCache, rng, sameBits, sliceCache } from './helpers';

const FP = modelFingerprint({ model: 'test' }, [Float32Array.of(1, 2, 3)]);
/** A fixed write id, for tests that compare the bytes of two encodes. */
const WID = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
const DTYPES: CacheDtype[] = ['fp32', 'fp16', 'int8'];
/** Pool sizes at the edges of each index width: 1, 2 and 4 bytes. */
const POOLS: Array<[number, number]> = [[256, 1], [257, 2], [65536, 2], [65537, 4]];

/** Two layers covering every share mode across the suite. */
function specsFor(pool: number): Record<string, LayerSpec[]> {
  return {
    kv: [{ kPool: pool, vPool: pool, kWidth: 1, vWidth: 1 }, { kPool: pool, vPool: pool, kWidth: 3, vWidth: 2 }],
    k: [{ kPool: pool, kWidth: 2, vWidth: 8 }],
    v: [{ vPool: pool, kWidth: 8, vWidth: 4 }],
    mixed: [{ kPool: pool, vPool: pool, kWidth: 0, vWidth: 2 }, { kWidth: 6, vWidth: 6 }],
  };
}

function expectSameIndices(a: UserCache, b: UserCache): void {
  a.layers.forEach((l, i) => {
    for (const s of ['keys', 'values'] as const) {
      const x = l[s];
      const y = b.layers[i][s];
      expect(y.kind).toBe(x.kind);
      if (x.kind === 'pooled' && y.kind === 'pooled') {
        expect(Array.from(y.index)).toEqual(Array.from(x.index));
        expect(y.poolSize).toBe(x.poolSize);
      }
    }
  });
}

function floatsOf(c: UserCache): Float32Array[] {
  return c.layers.flatMap((l) => [l.keys, l.values].map((s) => (s.kind === 'pooled' ? s.user : s.values)));
}

describe('crc32 and sha256', () => {
  it('match the standard check values', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
  it('sha256 agrees with node:crypto at every padding boundary', () => {
    const next = rng(7);
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 4099]) {
      const data = Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
      const ref = createHash('sha256').update(data).digest('hex');
      expect(Buffer.from(sha256(data)).toString('hex')).toBe(ref);
    }
  });
});

describe('fp16', () => {
  it('round trips every non-NaN half bit pattern exactly', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const x = fromHalfBits(h);
      const nanBits = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (Number.isNaN(x) ? !nanBits : toHalfBits(x) !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });
  it('rounds to nearest, ties to even, with overflow to infinity and underflow to zero', () => {
    expect(toHalfBits(1)).toBe(0x3c00);
    expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00); // tie: keep even
    expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: round up to even
    expect(toHalfBits(65504)).toBe(0x7bff);
    expect(toHalfBits(65519)).toBe(0x7bff);
    expect(toHalfBits(65520)).toBe(0x7c00);
    expect(toHalfBits(-Infinity)).toBe(0xfc00);
    expect(toHalfBits(2 ** -24)).toBe(1);
    expect(toHalfBits(2 ** -25)).toBe(0); // tie with 0: even
    expect(toHalfBits(3 * 2 ** -25)).toBe(2); // 1.5 subnormal steps: tie, to even
    expect(toHalfBits(-0)).toBe(0x8000);
    expect(Number.isNaN(fromHalfBits(toHalfBits(NaN)))).toBe(true);
  });
  it('picks the nearest half for random floats over the whole range', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true, min: -65504, max: 65504 }), (x) => {
        const h = toHalfBits(x);
        const d = Math.abs(fromHalfBits(h) - x);
        for (const n of [h - 1, h + 1]) {
          if ((n & 0x7fff) > 0x7bff || n < 0 || ((n ^ h) & 0x8000) !== 0) continue;
          const dn = Math.abs(fromHalfBits(n) - x);
          expect(d <= dn).toBe(true);
          if (d === dn) expect(h & 1).toBe(0);
        }
      }),
      { numRuns: 20000 },
    );
  });
});

describe('codec round trips', () => {
  for (const [pool, indexBytes] of POOLS) {
    for (const [mode, specs] of Object.entries(specsFor(pool))) {
      it(`fp32 is bit exact: ${mode}, pool ${pool} (${indexBytes}-byte index)`, () => {
        const cache = randomCache(specs, 9, pool);
        const bytes = encodeCache(cache, { fingerprint: FP, dtype: 'fp32' });
        const { header, cache: back } = decodeCache(bytes, { fingerprint: FP });
        expect(bytes.length).toBe(encodedBytesFor(header.layers, 'fp32', 9));
        for (const l of header.layers) {
          for (const s of [l.keys, l.values]) expect(s.indexBytes).toBe(s.kind === 'pooled' ? indexBytes : 0);
        }
        expect(header.layers.map((l) => l.share)).toEqual(layoutOf(cache).map((l) => l.share));
        expectSameIndices(cache, back);
        const [a, b] = [floatsOf(cache), floatsOf(back)];
        a.forEach((x, i) => expect(sameBits(x, b[i])).toBe(true));
      });
    }
  }

  it.each(['fp16', 'int8'] as const)('%s decodes to exactly its quantized values; encoding those again gives the same bytes', (dtype) => {
    for (const [pool] of POOLS) {
      for (const specs of Object.values(specsFor(pool))) {
        const cache = randomCache(specs, 13, pool, 5);
        const bytes = encodeCache(cache, { fingerprint: FP, dtype, writeId: WID });
        const back = decodeCache(bytes).cache;
        floatsOf(cache).forEach((x, i) => {
          const width = x.length / cache.length;
          // The reference quantization, written out here: fp16 rounds each value to the nearest half;
          // int8 rounds x / s with one s per chunk and side.
          const s = width === 0 ? 0 : int8Scale(x.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
          const expected = dtype === 'fp16'
            ? x.map((v) => fromHalfBits(toHalfBits(v)))
            : x.map((v) => (Math.sign(v) * Math.min(127, Math.round(Math.abs(v) / s)) + 0) * s); // an int8 has no -0
          expect(sameBits(floatsOf(back)[i], expected)).toBe(true);
        });
        const again = encodeCache(back, { fingerprint: FP, dtype, writeId: WID });
        expect(again).toEqual(bytes);
        floatsOf(decodeCache(again).cache).forEach((x, i) => expect(sameBits(x, floatsOf(back)[i])).toBe(true));
      }
    }
  });

  it('int8 scales are fixed points, so any decoded entry encodes to the same bytes (extreme magnitudes too)', () => {
    const next = rng(21);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const magnitudes = [0, 2 ** -149, 1e-40, 1e-30, 1, 3.4028234663852886e38, 3e38];
    for (let i = 0; i < 20000; i++) {
      u[0] = Math.floor(next() * 0x7f800000);
      magnitudes.push(f[0]);
    }
    for (const m of magnitudes) {
      const s = int8Scale(m);
      expect(Number.isFinite(Math.fround(127 * s))).toBe(true);
      expect(int8Scale(Math.fround(127 * s))).toBe(s);
    }
    const extreme: UserCache = { length: 2, layers: [{ keys: { kind: 'full', width: 2, values: Float32Array.of(3.4028234663852886e38, -1e38, 2 ** -149, 0) },
      values: { kind: 'full', width: 1, values: Float32Array.of(-0, 0) } }] };
    const bytes = encodeCache(extreme, { fingerprint: FP, dtype: 'int8', writeId: WID });
    const back = decodeCache(bytes).cache;
    floatsOf(back).forEach((x) => x.forEach((v) => expect(Number.isFinite(v)).toBe(true)));
    expect(encodeCache(back, { fingerprint: FP, dtype: 'int8', writeId: WID })).toEqual(bytes);
  });

  it.each(['fp16', 'int8'] as const)('%s stays within its documented error, indices exact', (dtype) => {
    for (const [pool] of POOLS) {
      for (const specs of Object.values(specsFor(pool))) {
        const cache = randomCache(specs, 11, pool, 3);
        const back = decodeCache(encodeCache(cache, { fingerprint: FP, dtype })).cache;
        expectSameIndices(cache, back);
        const [a, b] = [floatsOf(cache), floatsOf(back)];
        // fp16: relative 2^-11 (all values here are normal halves); int8: absmax/254 per chunk and side, absmax <= 3.
        a.forEach((x, i) => {
          if (dtype === 'fp16') x.forEach((v, j) => expect(Math.abs(v - b[i][j])).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 2 ** -25));
          else expect(maxAbsError(x, b[i])).toBeLessThanOrEqual((3 / 254) * (1 + 1e-6));
        });
        // Decoding is deterministic: the decoded values re-encode to the same bytes.
        expect(encodeCache(back, { fingerprint: FP, dtype, writeId: WID })).toEqual(encodeCache(cache, { fingerprint: FP, dtype, writeId: WID }));
      }
    }
  });

  it('int8 error is bounded per chunk and side by that chunk\'s own absmax', () => {
    const cache: UserCache = { length: 2, layers: [{ keys: { kind: 'full', width: 3, values: Float32Array.of(100, -50, 1, 0.01, -0.02, 0.005) }, values: { kind: 'full', width: 1, values: Float32Array.of(0, 0) } }] };
    const expected = cache.layers[0].keys.kind === 'full' ? cache.layers[0].keys.values : new Float32Array();
    const keysOf = (bytes: Uint8Array) => {
      const back = decodeCache(bytes).cache.layers[0];
      expect(back.values.kind === 'full' && Array.from(back.values.values)).toEqual([0, 0]);
      return back.keys.kind === 'full' ? back.keys.values : new Float32Array();
    };
    // One chunk: one scale (100 / 127) for both tokens; the small token is mostly lost.
    const one = keysOf(encodeCache(cache, { fingerprint: FP, dtype: 'int8' }));
    expect(maxAbsError(one, expected)).toBeLessThanOrEqual(100 / 254 + 1e-4);
    expect(maxAbsError(one.subarray(3), expected.subarray(3))).toBeGreaterThan(0.005);
    // Appended as its own chunk, the small token gets its own scale (0.02 / 127).
    const two = keysOf(appendTokens(encodeCache(sliceCache(cache, 0, 1), { fingerprint: FP, dtype: 'int8' }), sliceCache(cache, 1, 2)));
    expect(maxAbsError(two.subarray(0, 3), expected.subarray(0, 3))).toBeLessThanOrEqual(100 / 254 + 1e-4);
    expect(maxAbsError(two.subarray(3), expected.subarray(3))).toBeLessThanOrEqual(0.02 / 254 + 1e-9);
  });

  it('refuses an empty cache at encode and at decode alike; the paper\'s per-token sizes', () => {
    const empty = randomCache(specsFor(1024).kv, 0);
    expect(() => encodeCache(empty, { fingerprint: FP })).toThrow(/cache\.length must be at least 1/);
    // The bytes an empty cache would have (T = 0, C = 0), with a valid header CRC.
    const one = encodeCache(randomCache(specsFor(1024).kv, 1), { fingerprint: FP, dtype: 'fp32' });
    const zero = one.slice(0, headerBytesFor(2));
    const v = new DataView(zero.buffer);
    v.setUint32(28, 0, true);
    v.setUint32(32, 0, true);
    v.setUint32(56, 0, true);
    v.setUint32(headerBytesFor(2) - 4, crc32(zero, 0, headerBytesFor(2) - 4), true);
    expect(() => decodeCache(zero)).toThrow(CacheCorruptError);
    expect(() => decodeCache(zero)).toThrow(/0 chunks cannot hold 0 tokens/);
    // d = 256, du = 1, pool 1024 (uint16 index): per token and module 12 B in fp32, 8 B in fp16 (the
    // default), 6 B in int8 (plus 8 B of scales per chunk), vs 2048 B for full KV in fp32.
    const pooledIn = (dtype?: CacheDtype) => readHeader(encodeCache(randomCache([{ kPool: 1024, vPool: 1024, kWidth: 1, vWidth: 1 }], 1), { fingerprint: FP, dtype }));
    expect(pooledIn('fp32').recordBytes).toBe(12);
    expect(pooledIn('fp16').recordBytes).toBe(8);
    expect(pooledIn('int8').recordBytes).toBe(6);
    expect(pooledIn()).toMatchObject({ dtype: 'fp16', recordBytes: 8 });
    const full = readHeader(encodeCache(randomCache([{ kWidth: 256, vWidth: 256 }], 1), { fingerprint: FP, dtype: 'fp32' }));
    expect(full.recordBytes).toBe(2048);
    const layers = pooledIn('int8').layers;
    expect(encodedBytesFor(layers, 'int8', 10, 3)).toBe(headerBytesFor(1) + 3 * (8 + 8) + 10 * 6);
    expect(encodedBytesFor(layers, 'fp16', 10, 3)).toBe(headerBytesFor(1) + 3 * 8 + 10 * 8);
  });

  it('rejects bad input with errors naming the argument', () => {
    const c = randomCache(specsFor(300).kv, 3);
    const bad = (mutate: (x: UserCache) => void) => {
      const x = randomCache(specsFor(300).kv, 3);
      mutate(x);
      return () => encodeCache(x, { fingerprint: FP });
    };
    expect(bad((x) => { if (x.layers[0].keys.kind === 'pooled') x.layers[0].keys.index[1] = 300; })).toThrow(/layers\[0\]\.keys\.index\[1\] must be a pool row in \[0, 300\), received 300/);
    expect(bad((x) => { if (x.layers[1].values.kind === 'pooled') x.layers[1].values.user[0] = NaN; })).toThrow(/layers\[1\]\.values\.user at token 0 must be finite/);
    expect(bad((x) => { x.length = 4; })).toThrow(/cache\.layers\[0\]\.keys\.index must hold 4 elements, received 3/);
    expect(() => encodeCache(c, { fingerprint: 'abc' })).toThrow(/options\.fingerprint must be a 32-character hex/);
    expect(() => encodeCache(c, { fingerprint: FP, dtype: 'bf16' as CacheDtype })).toThrow(/options\.dtype must be one of fp16, fp32, int8, received "bf16"/);
    const big = randomCache([{ kWidth: 1, vWidth: 1 }], 1);
    if (big.layers[0].keys.kind === 'full') big.layers[0].keys.values[0] = 70000;
    expect(() => encodeCache(big, { fingerprint: FP, dtype: 'fp16' })).toThrow(/overflows fp16 .*store it with dtype 'fp32'/);
    expect(() => encodeCache(big, { fingerprint: FP })).toThrow(/overflows fp16/);
    expect(() => encodeCache(big, { fingerprint: FP, dtype: 'int8' })).not.toThrow();
  });
});

describe('append', () => {
  it.each(DTYPES)('append then decode equals encoding the whole history (%s)', (dtype) => {
    const specs = specsFor(5000).mixed;
    const all = randomCache(specs, 20, 3);
    let bytes = encodeCache(sliceCache(all, 0, 7), { fingerprint: FP, dtype, writeId: WID });
    for (const [a, b] of [[7, 8], [8, 15], [15, 20]]) bytes = appendTokens(bytes, sliceCache(all, a, b), { fingerprint: FP });
    const whole = encodeCache(all, { fingerprint: FP, dtype, writeId: WID });
    const x = decodeCache(bytes, { fingerprint: FP });
    const y = decodeCache(whole);
    expect(x.header.chunks).toBe(4);
    if (dtype === 'int8') {
      // Each chunk has its own scales: the same values up to quantization (absmax <= 4 here), and
      // compaction, which would quantize again, keeps the chunks.
      expectSameIndices(x.cache, y.cache);
      floatsOf(x.cache).forEach((a, i) => expect(maxAbsError(a, floatsOf(all)[i])).toBeLessThanOrEqual((4 / 254) * (1 + 1e-6)));
      expect(compactCache(bytes)).toEqual(bytes);
    } else {
      expect(x.cache).toEqual(y.cache);
      expect(compactCache(bytes)).toEqual(whole);
    }
  });

  it('counts the history events the entry reflects', () => {
    const all = randomCache(specsFor(100).k, 5);
    const bytes = encodeCache(sliceCache(all, 0, 3), { fingerprint: FP, events: 40 });
    expect(readHeader(bytes).events).toBe(40);
    expect(readHeader(appendTokens(bytes, sliceCache(all, 3, 5))).events).toBe(42);
    expect(() => encodeCache(sliceCache(all, 0, 3), { fingerprint: FP, events: 2 })).toThrow(/options\.events must be an integer in \[3, /);
  });

  it('plans from the header alone and refuses another layout or model', () => {
    const all = randomCache(specsFor(100).kv, 5);
    const bytes = encodeCache(sliceCache(all, 0, 3), { fingerprint: FP });
    const plan = planAppend(bytes.subarray(0, headerBytesFor(2)), sliceCache(all, 3, 5));
    expect(plan.newHeader.length).toBe(plan.expectHeader.length);
    expect(plan.expectHeader).toEqual(bytes.subarray(0, headerBytesFor(2)));
    expect(() => planAppend(bytes, randomCache(specsFor(101).kv, 1))).toThrow(/tokens must have the stored layout/);
    expect(() => planAppend(bytes, sliceCache(all, 3, 3))).toThrow(/tokens\.length must be at least 1/);
    const other = modelFingerprint({ model: 'other' }, []);
    expect(() => planAppend(bytes, sliceCache(all, 3, 5), { fingerprint: other })).toThrow(CacheModelMismatchError);
  });
});

describe('decoding rejects every damage', () => {
  const small = (): Uint8Array => {
    const all = randomCache([{ kPool: 300, vPool: 300, kWidth: 1, vWidth: 1 }, { kWidth: 2, vWidth: 1 }], 4, 9);
    return appendTokens(encodeCache(sliceCache(all, 0, 3), { fingerprint: FP, dtype: 'fp16' }), sliceCache(all, 3, 4));
  };

  it('every truncation', () => {
    const bytes = small();
    for (let n = 0; n < bytes.length; n++) {
      expect(() => decodeCache(bytes.subarray(0, n))).toThrow(CacheCorruptError);
    }
    expect(() => decodeCache(bytes)).not.toThrow();
  });

  it('every single flipped bit and every byte replaced by its complement', () => {
    const bytes = small();
    let rejected = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [1, 2, 4, 8, 16, 32, 64, 128, 0xff]) {
        const bad = bytes.slice();
        bad[i] ^= mask;
        expect(() => decodeCache(bad)).toThrow(CacheError);
        rejected++;
      }
    }
    expect(rejected).toBe(bytes.length * 9);
  });

  it('any byte changed to any other value, and trailing garbage (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 1, max: 30 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (seed, len, pos, mask) => {
        const bytes = encodeCache(randomCache(specsFor(70000).mixed, len, seed), { fingerprint: FP, dtype: 'int8' });
        const bad = bytes.slice();
        bad[pos % bytes.length] ^= mask;
        expect(() => decodeCache(bad)).toThrow(CacheError);
        const longer = new Uint8Array(bytes.length + 1 + (pos % 7));
        longer.set(bytes);
        expect(() => decodeCache(longer)).toThrow(CacheCorruptError);
      }),
      { numRuns: 300 },
    );
  });

  it('another version and another model with their own error classes', () => {
    const bytes = small();
    const newer = bytes.slice();
    newer[4] = 3;
    expect(() => decodeCache(newer)).toThrow(CacheVersionError);
    // Version 1 entries (before chunks were bound to their entry) are refused, so they get rebuilt.
    const older = bytes.slice();
    older[4] = 1;
    expect(() => decodeCache(older)).toThrow(CacheVersionError);
    const other = modelFingerprint({ model: 'test' }, [Float32Array.of(1, 2, 3.0000002)]);
    expect(() => decodeCache(bytes, { fingerprint: other })).toThrow(CacheModelMismatchError);
    expect(decodeCache(bytes, { fingerprint: FP.toUpperCase() }).header.fingerprint).toBe(FP);
  });
});

describe('chunks are bound to their position, entry and user', () => {
  const specs: LayerSpec[] = [{ kPool: 300, vPool: 300, kWidth: 2, vWidth: 2 }];
  /** An entry of 3 chunks of 2 tokens each (equal sizes, so chunks can be swapped in place). */
  const chunked = (key: string, seed: number, writeId?: Uint8Array): Uint8Array => {
    const all = randomCache(specs, 6, seed);
    let bytes = encodeCache(sliceCache(all, 0, 2), { fingerprint: FP, key, writeId });
    for (const [a, b] of [[2, 4], [4, 6]]) bytes = appendTokens(bytes, sliceCache(all, a, b));
    return bytes;
  };
  const chunkBytes = 8 + 2 * readHeader(chunked('a', 1)).recordBytes;
  const at = (c: number) => headerBytesFor(1) + c * chunkBytes;

  it('swapping two equal-sized chunks is refused', () => {
    const bytes = chunked('user-a', 1);
    expect(() => decodeCache(bytes, { key: 'user-a' })).not.toThrow();
    const swapped = bytes.slice();
    swapped.set(bytes.subarray(at(0), at(1)), at(1));
    swapped.set(bytes.subarray(at(1), at(2)), at(0));
    expect(() => decodeCache(swapped)).toThrow(CacheCorruptError);
  });

  it('a chunk spliced in from another user, or from an older write of the same user, is refused', () => {
    const a = chunked('user-a', 1);
    const b = chunked('user-b', 2);
    const spliced = a.slice();
    spliced.set(b.subarray(at(1), at(2)), at(1));
    expect(() => decodeCache(spliced)).toThrow(/CRC mismatch/);
    const older = chunked('user-a', 3);
    const mixed = a.slice();
    mixed.set(older.subarray(at(2), at(3)), at(2));
    expect(() => decodeCache(mixed)).toThrow(CacheCorruptError);
  });

  it('a whole entry stored under another key is refused when the key is given', () => {
    const a = chunked('user-a', 1);
    expect(decodeCache(a, { key: 'user-a' }).cache.length).toBe(6);
    expect(() => decodeCache(a, { key: 'user-b' })).toThrow(/written for another key/);
    expect(() => readHeader(a, { key: 'user-b' })).toThrow(CacheCorruptError);
  });

  it('NaN and infinities in stored values are refused (fp32 and fp16)', () => {
    for (const dtype of ['fp32', 'fp16'] as const) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const cache = randomCache([{ kWidth: 2, vWidth: 1 }], 1, 5);
        const bytes = encodeCache(cache, { fingerprint: FP, dtype, writeId: WID });
        // Write the non-finite value into the first stored value and fix the chunk CRC, as a
        // writer that skipped the encoder's check would.
        const first = headerBytesFor(1) + 4;
        const v = new DataView(bytes.buffer);
        if (dtype === 'fp32') v.setFloat32(first, bad, true);
        else v.setUint16(first, Number.isNaN(bad) ? 0x7e00 : bad > 0 ? 0x7c00 : 0xfc00, true);
        const end = bytes.length - 4;
        const seed = new Uint8Array(36);
        seed.set(bytes.subarray(8, 24), 0);
        seed.set(bytes.subarray(40, 56), 16);
        v.setUint32(end, crc32(bytes, headerBytesFor(1), end, crc32(seed)), true);
        expect(() => decodeCache(bytes)).toThrow(/stored value .* is not finite/);
      }
    }
  });

  it('int8 bytes the encoder never writes are refused, even under a valid CRC; so is the retired per-token int8', () => {
    const cache = randomCache([{ kPool: 300, vPool: 300, kWidth: 1, vWidth: 2 }], 2, 5);
    const bytes = encodeCache(cache, { fingerprint: FP, dtype: 'int8', writeId: WID });
    const start = headerBytesFor(1);
    // Chunk: u32 count, f32 scale K, f32 scale V, then per token [u16 index, i8 K] [u16 index, i8 i8 V].
    const forged = (edit: (v: DataView) => void): Uint8Array => {
      const b = bytes.slice();
      const v = new DataView(b.buffer);
      edit(v);
      const end = b.length - 4;
      const seed = new Uint8Array(36);
      seed.set(b.subarray(8, 24), 0);
      seed.set(b.subarray(40, 56), 16);
      v.setUint32(end, crc32(b, start, end, crc32(seed)), true);
      return b;
    };
    expect(() => decodeCache(forged(() => undefined))).not.toThrow();
    for (const bad of [NaN, Infinity, -1, -0, 3e38]) {
      expect(() => decodeCache(forged((v) => v.setFloat32(start + 4, bad, true)))).toThrow(/int8 scale .* is not one the encoder writes/);
    }
    expect(() => decodeCache(forged((v) => v.setInt8(start + 12 + 2, -128)))).toThrow(/int8 value -128 cannot have been written/);
    expect(() => decodeCache(forged((v) => {
      v.setFloat32(start + 4, 0, true);
      v.setInt8(start + 12 + 2, 5);
    }))).toThrow(/int8 value 5 cannot have been written with scale 0/);
    // Header byte 24 = 2 (int8 with a scale per token, earlier builds), header CRC fixed.
    const retired = bytes.slice();
    retired[24] = 2;
    new DataView(retired.buffer).setUint32(start - 4, crc32(retired, 0, start - 4), true);
    expect(() => decodeCache(retired)).toThrow(/value dtype code 2 .* is no longer read/);
  });

  it('null, strings and arrays are CacheCorruptErrors, not TypeErrors', () => {
    for (const x of [null, undefined, 'abc', [1, 2, 3], 42, {}]) {
      expect(() => decodeCache(x as unknown as Uint8Array)).toThrow(CacheCorruptError);
      expect(() => readHeader(x as unknown as Uint8Array)).toThrow(CacheCorruptError);
    }
  });
});

describe('modelFingerprint', () => {
  it('is deterministic, ignores key order, and sees config changes', () => {
    const pools = [Float32Array.of(0.5, -1), Float32Array.of(2)];
    expect(modelFingerprint({ a: 1, b: { c: [1, 2] } }, pools)).toBe(modelFingerprint({ b: { c: [1, 2] }, a: 1 }, pools.map((p) => p.slice())));
    expect(modelFingerprint({ a: 1 }, pools)).not.toBe(modelFingerprint({ a: 2 }, pools));
    expect(modelFingerprint({ a: 1 }, pools)).toMatch(/^[0-9a-f]{32}$/);
    // Pool boundaries are part of the hash: [0.5, -1], [2] is not [0.5], [-1, 2].
    expect(modelFingerprint({}, pools)).not.toBe(modelFingerprint({}, [Float32Array.of(0.5), Float32Array.of(-1, 2)]));
  });

  it('changes when any single pool weight changes, by one ulp or sign of zero', () => {
    const next = rng(3);
    const pools = [Float32Array.from({ length: 64 }, () => next()), Float32Array.from({ length: 48 }, () => next() - 0.5)];
    pools[1][5] = 0;
    const base = modelFingerprint({ poolSize: 16 }, pools);
    const seen = new Set([base]);
    pools.forEach((pool, p) => {
      for (let i = 0; i < pool.length; i++) {
        const changed = pools.map((q) => q.slice());
        const bits = new Uint32Array(changed[p].buffer);
        bits[i] ^= i === 5 && p === 1 ? 0x80000000 : 1; // one ulp, or 0 -> -0
        const fp = modelFingerprint({ poolSize: 16 }, changed);
        expect(seen.has(fp)).toBe(false);
        seen.add(fp);
      }
    });
  });

  it('rejects what it cannot hash faithfully', () => {
    expect(() => modelFingerprint({ a: NaN }, [])).toThrow(/config\.a must be a finite number/);
    expect(() => modelFingerprint({}, [[1, 2] as unknown as Float32Array])).toThrow(/pools\[0\] must be a Float32Array, received Array/);
  });
});
