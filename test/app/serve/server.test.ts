import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { MemoryStore, generateSynthetic } from 'collectivekv/internal';
import { buildSasrec, type Sasrec } from '../../../src/zoo/sequential/sasrec';
import { SasrecRecommender } from '../../../src/zoo/sequential/sasrecRecommender';
import { startServer, type RunningServer } from '../../../src/app/serve/server';
import { runServeCommand } from '../../../src/app/serve/command';
import { loadSasrecModel, saveSasrecModel } from '../../../src/app/serve/modelFiles';

const data = generateSynthetic({ numUsers: 8, numItems: 40, numTopics: 4, minLength: 6, maxLength: 10, seed: 9 });
const options = { numItems: data.numItems, maxLength: 16, hiddenDim: 16, numBlocks: 1, numHeads: 2, dropout: 0, seed: 3,
  attention: 'collectivekv' as const, collective: { poolSize: 16, userDim: 1 } };
const TOKEN = 's3cret-token';

let sasrec: Sasrec;
let server: RunningServer;

async function call(method: string, path: string, body?: unknown, auth = true, raw?: string): Promise<{ status: number; json: any; text: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (auth) headers.authorization = `Bearer ${TOKEN}`;
  const res = await fetch(server.url + path, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

beforeAll(async () => {
  await useBackend('cpu');
  sasrec = buildSasrec(options);
  server = await startServer({ model: new SasrecRecommender(sasrec), store: new MemoryStore(), token: TOKEN, maxBodyBytes: 4096, maxUsersPerScore: 8 });
});
afterAll(async () => {
  await server.close();
  sasrec.model.dispose();
});

describe('serve', () => {
  it('listens on loopback; events, score, topk, healthz and metrics work', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await call('POST', '/users/alice/events', { events: data.sequences[0].slice(0, 4), history: [] })).toMatchObject({ status: 200, json: { kind: 'created', length: 4 } });
    expect(await call('POST', '/users/alice/events', { events: data.sequences[0].slice(4, 6) })).toMatchObject({ status: 200, json: { kind: 'appended', length: 6 } });
    await call('POST', '/users/bob/events', { events: data.sequences[1], history: [] });
    const scored = await call('POST', '/score', { userIds: ['alice', 'bob'], candidates: [1, 2, 3] });
    expect(scored.status).toBe(200);
    expect(scored.json.scores).toHaveLength(2);
    expect(scored.json.scores[0]).toHaveLength(3);
    expect(scored.json.sources).toEqual(['cache', 'cache']);
    const top = await call('GET', '/users/alice/topk?k=5');
    expect(top.status).toBe(200);
    expect(top.json.items).toHaveLength(5);
    expect(top.json.items[0].score).toBeGreaterThanOrEqual(top.json.items[4].score);
    expect(await call('GET', '/healthz', undefined, false)).toMatchObject({ status: 200, json: { status: 'ok' } });
    const metrics = await call('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/collectivekv_requests_total\{route="score",code="200"\} 1/);
    expect(metrics.text).toMatch(/collectivekv_engine_appends 1/);
    expect(metrics.text).toMatch(new RegExp(`collectivekv_cache_bytes_per_token\\{format="fp16"\\} ${server.engine.bytesPerToken}\n`));
    expect(server.engine.bytesPerToken).toBeGreaterThan(0);
  });

  it('answers 401 on every endpoint but /healthz without the right token', async () => {
    for (const [method, path, body] of [['POST', '/users/alice/events', { events: [1] }], ['POST', '/score', { userIds: ['alice'], candidates: [1] }],
      ['GET', '/users/alice/topk'], ['GET', '/metrics'], ['GET', '/nowhere']] as const) {
      const res = await call(method, path, body, false);
      expect([path, res.status]).toEqual([path, 401]);
      expect(res.json.error).toMatch(/bearer token/);
    }
    const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect((await call('GET', '/healthz', undefined, false)).status).toBe(200);
  });

  it.each([
    ['malformed JSON', 'POST', '/score', undefined, '{"userIds": [', 400, /not valid JSON/],
    ['not an object', 'POST', '/score', [1, 2], undefined, 400, /JSON object, received an array/],
    ['missing field', 'POST', '/score', { userIds: ['alice'] }, undefined, 400, /'candidates' is required/],
    ['wrong types', 'POST', '/score', { userIds: 'alice', candidates: [1] }, undefined, 400, /'userIds' must be an array/],
    ['wrong item type', 'POST', '/score', { userIds: ['alice'], candidates: ['1'] }, undefined, 400, /candidates\[0\] must be an integer/],
    ['unknown candidate', 'POST', '/score', { userIds: ['alice'], candidates: [1, 41] }, undefined, 422, /candidates\[1\] is not a known item: ids run 1\.\.40/],
    ['unknown user', 'POST', '/score', { userIds: ['alice', 'nobody'], candidates: [1] }, undefined, 404, /no usable cache for user "nobody"/],
    ['unknown user topk', 'GET', '/users/nobody/topk', undefined, undefined, 404, /nobody/],
    ['too many users', 'POST', '/score', { userIds: Array.from({ length: 9 }, (_, i) => `u${i}`), candidates: [1] }, undefined, 400, /1\.\.8 user ids/],
    ['bad user id', 'POST', '/users/a%20b/events', { events: [1] }, undefined, 400, /user id in the path must be a user id \(1\.\.128 of/],
    ['empty events', 'POST', '/users/alice/events', { events: [] }, undefined, 400, /'events' must be an array of 1\.\./],
    ['bad k', 'GET', '/users/alice/topk?k=abc', undefined, undefined, 400, /'k' must be an integer/],
    ['wrong method', 'GET', '/score', undefined, undefined, 405, /use POST/],
    ['unknown route', 'GET', '/nope', undefined, undefined, 404, /no such endpoint/],
    ['oversized body', 'POST', '/score', { userIds: ['alice'], candidates: Array.from({ length: 3000 }, () => 1) }, undefined, 413, /must be at most 4096 bytes \(maxBodyBytes\), received Content-Length \d+/],
  ])('%s: 4xx with a message, and the server keeps serving', async (_name, method, path, body, raw, status, message) => {
    const res = await call(method, path, body, true, raw);
    expect(res.status).toBe(status);
    expect(res.json.error).toMatch(message);
    const ok = await call('POST', '/score', { userIds: ['alice'], candidates: [1] });
    expect(ok.status).toBe(200);
  });

  it('a chunked body over the limit gets 413 too', async () => {
    const big = JSON.stringify({ userIds: ['alice'], candidates: Array.from({ length: 3000 }, () => 1) });
    const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(big)); c.close(); } });
    const res = await fetch(`${server.url}/score`, { method: 'POST', body: stream, duplex: 'half', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } } as RequestInit);
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/at most 4096 bytes \(maxBodyBytes\), received at least \d+/);
    expect((await call('GET', '/healthz', undefined, false)).status).toBe(200);
  });
});

