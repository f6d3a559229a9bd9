// An HTTP scoring service over CacheEngine, on node's http module (no framework).
//
//   POST /users/:id/events  {"events": [item, ...], "history"?: [item, ...]}  -> {"kind", "length"}
//   POST /score             {"userIds": [id, ...], "candidates": [item, ...]}   -> {"scores": [[...]], "sources"}
//   GET  /users/:id/topk?k=10                                                   -> {"items": [{"item", "score"}]}
//   GET  /healthz   (never needs the token)                                     -> {"status": "ok"|"draining"}
//   GET  /metrics   Prometheus text format
//
// Every input is validated before the engine sees it (4xx with a message naming the field);
// bodies are bounded (413). With a token, every endpoint but /healthz needs
// `Authorization: Bearer <token>` (401). close() stops accepting requests, lets the ones in flight
// finish (an append is one atomic store command, so nothing is left half-written) and only then
// closes the sockets and, when asked, the store.

import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CacheEngine, CacheError, CacheStoreError, UnknownUserError,
  type CacheEngineOptions, type CacheStore, type CacheableRecommender,
} from 'collectivekv';

export interface ServerOptions {
  model: CacheableRecommender;
  store: CacheStore;
  /** Default 0 (a free port). */
  port?: number;
  /** Loopback by default; the service has no TLS of its own. */
  host?: string;
  /** When set, required as a bearer token on every endpoint but /healthz. */
  token?: string;
  /** Largest request body (default 1 MiB): 413 beyond. */
  maxBodyBytes?: number;
  /** Most users in one /score (default 1024). */
  maxUsersPerScore?: number;
  /** Most candidates in one /score (default 10000). */
  maxCandidates?: number;
  /** Most events (and history items) in one /events (default 10000). */
  maxEvents?: number;
  /** How long close() waits for requests in flight (default 10 s). */
  drainTimeoutMs?: number;
  /** close() also closes the store (default false: the caller owns it). */
  closeStore?: boolean;
  engine?: CacheEngineOptions;
}

export interface RunningServer {
  url: string;
  port: number;
  engine: CacheEngine;
  close(): Promise<void>;
}

/** A request the client got wrong: answered with `status` and the message. */
class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const USER_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;

interface Limits {
  maxBodyBytes: number;
  maxUsersPerScore: number;
  maxCandidates: number;
  maxEvents: number;
}

