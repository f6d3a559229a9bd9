import { MemoryStore } from '../../src/cache/memoryStore';
import type { CacheStore } from '../../src/cache/store';
import { storeContract } from './storeContract';

/** Extra "clients" of one MemoryStore share it; closing them must not clear it. */
function client(store: MemoryStore): CacheStore {
  return {
    get: (k) => store.get(k),
    getMany: (k) => store.getMany(k),
    getPrefix: (k, n) => store.getPrefix(k, n),
    set: (k, b) => store.set(k, b),
    append: (k, p) => store.append(k, p),
    replace: (k, e, b) => store.replace(k, e, b),
    delete: (k) => store.delete(k),
    stats: () => store.stats(),
    close: async () => undefined,
  };
}

describe('MemoryStore: store contract', () => {
  const shared = new MemoryStore();
  storeContract(() => ({ open: async () => client(shared), conflictsCertain: true }));
});

describe('MemoryStore: LRU under a byte budget', () => {
  const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

  it('evicts the least recently used entries to stay under budget', async () => {
    const s = new MemoryStore({ maxBytes: 300 });
    await s.set('a', bytes(100));
    await s.set('b', bytes(100));
    await s.set('c', bytes(100));
    expect(s.stats()).toMatchObject({ bytes: 300, entries: 3, evictions: 0 });
    await s.get('a'); // a is now the most recent: b goes first
    await s.set('d', bytes(100));
    expect(await s.getMany(['a', 'b', 'c', 'd'])).toEqual([bytes(100), undefined, bytes(100), bytes(100)]);
    expect(s.stats()).toMatchObject({ bytes: 300, entries: 3, evictions: 1, hits: 4, misses: 1 });
    await s.set('e', bytes(250)); // needs room for 250: drops the two least recent (a read before c, d)
    expect(s.stats()).toMatchObject({ bytes: 250, entries: 1, evictions: 4 });
  });

  it('counts overwrites once and drops an entry larger than the whole budget', async () => {
    const s = new MemoryStore({ maxBytes: 100 });
    await s.set('a', bytes(60));
    await s.set('a', bytes(40, 2));
    expect(s.stats()).toMatchObject({ bytes: 40, entries: 1, sets: 2, evictions: 0 });
    await s.set('huge', bytes(101));
    expect(await s.get('huge')).toBeUndefined();
    expect(s.stats()).toMatchObject({ bytes: 0, entries: 0 });
    await s.delete('a');
    expect(s.stats().bytes).toBe(0);
  });

  it('keeps its own copy of what it was given', async () => {
    const s = new MemoryStore();
    const b = bytes(4, 7);
    await s.set('k', b);
    b[0] = 0;
    expect(await s.get('k')).toEqual(bytes(4, 7));
  });

  it('refuses a bad budget and use after close', async () => {
    expect(() => new MemoryStore({ maxBytes: -1 })).toThrow(/options\.maxBytes must be a non-negative number, received -1/);
    const s = new MemoryStore();
    await s.close();
    await expect(s.get('k')).rejects.toThrow(/closed/);
  });
});
