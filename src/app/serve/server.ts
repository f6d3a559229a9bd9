// An HTTP scoring service over CacheEngine, on node's http module (no framework).
//
//   POST /users/:id/events  {"events": [item, ...], "history"?: [item, ...]}  -> {"kind", "length"}
//   POST /score             {"userIds": [id, ...], "candidates": [item, ...]}   -> {"scores": [[...]], "sources"}
//   GET  /users/:id/topk?k=10                                                   -> {"items": [{"item", "score"}]}
//   GET  /healthz   liveness, never needs the token                             -> {"status": "ok"|"draining", "store": "up"|"down"}
//   GET  /readyz    readiness, never needs the token: 200 when the store is up and the server not draining, else 503
//   GET  /metrics   Prometheus text format
//
// Every answer but /metrics is JSON; every error is {"error": "..."} naming the field or limit with
// the expected and received values (echoed input is cut to 64 characters). Inputs are validated
// before the engine sees them, and the work one request may ask for is capped: body bytes (413),
// users x candidates per /score (413) and the response's size, bounded before any scoring (413).
// A /score is scored in slices of users with the event loop released between them, so /healthz
// and other requests are answered while a large one runs.
//
// Transport: headers must arrive within headersTimeoutMs and the whole request within
// requestTimeoutMs (408), an idle keep-alive connection is closed after keepAliveTimeoutMs, and at
// most maxConnections sockets are open at once. Routes are matched on the decoded path; empty and
// dot segments ('.', '..') are refused (400). Request bodies must be `Content-Type:
// application/json` (415).
//
// Security: with a token, every endpoint but /healthz and /readyz needs `Authorization: Bearer
// <token>` (401). Without one the server listens on loopback only and answers only requests whose
// Host header names it on loopback (localhost, 127.0.0.1, [::1] with its port) and that carry no
// foreign Origin (403): a web page cannot reach it through DNS rebinding.
//
// Store trouble: an unreachable store (CacheStoreError) or a write that kept losing races
// (CacheConflictError) is 503 with Retry-After on every route; /healthz reports the store's state
// from a cheap probe (cached for healthCacheMs). close() stops accepting requests, lets the ones in
// flight finish (an append is one atomic store command, so nothing is left half-written) and only
// then closes the sockets and, when asked, the store.

import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { isIPv4, type AddressInfo, type Socket } from 'node:net';
import {
  CacheConflictError, CacheEngine, CacheError, CacheStoreError, HistoryRequiredError, UnknownUserError,
  type CacheEngineOptions, type CacheStore, type CacheableRecommender, type HistoryLog,
} from '../../internal';

export interface ServerOptions {
  model: CacheableRecommender;
  store: CacheStore;
  /** Default 0 (a free port). */
  port?: number;
  /** Default 127.0.0.1; the service has no TLS of its own. Without a token only a loopback address is accepted. */
  host?: string;
  /** When set, required as a bearer token on every endpoint but /healthz and /readyz. */
  token?: string;
  /** The durable history of record, handed to the engine (engine.histories). */
  histories?: HistoryLog;
  /** Largest request body (default 1 MiB): 413 beyond. */
  maxBodyBytes?: number;
  /** Most users in one /score (default 1024). */
  maxUsersPerScore?: number;
  /** Most candidates in one /score (default 10000). */
  maxCandidates?: number;
  /** Most users x candidates in one /score (default 1_000_000): 413 beyond. */
  maxScoreCells?: number;
  /** Largest response, bounded before scoring (default 16 MiB): 413 beyond. */
  maxResponseBytes?: number;
  /** Most events (and history items) in one /events (default 10000). */
  maxEvents?: number;
  /** Users per engine.score call within one /score; the event loop is released between calls (default 64). */
  scoreChunkUsers?: number;
  /** The whole request (headers and body) must arrive within this (default 30000 ms): 408. */
  requestTimeoutMs?: number;
  /** The request headers must arrive within this (default 10000 ms): 408. Also closes connections that send nothing. */
  headersTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this (default 5000 ms). */
  keepAliveTimeoutMs?: number;
  /** Most open connections; more are closed at once (default 256). */
  maxConnections?: number;
  /** The store health probe gives up after this (default 500 ms): the store counts as down. */
  healthTimeoutMs?: number;
  /** A probe result is reused for this long (default 1000 ms). */
  healthCacheMs?: number;
  /**
   * The store health probe (resolves: up; throws: down). Default: store.ping() when the store has
   * one, else a one-byte getPrefix of a reserved key.
   */
  ping?: () => Promise<void>;
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

/** A request the client got wrong (or one we cannot serve now): answered with `status` and the message. */
class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

const USER_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;
/** Echoed input is cut to this many characters. */
const ECHO = 64;
/** Bodies nesting deeper than this are refused before parsing. */
const MAX_DEPTH = 32;
/** A /score tile never grows past this many scores (a row slice's buffer, and one call's output). */
const MAX_TILE_CELLS = 1 << 18;
/** About how long one engine.score call of a /score may hold the event loop. */
const SLICE_MS = 25;
/** The reserved key the default health probe reads (never written). */
export const HEALTH_KEY = '__collectivekv_health__';
/** The longest JSON text of one float32 score as a double (e.g. -0.0000012345678901234567), plus its comma. */
const MAX_SCORE_CHARS = 26;
const RETRY_AFTER = { 'Retry-After': '1' };

interface Limits {
  maxBodyBytes: number;
  maxUsersPerScore: number;
  maxCandidates: number;
  maxScoreCells: number;
  maxResponseBytes: number;
  maxEvents: number;
  scoreChunkUsers: number;
}

class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly seconds = new Map<string, number>();
  inFlight = 0;

