// The scoring server under hostile or unlucky conditions: store outages and races, slow and
// half-open connections, oversized work, malformed input, tricky paths, DNS rebinding.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useBackend } from '../../util/backends';
import { MemoryHistoryLog, MemoryStore, generateSynthetic, type HistoryLog } from 'collectivekv/internal';
import { buildSasrec, type Sasrec } from '../../../src/zoo/sequential/sasrec';
import { SasrecRecommender } from '../../../src/zoo/sequential/sasrecRecommender';
import { scoreResponseBound, startServer, type RunningServer, type ServerOptions } from '../../../src/app/serve/server';
import { FileHistoryLog } from '../../../src/app/serve/fileHistoryLog';
import { jsonRequest, raw, request, rng, switchableStore, type Reply } from './helpers';

const data = generateSynthetic({ numUsers: 8, numItems: 40, numTopics: 4, minLength: 6, maxLength: 10, seed: 9 });
const modelOptions = { numItems: data.numItems, maxLength: 16, hiddenDim: 16, numBlocks: 1, numHeads: 2, dropout: 0, seed: 3,
  attention: 'collectivekv' as const, collective: { poolSize: 16, userDim: 1 } };
const TOKEN = 'hardening-token';

let sasrec: Sasrec;
const servers: RunningServer[] = [];

beforeAll(async () => {
  await useBackend('cpu');
  sasrec = buildSasrec(modelOptions);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  sasrec.model.dispose();
});

async function serve(options: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const server = await startServer({ model: new SasrecRecommender(sasrec), store: new MemoryStore(), ...options });
  servers.push(server);
  return server;
}

const auth = { authorization: `Bearer ${TOKEN}` };

function expectJsonError(reply: Pick<Reply, 'status' | 'json'>, status: number, message: RegExp): void {
  expect({ status: reply.status, error: reply.json?.error }).toEqual({ status, error: expect.stringMatching(message) });
}

describe('store trouble', () => {
  it('an outage is 503 with Retry-After on every route that needs the store; /healthz reports it, /readyz is 503', async () => {
    const { store, switches } = switchableStore(new MemoryStore());
    const server = await serve({ store, healthCacheMs: 0 });
    const { port } = server;
    expect((await jsonRequest(port, 'POST', '/users/alice/events', { events: [1, 2, 3], history: [] })).status).toBe(200);
    expect(await jsonRequest(port, 'GET', '/readyz')).toMatchObject({ status: 200, json: { status: 'ready', store: 'up' } });

    switches.down = true;
    for (const [method, path, body] of [
      ['POST', '/score', { userIds: ['alice'], candidates: [1, 2] }],
      ['POST', '/users/alice/events', { events: [4] }],
      ['POST', '/users/newbie/events', { events: [4], history: [] }],
      ['GET', '/users/alice/topk?k=3', undefined],
    ] as const) {
      const reply = await jsonRequest(port, method, path, body);
      expect([path, reply.status, reply.headers['retry-after']]).toEqual([path, 503, '1']);
      expect(reply.json.error).toMatch(/^cache store unavailable, retry later: /);
    }
    expect(await jsonRequest(port, 'GET', '/healthz')).toMatchObject({ status: 200, json: { status: 'ok', store: 'down' } });
    const ready = await jsonRequest(port, 'GET', '/readyz');
    expect(ready).toMatchObject({ status: 503, headers: { 'retry-after': '1' }, json: { status: 'ok', store: 'down' } });
    expect(ready.json.error).toMatch(/not ready: the cache store is unreachable \(expected store up and not draining, received store down/);
    expect((await jsonRequest(port, 'GET', '/metrics')).text).toMatch(/collectivekv_store_up 0/);

    switches.down = false;
    expect(await jsonRequest(port, 'GET', '/readyz')).toMatchObject({ status: 200, json: { status: 'ready', store: 'up' } });
    expect((await jsonRequest(port, 'POST', '/score', { userIds: ['alice'], candidates: [1, 2] })).status).toBe(200);
  });

  it('a probe that hangs counts as down after healthTimeoutMs; /healthz still answers quickly', async () => {
    const { store, switches } = switchableStore(new MemoryStore());
    const server = await serve({ store, healthTimeoutMs: 100, healthCacheMs: 0 });
    switches.hangProbe = true;
    const started = performance.now();
    expect(await jsonRequest(server.port, 'GET', '/healthz')).toMatchObject({ status: 200, json: { status: 'ok', store: 'down' } });
    const ms = performance.now() - started;
    expect(ms).toBeGreaterThanOrEqual(90);
    expect(ms).toBeLessThan(1000);
    switches.hangProbe = false;
    expect(await jsonRequest(server.port, 'GET', '/healthz')).toMatchObject({ json: { store: 'up' } });
  });

  it('probes the store at most once per healthCacheMs, however many checks come in', async () => {
    const { store, switches } = switchableStore(new MemoryStore());
    const server = await serve({ store, healthCacheMs: 60_000 });
    const before = switches.probes;
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => jsonRequest(server.port, 'GET', i % 2 ? '/healthz' : '/readyz')));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(switches.probes - before).toBe(1);
    // A store with ping() is asked through it instead.
    let pings = 0;
    const pinged = Object.assign(new MemoryStore(), { ping: async () => void pings++ });
    const other = await serve({ store: pinged, healthCacheMs: 0 });
    await jsonRequest(other.port, 'GET', '/healthz');
    expect(pings).toBe(1);
  });

  it('a write that keeps losing races (CacheConflictError) is 503 with Retry-After', async () => {
    const { store, switches } = switchableStore(new MemoryStore());
    const server = await serve({ store, engine: { maxAppendAttempts: 2 } });
    switches.conflict = true;
    const reply = await jsonRequest(server.port, 'POST', '/users/racer/events', { events: [1], history: [] });
    expect(reply.headers['retry-after']).toBe('1');
    expectJsonError(reply, 503, /cache entry kept changing under concurrent writers \(2 attempts\); retry the request/);
  });

  it('an append for a user with no entry and no history is 404 (HistoryRequiredError), naming the way out', async () => {
    const server = await serve();
    const reply = await jsonRequest(server.port, 'POST', '/users/newbie/events', { events: [1] });
    expectJsonError(reply, 404, /^user "newbie" has no usable cache entry \(no entry\) .*send the user's prior events as "history" \(\[\] for a new user\)/);
    expect((await jsonRequest(server.port, 'POST', '/users/newbie/events', { events: [1], history: [] })).json).toEqual({ kind: 'created', length: 1 });
  });

  it('another cache error is 409', async () => {
    const broken: HistoryLog = { read: async (ids) => ids.map(() => undefined), append: async () => 0 };
    const server = await serve({ histories: broken });
    expectJsonError(await jsonRequest(server.port, 'POST', '/users/u/events', { events: [1] }), 409, /history log returned length 0 after appending 1 events/);
  });
});

