// Helpers for the serve tests: HTTP requests with any headers (node's http, no agent), raw socket
// exchanges for malformed or slow requests, and a store wrapper that can fail, hang or conflict.
import http from 'node:http';
import net from 'node:net';
import { CacheStoreError, type CacheStore } from 'collectivekv/internal';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One request on its own connection; `headers` are sent as given (Host included, when set). */
export function request(
  port: number, method: string, path: string, options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: options.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A JSON request: Content-Type application/json unless headers say otherwise. */
export function jsonRequest(port: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return request(port, method, path, {
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
}

export interface RawReply {
  /** Everything the server sent. */
  text: string;
  /** The first response's status (0: none). */
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
  /** The server closed the connection (within waitMs). */
  closed: boolean;
  /** When it closed (or waitMs), from the first write. */
  ms: number;
}

/**
 * Connects, writes `writes` (gapMs apart; a function is called with the socket instead), and
 * collects what comes back until the server closes the connection or waitMs pass.
 */
export function raw(port: number, writes: Array<string | Buffer>, options: { gapMs?: number; waitMs?: number } = {}): Promise<RawReply> {
  const { gapMs = 0, waitMs = 3000 } = options;
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    const started = performance.now();
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      const ms = performance.now() - started;
      socket.destroy();
      resolve({ ...parseRaw(Buffer.concat(parts).toString('latin1')), closed, ms });
    };
    socket.on('data', (c: Buffer) => parts.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      finish();
    });
    timer = setTimeout(finish, waitMs);
    socket.on('connect', async () => {
      for (let i = 0; i < writes.length && !closed && !socket.destroyed; i++) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (!socket.destroyed && socket.writable) socket.write(writes[i]);
      }
    });
  });
}

function parseRaw(text: string): Omit<RawReply, 'closed' | 'ms'> {
  const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(text);
  if (!m) return { text, status: 0, headers: {}, body: '', json: undefined };
  const end = text.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const line of text.slice(m[0].length, end).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const length = Number(headers['content-length'] ?? NaN);
  const rest = text.slice(end + 4);
  const body = Number.isFinite(length) ? rest.slice(0, length) : rest;
  return { text, status: Number(m[1]), headers, body, json: parseJson(body) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface StoreSwitches {
  /** Every command fails with CacheStoreError. */
  down: boolean;
  /** getPrefix (the health probe) never answers. */
  hangProbe: boolean;
  /** Conditional writes (append, replace) always lose. */
  conflict: boolean;
  /** getPrefix calls so far. */
  probes: number;
}

/** `inner` behind switches that make it fail, hang or lose every race. */
export function switchableStore(inner: CacheStore): { store: CacheStore; switches: StoreSwitches } {
  const switches: StoreSwitches = { down: false, hangProbe: false, conflict: false, probes: 0 };
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (prop === 'stats' || prop === 'close') return value.bind(target);
      return (...args: unknown[]) => {
        if (prop === 'getPrefix') {
          switches.probes++;
          if (switches.hangProbe) return new Promise(() => undefined);
        }
        if (switches.down) return Promise.reject(new CacheStoreError(`${String(prop)} failed: connect ECONNREFUSED 127.0.0.1:6379`));
        if (switches.conflict && (prop === 'append' || prop === 'replace')) return Promise.resolve('conflict');
        return value.apply(target, args);
      };
    },
  });
  return { store, switches };
}

/** A seeded generator in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