  record(route: string, status: string, seconds: number): void {
    const key = `route="${route}",code="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    this.seconds.set(route, (this.seconds.get(route) ?? 0) + seconds);
  }

  render(engine: CacheEngine, store: CacheStore, storeUp: boolean | undefined): string {
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
    if (storeUp !== undefined) lines.push('# HELP collectivekv_store_up The last store health probe: 1 up, 0 down.', '# TYPE collectivekv_store_up gauge', `collectivekv_store_up ${storeUp ? 1 : 0}`);
    for (const [k, v] of Object.entries(engine.stats())) lines.push(`# TYPE collectivekv_engine_${snake(k)} counter`, `collectivekv_engine_${snake(k)} ${v}`);
    lines.push('# HELP collectivekv_cache_bytes_per_token Bytes one token adds to a new cache entry, by value format.',
      '# TYPE collectivekv_cache_bytes_per_token gauge', `collectivekv_cache_bytes_per_token{format="${engine.dtype}"} ${engine.bytesPerToken}`);
    for (const [k, v] of Object.entries(store.stats())) {
      if (typeof v === 'number') lines.push(`# TYPE collectivekv_store_${snake(k)} ${k === 'bytes' || k === 'entries' ? 'gauge' : 'counter'}`, `collectivekv_store_${snake(k)} ${v}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

function snake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The store's health from a probe with a deadline, reused for `cacheMs`; concurrent checks share one probe. */
class StoreHealth {
  private last?: { at: number; up: boolean };
  private pending?: Promise<boolean>;

  constructor(private readonly probe: () => Promise<unknown>, private readonly timeoutMs: number, private readonly cacheMs: number) {}

  get known(): boolean | undefined {
    return this.last?.up;
  }

  check(): Promise<boolean> {
    if (this.last !== undefined && performance.now() - this.last.at < this.cacheMs) return Promise.resolve(this.last.up);
    this.pending ??= this.run().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async run(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.timeoutMs);
      timer.unref();
    });
    let up: boolean;
    try {
      up = await Promise.race([Promise.resolve().then(this.probe).then(() => true, () => false), deadline]);
    } finally {
      clearTimeout(timer);
    }
    this.last = { at: performance.now(), up };
    return up;
  }
}

/** Starts the service; resolves once it listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const opt = (name: keyof ServerOptions, fallback: number, min = 1): number => {
    const v = options[name] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new RangeError(`startServer: options.${name} must be an integer >= ${min}, received ${preview(v)}`);
    }
    return v;
  };
  const limits: Limits = {
    maxBodyBytes: opt('maxBodyBytes', 2 ** 20),
    maxUsersPerScore: opt('maxUsersPerScore', 1024),
    maxCandidates: opt('maxCandidates', 10000),
    maxScoreCells: opt('maxScoreCells', 1_000_000),
    maxResponseBytes: opt('maxResponseBytes', 16 * 2 ** 20),
    maxEvents: opt('maxEvents', 10000),
    scoreChunkUsers: opt('scoreChunkUsers', 64),
  };
  const requestTimeoutMs = opt('requestTimeoutMs', 30000);
  const headersTimeoutMs = opt('headersTimeoutMs', 10000);
  const keepAliveTimeoutMs = opt('keepAliveTimeoutMs', 5000);
  const maxConnections = opt('maxConnections', 256);
  const healthTimeoutMs = opt('healthTimeoutMs', 500);
  const healthCacheMs = opt('healthCacheMs', 1000, 0);
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new RangeError(`startServer: options.headersTimeoutMs must be at most options.requestTimeoutMs (${requestTimeoutMs}), received ${headersTimeoutMs}`);
  }
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)) {
    throw new RangeError(`startServer: options.port must be an integer in [0, 65535], received ${preview(options.port)}`);
  }
  const token = options.token === undefined || options.token === '' ? undefined : Buffer.from(options.token);
  const bindHost = options.host ?? '127.0.0.1';
  if (token === undefined && !isLoopbackHost(bindHost)) {
    throw new Error(`startServer: options.host must be a loopback address (127.0.0.1, ::1, localhost) when no options.token is set, received ${preview(bindHost)}; set a token to listen on other interfaces`);
  }
  if (options.histories !== undefined && (typeof options.histories?.read !== 'function' || typeof options.histories?.append !== 'function')) {
    throw new TypeError('startServer: options.histories must be a HistoryLog (read and append), received an object without them');
  }

  const engineOptions: CacheEngineOptions = options.histories === undefined ? { ...options.engine } : { ...options.engine, histories: options.histories };
  const engine = new CacheEngine(options.model, options.store, engineOptions);
  const hasLog = typeof engineOptions.histories === 'object' && engineOptions.histories !== null;
  const store = options.store;
  const probe = options.ping
    ?? (typeof (store as { ping?: unknown }).ping === 'function'
      ? () => (store as unknown as { ping(): Promise<void> }).ping()
      : () => store.getPrefix(HEALTH_KEY, 1));
  const health = new StoreHealth(probe, healthTimeoutMs, healthCacheMs);
  const metrics = new Metrics();
  let draining = false;
  let idle: (() => void) | undefined;
  let allowedHosts = new Set<string>();

  const server = http.createServer({
    requestTimeout: requestTimeoutMs,
    headersTimeout: headersTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    // How often node looks for requests past their deadlines (its default, 30 s, would let a
    // 1 s limit run for 30 s).
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(Math.min(headersTimeoutMs, requestTimeoutMs) / 4))),
    // A missing Host gets our JSON 400 instead of node's empty one.
    requireHostHeader: false,
  }, (req, res) => {
    const started = performance.now();
    const target = parseTarget(req.url);
    const route = target instanceof HttpError ? 'other' : target.route;
    metrics.inFlight++;
    res.on('close', () => {
      metrics.inFlight--;
      // A response never sent (the client left, a timeout answered on the socket) counts as 'aborted'.
      metrics.record(route, res.headersSent ? String(res.statusCode) : 'aborted', (performance.now() - started) / 1000);
      if (metrics.inFlight === 0) idle?.();
    });
    if (draining && route !== 'healthz' && route !== 'readyz') {
      res.setHeader('Connection', 'close');
      send(res, 503, { error: 'server is shutting down' }, RETRY_AFTER);
      return;
    }
    const ctx: Context = { engine, store, limits, token, metrics, health, allowedHosts, hasLog, draining: () => draining };
    handle(req, res, target, ctx).catch((e) => answerError(res, e));
  });
  server.maxConnections = maxConnections;
  // A backstop for what node's request timers do not cover (a client that stopped reading its
  // response): a socket silent this long is closed. Longer than requestTimeout, so that a request
  // arriving too slowly still gets its 408.
  server.timeout = requestTimeoutMs + headersTimeoutMs;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket));
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
    send(res, 417, { error: `unsupported Expect header: expected 100-continue or none, received ${preview(req.headers.expect)}` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, bindHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  allowedHosts = new Set(['localhost', '127.0.0.1', '[::1]'].flatMap((h) => (port === 80 ? [h, `${h}:80`] : [`${h}:${port}`])));

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

/** The loopback names and addresses the server may bind to without a token. */
function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || (isIPv4(h) && h.startsWith('127.')) || /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
}

// ---------------------------------------------------------------- routing

interface Context {
  engine: CacheEngine;
  store: CacheStore;
  limits: Limits;
  token?: Buffer;
  metrics: Metrics;
  health: StoreHealth;
  allowedHosts: Set<string>;
  /** The engine has a history log (the body's 'history' is refused). */
  hasLog: boolean;
  draining(): boolean;
}

type Route = 'healthz' | 'readyz' | 'metrics' | 'score' | 'events' | 'topk' | 'other';

interface Target {
  route: Route;
  /** The decoded path segments. */
  segments: string[];
  query: URLSearchParams;
  /** The path as received (for messages). */
  path: string;
}

/**
 * The request target as decoded path segments and a route. Refuses targets that are not a path,
 * bad percent-escapes, and empty or dot segments (400), so that `/users/./events` can never reach
 * the user "events" and `/%73core` is `/score`.
 */
function parseTarget(raw: string | undefined): Target | HttpError {
  let target = raw ?? '';
  const absolute = /^https?:\/\/[^/?#]*/i.exec(target);
  if (absolute) target = target.slice(absolute[0].length) || '/';
  if (!target.startsWith('/')) return new HttpError(400, `the request target must be a path starting with '/', received ${preview(raw)}`);
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf('?');
  const path = q >= 0 ? target.slice(0, q) : target;
  const query = new URLSearchParams(q >= 0 ? target.slice(q + 1) : '');
  if (path === '/') return { route: 'other', segments: [], query, path };
  const segments: string[] = [];
  for (const part of path.slice(1).split('/')) {
    if (part === '') return new HttpError(400, `empty path segment in ${preview(path)}: expected /segment/segment, no '//' and no trailing '/'`);
    let decoded: string;
    try {
      decoded = decodeURIComponent(part);
    } catch {
      return new HttpError(400, `path segment ${preview(part)} is not valid percent-encoding (UTF-8)`);
    }
    if (decoded === '.' || decoded === '..') return new HttpError(400, `dot segments ('.' and '..') are not allowed in the path, received ${preview(path)}`);
    segments.push(decoded);
  }
  return { route: routeOf(segments), segments, query, path };
}

function routeOf(s: readonly string[]): Route {
  if (s.length === 1 && (s[0] === 'healthz' || s[0] === 'readyz' || s[0] === 'metrics' || s[0] === 'score')) return s[0];
  if (s.length === 3 && s[0] === 'users' && s[2] === 'events') return 'events';
  if (s.length === 3 && s[0] === 'users' && s[2] === 'topk') return 'topk';
  return 'other';
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, target: Target | HttpError, ctx: Context): Promise<void> {
  if (ctx.token === undefined) checkLocalOrigin(req, ctx.allowedHosts);
  else if (req.httpVersion === '1.1' && req.headers.host === undefined) throw new HttpError(400, 'the Host header is required (HTTP/1.1)');
  if (target instanceof HttpError) throw target;
  switch (target.route) {
    case 'healthz': {
      expectMethod(req, 'GET');
      const up = await ctx.health.check();
      return send(res, 200, { status: ctx.draining() ? 'draining' : 'ok', store: up ? 'up' : 'down' });
    }
    case 'readyz': {
      expectMethod(req, 'GET');
      const up = await ctx.health.check();
      const status = ctx.draining() ? 'draining' : 'ok';
      const store = up ? 'up' : 'down';
      if (up && !ctx.draining()) return send(res, 200, { status: 'ready', store });
      const why = ctx.draining() ? 'the server is shutting down' : 'the cache store is unreachable';
      return send(res, 503, { error: `not ready: ${why} (expected store up and not draining, received store ${store}, status ${status})`, status, store }, RETRY_AFTER);
    }
    default:
      break;
  }
  authorize(req, ctx.token);
  const { engine, limits } = ctx;
  switch (target.route) {
    case 'metrics':
      expectMethod(req, 'GET');
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(ctx.metrics.render(engine, ctx.store, ctx.health.known));
      return;
    case 'score': {
      expectMethod(req, 'POST');
      const body = await readJson(req, limits.maxBodyBytes);
      const userIds = userIdList(field(body, 'userIds'), limits.maxUsersPerScore);
      const candidates = itemList(field(body, 'candidates'), 'candidates', engine.model.numItems, 1, limits.maxCandidates);
      checkWork(userIds.length, candidates.length, limits);
      return score(res, engine, userIds, candidates, limits);
    }
    case 'events': {
      expectMethod(req, 'POST');
      const userId = pathUserId(target.segments[1]);
      const body = await readJson(req, limits.maxBodyBytes);
      const events = itemList(field(body, 'events'), 'events', engine.model.numItems, 1, limits.maxEvents);
      const rawHistory = (body as Record<string, unknown>).history;
      if (rawHistory !== undefined && ctx.hasLog) {
        throw new HttpError(400, `body field 'history' is not accepted: this server keeps every user's history in its history log (expected no 'history', received ${preview(rawHistory)})`);
      }
      const history = rawHistory === undefined ? undefined : itemList(rawHistory, 'history', engine.model.numItems, 0, limits.maxEvents);
      return send(res, 200, await engine.append(userId, events, { history }));
    }
    case 'topk': {
      expectMethod(req, 'GET');
      const userId = pathUserId(target.segments[1]);
      const k = topkParam(target.query.get('k'), engine.model.numItems);
      if (engine.model.numItems > limits.maxScoreCells) {
        throw new HttpError(413, `topk scores the whole catalog: ${engine.model.numItems} items is over maxScoreCells (${limits.maxScoreCells})`);
      }
      const bytes = 16 + k * (MAX_SCORE_CHARS + 30);
      if (bytes > limits.maxResponseBytes) {
        throw new HttpError(413, `the response would be up to ${bytes} bytes for k=${k}, over maxResponseBytes (${limits.maxResponseBytes}); ask for a smaller 'k'`);
      }
      return send(res, 200, { items: await engine.topK(userId, k) });
    }
    default:
      throw new HttpError(404, `no such endpoint: ${preview(req.method)} ${preview(target.path)} (expected GET /healthz, /readyz, /metrics, /users/:id/topk; POST /score, /users/:id/events)`);
  }
}