describe('transport limits', () => {
  let server: RunningServer;
  let host: string;
  beforeAll(async () => {
    server = await serve({ headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 300, maxConnections: 4 });
    host = `Host: 127.0.0.1:${server.port}\r\n`;
  });

  it('a connection that sends nothing is closed after headersTimeoutMs, with a JSON 408', async () => {
    const reply = await raw(server.port, [], { waitMs: 5000 });
    expect(reply.closed).toBe(true);
    expect(reply.ms).toBeGreaterThan(250);
    expect(reply.ms).toBeLessThan(2500);
    expectJsonError(reply, 408, /did not arrive in time/);
  });

  it('headers trickled a byte at a time (slowloris) are cut off at headersTimeoutMs', async () => {
    const trickle = 'X-Slow: '.concat('a'.repeat(80)).split('');
    const reply = await raw(server.port, [`GET /healthz HTTP/1.1\r\n${host}`, ...trickle], { gapMs: 25, waitMs: 5000 });
    expect(reply.closed).toBe(true);
    expect(reply.ms).toBeLessThan(2000);
    expectJsonError(reply, 408, /did not arrive in time/);
  });

  it('a half-sent body is cut off at requestTimeoutMs, with a JSON 408', async () => {
    const head = `POST /score HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n`;
    const reply = await raw(server.port, [head, '{"userIds": ["a'], { waitMs: 5000 });
    expect(reply.closed).toBe(true);
    expect(reply.ms).toBeGreaterThan(500);
    expect(reply.ms).toBeLessThan(3000);
    expectJsonError(reply, 408, /did not arrive in time/);
    expect((await jsonRequest(server.port, 'GET', '/healthz')).status).toBe(200);
  });

  it('an idle keep-alive connection is closed after keepAliveTimeoutMs', async () => {
    const reply = await raw(server.port, [`GET /healthz HTTP/1.1\r\n${host}Connection: keep-alive\r\n\r\n`], { waitMs: 5000 });
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ status: 'ok', store: 'up' });
    expect(reply.closed).toBe(true);
    expect(reply.ms).toBeGreaterThan(250);
    expect(reply.ms).toBeLessThan(2500);
  });

  it('holds at most maxConnections: the rest are refused at once, the idle ones time out, then it serves again', async () => {
    const replies = await Promise.all(Array.from({ length: 24 }, () => raw(server.port, [], { waitMs: 5000 })));
    expect(replies.every((r) => r.closed)).toBe(true);
    const refused = replies.filter((r) => r.status === 0 && r.ms < 250);
    const timedOut = replies.filter((r) => r.status === 408);
    expect(refused.length).toBeGreaterThanOrEqual(20);
    expect(timedOut.length).toBeLessThanOrEqual(4);
    expect(Math.max(...replies.map((r) => r.ms))).toBeLessThan(2500);
    expect((await jsonRequest(server.port, 'GET', '/healthz')).status).toBe(200);
  });

  it('oversized headers are a JSON 431, a garbled request line a JSON 400', async () => {
    const big = await raw(server.port, [`GET /healthz HTTP/1.1\r\n${host}X-Big: ${'b'.repeat(20000)}\r\n\r\n`]);
    expectJsonError(big, 431, /request headers are too large/);
    const garbled = await raw(server.port, ['GET /users/a b/topk HTTP/1.1\r\n\r\n']);
    expectJsonError(garbled, 400, /malformed HTTP request/);
    const nonsense = await raw(server.port, ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n']);
    expectJsonError(nonsense, 400, /malformed HTTP request/);
  });

  it.each([
    [{ headersTimeoutMs: 2000, requestTimeoutMs: 1000 }, /options\.headersTimeoutMs must be at most options\.requestTimeoutMs \(1000\), received 2000/],
    [{ maxConnections: 0 }, /options\.maxConnections must be an integer >= 1, received 0/],
    [{ requestTimeoutMs: 1.5 }, /options\.requestTimeoutMs must be an integer >= 1, received 1\.5/],
    [{ maxScoreCells: '100' as unknown as number }, /options\.maxScoreCells must be an integer >= 1, received "100"/],
    [{ keepAliveTimeoutMs: -1 }, /options\.keepAliveTimeoutMs must be an integer >= 1, received -1/],
  ])('refuses bad limits, naming the option: %j', async (options, message) => {
    await expect(serve(options)).rejects.toThrow(message);
  });
});

