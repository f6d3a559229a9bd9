// Model fingerprint: identifies the model a cache was written by, so a cache of another model
// (other config, retrained or fine-tuned pools) is refused instead of silently used.

import { Sha256 } from './sha256';

const DOMAIN = 'collectivekv/fingerprint/v1\0';
const FINGERPRINT_BYTES = 16;
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * Deterministic 128-bit fingerprint (hex, 32 chars) of a model config and its pool weights: the
 * first 16 bytes of SHA-256 over a canonical JSON of `config` (object keys sorted, so key order
 * does not matter) and every pool's length and little-endian float32 bytes. Any change of any
 * pool weight (even a single bit, even 0 -> -0) changes it.
 */
export function modelFingerprint(config: object, pools: readonly Float32Array[]): string {
  if (config === null || typeof config !== 'object') {
    throw new TypeError(`modelFingerprint: argument 'config' must be an object, received ${config === null ? 'null' : typeof config}`);
  }
  const hash = new Sha256();
  const text = new TextEncoder();
  hash.update(text.encode(DOMAIN));
  hash.update(text.encode(canonicalJson(config, 'config')));
  hash.update(u32(pools.length));
  pools.forEach((pool, i) => {
    if (!(pool instanceof Float32Array)) {
      throw new TypeError(`modelFingerprint: pools[${i}] must be a Float32Array, received ${describe(pool)}`);
    }
    hash.update(u32(pool.length));
    hash.update(littleEndianBytes(pool));
  });
  return bytesToHex(hash.digest().subarray(0, FINGERPRINT_BYTES));
}

/** JSON with object keys sorted at every level; rejects values JSON cannot represent faithfully. */
export function canonicalJson(value: unknown, path = 'value'): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`${path} must be a finite number, received ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v, i) => canonicalJson(v, `${path}[${i}]`)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, `${path}.${k}`)}`).join(',')}}`;
  }
  throw new TypeError(`${path} must be JSON data, received ${typeof value}`);
}

function littleEndianBytes(a: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const v = new DataView(out.buffer);
  a.forEach((x, i) => v.setFloat32(4 * i, x, true));
  return out;
}

function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, true);
  return out;
}

function describe(x: unknown): string {
  return x === null ? 'null' : typeof x === 'object' ? (x as object).constructor?.name ?? 'object' : typeof x;
}

export function bytesToHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** 32 hex chars -> 16 bytes; `name` is the argument named in the error. */
export function hexToBytes(hex: string, name: string): Uint8Array {
  if (typeof hex !== 'string' || !/^[0-9a-fA-F]{32}$/.test(hex)) {
    throw new TypeError(`${name} must be a 32-character hex model fingerprint (from modelFingerprint), received ${JSON.stringify(hex)}`);
  }
  const out = new Uint8Array(FINGERPRINT_BYTES);
  for (let i = 0; i < FINGERPRINT_BYTES; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