/**
 * Without a token: the Host header must name this server on loopback and an Origin, if any, must
 * be this server (403 otherwise). A page on another site that rebinds its DNS name to 127.0.0.1
 * sends its own name as Host and its own origin as Origin, so it is refused.
 */
function checkLocalOrigin(req: http.IncomingMessage, allowed: Set<string>): void {
  const host = req.headers.host?.toLowerCase();
  if (host === undefined || !allowed.has(host)) {
    throw new HttpError(403, `the Host header must name this server on loopback (expected one of ${[...allowed].join(', ')}, received ${preview(req.headers.host ?? 'none')}); without a token only local requests are served`);
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const m = /^http:\/\/([^/]+)$/i.exec(origin);
    if (m === null || !allowed.has(m[1].toLowerCase())) {
      throw new HttpError(403, `cross-origin requests are refused: expected no Origin or http://${host}, received ${preview(origin)}`);
    }
  }
}

function authorize(req: http.IncomingMessage, token: Buffer | undefined): void {
  if (token === undefined) return;
  const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
  const given = Buffer.from(m ? m[1] : '');
  // Constant-time compare (lengths differ: still compare something of equal length).
  const ok = given.length === token.length ? timingSafeEqual(given, token) : (timingSafeEqual(token, token), false);
  if (!ok) throw new HttpError(401, 'missing or wrong bearer token (expected Authorization: Bearer <token>)', { 'WWW-Authenticate': 'Bearer' });
}