describe('work caps', () => {
  it('refuses a /score over maxScoreCells with 413, naming the limit and the received size', async () => {
    const server = await serve({ maxScoreCells: 100 });
    const users = ['a', 'b', 'c'];
    for (const u of users) await server.engine.append(u, [1, 2], { history: [] });
    const all = Array.from({ length: 40 }, (_, i) => i + 1);
    expectJsonError(await jsonRequest(server.port, 'POST', '/score', { userIds: users, candidates: all }), 413,
      /'userIds' x 'candidates' must be at most 100 scores \(maxScoreCells\), received 3 x 40 = 120/);
    expect((await jsonRequest(server.port, 'POST', '/score', { userIds: users, candidates: all.slice(0, 33) })).status).toBe(200);
  });

  it('refuses a response over maxResponseBytes before scoring, with 413; the bound holds', async () => {
    const bound = scoreResponseBound(2, 40);
    const server = await serve({ maxResponseBytes: bound - 1 });
    for (const u of ['a', 'b']) await server.engine.append(u, data.sequences[0].slice(0, 5), { history: [] });
    const all = Array.from({ length: 40 }, (_, i) => i + 1);
    const calls = server.engine.stats().scoreCalls;
    expectJsonError(await jsonRequest(server.port, 'POST', '/score', { userIds: ['a', 'b'], candidates: all }), 413,
      new RegExp(`the response would be up to ${bound} bytes \\(2 users x 40 candidates\\), over maxResponseBytes \\(${bound - 1}\\)`));
    expect(server.engine.stats().scoreCalls).toBe(calls);
    const one = await jsonRequest(server.port, 'POST', '/score', { userIds: ['a'], candidates: all });
    expect(one.status).toBe(200);
    expect(Buffer.byteLength(one.text)).toBeLessThanOrEqual(scoreResponseBound(1, 40));
    expect(Number(one.headers['content-length'])).toBe(Buffer.byteLength(one.text));
    const small = await serve({ maxResponseBytes: 1000 });
    await small.engine.append('a', [1], { history: [] });
    expectJsonError(await jsonRequest(small.port, 'GET', '/users/a/topk?k=40'), 413, /the response would be up to \d+ bytes for k=40, over maxResponseBytes \(1000\); ask for a smaller 'k'/);
    expect((await jsonRequest(small.port, 'GET', '/users/a/topk?k=5')).status).toBe(200);
  });

  it('scores in slices: the same scores as one engine call, sources per user, any slice size', async () => {
    const server = await serve({ scoreChunkUsers: 2 });
    const users = ['p', 'q', 'r', 's', 't'];
    for (const [i, u] of users.entries()) await server.engine.append(u, data.sequences[i].slice(0, 6), { history: [] });
    const candidates = Array.from({ length: 40 }, (_, i) => 40 - i);
    const reply = await jsonRequest(server.port, 'POST', '/score', { userIds: users, candidates });
    expect(reply.status).toBe(200);
    const direct = await server.engine.score(users, candidates);
    expect(reply.json.sources).toEqual(direct.sources);
    const flat = (reply.json.scores as number[][]).flat();
    expect(flat).toHaveLength(direct.scores.length);
    flat.forEach((x, i) => expect(x).toBeCloseTo(direct.scores[i], 5));
  });
});

