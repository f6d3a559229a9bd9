import { Redis } from 'ioredis';
import { encodeCache, planAppend } from '../../src/cache/codec';
import { CacheStoreError } from '../../src/cache/errors';
import { RedisStore } from '../../src/cache/redisStore';
import { dbSize, describeRedis, freePort, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../util/redis';
import { randomCache, sliceCache } from './helpers';
import { FP, storeContract } from './storeContract';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeRedis('RedisStore (standalone redis-server)', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  describe('store contract', () => {
    storeContract(() => ({ open: () => RedisStore.connect({ url: server.url, keyPrefix: 'contract:' }) }));
  });

  it('expires entries after ttlSeconds, refreshed by append', async () => {
    const store = await RedisStore.connect({ url: server.url, ttlSeconds: 2 });
    const raw = new Redis(server.url);
    try {
      const all = randomCache([{ kPool: 50, vPool: 50, kWidth: 1, vWidth: 1 }], 3);
      const first = encodeCache(sliceCache(all, 0, 2), { fingerprint: FP });
      await store.set('ttl', first);
      await raw.expire('ckv:ttl', 1); // shorten, then check that append restores the store's TTL
      expect(await store.append('ttl', planAppend(first, sliceCache(all, 2, 3)))).toBe('ok');
      expect(await raw.ttl('ckv:ttl')).toBe(2);
      await sleep(2200);
      expect(await store.get('ttl')).toBeUndefined();
      const noTtl = await RedisStore.connect({ url: server.url });
      await noTtl.set('forever', first);
      expect(await raw.ttl('ckv:forever')).toBe(-1);
      await noTtl.close();
    } finally {
      raw.disconnect();
      await store.close();
    }
  });

  it('uses a given client without closing it, and prefixes keys', async () => {
    const raw = new Redis(server.url);
    const store = await RedisStore.connect({ client: raw, keyPrefix: 'app1:' });
    await store.set('u1', Uint8Array.of(1, 2, 3));
    expect(new Uint8Array((await raw.getBuffer('app1:u1'))!)).toEqual(Uint8Array.of(1, 2, 3));
    await store.close();
    expect(await raw.ping()).toBe('PONG');
    raw.disconnect();
  });

  it('rejects bad options with errors naming them', async () => {
    await expect(RedisStore.connect({})).rejects.toThrow(/give exactly one of options\.url, options\.cluster, options\.client, received 0/);
    await expect(RedisStore.connect({ url: server.url, cluster: [] })).rejects.toThrow(/received 2/);
    await expect(RedisStore.connect({ url: 'http://user:pw@x' })).rejects.toThrow(/options\.url must start with redis:\/\/ or rediss:\/\/, received "http:\/\/\*\*\*@x"/);
    await expect(RedisStore.connect({ url: server.url, ttlSeconds: 1.5 })).rejects.toThrow(/options\.ttlSeconds must be a non-negative integer, received 1\.5/);
  });
});

describeRedis('RedisStore failures and auth', () => {
  it('fails fast with CacheStoreError while the server is down, and recovers after a restart', async () => {
    const server = await startRedis();
    const store = await RedisStore.connect({ url: server.url, commandTimeoutMs: 500 });
    try {
      await store.set('k', Uint8Array.of(9));
      await server.stop();
      const t0 = Date.now();
      await expect(store.get('k')).rejects.toThrow(CacheStoreError);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(store.stats().errors).toBeGreaterThan(0);
      await server.restart();
      let back: Uint8Array | undefined | 'error' = 'error';
      for (let i = 0; i < 50 && back === 'error'; i++) {
        back = await store.get('k').catch(() => 'error' as const);
        if (back === 'error') await sleep(100);
      }
      expect(back).toBeUndefined(); // a restarted server without persistence is empty: a miss, not an error
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('cannot connect to a port nobody listens on', async () => {
    const port = await freePort();
    await expect(RedisStore.connect({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 300 })).rejects.toThrow(CacheStoreError);
  });

  it('authenticates with a password in the URL', async () => {
    const server = await startRedis(['--requirepass', 's3cret']);
    try {
      const ok = await RedisStore.connect({ url: `redis://:s3cret@127.0.0.1:${server.port}` });
      await ok.set('a', Uint8Array.of(1));
      expect(await ok.get('a')).toEqual(Uint8Array.of(1));
      await ok.close();
      const anon = await RedisStore.connect({ url: server.url }).catch((e: Error) => e);
      const err = anon instanceof RedisStore ? await anon.get('a').catch((e: Error) => e) : anon;
      expect(err).toBeInstanceOf(CacheStoreError);
      expect(String(err)).toMatch(/NOAUTH|auth/i);
      if (anon instanceof RedisStore) await anon.close();
    } finally {
      await server.stop();
    }
  });
});

describeRedis('RedisStore on a 3-node Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 60000);
  afterAll(async () => {
    await cluster?.stop();
  });

  describe('store contract', () => {
    storeContract(() => ({ open: () => RedisStore.connect({ cluster: cluster.nodes.slice(0, 1), keyPrefix: 'c:' }) }));
  });

  it('spreads users over all nodes and fetches them back in one getMany', async () => {
    const store = await RedisStore.connect({ cluster: cluster.nodes });
    try {
      const users = Array.from({ length: 90 }, (_, i) => `user-${i}`);
      await Promise.all(users.map((u, i) => store.set(u, Uint8Array.of(i))));
      const sizes = cluster.nodes.map((n) => dbSize(n.port));
      expect(sizes.every((s) => s > 0)).toBe(true);
      const got = await store.getMany([...users, 'nobody']);
      expect(got.slice(0, 90).map((v) => v?.[0])).toEqual(users.map((_, i) => i));
      expect(got[90]).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