describe('graceful shutdown', () => {
  it('finishes the requests in flight, refuses new ones, and leaves no half-written entry', async () => {
    const store = new MemoryStore();
    const own = await startServer({ model: new SasrecRecommender(sasrec), store });
    const headers = { 'content-type': 'application/json' };
    expect((await fetch(`${own.url}/users/u/events`, { method: 'POST', headers, body: JSON.stringify({ events: [1], history: [] }) })).status).toBe(200);
    const posts = Array.from({ length: 10 }, (_, i) =>
      fetch(`${own.url}/users/u/events`, { method: 'POST', headers, body: JSON.stringify({ events: [i + 2] }) }).then((r) => r.status, () => 0));
    await new Promise((r) => setTimeout(r, 5));
    await own.close();
    const statuses = await Promise.all(posts);
    const applied = statuses.filter((s) => s === 200).length;
    expect(statuses.every((s) => s === 200 || s === 503 || s === 0)).toBe(true);
    // Reopen on the same store: the entry decodes, and holds exactly the acknowledged events.
    const again = await startServer({ model: new SasrecRecommender(sasrec), store });
    const history = await again.engine.storedHistory('u');
    expect(history).toHaveLength(1 + applied);
    await again.close();
  });
});

describe('serve command and model files', () => {
  it('saves and loads a model (same fingerprint: same config and weights), then serves it until aborted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckv-model-'));
    try {
      await saveSasrecModel(sasrec, dir);
      const loaded = loadSasrecModel(dir);
      const a = new SasrecRecommender(sasrec);
      const b = new SasrecRecommender(loaded);
      expect(b.fingerprint).toBe(a.fingerprint);
      loaded.model.dispose();
      const abort = new AbortController();
      let url = '';
      const lines: string[] = [];
      const errors: string[] = [];
      const done = runServeCommand(['--model', dir, '--store', 'memory', '--port', '0', '--token', 'tok', '--backend', 'cpu'], {
        signal: abort.signal, log: (l) => lines.push(l), error: (l) => errors.push(l), onListening: (s) => (url = s.url),
      });
      for (let i = 0; i < 100 && url === ''; i++) await new Promise((r) => setTimeout(r, 50));
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      const res = await fetch(`${url}/users/u1/events`, {
        method: 'POST', headers: { authorization: 'Bearer tok', 'content-type': 'application/json' }, body: JSON.stringify({ events: [1, 2, 3], history: [] }),
      });
      expect(res.status).toBe(200);
      abort.abort();
      expect(await done).toBe(0);
      expect(lines.join('\n')).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+ .*token required/);
      expect(errors.join('\n')).toMatch(/warning: --token shows the token in the process list .* use COLLECTIVEKV_TOKEN or --token-file/);
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('usage errors exit with 2', async () => {
    const spy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(await runServeCommand(['--store', 'memory'])).toBe(2);
    expect(await runServeCommand(['--demo-model', '--store', 'http://x'])).toBe(2);
    expect(await runServeCommand(['--demo-model', '--port', '99999'])).toBe(2);
    expect(spy.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/--model DIR or --demo-model[\s\S]*--store must be[\s\S]*--port must be/);
    spy.mockRestore();
  });

  it('leaks no tensors while serving', async () => {
    await call('POST', '/score', { userIds: ['alice'], candidates: [1] });
    const before = tf.memory().numTensors;
    await call('POST', '/users/alice/events', { events: [7] });
    await call('POST', '/score', { userIds: ['alice', 'bob'], candidates: [1, 2] });
    await call('GET', '/users/alice/topk?k=3');
    expect(tf.memory().numTensors).toBe(before);
  });
});