describe('responsiveness', () => {
  let big: Sasrec;
  beforeAll(async () => {
    // The CLI's default backend; a catalog large enough for 10000 distinct candidates.
    await useBackend('wasm');
    big = buildSasrec({ ...modelOptions, numItems: 10000 });
  });
  afterAll(async () => {
    big.model.dispose();
    await useBackend('cpu');
  });

  it('answers /healthz within 100 ms (p95) while a maximal /score (64 users x 10000 candidates, ~13 MB) runs', async () => {
    const server = await serve({ model: new SasrecRecommender(big), maxBodyBytes: 2 ** 20 });
    const users = Array.from({ length: 64 }, (_, i) => `user-${i}`);
    for (const [i, u] of users.entries()) await server.engine.append(u, data.sequences[i % 8].slice(0, 6), { history: [] });
    const candidates = Array.from({ length: 10000 }, (_, i) => i + 1);
    expect(scoreResponseBound(64, 10000)).toBeLessThanOrEqual(16 * 2 ** 20);
    await fetch(`${server.url}/healthz`).then((r) => r.text());
    await server.engine.score(users.slice(0, 2), candidates.slice(0, 64)); // warm the kernels

    let done = false;
    const started = performance.now();
    const scoring = fetch(`${server.url}/score`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userIds: users, candidates }),
    }).then(async (r) => {
      const bytes = new Uint8Array(await r.arrayBuffer());
      done = true;
      return { status: r.status, bytes };
    });
    const latencies: number[] = [];
    while (!done && latencies.length < 2000) {
      const t = performance.now();
      const r = await fetch(`${server.url}/healthz`);
      await r.text();
      latencies.push(performance.now() - t);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const { status, bytes } = await scoring;
    const total = performance.now() - started;
    expect(status).toBe(200);
    expect(latencies.length).toBeGreaterThan(5);
    // The server holds the event loop ~SLICE_MS at a time; this process also runs the client, and
    // shares 2 cores with other work: most checks answer within 100 ms, none stalls for long (one
    // engine call and JSON.stringify over the whole request held it for ~1 s).
    const sorted = [...latencies].sort((a, b) => a - b);
    expect(sorted[Math.floor(0.95 * (sorted.length - 1))]).toBeLessThan(100);
    expect(sorted[sorted.length - 1]).toBeLessThan(300);
    const body = JSON.parse(Buffer.from(bytes).toString('utf8'));
    expect(body.scores).toHaveLength(64);
    expect(body.scores.every((row: number[]) => row.length === 10000)).toBe(true);
    expect(body.sources).toEqual(users.map(() => 'cache'));
    // Spot-check rows against the engine.
    const direct = await server.engine.score([users[0], users[63]], candidates.slice(0, 50));
    for (let j = 0; j < 50; j++) {
      expect(body.scores[0][j]).toBeCloseTo(direct.scores[j], 4);
      expect(body.scores[63][j]).toBeCloseTo(direct.scores[50 + j], 4);
    }
    expect(total).toBeLessThan(30000);
  });
});

