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
    expect(lines.some((l) => l.startsWith('load:'))).toBe(true);
  });

  it('command: bad flags exit with 2', async () => {
    const spy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(await runBenchServeCommand(['--seconds', '0'])).toBe(2);
    expect(await runBenchServeCommand(['--nope'])).toBe(2);
    expect(spy.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/--seconds must be an integer/);
    spy.mockRestore();
  });

  it('refuses a non-loopback Redis URL', async () => {
    await expect(benchServe({ quick: true, redisUrl: 'redis://10.0.0.1:6379', historyLengths: [4], batchSizes: [1] })).rejects.toThrow(/loopback/);
  });
});
