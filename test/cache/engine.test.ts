import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../util/backends';
import { describeRedis, startRedis, type RedisServer } from '../util/redis';
import { CacheEngine, HistoryRequiredError, MemoryStore, RedisStore, UnknownUserError, generateSynthetic, readHeader } from 'collectivekv/internal';
import { buildSasrec, type Sasrec } from '../../src/zoo/sequential/sasrec';
import { SasrecRecommender } from '../../src/zoo/sequential/sasrecRecommender';

const data = generateSynthetic({ numUsers: 12, numItems: 60, numTopics: 6, minLength: 14, maxLength: 20, seed: 5 });
const histories = data.sequences;
const tiny = { numItems: data.numItems, maxLength: 24, hiddenDim: 16, numBlocks: 2, numHeads: 2, dropout: 0, seed: 11,
  collective: { poolSize: 32, userDim: 1 } };
const candidates = [1, 2, 3, 5, 8, 13, 21, 34, 55];

function model(attention: 'mha' | 'collectivekv', seed = 11): { sasrec: Sasrec; rec: SasrecRecommender } {
  const sasrec = buildSasrec({ ...tiny, attention, seed });
  return { sasrec, rec: new SasrecRecommender(sasrec) };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let scale = 1;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / scale;
}

beforeAll(() => useBackend('cpu'));

describe.each(['collectivekv', 'mha'] as const)('CacheEngine over SASRec (%s)', (attention) => {
  let sasrec: Sasrec;
  let rec: SasrecRecommender;
  beforeAll(() => ({ sasrec, rec } = model(attention)));
  afterAll(() => sasrec.model.dispose());

  it('append then score equals prefill of the whole history then score, and equals recompute', async () => {
    const engine = new CacheEngine(rec, new MemoryStore());
    const users = histories.slice(0, 4);
    for (let u = 0; u < users.length; u++) {
      const h = users[u];
      await engine.prefill(`whole${u}`, h);
      await engine.prefill(`grown${u}`, h.slice(0, 5));
      expect(await engine.append(`grown${u}`, h.slice(5, 6))).toEqual({ kind: 'appended', length: 6 });
      expect((await engine.append(`grown${u}`, h.slice(6))).kind).toBe('appended');
    }
    const whole = await engine.score(users.map((_, u) => `whole${u}`), candidates);
    const grown = await engine.score(users.map((_, u) => `grown${u}`), candidates);
    expect(grown.sources).toEqual(['cache', 'cache', 'cache', 'cache']);
    expect(maxRelDiff(whole.scores, grown.scores)).toBeLessThan(1e-4);
    const recomputed = rec.recompute(users, Int32Array.from(candidates));
    expect(maxRelDiff(whole.scores, recomputed)).toBeLessThan(1e-4);
    // The scores depend on the history: two users differ (a test that could not fail otherwise).
    expect(maxRelDiff(whole.scores.subarray(0, candidates.length), whole.scores.subarray(candidates.length, 2 * candidates.length))).toBeGreaterThan(1e-3);
    expect(engine.stats()).toMatchObject({ appends: 8, cacheHits: expect.any(Number), recomputes: 0 });
  });

  it('stores exactly the history (item lane) and leaks no tensors', async () => {
    const engine = new CacheEngine(rec, new MemoryStore());
    const h = histories[5];
    await engine.prefill('u', h.slice(0, 3));
    await engine.append('u', h.slice(3, 4));
    await engine.score(['u'], candidates);
    const before = tf.memory().numTensors;
    await engine.append('u', h.slice(4, 7));
    await engine.score(['u'], candidates);
    await engine.topK('u', 5);
    expect(tf.memory().numTensors).toBe(before);
    expect(await engine.storedHistory('u')).toEqual(h.slice(0, 7));
  });
});