class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly seconds = new Map<string, number>();
  inFlight = 0;

  record(route: string, status: number, seconds: number): void {
    const key = `route="${route}",code="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    this.seconds.set(route, (this.seconds.get(route) ?? 0) + seconds);
  }

  render(engine: CacheEngine, store: CacheStore): string {
    const lines: string[] = [
      '# HELP collectivekv_requests_total HTTP requests by route and status code.',
      '# TYPE collectivekv_requests_total counter',
      ...[...this.requests].map(([k, v]) => `collectivekv_requests_total{${k}} ${v}`),
      '# HELP collectivekv_request_seconds_total Time spent answering, by route.',
      '# TYPE collectivekv_request_seconds_total counter',
      ...[...this.seconds].map(([k, v]) => `collectivekv_request_seconds_total{route="${k}"} ${v.toFixed(6)}`),
      '# TYPE collectivekv_requests_in_flight gauge',
      `collectivekv_requests_in_flight ${this.inFlight}`,
    ];
    for (const [k, v] of Object.entries(engine.stats())) lines.push(`# TYPE collectivekv_engine_${snake(k)} counter`, `collectivekv_engine_${snake(k)} ${v}`);
    for (const [k, v] of Object.entries(store.stats())) {
      if (typeof v === 'number') lines.push(`# TYPE collectivekv_store_${snake(k)} ${k === 'bytes' || k === 'entries' ? 'gauge' : 'counter'}`, `collectivekv_store_${snake(k)} ${v}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

function snake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Starts the service; resolves once it listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const engine = new CacheEngine(options.model, options.store, options.engine);
  const limits: Limits = {
    maxBodyBytes: options.maxBodyBytes ?? 2 ** 20,
    maxUsersPerScore: options.maxUsersPerScore ?? 1024,
    maxCandidates: options.maxCandidates ?? 10000,
    maxEvents: options.maxEvents ?? 10000,
  };
  const token = options.token === undefined || options.token === '' ? undefined : Buffer.from(options.token);
  const metrics = new Metrics();
  let draining = false;
  let idle: (() => void) | undefined;

  const server = http.createServer((req, res) => {
    const started = performance.now();
    const route = routeName(req);
    metrics.inFlight++;
    res.on('close', () => {
      metrics.inFlight--;
      metrics.record(route, res.statusCode, (performance.now() - started) / 1000);
      if (metrics.inFlight === 0) idle?.();
    });
    if (draining && route !== 'healthz') {
      res.setHeader('Connection', 'close');
      send(res, 503, { error: 'server is shutting down' });
      return;
    }
    handle(req, res, route, { engine, store: options.store, limits, token, metrics, draining: () => draining }).catch((e) => answerError(res, e));
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  async function close(): Promise<void> {
    if (draining) return;
    draining = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (metrics.inFlight > 0) {
      await new Promise<void>((resolve) => {
        idle = resolve;
        setTimeout(resolve, options.drainTimeoutMs ?? 10000).unref();
      });
    }
    server.closeAllConnections();
    await closed;
    if (options.closeStore) await options.store.close();
  }

  return { url: `http://${host}:${port}`, port, engine, close };
}

// ---------------------------------------------------------------- routing

interface Context {
  engine: CacheEngine;
  store: CacheStore;
  limits: Limits;
  token?: Buffer;
  metrics: Metrics;
  draining(): boolean;
}

function routeName(req: http.IncomingMessage): string {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz' || path === '/metrics' || path === '/score') return path.slice(1);
  if (/^\/users\/[^/]*\/events$/.test(path)) return 'events';
  if (/^\/users\/[^/]*\/topk$/.test(path)) return 'topk';
  return 'other';
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, route: string, ctx: Context): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (route === 'healthz') return send(res, 200, { status: ctx.draining() ? 'draining' : 'ok' });
  authorize(req, ctx.token);
  const path = url.pathname.split('/');
  switch (route) {
    case 'metrics':
      expectMethod(req, 'GET');
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(ctx.metrics.render(ctx.engine, ctx.store));
      return;
    case 'score': {
      expectMethod(req, 'POST');
      const body = await readJson(req, ctx.limits.maxBodyBytes);
      const userIds = userIdList(field(body, 'userIds'), ctx.limits.maxUsersPerScore);
      const candidates = itemList(field(body, 'candidates'), 'candidates', ctx.engine.model.numItems, 1, ctx.limits.maxCandidates);
      const result = await ctx.engine.score(userIds, candidates);
      const scores = Array.from({ length: result.rows }, (_, r) => Array.from(result.scores.subarray(r * result.cols, (r + 1) * result.cols)));
      return send(res, 200, { scores, sources: result.sources });
    }
    case 'events': {
      expectMethod(req, 'POST');
      const userId = pathUserId(path[2]);
      const body = await readJson(req, ctx.limits.maxBodyBytes);
      const events = itemList(field(body, 'events'), 'events', ctx.engine.model.numItems, 1, ctx.limits.maxEvents);
      const rawHistory = (body as Record<string, unknown>).history;
      const history = rawHistory === undefined ? undefined : itemList(rawHistory, 'history', ctx.engine.model.numItems, 0, ctx.limits.maxEvents);
      return send(res, 200, await ctx.engine.append(userId, events, { history }));
    }
    case 'topk': {
      expectMethod(req, 'GET');
      const userId = pathUserId(path[2]);
      const k = topkParam(url.searchParams.get('k'), ctx.engine.model.numItems);
      return send(res, 200, { items: await ctx.engine.topK(userId, k) });
    }
    default:
      throw new HttpError(404, `no such endpoint: ${req.method} ${url.pathname}`);
  }
}

function authorize(req: http.IncomingMessage, token: Buffer | undefined): void {
  if (token === undefined) return;
  const header = req.headers.authorization ?? '';
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  // Constant-time compare (lengths differ: still compare something of equal length).
  const ok = given.length === token.length ? timingSafeEqual(given, token) : (timingSafeEqual(token, token), false);
  if (!ok) throw new HttpError(401, 'missing or wrong bearer token (Authorization: Bearer <token>)');
}

function expectMethod(req: http.IncomingMessage, method: string): void {
  if (req.method !== method) throw new HttpError(405, `use ${method} here, received ${req.method}`);
}

// ---------------------------------------------------------------- input

/** Reads the body up to `limit` bytes (413 beyond, without reading the rest) and parses JSON. */
function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit}`));
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      parts.push(chunk);
    });
    req.on('error', (e) => reject(new HttpError(400, `could not read the body: ${e.message}`)));
    req.on('end', () => {
      if (failed) return;
      const text = Buffer.concat(parts).toString('utf8');
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new HttpError(400, `body is not valid JSON: ${(e as Error).message}`));
      }
    });
  });
}

function field(body: unknown, name: string): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, `body must be a JSON object, received ${kind(body)}`);
  }
  const value = (body as Record<string, unknown>)[name];
  if (value === undefined) throw new HttpError(400, `body field '${name}' is required`);
  return value;
}

function userIdList(value: unknown, max: number): string[] {
  if (!Array.isArray(value) || value.length < 1 || value.length > max) {
    throw new HttpError(400, `'userIds' must be an array of 1..${max} user ids, received ${Array.isArray(value) ? `${value.length} ids` : kind(value)}`);
  }
  value.forEach((u, i) => {
    if (typeof u !== 'string' || !USER_ID.test(u)) throw new HttpError(400, `userIds[${i}] must be a user id (1..128 of A-Z a-z 0-9 _ . : @ -), received ${JSON.stringify(u)}`);
  });
  return value as string[];
}

function itemList(value: unknown, name: string, numItems: number, min: number, max: number): number[] {
  if (!Array.isArray(value) || value.length < min || value.length > max) {
    throw new HttpError(400, `'${name}' must be an array of ${min}..${max} item ids, received ${Array.isArray(value) ? `${value.length} items` : kind(value)}`);
  }
  value.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x)) throw new HttpError(400, `${name}[${i}] must be an integer item id, received ${JSON.stringify(x)}`);
    if (x < 1 || x > numItems) throw new HttpError(422, `${name}[${i}] is not a known item: ids run 1..${numItems}, received ${x}`);
  });
  return value as number[];
}

function pathUserId(raw: string | undefined): string {
  let id: string;
  try {
    id = decodeURIComponent(raw ?? '');
  } catch {
    throw new HttpError(400, 'user id in the path is not valid percent-encoding');
  }
  if (!USER_ID.test(id)) throw new HttpError(400, `user id must be 1..128 of A-Z a-z 0-9 _ . : @ -, received ${JSON.stringify(id.slice(0, 140))}`);
  return id;
}

function topkParam(raw: string | null, numItems: number): number {
  if (raw === null) return Math.min(10, numItems);
  const k = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(k) || k < 1 || k > numItems) throw new HttpError(400, `query parameter 'k' must be an integer in [1, ${numItems}], received ${JSON.stringify(raw)}`);
  return k;
}

function kind(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x;
}

// ---------------------------------------------------------------- output

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function answerError(res: http.ServerResponse, e: unknown): void {
  if (e instanceof HttpError) {
    // After a 413 the rest of the body is not read: close the connection instead of draining it.
    if (e.status === 413) res.setHeader('Connection', 'close');
    if (e.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
    return send(res, e.status, { error: e.message });
  }
  if (e instanceof UnknownUserError) return send(res, 404, { error: e.message });
  if (e instanceof CacheStoreError) return send(res, 503, { error: `cache store unavailable: ${e.message}` });
  if (e instanceof CacheError) return send(res, 409, { error: e.message });
  console.error('collectivekv serve: internal error', e);
  send(res, 500, { error: 'internal error' });
}
