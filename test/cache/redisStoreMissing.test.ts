// Without ioredis installed, RedisStore says what to install instead of a bare module error.
jest.mock('ioredis', () => {
  throw new Error("Cannot find module 'ioredis'");
});

import { CacheStoreError } from '../../src/cache/errors';
import { RedisStore } from '../../src/cache/redisStore';

it('explains that ioredis is an optional peer to install', async () => {
  const err = await RedisStore.connect({ url: 'redis://127.0.0.1:1' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CacheStoreError);
  expect(String(err)).toMatch(/needs the 'ioredis' package, an optional peer dependency of collectivekv: npm install ioredis/);
});