function expectMethod(req: http.IncomingMessage, method: string): void {
  if (req.method !== method) throw new HttpError(405, `use ${method} here, received ${preview(req.method)}`, { Allow: method });
}

// ---------------------------------------------------------------- scoring

/** Refuses a /score whose work or response would be over the limits, before any scoring. */
function checkWork(users: number, candidates: number, limits: Limits): void {
  const cells = users * candidates;
  if (cells > limits.maxScoreCells) {
    throw new HttpError(413, `'userIds' x 'candidates' must be at most ${limits.maxScoreCells} scores (maxScoreCells), received ${users} x ${candidates} = ${cells}`);
  }
  const bytes = scoreResponseBound(users, candidates);
  if (bytes > limits.maxResponseBytes) {
    throw new HttpError(413, `the response would be up to ${bytes} bytes (${users} users x ${candidates} candidates), over maxResponseBytes (${limits.maxResponseBytes}); ask for fewer users or candidates`);
  }
}

/** An upper bound on the /score response's bytes. */
export function scoreResponseBound(users: number, candidates: number): number {
  // {"scores":[ rows ],"sources":[ "recompute", ... ]}; a row is [s,s,...] plus a comma.
  return 32 + users * (candidates * MAX_SCORE_CHARS + 3) + users * 12;
}

