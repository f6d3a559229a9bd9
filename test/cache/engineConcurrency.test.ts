// The cache never loses an acknowledged event: random interleavings of appends (new users,
// existing users, after eviction, after corruption, across the window slide), scores and store
// outages, on MemoryStore (every interleaving chosen by fast-check's scheduler) and on Redis (real
// concurrency, a restart without persistence in the middle). After all calls settle, every
// acknowledged event is in the history log exactly once, each entry holds exactly the log's window
// (in order, every token computed from its true context), and every score equals a recompute.
import fc from 'fast-check';
import {
  CacheEngine, CacheError, CacheStoreError, MemoryHistoryLog, MemoryStore, RedisStore, cacheWindowStart,
  type CacheStore, type HistoryLog,
} from '../../src/cache';
import { describeRedis, startRedis, type RedisServer } from '../util/redis';
import { TraceRecommender } from './traceRecommender';

const MAX_LENGTH = 6;
const NUM_ITEMS = 5000;
const CANDIDATES = [1, 2, 3];

type Op =
  | { kind: 'append'; user: number; events: number }
  | { kind: 'evict'; user: number }
  | { kind: 'corrupt'; user: number }
  | { kind: 'score'; user: number }
  | { kind: 'outage'; calls: number };

const opArb = (users: number, withOutage: boolean): fc.Arbitrary<Op> => fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), user: fc.nat(users - 1), events: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('evict' as const), user: fc.nat(users - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('corrupt' as const), user: fc.nat(users - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('score' as const), user: fc.nat(users - 1) }) },
  { weight: withOutage ? 1 : 0, arbitrary: fc.record({ kind: fc.constant('outage' as const), calls: fc.integer({ min: 1, max: 4 }) }) },
);

/** A store whose calls can be made to fail (an outage of the next `n` calls). */
class FlakyStore implements CacheStore {
  failNext = 0;
  constructor(private readonly inner: CacheStore, private readonly gate: <T>(f: () => Promise<T>) => Promise<T>) {}
  private call<T>(f: () => Promise<T>): Promise<T> {
    return this.gate(async () => {
      if (this.failNext > 0) {
        this.failNext--;
        throw new CacheStoreError('injected outage');
      }
      return f();
    });
  }
  get = (k: string) => this.call(() => this.inner.get(k));
  getMany = (k: readonly string[]) => this.call(() => this.inner.getMany(k));
  getPrefix = (k: string, n: number) => this.call(() => this.inner.getPrefix(k, n));
  set = (k: string, b: Uint8Array) => this.call(() => this.inner.set(k, b));
  replace = (k: string, e: Uint8Array | undefined, b: Uint8Array) => this.call(() => this.inner.replace(k, e, b));
  append = (k: string, p: Parameters<CacheStore['append']>[1]) => this.call(() => this.inner.append(k, p));
  delete = (k: string) => this.call(() => this.inner.delete(k));
  stats = () => this.inner.stats();
  close = () => this.inner.close();
}

/** A log whose calls pass through the same gate (the scheduler interleaves them with the store's). */
function gatedLog(log: MemoryHistoryLog, gate: <T>(f: () => Promise<T>) => Promise<T>): HistoryLog {
  return { read: (ids) => gate(() => log.read(ids)), append: (u, e) => gate(() => log.append(u, e)) };
}

interface RunResult {
  acknowledged: Map<string, number[]>;
}

/** Runs `ops` concurrently; returns the acknowledged events per user. Unique event ids throughout. */
async function runOps(engine: CacheEngine, raw: CacheStore, flaky: FlakyStore, ops: readonly Op[], settle: (all: Promise<unknown>) => Promise<unknown>): Promise<RunResult> {
  const acknowledged = new Map<string, number[]>();
  let nextEvent = 1;
  const tasks = ops.map(async (op) => {
    const user = `user${'user' in op ? op.user : 0}`;
    try {
      if (op.kind === 'append') {
        const events = Array.from({ length: op.events }, () => nextEvent++);
        await engine.append(user, events);
        acknowledged.set(user, [...(acknowledged.get(user) ?? []), ...events]);
      } else if (op.kind === 'evict') {
        await raw.delete(`u:${user}`);
      } else if (op.kind === 'corrupt') {
        const bytes = await raw.get(`u:${user}`);
        if (bytes !== undefined) {
          bytes[bytes.length - 3] ^= 0x40;
          await raw.set(`u:${user}`, bytes);
        }
      } else if (op.kind === 'score') {
        await engine.score([user], CANDIDATES);
      } else {
        flaky.failNext += op.calls;
      }
    } catch (e) {
      // An outage, or a user with no events yet: never an acknowledgement, never a wrong answer.
      if (!(e instanceof CacheError)) throw e;
    }
  });
  await settle(Promise.all(tasks));
  return { acknowledged };
}