describe('CacheEngine failure handling', () => {
  let a: ReturnType<typeof model>;
  let b: ReturnType<typeof model>;
  beforeAll(() => {
    a = model('collectivekv', 11);
    b = model('collectivekv', 12);
  });
  afterAll(() => [a, b].forEach((m) => m.sasrec.model.dispose()));

  it('models differ in fingerprint, and a stale entry from another model is never used', async () => {
    expect(a.rec.fingerprint).not.toBe(b.rec.fingerprint);
    const store = new MemoryStore();
    const mine = new CacheEngine(a.rec, store);
    const other = new CacheEngine(b.rec, store);
    const h = histories[0];
    await other.prefill('u', h);
    await expect(mine.score(['u'], candidates)).rejects.toThrow(UnknownUserError);
    await expect(mine.append('u', [1])).rejects.toThrow(HistoryRequiredError);
    expect(mine.stats().stale).toBe(2);
    const expected = a.rec.recompute([h], Int32Array.from(candidates));
    const got = await mine.score(['u'], candidates, { histories: { u: h } });
    expect(got.sources).toEqual(['recompute']);
    expect(maxRelDiff(got.scores, expected)).toBeLessThan(1e-5);
    expect(mine.stats()).toMatchObject({ recomputes: 1, repairs: 1 });
    // Repaired: now served from the cache, written by this model.
    expect(readHeader((await store.get('u:u'))!).fingerprint).toBe(a.rec.fingerprint);
    const again = await mine.score(['u'], candidates);
    expect(again.sources).toEqual(['cache']);
    expect(maxRelDiff(again.scores, expected)).toBeLessThan(1e-4);
  });

  it('a corrupt entry is recomputed from the history and repaired; without one it is refused', async () => {
    const store = new MemoryStore();
    const engine = new CacheEngine(a.rec, store);
    const h = histories[1];
    await engine.prefill('u', h);
    const bytes = (await store.get('u:u'))!;
    bytes[bytes.length - 9] ^= 0x10;
    await store.set('u:u', bytes);
    await expect(engine.score(['u'], candidates)).rejects.toThrow(/no usable cache.*corrupt/);
    const got = await engine.score(['u', 'v'], candidates, { histories: { u: h, v: histories[2] } });
    expect(got.sources).toEqual(['recompute', 'recompute']);
    expect(engine.stats()).toMatchObject({ corrupt: 2, misses: 1, recomputes: 2, repairs: 2 });
    expect((await engine.score(['u', 'v'], candidates)).sources).toEqual(['cache', 'cache']);
  });

  it('append: a new user is created, a missing entry is rebuilt from the given history, never from the events alone', async () => {
    const engine = new CacheEngine(a.rec, new MemoryStore());
    const h = histories[3];
    await expect(engine.append('new', h.slice(0, 2))).rejects.toThrow(/has no usable cache entry \(no entry\).*\[\] for a new user/);
    expect(await engine.length('new')).toBeUndefined();
    expect(await engine.append('new', h.slice(0, 2), { history: [] })).toEqual({ kind: 'created', length: 2 });
    expect(await engine.append('lost', h.slice(5, 6), { history: h.slice(0, 5) })).toEqual({ kind: 'rebuilt', length: 6 });
    expect(await engine.storedHistory('lost')).toEqual(h.slice(0, 6));
  });

  it('concurrent appends to one user lose nothing and duplicate nothing', async () => {
    const engine = new CacheEngine(a.rec, new MemoryStore());
    await engine.prefill('u', [1]);
    const events = Array.from({ length: 12 }, (_, i) => i + 2);
    await Promise.all(events.map((e) => engine.append('u', [e])));
    const stored = await engine.storedHistory('u');
    expect(stored).toHaveLength(13);
    expect([...stored!].sort((x, y) => x - y)).toEqual([1, ...events]);
    expect(engine.stats().appendRetries).toBeGreaterThan(0);
    // The interleaved result is still a consistent cache: equal to prefilling its own order.
    await engine.prefill('ref', stored!);
    const [x, y] = [await engine.score(['u'], candidates), await engine.score(['ref'], candidates)];
    expect(maxRelDiff(x.scores, y.scores)).toBeLessThan(1e-4);
  });

  it('slides the window when the history outgrows it', async () => {
    const engine = new CacheEngine(a.rec, new MemoryStore());
    const h = Array.from({ length: 30 }, (_, i) => (i % 60) + 1);
    await engine.prefill('u', h.slice(0, 24));
    expect(await engine.append('u', [h[24]])).toEqual({ kind: 'slid', length: 13 });
    expect(await engine.storedHistory('u')).toEqual(h.slice(12, 25));
    expect(await engine.append('u', h.slice(25, 30))).toEqual({ kind: 'appended', length: 18 });
    expect(await engine.storedHistory('u')).toEqual(h.slice(12, 30));
    expect(engine.stats().windowSlides).toBe(1);
  });

  it('rejects bad arguments with messages naming them', async () => {
    const engine = new CacheEngine(a.rec, new MemoryStore());
    await expect(engine.prefill('', [1])).rejects.toThrow(/userId/);
    await expect(engine.prefill('u', [0])).rejects.toThrow(/history\[0\] must be an item id in \[1, 60\], received 0/);
    await expect(engine.score(['u'], [61])).rejects.toThrow(/candidates\[0\]/);
    await expect(engine.score([], [1])).rejects.toThrow(/userIds/);
    await expect(engine.topK('u', 0)).rejects.toThrow(/'k'/);
  });
});

describeRedis('CacheEngine on Redis', () => {
  let server: RedisServer;
  let store: RedisStore;
  let m: ReturnType<typeof model>;
  beforeAll(async () => {
    m = model('collectivekv', 11);
    server = await startRedis();
    store = await RedisStore.connect({ url: server.url, commandTimeoutMs: 500 });
  });
  afterAll(async () => {
    await store.close();
    await server.stop();
    m.sasrec.model.dispose();
  });

  it('a Redis restart mid-run degrades to recompute and recovers', async () => {
    const users = ['a', 'b', 'c'];
    const known = new Map(users.map((u, i) => [u, histories[i]]));
    const engine = new CacheEngine(m.rec, store, { histories: async (ids) => ids.map((u) => known.get(u)) });
    for (const u of users) await engine.prefill(u, known.get(u)!);
    const reference = await engine.score(users, candidates);
    expect(reference.sources).toEqual(['cache', 'cache', 'cache']);

    await server.stop();
    const down = await engine.score(users, candidates);
    expect(down.sources).toEqual(['recompute', 'recompute', 'recompute']);
    expect(maxRelDiff(down.scores, reference.scores)).toBeLessThan(1e-4);
    expect(engine.stats().repairFailures).toBe(3);
    await expect(engine.append('a', [1])).rejects.toThrow(/store|Redis/i);

    await server.restart();
    // Wait until ioredis has reconnected on its own.
    for (let i = 0; i < 50 && !(await store.get('probe').then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
    // Empty after the restart: misses, recomputed and repaired.
    const after = await engine.score(users, candidates);
    expect(after.sources).toEqual(['recompute', 'recompute', 'recompute']);
    expect(engine.stats()).toMatchObject({ repairs: 3, misses: 3 });
    expect(maxRelDiff(after.scores, reference.scores)).toBeLessThan(1e-4);
    const recovered = await engine.score(users, candidates);
    expect(recovered.sources).toEqual(['cache', 'cache', 'cache']);
    expect(maxRelDiff(recovered.scores, reference.scores)).toBeLessThan(1e-4);
    expect(await engine.append('a', [7])).toMatchObject({ kind: 'appended' });
  });
});