describe('no 500 on any input', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serve({ maxBodyBytes: 2 ** 20 });
    await server.engine.append('alice', [1, 2, 3], { history: [] });
  });

  function expectClientError(label: string, reply: RawReply | Reply): void {
    const json = reply.json as { error?: unknown } | undefined;
    expect({ label, status: reply.status >= 400 && reply.status < 500, error: typeof json?.error }).toEqual({ label, status: true, error: 'string' });
    // Nothing the client sent is echoed at length.
    expect((json?.error as string).length).toBeLessThan(400);
  }
  type RawReply = Awaited<ReturnType<typeof raw>>;

  const deep = (n: number, open: string, close: string, inner = '1') => open.repeat(n) + inner + close.repeat(n);
  const bodies: Array<[string, string | Buffer]> = [
    ['deeply nested arrays in userIds', `{"userIds":${deep(200000, '[', ']')},"candidates":[1]}`],
    ['deeply nested objects', deep(100000, '{"a":', '}')],
    ['nesting just past the limit', `{"userIds":${deep(40, '[', ']', '"alice"')},"candidates":[1]}`],
    ['a nested id within the limit', `{"userIds":[${deep(20, '[', ']', '"alice"')}],"candidates":[1]}`],
    ['a huge user id', JSON.stringify({ userIds: ['x'.repeat(200000)], candidates: [1] })],
    ['a huge non-string id', JSON.stringify({ userIds: [Array.from({ length: 50000 }, () => 7)], candidates: [1] })],
    ['a huge string candidate', JSON.stringify({ userIds: ['alice'], candidates: ['9'.repeat(100000)] })],
    ['a huge number', '{"userIds":["alice"],"candidates":[1e400]}'],
    ['a fraction', '{"userIds":["alice"],"candidates":[1.5]}'],
    ['negative zero', '{"userIds":["alice"],"candidates":[-0]}'],
    ['null candidate', '{"userIds":["alice"],"candidates":[null]}'],
    ['object candidate', '{"userIds":["alice"],"candidates":[{"valueOf":1}]}'],
    ['array-like ids', '{"userIds":{"length":3,"0":"alice"},"candidates":[1]}'],
    ['__proto__ smuggling', '{"__proto__":{"userIds":["alice"]},"candidates":[1]}'],
    ['dot id', '{"userIds":["."],"candidates":[1]}'],
    ['dot-dot id', '{"userIds":[".."],"candidates":[1]}'],
    ['NUL in id', '{"userIds":["a\\u0000b"],"candidates":[1]}'],
    ['non-ASCII id', '{"userIds":["\u00e9l\u00e8ve"],"candidates":[1]}'],
    ['empty', ''],
    ['null', 'null'],
    ['a number', '42'],
    ['a string', '"alice"'],
    ['an array', '[]'],
    ['BOM', '\ufeff{"userIds":["alice"],"candidates":[1]}'],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
    ['NaN literal', '{"userIds":["alice"],"candidates":[NaN]}'],
    ['trailing garbage', '{"userIds":["alice"],"candidates":[1]} x'],
    ['unterminated string', '{"userIds":["alice'],
    ['an unmatched close', ']]]]]]]]'],
    ['many opens in a string (not nesting)', JSON.stringify({ userIds: ['['.repeat(100)], candidates: [1] })],
  ];

  it.each(bodies)('/score with %s: a 4xx JSON error', async (label, body) => {
    expectClientError(label, await jsonRequest(server.port, 'POST', '/score', body));
  });

  it('echoes at most 64 characters of a received value, with an ellipsis', async () => {
    const reply = await jsonRequest(server.port, 'POST', '/score', { userIds: ['x'.repeat(5000)], candidates: [1] });
    expectJsonError(reply, 400, new RegExp(`userIds\\[0\\] must be a user id .*received "${'x'.repeat(64)}…"$`));
    const path = await jsonRequest(server.port, 'GET', `/users/${'y'.repeat(10000)}/topk`);
    expectJsonError(path, 400, new RegExp(`received "${'y'.repeat(64)}…"$`));
    const deepReply = await jsonRequest(server.port, 'POST', '/score', `{"userIds":${deep(100000, '[', ']')},"candidates":[1]}`);
    expectJsonError(deepReply, 400, /body must nest at most 32 levels of arrays and objects, received 100001/);
  });

  it.each([
    ['POST', '/users/alice/events', '{"events":[1],"history":"abc"}'],
    ['POST', '/users/alice/events', '{"events":[1],"history":[0]}'],
    ['POST', '/users/alice/events', `{"events":${deep(50000, '[', ']')}}`],
    ['POST', '/users/alice/events', '{"events":[41]}'],
    ['GET', '/users/%zz/topk', undefined],
    ['GET', '/users/%C0%AF/topk', undefined],
    ['GET', '/users//topk', undefined],
    ['GET', '/users/./topk', undefined],
    ['GET', '/users/../topk', undefined],
    ['POST', '/users/%2e/events', '{"events":[1]}'],
    ['POST', '/users/%2E%2E/events', '{"events":[1]}'],
    ['GET', '//healthz', undefined],
    ['GET', '/healthz/', undefined],
    ['GET', '/%', undefined],
    ['GET', '/users/a%2Fb/topk', undefined],
    ['GET', '/users/a%00b/topk', undefined],
    ['GET', `/users/alice/topk?k=${'9'.repeat(5000)}`, undefined],
    ['GET', '/users/alice/topk?k=-1', undefined],
    ['GET', '/users/alice/topk?k=1e3', undefined],
    ['GET', '/users/alice/topk?k=%zz', undefined],
    ['PUT', '/score', '{}'],
    ['DELETE', '/users/alice/events', undefined],
    ['PATCH', '/score', '{}'],
    ['OPTIONS', '/score', undefined],
    ['POST', '/healthz', '{}'],
    ['GET', '/users/alice/b/topk', undefined],
    ['GET', '/users', undefined],
    ['GET', '/', undefined],
  ])('%s %s: a 4xx JSON error', async (method, path, body) => {
    expectClientError(`${method} ${path.slice(0, 40)}`, await jsonRequest(server.port, method, path, body));
  });

  it.each([
    ['asterisk target', 'GET * HTTP/1.1'],
    ['absolute target', 'POST http://evil.example/users/./events HTTP/1.1'],
    ['control character', 'GET /users/\x01/topk HTTP/1.1'],
    ['bad version', 'GET /healthz HTTP/9.9'],
    ['huge content-length', 'POST /score HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999'],
    ['two content-lengths', 'POST /score HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3'],
    ['unsupported Expect', 'POST /score HTTP/1.1\r\nContent-Type: application/json\r\nExpect: 200-ok\r\nContent-Length: 2'],
    ['a body on a GET', 'GET /users/alice/topk?k=2 HTTP/1.1\r\nContent-Length: 5', '[[[[['],
    ['a chunked body with a bad chunk size', 'POST /score HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked', 'zz\r\n{}\r\n0\r\n\r\n'],
  ])('raw %s: a 4xx (or 2xx) JSON answer, never a 500', async (_label, head, body = '') => {
    const reply = await raw(server.port, [`${head}\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n${body}`], { waitMs: 2000 });
    expect(reply.status).toBeGreaterThanOrEqual(200);
    expect(reply.status).toBeLessThan(500);
    expect(typeof reply.json).toBe('object');
    if (reply.status >= 400) expect(typeof reply.json.error).toBe('string');
  });

  it('fuzz: 300 mutated bodies and paths, never a 500, always JSON', async () => {
    const random = rng(1234);
    const seeds = [
      JSON.stringify({ userIds: ['alice'], candidates: [1, 2, 3] }),
      JSON.stringify({ events: [4, 5], history: [] }),
      JSON.stringify({ userIds: ['alice', 'bob'], candidates: [40] }),
    ];
    const tokens = ['[', ']', '{', '}', '"', ',', ':', '\\', '-', '0', '1e9', '.', ' ', '\u0000', 'null', 'true', '\ud800', '%', '/', '..', 'é', '9'.repeat(30)];
    const mutate = (s: string): string => {
      let out = s;
      const edits = 1 + Math.floor(random() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * (out.length + 1));
        const op = random();
        const token = tokens[Math.floor(random() * tokens.length)];
        if (op < 0.4) out = out.slice(0, at) + token + out.slice(at);
        else if (op < 0.7) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(random() * 5));
        else out = out.slice(0, at) + token + out.slice(at + token.length);
      }
      return out;
    };
    const paths = ['/score', '/users/alice/events', '/users/alice/topk?k=3'];
    let non4xx = 0;
    for (let i = 0; i < 300; i++) {
      const pick = Math.floor(random() * seeds.length);
      const body = mutate(seeds[pick]);
      let path = pick === 1 ? paths[1] : paths[0];
      if (random() < 0.25) path = mutate(paths[Math.floor(random() * paths.length)]).replace(/[^\x21-\x7e]/g, '%20');
      if (!path.startsWith('/')) path = `/${path}`;
      const method = path.includes('topk') ? 'GET' : 'POST';
      const reply = await jsonRequest(server.port, method, path, method === 'GET' ? undefined : body);
      expect({ i, path, body, status: reply.status < 500, json: typeof reply.json }).toEqual({ i, path, body, status: true, json: 'object' });
      if (reply.status >= 400) expect(typeof reply.json.error).toBe('string');
      else non4xx++;
    }
    // Most mutations break the body; some leave it valid.
    expect(non4xx).toBeLessThan(150);
    expect((await jsonRequest(server.port, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('paths', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serve();
  });

  it('dot segments never reach a route: POST /users/./events appends to nobody', async () => {
    for (const path of ['/users/./events', '/users/%2E/events', '/users/%2e%2e/events', '/x/../users/alice/events']) {
      expectJsonError(await jsonRequest(server.port, 'POST', path, { events: [1], history: [] }), 400, /dot segments \('\.' and '\.\.'\) are not allowed in the path/);
    }
    expect(await server.engine.length('events')).toBeUndefined();
    expect(await server.engine.length('.')).toBeUndefined();
  });

  it("user ids '.' and '..' are refused in the body too", async () => {
    expectJsonError(await jsonRequest(server.port, 'POST', '/score', { userIds: ['alice', '..'], candidates: [1] }), 400, /userIds\[1\] must not be '\.' or '\.\.', received "\.\."/);
    expectJsonError(await jsonRequest(server.port, 'POST', '/score', { userIds: ['.'], candidates: [1] }), 400, /userIds\[0\] must not be '\.' or '\.\.'/);
  });

  it('empty segments and trailing slashes are 400; percent-escapes are decoded before matching', async () => {
    expectJsonError(await jsonRequest(server.port, 'POST', '/users//events', { events: [1] }), 400, /empty path segment in "\/users\/\/events"/);
    expectJsonError(await jsonRequest(server.port, 'POST', '/score/', { userIds: ['a'], candidates: [1] }), 400, /empty path segment/);
    expect((await jsonRequest(server.port, 'POST', '/users/alice%40example.com/events', { events: [1, 2], history: [] })).json).toEqual({ kind: 'created', length: 2 });
    expect((await jsonRequest(server.port, 'GET', '/users/alice@example.com/topk?k=2')).status).toBe(200);
    expect((await jsonRequest(server.port, 'POST', '/%73core', { userIds: ['alice@example.com'], candidates: [1] })).status).toBe(200);
    expectJsonError(await jsonRequest(server.port, 'GET', '/users/a%2Fb/topk'), 400, /user id in the path must be a user id .* received "a\/b"/);
  });
});