async function checkInvariants(engine: CacheEngine, raw: CacheStore, log: MemoryHistoryLog, model: TraceRecommender, result: RunResult): Promise<void> {
  for (const [user, events] of result.acknowledged) {
    const history = log.historyOf(user) ?? [];
    // Every acknowledged event is in the history of record exactly once.
    for (const e of events) expect(history.filter((x) => x === e)).toHaveLength(1);
  }
  for (const user of log.users()) {
    const history = log.historyOf(user)!;
    const window = history.slice(cacheWindowStart(history.length, MAX_LENGTH));
    const { scores, sources } = await engine.score([user], CANDIDATES);
    // Every score equals a recompute from the history (the entry was repaired if it lagged).
    expect(Array.from(scores)).toEqual(Array.from(model.recompute([window], Int32Array.from(CANDIDATES))));
    if (sources[0] === 'cache') expect(await engine.storedHistory(user)).toEqual(window);
    // After a score, the entry is there and holds exactly the window, in order.
    const again = await engine.score([user], CANDIDATES);
    expect(again.sources).toEqual(['cache']);
    expect(await engine.storedHistory(user)).toEqual(window);
    expect(raw).toBeDefined();
  }
}

describe('CacheEngine under concurrency (MemoryStore, every interleaving)', () => {
  const model = new TraceRecommender(NUM_ITEMS, MAX_LENGTH);

  it('no acknowledged event is lost or doubled, and scores equal recomputes (property)', async () => {
    let acknowledgedEvents = 0;
    let retries = 0;
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.array(opArb(3, true), { minLength: 1, maxLength: 30 }), async (s, ops) => {
        const raw = new MemoryStore();
        const gate = <T>(f: () => Promise<T>): Promise<T> => s.schedule(Promise.resolve()).then(f);
        const flaky = new FlakyStore(raw, gate);
        const log = new MemoryHistoryLog();
        const engine = new CacheEngine(model, flaky, { histories: gatedLog(log, gate), maxAppendAttempts: 200 });
        const result = await runOps(engine, raw, flaky, ops, (all) => s.waitFor(all));
        flaky.failNext = 0;
        for (const events of result.acknowledged.values()) acknowledgedEvents += events.length;
        retries += engine.stats().appendRetries;
        const plain = new CacheEngine(model, raw, { histories: log });
        await checkInvariants(plain, raw, log, model, result);
        // The engine that saw the outages agrees too (its lagging users are recomputed, not served stale).
        for (const user of log.users()) {
          const history = log.historyOf(user)!;
          const window = history.slice(cacheWindowStart(history.length, MAX_LENGTH));
          const got = engine.score([user], CANDIDATES);
          const scores = (await s.waitFor(got)).scores;
          expect(Array.from(scores)).toEqual(Array.from(model.recompute([window], Int32Array.from(CANDIDATES))));
        }
      }),
      { numRuns: 150 },
    );
    // The runs did exercise the paths under test (a property over nothing could not fail).
    expect(acknowledgedEvents).toBeGreaterThan(500);
    expect(retries).toBeGreaterThan(10);
  });

  it('without a history log: appends with the prior history given are exactly-once too (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 12 }), async (s, sizes) => {
        const raw = new MemoryStore();
        const gate = <T>(f: () => Promise<T>): Promise<T> => s.schedule(Promise.resolve()).then(f);
        const engine = new CacheEngine(model, new FlakyStore(raw, gate), { maxAppendAttempts: 200 });
        await s.waitFor(engine.prefill('u', [4999]));
        let next = 1;
        const batches = sizes.map((n) => Array.from({ length: n }, () => next++));
        await s.waitFor(Promise.all(batches.map((b) => engine.append('u', b))));
        const stored = new CacheEngine(model, raw);
        const total = 1 + sizes.reduce((a, b) => a + b, 0);
        const ids = await stored.storedHistory('u');
        const kept = total - cacheWindowStart(total, MAX_LENGTH);
        expect(ids).toHaveLength(kept);
        // Each batch stays contiguous and in order; nothing appears twice.
        expect(new Set(ids).size).toBe(ids!.length);
      }),
      { numRuns: 100 },
    );
  });

  it('a repair never overwrites an append that landed after the corrupt read', async () => {
    const raw = new MemoryStore();
    const log = new MemoryHistoryLog();
    const engine = new CacheEngine(model, raw, { histories: log });
    await engine.append('u', [1, 2]);
    const bytes = (await raw.get('u:u'))!;
    bytes[bytes.length - 3] ^= 1;
    await raw.set('u:u', bytes);
    // The score reads the corrupt entry; before its repair lands, an append rebuilds the entry.
    const realReplace = raw.replace.bind(raw);
    let raced = false;
    raw.replace = async (k, e, b) => {
      if (!raced) {
        raced = true;
        await engine.append('u', [3]);
      }
      return realReplace(k, e, b);
    };
    await engine.score(['u'], CANDIDATES);
    raw.replace = realReplace;
    expect(await engine.storedHistory('u')).toEqual([1, 2, 3]);
    expect(engine.stats().repairsSuperseded).toBe(1);
  });

  it('a lost race gives up with a retryable CacheConflictError, writing nothing', async () => {
    const raw = new MemoryStore();
    const engine = new CacheEngine(model, raw, { maxAppendAttempts: 3 });
    await engine.prefill('u', [1]);
    raw.append = async () => 'conflict';
    await expect(engine.append('u', [2])).rejects.toMatchObject({ name: 'CacheConflictError', retryable: true, attempts: 3 });
    expect(await new CacheEngine(model, new MemoryStore()).length('u')).toBeUndefined();
  });
});

