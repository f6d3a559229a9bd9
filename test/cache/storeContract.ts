// Behaviour every CacheStore must have; run against MemoryStore, RedisStore and Redis Cluster.
import { decodeCache, encodeCache, planAppend } from '../../src/cache/codec';
import { modelFingerprint } from '../../src/cache/fingerprint';
import { appendToStore, type CacheStore } from '../../src/cache/store';
import type { UserCache } from '../../src/cache/types';
import { randomCache, sliceCache } from './helpers';

export const FP = modelFingerprint({ contract: true }, []);

export interface StoreFixture {
  /** A client on the shared data; each call may be a new connection. Closed by the test. */
  open(): Promise<CacheStore>;
  /** The concurrent-append test must see conflicts (true where interleaving is deterministic). */
  conflictsCertain?: boolean;
}

let keySeq = 0;
function key(name: string): string {
  return `t${process.pid}:${Date.now().toString(36)}:${keySeq++}:${name}`;
}

/** Tokens whose K index is a unique id, so lost or duplicated tokens show up. */
function tokensWithIds(ids: number[]): UserCache {
  const c = randomCache([{ kPool: 70000, vPool: 70000, kWidth: 1, vWidth: 1 }], ids.length, ids[0] ?? 0);
  const k = c.layers[0].keys;
  if (k.kind === 'pooled') k.index.set(ids);
  return c;
}

function idsOf(bytes: Uint8Array): number[] {
  const k = decodeCache(bytes, { fingerprint: FP }).cache.layers[0].keys;
  return k.kind === 'pooled' ? Array.from(k.index) : [];
}