describe('content type, loopback only without a token, bearer tokens', () => {
  let open: RunningServer;
  let locked: RunningServer;
  beforeAll(async () => {
    open = await serve();
    await open.engine.append('alice', [1, 2], { history: [] });
    locked = await serve({ token: TOKEN });
    await locked.engine.append('alice', [1, 2], { history: [] });
  });
  const score = { userIds: ['alice'], candidates: [1] };

  it.each([
    [undefined, /Content-Type must be set: expected application\/json \(optionally ; charset=utf-8\), received none/],
    ['text/plain', /unsupported Content-Type: expected application\/json .*received "text\/plain"/],
    ['application/json; charset=latin1', /received "application\/json; charset=latin1"/],
    ['application/jsonp', /received "application\/jsonp"/],
    ['multipart/form-data; boundary=x', /received "multipart\/form-data; boundary=x"/],
    ['application/x-www-form-urlencoded', /received "application\/x-www-form-urlencoded"/],
  ])('Content-Type %s is 415', async (type, message) => {
    const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
    expectJsonError(await request(open.port, 'POST', '/score', { headers, body: JSON.stringify(score) }), 415, message);
    expectJsonError(await request(open.port, 'POST', '/users/alice/events', { headers, body: '{"events":[1]}' }), 415, message);
  });

  it.each(['application/json', 'application/json; charset=utf-8', 'Application/JSON;charset="UTF-8"', 'application/json; charset=utf8'])(
    'Content-Type %s is accepted', async (type) => {
      expect((await request(open.port, 'POST', '/score', { headers: { 'content-type': type }, body: JSON.stringify(score) })).status).toBe(200);
    },
  );

  it('refuses to listen beyond loopback without a token, naming the option', async () => {
    await expect(serve({ host: '0.0.0.0' })).rejects.toThrow(/startServer: options\.host must be a loopback address \(127\.0\.0\.1, ::1, localhost\) when no options\.token is set, received "0\.0\.0\.0"/);
    await expect(serve({ host: '192.168.1.20' })).rejects.toThrow(/options\.host must be a loopback address/);
    await expect(serve({ host: '::' })).rejects.toThrow(/options\.host must be a loopback address/);
  });

  it('without a token, only requests naming this server on loopback are served (DNS rebinding)', async () => {
    const p = open.port;
    for (const host of [`evil.example:${p}`, 'evil.example', `127.0.0.1:${p + 1}`, `localhost.evil.example:${p}`, `127.0.0.2:${p}`]) {
      for (const path of ['/healthz', '/users/alice/topk']) {
        const reply = await request(p, 'GET', path, { headers: { host } });
        expectJsonError(reply, 403, /the Host header must name this server on loopback \(expected one of localhost:\d+, 127\.0\.0\.1:\d+, \[::1\]:\d+, received/);
      }
    }
    for (const host of [`localhost:${p}`, `127.0.0.1:${p}`, `[::1]:${p}`, `LocalHost:${p}`]) {
      expect([host, (await request(p, 'GET', '/users/alice/topk?k=2', { headers: { host } })).status]).toEqual([host, 200]);
    }
    const noHost = await raw(p, ['GET /healthz HTTP/1.0\r\n\r\n']);
    expectJsonError(noHost, 403, /received "none"/);
  });

  it('without a token, a foreign Origin is 403', async () => {
    const p = open.port;
    for (const origin of ['http://evil.example', 'null', `https://127.0.0.1:${p}`, `http://127.0.0.1:${p + 1}`, `http://evil.example:${p}`]) {
      const reply = await jsonRequest(p, 'POST', '/score', score, { origin });
      expectJsonError(reply, 403, /cross-origin requests are refused: expected no Origin or http:\/\/127\.0\.0\.1:\d+, received/);
    }
    expect((await jsonRequest(p, 'POST', '/score', score, { origin: `http://localhost:${p}` })).status).toBe(200);
    expect((await jsonRequest(p, 'POST', '/score', score, { origin: `http://127.0.0.1:${p}` })).status).toBe(200);
  });

  it('the Bearer scheme is case-insensitive; other schemes and malformed headers are 401', async () => {
    const p = locked.port;
    for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER   ${TOKEN}`, `bEaReR\t${TOKEN}`]) {
      expect([authorization, (await jsonRequest(p, 'POST', '/score', score, { authorization })).status]).toEqual([authorization, 200]);
    }
    for (const authorization of [`Basic ${TOKEN}`, `Bearer${TOKEN}`, 'Bearer', `Bearer ${TOKEN}x`, `Bearer ${TOKEN} extra`, `Token ${TOKEN}`]) {
      const reply = await jsonRequest(p, 'POST', '/score', score, { authorization });
      expect(reply.headers['www-authenticate']).toBe('Bearer');
      expectJsonError(reply, 401, /missing or wrong bearer token \(expected Authorization: Bearer <token>\)/);
    }
  });

  it('with a token, /healthz and /readyz need none, and the Host check is off (the token protects)', async () => {
    const p = locked.port;
    expect((await request(p, 'GET', '/healthz')).json).toEqual({ status: 'ok', store: 'up' });
    expect((await request(p, 'GET', '/readyz')).json).toEqual({ status: 'ready', store: 'up' });
    expect((await jsonRequest(p, 'POST', '/score', score, { ...auth, host: 'scoring.internal:443' })).status).toBe(200);
    expectJsonError(await request(p, 'GET', '/metrics'), 401, /bearer token/);
  });
});

describe('history log', () => {
  it('with a HistoryLog, appends need no history, the body may not carry one, and a lost entry is rebuilt from the log', async () => {
    const log = new MemoryHistoryLog();
    const server = await serve({ histories: log, token: TOKEN });
    const p = server.port;
    expect((await jsonRequest(p, 'POST', '/users/u1/events', { events: [1, 2] }, auth)).json).toEqual({ kind: 'created', length: 2 });
    expect((await jsonRequest(p, 'POST', '/users/u1/events', { events: [3] }, auth)).json).toEqual({ kind: 'appended', length: 3 });
    expectJsonError(await jsonRequest(p, 'POST', '/users/u1/events', { events: [4], history: [] }, auth), 400,
      /body field 'history' is not accepted: this server keeps every user's history in its history log \(expected no 'history', received an array of 0\)/);
    expect(log.historyOf('u1')).toEqual([1, 2, 3]);
    await server.engine.delete('u1');
    const scored = await jsonRequest(p, 'POST', '/score', { userIds: ['u1'], candidates: [1, 2] }, auth);
    expect(scored.status).toBe(200);
    expect(scored.json.sources).toEqual(['recompute']);
  });

  it('with a FileHistoryLog, acknowledged events are in the file and survive a new store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckv-serve-log-'));
    try {
      const path = join(dir, 'history.jsonl');
      const log = await FileHistoryLog.open(path);
      const first = await serve({ histories: log });
      expect((await jsonRequest(first.port, 'POST', '/users/ann/events', { events: [5, 6] })).status).toBe(200);
      expect((await jsonRequest(first.port, 'POST', '/users/ann/events', { events: [7] })).status).toBe(200);
      expect(readFileSync(path, 'utf8')).toBe('{"u":"ann","e":[5,6]}\n{"u":"ann","e":[7]}\n');
      await first.close();
      await log.close();

      const reopened = await FileHistoryLog.open(path);
      const second = await serve({ histories: reopened });
      const scored = await jsonRequest(second.port, 'POST', '/score', { userIds: ['ann'], candidates: [1] });
      expect(scored).toMatchObject({ status: 200, json: { sources: ['recompute'] } });
      expect((await jsonRequest(second.port, 'POST', '/users/ann/events', { events: [8] })).json.length).toBe(4);
      await second.close();
      await reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