describeRedis('CacheEngine under concurrency (Redis)', () => {
  const model = new TraceRecommender(NUM_ITEMS, MAX_LENGTH);
  let server: RedisServer;
  let store: RedisStore;
  beforeAll(async () => {
    server = await startRedis();
    store = await RedisStore.connect({ url: server.url, commandTimeoutMs: 500, keyPrefix: 'conc:' });
  });
  afterAll(async () => {
    await store.close();
    await server.stop();
  });

  it('random concurrent operations on several clients keep every acknowledged event (property)', async () => {
    const clients = await Promise.all(Array.from({ length: 3 }, () => RedisStore.connect({ url: server.url, commandTimeoutMs: 500, keyPrefix: 'conc:' })));
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb(3, false), { minLength: 1, maxLength: 40 }), async (ops) => {
          const log = new MemoryHistoryLog();
          const prefix = `r${run++}:`;
          const engines = clients.map((c) => new CacheEngine(model, c, { histories: log, keyPrefix: prefix, maxAppendAttempts: 200 }));
          const raw = store;
          const acknowledged = new Map<string, number[]>();
          let next = 1;
          await Promise.all(ops.map(async (op, i) => {
            const engine = engines[i % engines.length];
            const user = `user${'user' in op ? op.user : 0}`;
            const key = `${prefix}${user}`;
            try {
              if (op.kind === 'append') {
                const events = Array.from({ length: op.events }, () => next++);
                await engine.append(user, events);
                acknowledged.set(user, [...(acknowledged.get(user) ?? []), ...events]);
              } else if (op.kind === 'evict') {
                await raw.delete(key);
              } else if (op.kind === 'corrupt') {
                const bytes = await raw.get(key);
                if (bytes !== undefined) {
                  bytes[bytes.length - 3] ^= 0x40;
                  await raw.replace(key, bytes.subarray(0, 40), bytes).catch(() => undefined);
                }
              } else if (op.kind === 'score') {
                await engine.score([user], CANDIDATES);
              }
            } catch (e) {
              if (!(e instanceof CacheError)) throw e;
            }
          }));
          for (const [user, events] of acknowledged) {
            const history = log.historyOf(user)!;
            for (const e of events) expect(history.filter((x) => x === e)).toHaveLength(1);
          }
          const check = new CacheEngine(model, store, { histories: log, keyPrefix: prefix });
          for (const user of log.users()) {
            const history = log.historyOf(user)!;
            const window = history.slice(cacheWindowStart(history.length, MAX_LENGTH));
            const { scores } = await check.score([user], CANDIDATES);
            expect(Array.from(scores)).toEqual(Array.from(model.recompute([window], Int32Array.from(CANDIDATES))));
            expect(await check.storedHistory(user)).toEqual(window);
          }
        }),
        { numRuns: 25 },
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('a Redis restart without persistence mid-run loses no acknowledged event', async () => {
    const log = new MemoryHistoryLog();
    const engine = new CacheEngine(model, store, { histories: log, keyPrefix: 'restart:', maxAppendAttempts: 200 });
    const acknowledged = new Map<string, number[]>();
    const users = Array.from({ length: 6 }, (_, i) => `u${i}`);
    let next = 1;
    let failed = 0;
    const appendRound = async () => {
      await Promise.all(users.map(async (user) => {
        const events = [next++, next++];
        try {
          await engine.append(user, events);
          acknowledged.set(user, [...(acknowledged.get(user) ?? []), ...events]);
        } catch (e) {
          if (!(e instanceof CacheStoreError)) throw e;
          failed++;
        }
      }));
    };
    for (let r = 0; r < 10; r++) await appendRound();
    await server.stop();
    await appendRound();
    await server.restart();
    for (let i = 0; i < 50 && !(await store.get('probe').then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
    for (let r = 0; r < 10; r++) await appendRound();
    let lost = 0;
    for (const user of users) {
      const history = log.historyOf(user)!;
      for (const e of acknowledged.get(user) ?? []) if (!history.includes(e)) lost++;
      const window = history.slice(cacheWindowStart(history.length, MAX_LENGTH));
      const { scores } = await engine.score([user], CANDIDATES);
      expect(Array.from(scores)).toEqual(Array.from(model.recompute([window], Int32Array.from(CANDIDATES))));
      expect(await engine.storedHistory(user)).toEqual(window);
    }
    expect(lost).toBe(0);
    expect(failed).toBe(users.length);
  });
});