export function storeContract(fixture: () => StoreFixture): void {
  let store: CacheStore;
  beforeAll(async () => {
    store = await fixture().open();
  });
  afterAll(async () => {
    await store?.close();
  });

  it('set, get, getPrefix and delete, binary safe, returning copies', async () => {
    const k = key('basic');
    const bytes = Uint8Array.from({ length: 600 }, (_, i) => (i * 7 + 3) & 0xff);
    expect(await store.get(k)).toBeUndefined();
    await store.set(k, bytes);
    const got = await store.get(k);
    expect(got).toEqual(bytes);
    got![0] ^= 0xff;
    expect(await store.get(k)).toEqual(bytes);
    expect(await store.getPrefix(k, 10)).toEqual(bytes.subarray(0, 10));
    expect(await store.getPrefix(k, 10000)).toEqual(bytes);
    await store.set(k, bytes.subarray(0, 5));
    expect(await store.get(k)).toEqual(bytes.subarray(0, 5));
    expect(await store.delete(k)).toBe(true);
    expect(await store.delete(k)).toBe(false);
    expect(await store.get(k)).toBeUndefined();
    expect(await store.getPrefix(k, 10)).toBeUndefined();
  });

  it('getMany returns values in key order with misses, and counts them', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => key(`many${i}`));
    await Promise.all(keys.map((k, i) => (i % 3 === 0 ? Promise.resolve() : store.set(k, Uint8Array.of(i, 255 - i)))));
    const before = store.stats();
    const got = await store.getMany(keys);
    expect(got.map((v, i) => (i % 3 === 0 ? v === undefined : v !== undefined && v[0] === i && v[1] === 255 - i))).toEqual(keys.map(() => true));
    const after = store.stats();
    expect(after.hits - before.hits).toBe(26);
    expect(after.misses - before.misses).toBe(14);
    expect(after.bytesRead - before.bytesRead).toBe(52);
    expect(await store.getMany([])).toEqual([]);
  });

  it('append applies a plan once, refuses a stale one and a missing key', async () => {
    const k = key('append');
    const all = tokensWithIds([1, 2, 3, 4, 5]);
    const first = encodeCache(sliceCache(all, 0, 3), { fingerprint: FP });
    await store.set(k, first);
    const plan = planAppend(first, sliceCache(all, 3, 5));
    expect(await store.append(k, plan)).toBe('ok');
    expect(idsOf((await store.get(k))!)).toEqual([1, 2, 3, 4, 5]);
    const conflicts = store.stats().appendConflicts;
    expect(await store.append(k, plan)).toBe('conflict');
    expect(store.stats().appendConflicts).toBe(conflicts + 1);
    expect(idsOf((await store.get(k))!)).toEqual([1, 2, 3, 4, 5]);
    expect(await store.append(key('absent'), plan)).toBe('missing');
    expect(await appendToStore(store, key('absent2'), sliceCache(all, 0, 1))).toBe('missing');
    await expect(store.append(k, { ...plan, newHeader: plan.newHeader.subarray(1) })).rejects.toThrow(/plan\.newHeader must be as long as plan\.expectHeader/);
  });

  it('concurrent appends from several clients lose and duplicate nothing', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => fixture().open()));
    const k = key('race');
    await store.set(k, encodeCache(tokensWithIds([0]), { fingerprint: FP }));
    const perClient = 25;
    const conflictsBefore = clients.reduce((n, c) => n + c.stats().appendConflicts, 0);
    await Promise.all(clients.map(async (c, ci) => {
      for (let i = 0; i < perClient; i++) {
        const id = 1 + ci * perClient + i;
        // Two tokens per append, so a torn append would also show as a broken pair.
        expect(await appendToStore(c, k, tokensWithIds([id, id + 1000]), { fingerprint: FP })).toBe('ok');
      }
    }));
    const ids = idsOf((await store.get(k))!);
    expect(ids.length).toBe(1 + 2 * clients.length * perClient);
    for (let i = 1; i < ids.length; i += 2) expect(ids[i + 1]).toBe(ids[i] + 1000);
    const expected = [0, ...Array.from({ length: clients.length * perClient }, (_, i) => [i + 1, i + 1001]).flat()];
    expect([...ids].sort((a, b) => a - b)).toEqual(expected.sort((a, b) => a - b));
    const conflicts = clients.reduce((n, c) => n + c.stats().appendConflicts, 0) - conflictsBefore;
    if (fixture().conflictsCertain) expect(conflicts).toBeGreaterThan(0);
    else console.log(`concurrent appends: ${conflicts} conflicts retried`);
    await Promise.all(clients.map((c) => c.close()));
  });

  it('replace writes only over the value it expects, or only when absent', async () => {
    const k = key('replace');
    const a = encodeCache(tokensWithIds([1, 2]), { fingerprint: FP });
    const b = encodeCache(tokensWithIds([3]), { fingerprint: FP });
    const c = encodeCache(tokensWithIds([4, 5, 6]), { fingerprint: FP });
    expect(await store.replace(k, a.subarray(0, 64), b)).toBe('conflict');
    expect(await store.get(k)).toBeUndefined();
    expect(await store.replace(k, undefined, a)).toBe('ok');
    expect(await store.replace(k, undefined, b)).toBe('conflict');
    expect(idsOf((await store.get(k))!)).toEqual([1, 2]);
    expect(await store.replace(k, b.subarray(0, 64), c)).toBe('conflict');
    expect(await store.replace(k, a.subarray(0, 64), b)).toBe('ok');
    expect(idsOf((await store.get(k))!)).toEqual([3]);
    expect(await store.replace(k, b, c)).toBe('ok');
    expect(idsOf((await store.get(k))!)).toEqual([4, 5, 6]);
    await expect(store.replace(k, new Uint8Array(0), c)).rejects.toThrow(/argument 'expect' must be undefined .* or non-empty bytes/);
    await expect(store.replace(k, undefined, [1] as unknown as Uint8Array)).rejects.toThrow(/argument 'bytes' must be a Uint8Array/);
  });

  it('concurrent creations of one key: exactly one wins', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => fixture().open()));
    const k = key('create');
    const results = await Promise.all(clients.flatMap((c, ci) =>
      Array.from({ length: 5 }, (_, i) => c.replace(k, undefined, encodeCache(tokensWithIds([ci * 5 + i + 1]), { fingerprint: FP })))));
    expect(results.filter((r) => r === 'ok').length).toBe(1);
    await Promise.all(clients.map((c) => c.close()));
  });

  it('rejects bad arguments with errors naming them', async () => {
    await expect(store.get('')).rejects.toThrow(/argument 'key' must be a non-empty string/);
    await expect(store.set(key('x'), [1, 2] as unknown as Uint8Array)).rejects.toThrow(/argument 'bytes' must be a Uint8Array/);
  });
}