/**
 * Sizes /score tiles (users x candidates per engine.score call) so that a call takes about
 * SLICE_MS. A call costs roughly a * users (a decode pass each) + b * candidates (the embedding
 * gather) + c * users * candidates, with a, b, c unknown (they differ by backend and model): the
 * candidates grow first, from 256, while a one-user call stays under SLICE_MS / 4, then the users
 * while calls stay under SLICE_MS / 2, which spends the budget about evenly on both. A call over
 * SLICE_MS halves the users (for the next slice) and, at one user or over twice the budget, the
 * candidates.
 */
class TileSizer {
  users = 1;
  cols: number;
  private growCols = true;
  private calls = 0;

  constructor(private readonly maxCols: number, private readonly maxUsers: number) {
    this.cols = Math.min(maxCols, 256);
  }

  observe(users: number, ms: number): void {
    // The first call is often slow for reasons of its own (compilation, allocation): it only
    // counts when over budget.
    if (this.calls++ === 0 && ms <= SLICE_MS) {
      if (this.cols < this.maxCols) this.cols = Math.min(this.maxCols, this.cols * 2);
      return;
    }
    if (ms > SLICE_MS) {
      this.growCols = false;
      if (users === 1 || ms > 2 * SLICE_MS) this.cols = Math.max(Math.min(64, this.maxCols), this.cols >> 1);
      this.users = Math.max(1, this.users >> 1);
    } else if (this.growCols) {
      if (ms < SLICE_MS / 4 && this.cols < this.maxCols) this.cols = Math.min(this.maxCols, this.cols * 2);
      else this.growCols = false;
    } else if (ms < SLICE_MS / 2 && users === this.users && this.users * 2 * this.maxCols <= MAX_TILE_CELLS) {
      this.users = Math.min(this.maxUsers, this.users * 2);
    }
  }
}

