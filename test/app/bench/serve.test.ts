import { useBackend } from '../../util/backends';
import { HAVE_REDIS, REDIS_REQUIRED } from '../../util/redis';
import { benchServe, formatBenchServe, runBenchServeCommand } from '../../../src/app/bench/serve';

beforeAll(() => useBackend('cpu'));

describe('bench serve (quick)', () => {
  it('times the three modes on each store, and the load run with a store restart loses no acknowledged event', async () => {
    const lines: string[] = [];
    const r = await benchServe({ quick: true, historyLengths: [12], batchSizes: [1, 4], loadSeconds: 1, loadClients: 3, log: (l) => lines.push(l),
      noRedis: !HAVE_REDIS && !REDIS_REQUIRED });
    const stores = HAVE_REDIS || REDIS_REQUIRED ? ['memory', 'redis'] : ['memory'];
    expect(r.results).toHaveLength(3 * stores.length * 2);
    for (const row of r.results) {
      expect(['collectivekv', 'full', 'recompute']).toContain(row.mode);
      expect(stores).toContain(row.store);
      expect(row.historyLength).toBe(12);
      expect(row.p50Ms).toBeGreaterThan(0);
      expect(row.p99Ms).toBeGreaterThanOrEqual(row.p50Ms);
      expect(row.bytesFor10kUsers).toBe(row.bytesPerUser * 10000);
    }
    const bytes = (mode: string) => r.results.find((x) => x.mode === mode)!.bytesPerUser;
    // Entry = header + one chunk + 12 tokens of the layout's record (lane included): exact sizes.
    const rec = r.model.bytesPerToken;
    // fp16 by default: d=16, 2 blocks, pool 64 (1-byte index), userDim 1: (1 + 2) * 2 sides * 2 blocks.
    expect(r.model.cacheFormat).toBe('fp16');
    expect(rec.collectivekv).toBe(12);
    expect(rec.full).toBe(2 * 2 * 16 * 2);
    const header = 64 + 20 * (r.model.numBlocks + 1) + 8;
    expect(bytes('collectivekv')).toBe(header + 12 * (rec.collectivekv + rec.lane));
    expect(bytes('full')).toBe(header + 12 * (rec.full + rec.lane));
    expect(bytes('recompute')).toBe(12 * 4);
    expect(r.load).toMatchObject({ clients: 3, failed: 0, exact: true });
    expect(r.load.requests).toBeGreaterThan(0);
    expect(r.load.eventsAcknowledged).toBeGreaterThan(0);
    expect(r.load).toMatchObject({ eventsLost: 0, usersInconsistent: 0 });
    expect(r.load.eventsStored).toBe(r.load.eventsAcknowledged);
    expect(r.load.restartSeconds).toBeGreaterThan(0);
    expect(formatBenchServe(r)).toMatch(/full\/ckv/);
    expect(formatBenchServe(r)).toMatch(/bytes per token \(cache format fp16\): CollectiveKV 12 B, full KV 128 B/);
    expect(lines.some((l) => l.startsWith('load:'))).toBe(true);
  });

  it('--cache-format int8: entries in int8 (1 B per value, scales once per chunk), the format in the JSON', async () => {
    const r = await benchServe({ quick: true, historyLengths: [6], batchSizes: [1], loadSeconds: 0.5, loadClients: 1, noRedis: true, cacheFormat: 'int8' });
    expect(r.model.cacheFormat).toBe('int8');
    expect(r.model.bytesPerToken).toMatchObject({ collectivekv: 8, full: 64 });
    const header = 64 + 20 * (r.model.numBlocks + 1) + 8;
    const bytes = (mode: string) => r.results.find((x) => x.mode === mode)!.bytesPerUser;
    // One chunk: 4 scales (2 blocks x K, V), the item lane has no values.
    expect(bytes('collectivekv')).toBe(header + 4 * 4 + 6 * (8 + r.model.bytesPerToken.lane));
    expect(bytes('full')).toBe(header + 4 * 4 + 6 * (64 + r.model.bytesPerToken.lane));
    expect(r.load).toMatchObject({ failed: 0, exact: true });
    await expect(benchServe({ quick: true, noRedis: true, cacheFormat: 'bf16' as 'fp16' })).rejects.toThrow(/options\.cacheFormat must be one of fp16, fp32, int8, received "bf16"/);
  });

  it('command: bad flags exit with 2', async () => {
    const spy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(await runBenchServeCommand(['--seconds', '0'])).toBe(2);
    expect(await runBenchServeCommand(['--nope'])).toBe(2);
    expect(await runBenchServeCommand(['--cache-format', 'bf16'])).toBe(2);
    expect(spy.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/--seconds must be an integer/);
    expect(spy.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/--cache-format must be one of fp16, fp32, int8, received "bf16"/);
    spy.mockRestore();
  });

  it('refuses a non-loopback Redis URL', async () => {
    await expect(benchServe({ quick: true, redisUrl: 'redis://10.0.0.1:6379', historyLengths: [4], batchSizes: [1] })).rejects.toThrow(/loopback/);
  });
});