/**
 * Scores in tiles of users x candidates, releasing the event loop between tiles, so that other
 * requests (/healthz) are answered while a large /score runs. A tile's cost grows with its users
 * (one decode pass each) and its candidates (one embedding gather per call, slow on the cpu
 * backend), so the tile adapts to take about SLICE_MS per engine.score call (TileSizer). The JSON text is
 * built row by row as each slice of users completes, and sent once everything scored, so a
 * failure halfway is still a clean error response. Stops when the client goes away.
 *
 * Not a snapshot: an append landing while a /score runs may show in part of a user's row (as it
 * may in some users' rows and not others).
 */
async function score(res: http.ServerResponse, engine: CacheEngine, userIds: string[], candidates: number[], limits: Limits): Promise<void> {
  const cols = candidates.length;
  const tile = new TileSizer(cols, limits.scoreChunkUsers);
  const parts: string[] = ['{"scores":['];
  const sources: string[] = [];
  let gone = false;
  res.once('close', () => (gone = true));
  let since = performance.now();
  const pause = async () => {
    await new Promise(setImmediate);
    since = performance.now();
  };
  for (let u0 = 0; u0 < userIds.length;) {
    const ids = userIds.slice(u0, u0 + tile.users);
    const rows = new Float32Array(ids.length * cols);
    const recomputed = new Array<boolean>(ids.length).fill(false);
    for (let c0 = 0; c0 < cols;) {
      if (gone) return;
      const cands = candidates.slice(c0, c0 + tile.cols);
      const started = performance.now();
      const result = await engine.score(ids, cands);
      tile.observe(ids.length, performance.now() - started);
      for (let i = 0; i < ids.length; i++) {
        rows.set(result.scores.subarray(i * cands.length, (i + 1) * cands.length), i * cols + c0);
        if (result.sources[i] === 'recompute') recomputed[i] = true;
      }
      c0 += cands.length;
      await pause();
    }
    for (let i = 0; i < ids.length; i++) {
      parts.push(`${u0 + i > 0 ? ',' : ''}${JSON.stringify(Array.from(rows.subarray(i * cols, (i + 1) * cols)))}`);
      if (performance.now() - since > SLICE_MS) await pause();
    }
    for (const r of recomputed) sources.push(r ? 'recompute' : 'cache');
    u0 += ids.length;
  }
  parts.push(`],"sources":${JSON.stringify(sources)}}`);
  if (gone || res.headersSent) return;
  // All ASCII (numbers, null, user ids of [A-Za-z0-9_.:@-]): characters are bytes.
  const length = parts.reduce((n, p) => n + p.length, 0);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': length });
  for (const part of parts) {
    if (gone) return;
    res.write(part);
    if (performance.now() - since > SLICE_MS) await pause();
  }
  res.end();
}

// ---------------------------------------------------------------- input

/** Reads the body up to `limit` bytes (413 beyond, without reading the rest) and parses JSON. */
function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  checkContentType(req.headers['content-type']);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, `request body must be at most ${limit} bytes (maxBodyBytes), received Content-Length ${declared}`, { Connection: 'close' }));
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (e: HttpError) => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) {
        fail(new HttpError(413, `request body must be at most ${limit} bytes (maxBodyBytes), received at least ${size}`, { Connection: 'close' }));
        return;
      }
      parts.push(chunk);
    });
    req.on('error', (e) => fail(new HttpError(400, `could not read the body: ${clip(e.message)}`)));
    req.on('close', () => fail(new HttpError(400, 'the connection closed before the body was complete')));
    req.on('end', () => {
      if (settled) return;
      settled = true;
      const buffer = Buffer.concat(parts);
      const depth = nestingDepth(buffer);
      if (depth > MAX_DEPTH) {
        reject(new HttpError(400, `body must nest at most ${MAX_DEPTH} levels of arrays and objects, received ${depth >= 1e6 ? 'more' : depth}`));
        return;
      }
      try {
        resolve(JSON.parse(buffer.toString('utf8')));
      } catch (e) {
        reject(new HttpError(400, `body is not valid JSON: ${clip((e as Error).message)}`));
      }
    });
  });
}

/** Request bodies are JSON: application/json, optionally with charset=utf-8 (415 otherwise). */
function checkContentType(header: string | undefined): void {
  const expected = 'expected application/json (optionally ; charset=utf-8)';
  if (header === undefined) throw new HttpError(415, `Content-Type must be set: ${expected}, received none`);
  const [type, ...params] = header.split(';');
  const ok = type.trim().toLowerCase() === 'application/json' && params.every((p) => {
    const eq = p.indexOf('=');
    const name = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    if (name !== 'charset') return true;
    const value = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
    return value === 'utf-8' || value === 'utf8';
  });
  if (!ok) throw new HttpError(415, `unsupported Content-Type: ${expected}, received ${preview(header)}`);
}

/** The deepest nesting of arrays/objects in a JSON text (outside strings), without parsing it. */
function nestingDepth(bytes: Uint8Array): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) max = depth;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return max;
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
  value.forEach((u, i) => checkUserId(u, `userIds[${i}]`));
  return value as string[];
}

function checkUserId(id: unknown, name: string): asserts id is string {
  if (id === '.' || id === '..') throw new HttpError(400, `${name} must not be '.' or '..', received ${preview(id)}`);
  if (typeof id !== 'string' || !USER_ID.test(id)) {
    throw new HttpError(400, `${name} must be a user id (1..128 of A-Z a-z 0-9 _ . : @ -), received ${preview(id)}`);
  }
}

function itemList(value: unknown, name: string, numItems: number, min: number, max: number): number[] {
  if (!Array.isArray(value) || value.length < min || value.length > max) {
    throw new HttpError(400, `'${name}' must be an array of ${min}..${max} item ids, received ${Array.isArray(value) ? `${value.length} items` : kind(value)}`);
  }
  value.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x)) throw new HttpError(400, `${name}[${i}] must be an integer item id, received ${preview(x)}`);
    if (x < 1 || x > numItems) throw new HttpError(422, `${name}[${i}] is not a known item: ids run 1..${numItems}, received ${preview(x)}`);
  });
  return value as number[];
}

/** The user id from a decoded path segment. */
function pathUserId(id: string): string {
  checkUserId(id, 'user id in the path');
  return id;
}

function topkParam(raw: string | null, numItems: number): number {
  if (raw === null) return Math.min(10, numItems);
  const k = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(k) || k < 1 || k > numItems) throw new HttpError(400, `query parameter 'k' must be an integer in [1, ${numItems}], received ${preview(raw)}`);
  return k;
}

function kind(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x;
}

/**
 * A short, safe rendering of a received value for an error message: strings cut to 64 characters
 * (with an ellipsis), containers by kind and size. Never recurses (a deeply nested value cannot
 * overflow the stack) and never echoes more than ~70 characters.
 */
export function preview(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x.length > ECHO ? `${x.slice(0, ECHO)}…` : x);
  if (typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint') return clip(String(x));
  if (x === null) return 'null';
  if (x === undefined) return 'nothing';
  if (Array.isArray(x)) return `an array of ${x.length}`;
  return typeof x === 'object' ? 'an object' : typeof x;
}

/** A message from elsewhere (a parser, a store), cut to a bounded length. */
function clip(message: string, max = 240): string {
  const one = message.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

// ---------------------------------------------------------------- output

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function answerError(res: http.ServerResponse, e: unknown): void {
  if (e instanceof HttpError) return send(res, e.status, { error: e.message }, e.headers);
  if (e instanceof CacheStoreError) return send(res, 503, { error: `cache store unavailable, retry later: ${clip(e.message)}` }, RETRY_AFTER);
  if (e instanceof CacheConflictError) {
    return send(res, 503, { error: `the user's cache entry kept changing under concurrent writers (${e.attempts} attempts); retry the request` }, RETRY_AFTER);
  }
  if (e instanceof HistoryRequiredError) {
    return send(res, 404, {
      error: `user ${preview(e.userId)} has no usable cache entry (${clip(e.reason, 80)}) and the server keeps no history of record: `
        + `send the user's prior events as "history" ([] for a new user)`,
    });
  }
  if (e instanceof UnknownUserError) {
    const ids = e.userIds.slice(0, 5).map(preview).join(', ') + (e.userIds.length > 5 ? `, ... (${e.userIds.length} users)` : '');
    return send(res, 404, { error: `no usable cache for user${e.userIds.length > 1 ? 's' : ''} ${ids} (${clip(e.reason, 80)}) and no history to recompute from` });
  }
  if (e instanceof CacheError) return send(res, 409, { error: clip(e.message) });
  console.error('collectivekv serve: internal error', e);
  send(res, 500, { error: 'internal error' });
}

/** Errors node raises before a request reaches the handler (bad HTTP, timeouts): a JSON answer, then close. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || (socket as Socket & { _httpMessage?: http.ServerResponse })._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  let status = 400;
  let message = `malformed HTTP request (${err.code ?? 'parse error'})`;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    message = 'the request did not arrive in time (headersTimeoutMs / requestTimeoutMs)';
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    message = 'request headers are too large (expected at most 16 KiB in all)';
  } else if (err.code === 'HPE_INVALID_METHOD') {
    status = 400;
    message = 'malformed HTTP request: invalid method';
  }
  const body = JSON.stringify({ error: message });
  const reason = status === 408 ? 'Request Timeout' : status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
