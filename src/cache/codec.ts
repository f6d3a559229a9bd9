// Binary format of one user's cache (all attention layers), version 2. All integers little endian.
// docs/cache.md describes it with the reasons behind each field.
//
//   header (64 + 20 * L bytes)
//     0   4  magic 0x89 'C' 'K' 'V' (high bit set: catches 7-bit/text mangling, like PNG)
//     4   2  u16 format version (2)
//     6   2  u16 header bytes, CRC included (= 64 + 20 * L)
//     8  16  model fingerprint (first 16 bytes of SHA-256, see fingerprint.ts)
//    24   1  u8 value dtype: 0 fp32, 1 fp16, 3 int8 (a scale per chunk and side); 2 (int8 with
//            a scale per token, of earlier builds) is refused, so such entries are rebuilt
//    25   1  u8 reserved, 0
//    26   2  u16 layer count L (>= 1)
//    28   4  u32 token count T (>= 1)
//    32   4  u32 chunk count C (1..T)
//    36   4  u32 record bytes R (one token over all layers; redundant, checked)
//    40   8  entry id: first 8 bytes of SHA-256 of the store key the entry was written for
//    48   8  write id: random, new at every whole-entry write, kept by appends
//    56   4  u32 events: history events the entry reflects (T plus what window slides dropped)
//    60  20L per layer: u8 share mode (0 none/full-KV, 1 kv, 2 k, 3 v), u8 K index bytes,
//            u8 V index bytes (0 for a full side, else 1/2/4 from the pool size), u8 reserved 0,
//            u32 K pool size (0 if full), u32 K width (userDim or full width),
//            u32 V pool size, u32 V width
//    ..   4  u32 CRC-32 of the header bytes before it
//   then C chunks, each:
//     4      u32 tokens n (>= 1)
//     4S     int8 only: f32 scale of each side with width > 0 (per layer, K then V), S such sides
//     n * R  token records: per layer, K side then V side; a side is
//              [index (index bytes)] [width values in dtype]
//     4      u32 CRC-32 of (fingerprint, entry id, write id, u32 first token) then the chunk's
//            count, scales and records: a chunk moved to another position, entry or user fails its CRC
//
// Appending tokens appends one chunk and rewrites only the fixed-size header (new T, C, events and
// header CRC); nothing already stored is read or rewritten. Every single changed byte is caught:
// header bytes by the header CRC, payload bytes by their chunk CRC, truncation by the exact-length
// check. The header doubles as the compare-and-swap token of the stores: appends change T, whole
// writes change the write id, so a header never comes back after it was replaced.

import { indexBytesForPool } from '../../layers/KVCacheBlock';
import { crc32 } from './crc32';
import { CacheCorruptError, CacheModelMismatchError, CacheVersionError } from './errors';
import { fromHalfBits, toHalfBits } from './fp16';
import { bytesToHex, hexToBytes } from './fingerprint';
import { Sha256 } from './sha256';
import type {
  CacheDtype, CacheHeader, LayerLayout, CacheShareMode, SideLayout, UserCache, UserCacheLayer, UserCacheSide,
} from './types';

export const CACHE_MAGIC = Uint8Array.of(0x89, 0x43, 0x4b, 0x56);
export const CACHE_FORMAT_VERSION = 2;
const SUPPORTED_VERSIONS: readonly number[] = [2];
const FIXED_HEADER = 60;
const ID_BYTES = 8;
const LAYER_DESCRIPTOR = 20;
const FINGERPRINT_BYTES = 16;
/** Chunk framing around the records: u32 count before, u32 CRC after. */
export const CHUNK_OVERHEAD = 8;

/** The value dtypes, the default first. */
export const CACHE_DTYPES: readonly CacheDtype[] = ['fp16', 'fp32', 'int8'];
/** Header byte 24 per dtype. Code 2 was int8 with a scale per token (5 B per value at userDim 1): retired. */
const DTYPE_CODES: Readonly<Record<CacheDtype, number>> = { fp32: 0, fp16: 1, int8: 3 };
const RETIRED_INT8_PER_TOKEN = 2;

/** The value dtype of entries when none is given: fp16 (2 B per value, scores within 1e-3 of fp32; docs/cache.md). */
export const DEFAULT_CACHE_DTYPE: CacheDtype = 'fp16';
const SHARE_MODES: readonly CacheShareMode[] = ['none', 'kv', 'k', 'v'];

export interface EncodeOptions {
  /** Hex model fingerprint from modelFingerprint(); stored so a cache of another model is refused. */
  fingerprint: string;
  /** Value dtype: 'fp32', 'fp16' (the default) or 'int8' (docs/cache.md gives each one's error). */
  dtype?: CacheDtype;
  /** The store key the entry is written under: decoding with another key is refused (default ''). */
  key?: string;
  /** History events the entry reflects (default cache.length; more after a window slide). */
  events?: number;
  /** 8 bytes identifying this write (default random): only for reproducible bytes in tests. */
  writeId?: Uint8Array;
}

export interface DecodeOptions {
  /** When given, a cache written by any other model throws CacheModelMismatchError. */
  fingerprint?: string;
  /** When given, an entry written for another key throws CacheCorruptError. */
  key?: string;
}

export interface DecodedCache {
  header: CacheHeader;
  cache: UserCache;
}

// ---------------------------------------------------------------------------------------------
// Layout and sizes

/** Bytes of the header for `layers` attention layers. */
export function headerBytesFor(layers: number): number {
  return FIXED_HEADER + LAYER_DESCRIPTOR * layers + 4;
}

/** The entry id of a store key: the first 8 bytes of its SHA-256 (UTF-8). */
export function entryIdOf(key: string): Uint8Array {
  if (typeof key !== 'string') throw new TypeError(`options.key must be a string, received ${describeValue(key)}`);
  return new Sha256().update(new TextEncoder().encode(key)).digest().subarray(0, ID_BYTES);
}

function randomWriteId(): Uint8Array {
  const id = new Uint8Array(ID_BYTES);
  globalThis.crypto.getRandomValues(id);
  return id;
}

function valueBytes(dtype: CacheDtype): number {
  return dtype === 'fp32' ? 4 : dtype === 'fp16' ? 2 : 1;
}

function sideRecordBytes(side: SideLayout, dtype: CacheDtype): number {
  return side.indexBytes + side.width * valueBytes(dtype);
}

/** Bytes of a chunk's int8 scales: one f32 per side with values (0 for fp32 and fp16). */
function scaleBytesFor(layers: readonly LayerLayout[], dtype: CacheDtype): number {
  if (dtype !== 'int8') return 0;
  let sides = 0;
  for (const l of layers) sides += (l.keys.width > 0 ? 1 : 0) + (l.values.width > 0 ? 1 : 0);
  return 4 * sides;
}

/** Bytes of one chunk besides its records: count and CRC, plus the int8 scales. */
export function chunkOverheadFor(layers: readonly LayerLayout[], dtype: CacheDtype): number {
  return CHUNK_OVERHEAD + scaleBytesFor(layers, dtype);
}

/** Bytes of one token's record over all layers and sides. */
export function recordBytesFor(layers: readonly LayerLayout[], dtype: CacheDtype): number {
  let r = 0;
  for (const l of layers) r += sideRecordBytes(l.keys, dtype) + sideRecordBytes(l.values, dtype);
  return r;
}

/** Total encoded bytes of `tokens` tokens written in `chunks` chunks (1 for a fresh encode). */
export function encodedBytesFor(
  layers: readonly LayerLayout[], dtype: CacheDtype, tokens: number, chunks = tokens > 0 ? 1 : 0,
): number {
  return headerBytesFor(layers.length) + chunks * chunkOverheadFor(layers, dtype) + tokens * recordBytesFor(layers, dtype);
}

function shareModeOf(keys: SideLayout, values: SideLayout): CacheShareMode {
  if (keys.kind === 'pooled') return values.kind === 'pooled' ? 'kv' : 'k';
  return values.kind === 'pooled' ? 'v' : 'none';
}

function sideLayout(side: UserCacheSide, length: number, where: string): SideLayout {
  if (side.kind === 'pooled') {
    checkCount(side.poolSize, 1, 0xffffffff, `${where}.poolSize`);
    checkCount(side.userDim, 0, 0xffffffff, `${where}.userDim`);
    checkArray(side.index, length, `${where}.index`);
    checkArray(side.user, length * side.userDim, `${where}.user`);
    return { kind: 'pooled', width: side.userDim, poolSize: side.poolSize, indexBytes: indexBytesForPool(side.poolSize) };
  }
  if (side.kind === 'full') {
    checkCount(side.width, 1, 0xffffffff, `${where}.width`);
    checkArray(side.values, length * side.width, `${where}.values`);
    return { kind: 'full', width: side.width, poolSize: 0, indexBytes: 0 };
  }
  throw new TypeError(`${where}.kind must be 'pooled' or 'full', received ${String((side as { kind: unknown }).kind)}`);
}

/** Validates `cache` and returns its layout (what the header will record). */
export function layoutOf(cache: UserCache, argName = 'cache'): LayerLayout[] {
  checkCount(cache.length, 0, 0xffffffff, `${argName}.length`);
  if (!Array.isArray(cache.layers) || cache.layers.length < 1 || cache.layers.length > 0xffff) {
    throw new RangeError(`${argName}.layers must hold 1..65535 layers, received ${describeLength(cache.layers)}`);
  }
  return cache.layers.map((layer: UserCacheLayer, i) => {
    const keys = sideLayout(layer.keys, cache.length, `${argName}.layers[${i}].keys`);
    const values = sideLayout(layer.values, cache.length, `${argName}.layers[${i}].values`);
    return { share: shareModeOf(keys, values), keys, values };
  });
}

function checkCount(n: number, min: number, max: number, name: string): void {
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], received ${String(n)}`);
  }
}

function checkArray(a: Int32Array | Float32Array, length: number, name: string): void {
  if (a == null || a.length !== length) {
    throw new RangeError(`${name} must hold ${length} elements, received ${describeLength(a)}`);
  }
}

function describeLength(a: ArrayLike<unknown> | null | undefined): string {
  return a == null ? String(a) : `${a.length} elements`;
}

function sameLayout(a: readonly LayerLayout[], b: readonly LayerLayout[]): boolean {
  const sideEq = (x: SideLayout, y: SideLayout) =>
    x.kind === y.kind && x.width === y.width && x.poolSize === y.poolSize && x.indexBytes === y.indexBytes;
  return a.length === b.length && a.every((l, i) => sideEq(l.keys, b[i].keys) && sideEq(l.values, b[i].values));
}

function describeLayout(layers: readonly LayerLayout[]): string {
  const side = (s: SideLayout) => (s.kind === 'pooled' ? `pooled(m=${s.poolSize},du=${s.width})` : `full(${s.width})`);
  return layers.map((l) => `[${side(l.keys)}, ${side(l.values)}]`).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Header

/** What identifies an entry and a write of it: the header's fingerprint, entry id and write id. */
interface EntryIdentity {
  fingerprint: Uint8Array;
  entryId: Uint8Array;
  writeId: Uint8Array;
}

function writeHeader(
  out: Uint8Array, id: EntryIdentity, dtype: CacheDtype, layers: readonly LayerLayout[], tokens: number, chunks: number, events: number,
): void {
  const v = view(out);
  out.set(CACHE_MAGIC, 0);
  v.setUint16(4, CACHE_FORMAT_VERSION, true);
  v.setUint16(6, headerBytesFor(layers.length), true);
  out.set(id.fingerprint, 8);
  v.setUint8(24, DTYPE_CODES[dtype]);
  v.setUint8(25, 0);
  v.setUint16(26, layers.length, true);
  v.setUint32(28, tokens, true);
  v.setUint32(32, chunks, true);
  v.setUint32(36, recordBytesFor(layers, dtype), true);
  out.set(id.entryId, 40);
  out.set(id.writeId, 48);
  v.setUint32(56, events, true);
  layers.forEach((l, i) => writeLayerDescriptor(v, FIXED_HEADER + i * LAYER_DESCRIPTOR, l));
  const crcAt = headerBytesFor(layers.length) - 4;
  v.setUint32(crcAt, crc32(out, 0, crcAt), true);
}

function writeLayerDescriptor(v: DataView, at: number, l: LayerLayout): void {
  v.setUint8(at, SHARE_MODES.indexOf(l.share));
  v.setUint8(at + 1, l.keys.indexBytes);
  v.setUint8(at + 2, l.values.indexBytes);
  v.setUint8(at + 3, 0);
  v.setUint32(at + 4, l.keys.poolSize, true);
  v.setUint32(at + 8, l.keys.width, true);
  v.setUint32(at + 12, l.values.poolSize, true);
  v.setUint32(at + 16, l.values.width, true);
}

/**
 * Bytes of the header that `bytes` starts with, from its first 8 bytes (magic, version, length),
 * so a store can fetch just the header. Throws the typed errors when those bytes are wrong.
 */
export function peekHeaderBytes(bytes: Uint8Array): number {
  checkEncoded(bytes);
  if (bytes.length < 8) throw new CacheCorruptError(`cache is truncated: ${bytes.length} bytes, the header alone needs more`);
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== CACHE_MAGIC[i]) throw new CacheCorruptError('not a collectivekv cache: bad magic bytes');
  }
  const v = view(bytes);
  const version = v.getUint16(4, true);
  if (!SUPPORTED_VERSIONS.includes(version)) throw new CacheVersionError(version, SUPPORTED_VERSIONS);
  const headerBytes = v.getUint16(6, true);
  if (headerBytes < headerBytesFor(1) || (headerBytes - headerBytesFor(0)) % LAYER_DESCRIPTOR !== 0) {
    throw new CacheCorruptError(`header length ${headerBytes} is not ${headerBytesFor(0)} + ${LAYER_DESCRIPTOR} * layers`);
  }
  return headerBytes;
}

/**
 * Parses and checks the header at the start of `bytes` (which may be just the header): magic,
 * version, CRC, field consistency, and the model fingerprint when `options.fingerprint` is given.
 */
export function readHeader(bytes: Uint8Array, options: DecodeOptions = {}): CacheHeader {
  const headerBytes = peekHeaderBytes(bytes);
  if (bytes.length < headerBytes) {
    throw new CacheCorruptError(`cache is truncated: ${bytes.length} bytes, header needs ${headerBytes}`);
  }
  const v = view(bytes);
  const crcAt = headerBytes - 4;
  if (v.getUint32(crcAt, true) !== crc32(bytes, 0, crcAt)) throw new CacheCorruptError('header CRC mismatch');
  const header = parseHeaderFields(v, bytes, headerBytes);
  if (options.fingerprint !== undefined) checkFingerprint(header.fingerprint, options.fingerprint);
  if (options.key !== undefined && header.entryId !== bytesToHex(entryIdOf(options.key))) {
    throw new CacheCorruptError(`entry was written for another key than ${JSON.stringify(options.key.slice(0, 64))}`);
  }
  return header;
}

function parseHeaderFields(v: DataView, bytes: Uint8Array, headerBytes: number): CacheHeader {
  const code = v.getUint8(24);
  if (code === RETIRED_INT8_PER_TOKEN) {
    throw new CacheCorruptError('value dtype code 2 (int8 with a scale per token, written by earlier builds) is no longer read: the entry is rebuilt');
  }
  const dtype = CACHE_DTYPES.find((d) => DTYPE_CODES[d] === code);
  if (dtype === undefined) throw new CacheCorruptError(`unknown value dtype code ${code}`);
  if (v.getUint8(25) !== 0) throw new CacheCorruptError('reserved header byte 25 is not 0');
  const layerCount = v.getUint16(26, true);
  if (layerCount < 1 || headerBytesFor(layerCount) !== headerBytes) {
    throw new CacheCorruptError(`layer count ${layerCount} does not match header length ${headerBytes}`);
  }
  const layers: LayerLayout[] = [];
  for (let i = 0; i < layerCount; i++) layers.push(readLayerDescriptor(v, FIXED_HEADER + i * LAYER_DESCRIPTOR, i));
  const length = v.getUint32(28, true);
  const chunks = v.getUint32(32, true);
  const recordBytes = v.getUint32(36, true);
  if (recordBytes !== recordBytesFor(layers, dtype)) {
    throw new CacheCorruptError(`record bytes ${recordBytes} disagree with the layer layout (${recordBytesFor(layers, dtype)})`);
  }
  if (length < 1 || chunks < 1 || chunks > length) {
    throw new CacheCorruptError(`${chunks} chunks cannot hold ${length} tokens (an entry holds at least 1 token in 1..tokens chunks)`);
  }
  const events = v.getUint32(56, true);
  if (events < length) throw new CacheCorruptError(`the entry reflects ${events} events but holds ${length} tokens`);
  const fingerprint = bytesToHex(bytes.subarray(8, 8 + FINGERPRINT_BYTES));
  const entryId = bytesToHex(bytes.subarray(40, 40 + ID_BYTES));
  const writeId = bytesToHex(bytes.subarray(48, 48 + ID_BYTES));
  return { version: v.getUint16(4, true), fingerprint, dtype, layers, length, chunks, recordBytes, headerBytes, entryId, writeId, events };
}

function readLayerDescriptor(v: DataView, at: number, i: number): LayerLayout {
  const share = SHARE_MODES[v.getUint8(at)];
  if (share === undefined) throw new CacheCorruptError(`layer ${i}: unknown share mode code ${v.getUint8(at)}`);
  if (v.getUint8(at + 3) !== 0) throw new CacheCorruptError(`layer ${i}: reserved descriptor byte is not 0`);
  const keys = readSideDescriptor(v.getUint8(at + 1), v.getUint32(at + 4, true), v.getUint32(at + 8, true), `layer ${i} keys`);
  const values = readSideDescriptor(v.getUint8(at + 2), v.getUint32(at + 12, true), v.getUint32(at + 16, true), `layer ${i} values`);
  if (shareModeOf(keys, values) !== share) {
    throw new CacheCorruptError(`layer ${i}: share mode '${share}' disagrees with its sides`);
  }
  return { share, keys, values };
}

function readSideDescriptor(indexBytes: number, poolSize: number, width: number, where: string): SideLayout {
  if (indexBytes === 0) {
    if (poolSize !== 0 || width < 1) throw new CacheCorruptError(`${where}: a full side needs pool size 0 and width >= 1`);
    return { kind: 'full', width, poolSize: 0, indexBytes: 0 };
  }
  if (poolSize < 1 || indexBytesForPool(poolSize) !== indexBytes) {
    throw new CacheCorruptError(`${where}: index width ${indexBytes} does not fit pool size ${poolSize}`);
  }
  return { kind: 'pooled', width, poolSize, indexBytes: indexBytes as 1 | 2 | 4 };
}

function checkFingerprint(found: string, expected: string): void {
  hexToBytes(expected, 'options.fingerprint');
  if (found !== expected.toLowerCase()) throw new CacheModelMismatchError(expected.toLowerCase(), found);
}

// ---------------------------------------------------------------------------------------------
// Records

/**
 * The CRC state a chunk's CRC starts from: the entry's identity and the chunk's first token, so
 * a chunk only verifies at its own position in its own write of its own entry.
 */
function chunkSeed(header: Uint8Array, firstToken: number): number {
  const seed = new Uint8Array(FINGERPRINT_BYTES + 2 * ID_BYTES + 4);
  seed.set(header.subarray(8, 8 + FINGERPRINT_BYTES), 0);
  seed.set(header.subarray(40, 40 + 2 * ID_BYTES), FINGERPRINT_BYTES);
  view(seed).setUint32(FINGERPRINT_BYTES + 2 * ID_BYTES, firstToken, true);
  return crc32(seed);
}

/**
 * Writes tokens [from, to) of `cache` as one chunk at `out[at]`, CRC seeded with `seed`
 * (chunkSeed); returns the end offset.
 */
function writeChunk(out: Uint8Array, at: number, cache: UserCache, dtype: CacheDtype, from: number, to: number, seed: number): number {
  const v = view(out);
  const start = at;
  v.setUint32(at, to - from, true);
  at += 4;
  // int8: one scale per side for the whole chunk, written before the records.
  const scales = dtype === 'int8' ? chunkScales(cache, from, to) : undefined;
  scales?.forEach((s) => {
    if (s === undefined) return;
    v.setFloat32(at, s, true);
    at += 4;
  });
  for (let t = from; t < to; t++) {
    cache.layers.forEach((layer, li) => {
      at = writeSide(v, at, layer.keys, t, dtype, scales?.[2 * li], `layers[${li}].keys`);
      at = writeSide(v, at, layer.values, t, dtype, scales?.[2 * li + 1], `layers[${li}].values`);
    });
  }
  v.setUint32(at, crc32(out, start, at, seed), true);
  return at + 4;
}

/** Per layer, K then V: the int8 scale of the side over tokens [from, to) (undefined for a side without values). */
function chunkScales(cache: UserCache, from: number, to: number): Array<number | undefined> {
  const out: Array<number | undefined> = [];
  cache.layers.forEach((layer, li) => {
    for (const [name, side] of [['keys', layer.keys], ['values', layer.values]] as const) {
      const [values, width, what] = side.kind === 'pooled' ? [side.user, side.userDim, 'user'] : [side.values, side.width, 'values'];
      if (width === 0) {
        out.push(undefined);
        continue;
      }
      let absmax = 0;
      for (let i = from * width; i < to * width; i++) {
        const x = values[i];
        if (!Number.isFinite(x)) throw new RangeError(`layers[${li}].${name}.${what} at token ${Math.floor(i / width)} must be finite, received ${x}`);
        absmax = Math.max(absmax, Math.abs(x));
      }
      out.push(int8Scale(absmax));
    }
  });
  return out;
}

/**
 * The int8 scale for values of largest magnitude `absmax`: about absmax / 127, moved to a fixed
 * point of s -> fround(fround(127 s) / 127). Decoded values peak at fround(127 s), so encoding
 * them again finds the same scale and the same bytes.
 */
export function int8Scale(absmax: number): number {
  let s = Math.fround(absmax / 127);
  // Near the float32 maximum, 127 s may round to infinity: step s down until it does not.
  while (!Number.isFinite(Math.fround(127 * s))) s = nextFloat32Down(s);
  for (let i = 0; i < 16; i++) {
    const next = Math.fround(Math.fround(127 * s) / 127);
    if (next === s || !Number.isFinite(next)) return s;
    s = next;
  }
  return s;
}

const bits = new Float32Array(1);
const bitsU32 = new Uint32Array(bits.buffer);

/** The largest float32 below positive `x`. */
function nextFloat32Down(x: number): number {
  bits[0] = x;
  bitsU32[0]--;
  return bits[0];
}

function writeSide(v: DataView, at: number, side: UserCacheSide, t: number, dtype: CacheDtype, scale: number | undefined, where: string): number {
  if (side.kind === 'pooled') {
    at = writeIndex(v, at, side.index[t], side.poolSize, `${where}.index[${t}]`);
    return writeValues(v, at, side.user, t * side.userDim, side.userDim, dtype, scale, `${where}.user at token ${t}`);
  }
  return writeValues(v, at, side.values, t * side.width, side.width, dtype, scale, `${where}.values at token ${t}`);
}

function writeIndex(v: DataView, at: number, index: number, poolSize: number, where: string): number {
  if (!Number.isInteger(index) || index < 0 || index >= poolSize) {
    throw new RangeError(`${where} must be a pool row in [0, ${poolSize}), received ${index}`);
  }
  const bytes = indexBytesForPool(poolSize);
  if (bytes === 1) v.setUint8(at, index);
  else if (bytes === 2) v.setUint16(at, index, true);
  else v.setUint32(at, index, true);
  return at + bytes;
}

function writeValues(
  v: DataView, at: number, src: Float32Array, offset: number, count: number, dtype: CacheDtype, scale: number | undefined, where: string,
): number {
  for (let i = 0; i < count; i++) {
    const x = src[offset + i];
    if (!Number.isFinite(x)) throw new RangeError(`${where} must be finite, received ${x}`);
  }
  if (dtype === 'fp32') {
    for (let i = 0; i < count; i++) v.setFloat32(at + 4 * i, src[offset + i], true);
    return at + 4 * count;
  }
  if (dtype === 'fp16') return writeHalfValues(v, at, src, offset, count, where);
  return count > 0 ? writeInt8Values(v, at, src, offset, count, scale ?? 0) : at;
}

function writeHalfValues(v: DataView, at: number, src: Float32Array, offset: number, count: number, where: string): number {
  for (let i = 0; i < count; i++) {
    const h = toHalfBits(src[offset + i]);
    if ((h & 0x7c00) === 0x7c00) throw new RangeError(`${where} overflows fp16 (|x| < 65520), received ${src[offset + i]}; store it with dtype 'fp32'`);
    v.setUint16(at + 2 * i, h, true);
  }
  return at + 2 * count;
}

/** int8: q = round half away from zero (x / s), in [-127, 127]; |x - q s| <= s / 2 (plus float rounding). */
function writeInt8Values(v: DataView, at: number, src: Float32Array, offset: number, count: number, scale: number): number {
  for (let i = 0; i < count; i++) {
    const x = src[offset + i];
    const q = scale === 0 ? 0 : Math.sign(x) * Math.min(127, Math.round(Math.abs(x) / scale));
    v.setInt8(at + i, q);
  }
  return at + count;
}

/** Empty typed arrays for `length` tokens of `layers`. */
function allocateCache(layers: readonly LayerLayout[], length: number): UserCache {
  const side = (s: SideLayout): UserCacheSide =>
    s.kind === 'pooled'
      ? { kind: 'pooled', poolSize: s.poolSize, userDim: s.width, index: new Int32Array(length), user: new Float32Array(length * s.width) }
      : { kind: 'full', width: s.width, values: new Float32Array(length * s.width) };
  return { length, layers: layers.map((l) => ({ keys: side(l.keys), values: side(l.values) })) };
}

/** Reads the records of the chunk at `at` into `cache` from token `first`; returns [end, tokens]. */
function readChunk(bytes: Uint8Array, at: number, header: CacheHeader, cache: UserCache, first: number): [number, number] {
  const v = view(bytes);
  const scaleBytes = scaleBytesFor(header.layers, header.dtype);
  if (bytes.length - at < CHUNK_OVERHEAD + scaleBytes) throw new CacheCorruptError(`chunk at byte ${at} is truncated`);
  const n = v.getUint32(at, true);
  const end = at + 4 + scaleBytes + n * header.recordBytes;
  if (n < 1 || first + n > header.length || end + 4 > bytes.length) {
    throw new CacheCorruptError(`chunk at byte ${at} claims ${n} tokens, which do not fit`);
  }
  if (v.getUint32(end, true) !== crc32(bytes, at, end, chunkSeed(bytes, first))) {
    throw new CacheCorruptError(`chunk at byte ${at}: CRC mismatch (damaged, or moved from another position or entry)`);
  }
  let p = at + 4;
  const scales: Array<number | undefined> = [];
  if (header.dtype === 'int8') {
    for (const l of header.layers) {
      for (const side of [l.keys, l.values]) {
        if (side.width === 0) {
          scales.push(undefined);
          continue;
        }
        const s = v.getFloat32(p, true);
        // The encoder writes int8Scale of a finite absmax: >= +0, and 127 s is a finite float32.
        if (!(s >= 0) || Object.is(s, -0) || !Number.isFinite(Math.fround(127 * s))) {
          throw new CacheCorruptError(`int8 scale ${s} is not one the encoder writes (finite, non-negative, 127 x scale finite)`);
        }
        scales.push(s);
        p += 4;
      }
    }
  }
  for (let t = first; t < first + n; t++) {
    header.layers.forEach((layer, li) => {
      p = readSide(v, p, layer.keys, cache.layers[li].keys, t, header.dtype, scales[2 * li], li);
      p = readSide(v, p, layer.values, cache.layers[li].values, t, header.dtype, scales[2 * li + 1], li);
    });
  }
  return [end + 4, n];
}

function readSide(
  v: DataView, at: number, layout: SideLayout, side: UserCacheSide, t: number, dtype: CacheDtype, scale: number | undefined, li: number,
): number {
  if (side.kind === 'pooled') {
    const index = layout.indexBytes === 1 ? v.getUint8(at) : layout.indexBytes === 2 ? v.getUint16(at, true) : v.getUint32(at, true);
    if (index >= side.poolSize) throw new CacheCorruptError(`layer ${li}: pool index ${index} >= pool size ${side.poolSize}`);
    side.index[t] = index;
    return readValues(v, at + layout.indexBytes, side.user, t * side.userDim, side.userDim, dtype, scale);
  }
  return readValues(v, at, side.values, t * side.width, side.width, dtype, scale);
}

function readValues(v: DataView, at: number, dst: Float32Array, offset: number, count: number, dtype: CacheDtype, scale: number | undefined): number {
  if (dtype === 'fp32') {
    for (let i = 0; i < count; i++) dst[offset + i] = finite(v.getFloat32(at + 4 * i, true));
    return at + 4 * count;
  }
  if (dtype === 'fp16') {
    for (let i = 0; i < count; i++) dst[offset + i] = finite(fromHalfBits(v.getUint16(at + 2 * i, true)));
    return at + 2 * count;
  }
  const s = scale ?? 0;
  for (let i = 0; i < count; i++) {
    const q = v.getInt8(at + i);
    // The encoder writes [-127, 127], and only 0 under a zero scale.
    if (q === -128 || (s === 0 && q !== 0)) throw new CacheCorruptError(`int8 value ${q} cannot have been written with scale ${s}`);
    dst[offset + i] = q * s;
  }
  return at + count;
}

/** Encoding refuses NaN and infinities, so a stored one means the bytes were damaged. */
function finite(x: number): number {
  if (!Number.isFinite(x)) throw new CacheCorruptError(`stored value ${x} is not finite`);
  return x;
}

// ---------------------------------------------------------------------------------------------
// Public encode / decode / append

/** Encodes one user's cache (all layers) as one chunk. */
export function encodeCache(cache: UserCache, options: EncodeOptions): Uint8Array {
  if (options == null || typeof options !== 'object') {
    throw new TypeError(`encodeCache: argument 'options' must be an object with a fingerprint, received ${describeValue(options)}`);
  }
  const dtype = checkCacheDtype(options.dtype ?? DEFAULT_CACHE_DTYPE);
  const id: EntryIdentity = {
    fingerprint: hexToBytes(options.fingerprint, 'options.fingerprint'),
    entryId: entryIdOf(options.key ?? ''),
    writeId: options.writeId === undefined ? randomWriteId() : checkWriteId(options.writeId),
  };
  const layers = layoutOf(cache);
  if (cache.length < 1) throw new RangeError('cache.length must be at least 1 (an entry holds at least one token), received 0');
  const events = options.events ?? cache.length;
  checkCount(events, cache.length, 0xffffffff, 'options.events');
  const out = new Uint8Array(encodedBytesFor(layers, dtype, cache.length));
  writeHeader(out, id, dtype, layers, cache.length, 1, events);
  writeChunk(out, headerBytesFor(layers.length), cache, dtype, 0, cache.length, chunkSeed(out, 0));
  return out;
}

function checkWriteId(id: Uint8Array): Uint8Array {
  if (!(id instanceof Uint8Array) || id.length !== ID_BYTES) {
    throw new TypeError(`options.writeId must be a Uint8Array of ${ID_BYTES} bytes, received ${describeValue(id)}`);
  }
  return id;
}

/** Encoded entries must be byte arrays: anything else is a CacheCorruptError, not a TypeError. */
function checkEncoded(bytes: unknown): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new CacheCorruptError(`an encoded cache must be a Uint8Array, received ${describeValue(bytes)}`);
}

function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (x instanceof Uint8Array) return `${x.length} bytes`;
  return Array.isArray(x) ? 'an array' : typeof x;
}

/** Decodes and checks everything: header, every chunk CRC, exact length, index ranges, fingerprint. */
export function decodeCache(bytes: Uint8Array, options: DecodeOptions = {}): DecodedCache {
  checkEncoded(bytes);
  const header = readHeader(bytes, options);
  const expected = encodedBytesFor(header.layers, header.dtype, header.length, header.chunks);
  if (bytes.length !== expected) {
    throw new CacheCorruptError(`cache is ${bytes.length} bytes, its header says ${expected}`);
  }
  const cache = allocateCache(header.layers, header.length);
  let at = header.headerBytes;
  let tokens = 0;
  for (let c = 0; c < header.chunks; c++) {
    const [end, n] = readChunk(bytes, at, header, cache, tokens);
    at = end;
    tokens += n;
  }
  if (tokens !== header.length || at !== bytes.length) {
    throw new CacheCorruptError(`chunks hold ${tokens} tokens, the header says ${header.length}`);
  }
  return { header, cache };
}

/** What a store must do, atomically, to append tokens: see CacheStore.append. */
export interface AppendPlan {
  /** The header the stored value must currently start with (else another writer got there first). */
  expectHeader: Uint8Array;
  /** Replaces `expectHeader` (same length): new token and chunk counts, new header CRC. */
  newHeader: Uint8Array;
  /** Bytes appended after the stored value: one chunk with the new tokens. */
  tail: Uint8Array;
}

/**
 * Plans the append of `tokens` (same layout as the stored cache) given only the stored header
 * bytes (`header` may be longer: the rest is ignored). Cost is O(new tokens), whatever is stored.
 */
export function planAppend(header: Uint8Array, tokens: UserCache, options: DecodeOptions = {}): AppendPlan {
  const h = readHeader(header, options);
  const layers = layoutOf(tokens, 'tokens');
  if (!sameLayout(layers, h.layers)) {
    throw new RangeError(`tokens must have the stored layout ${describeLayout(h.layers)}, received ${describeLayout(layers)}`);
  }
  if (tokens.length < 1) throw new RangeError('tokens.length must be at least 1, received 0');
  if (h.length + tokens.length > 0xffffffff) throw new RangeError(`cache would exceed ${0xffffffff} tokens`);
  if (h.events + tokens.length > 0xffffffff) throw new RangeError(`the entry would reflect more than ${0xffffffff} events`);
  const expectHeader = header.slice(0, h.headerBytes);
  const newHeader = new Uint8Array(h.headerBytes);
  writeHeader(newHeader, identityOf(expectHeader), h.dtype, h.layers, h.length + tokens.length, h.chunks + 1, h.events + tokens.length);
  const tail = new Uint8Array(chunkOverheadFor(h.layers, h.dtype) + tokens.length * h.recordBytes);
  writeChunk(tail, 0, tokens, h.dtype, 0, tokens.length, chunkSeed(newHeader, h.length));
  return { expectHeader, newHeader, tail };
}

function identityOf(header: Uint8Array): EntryIdentity {
  return {
    fingerprint: header.subarray(8, 8 + FINGERPRINT_BYTES),
    entryId: header.subarray(40, 40 + ID_BYTES),
    writeId: header.subarray(48, 48 + ID_BYTES),
  };
}

/** Applies an AppendPlan to an encoded cache held in memory (what the stores do atomically). */
export function applyAppend(encoded: Uint8Array, plan: AppendPlan): Uint8Array {
  const out = new Uint8Array(encoded.length + plan.tail.length);
  out.set(encoded, 0);
  out.set(plan.newHeader, 0);
  out.set(plan.tail, encoded.length);
  return out;
}

/**
 * Appends `tokens` to an encoded cache: equal, once decoded, to encoding the whole history (for
 * int8, up to quantization: the new chunk has its own scales).
 */
export function appendTokens(encoded: Uint8Array, tokens: UserCache, options: DecodeOptions = {}): Uint8Array {
  return applyAppend(encoded, planAppend(encoded, tokens, options));
}

/**
 * Rewrites a cache as a single chunk (drops the framing each append added), byte for byte, so it
 * is lossless. An int8 entry comes back unchanged (its chunks' scales differ). Checks everything.
 */
export function compactCache(encoded: Uint8Array, options: DecodeOptions = {}): Uint8Array {
  const { header } = decodeCache(encoded, options);
  // int8 chunks each carry their own scales: one chunk would mean quantizing again, so they stay.
  return header.chunks <= 1 || header.dtype === 'int8' ? encoded.slice() : mergeChunks(encoded, header);
}

/** Copies the records of all chunks into one chunk (fp32 and fp16 only: records are copied, not re-encoded). */
function mergeChunks(encoded: Uint8Array, header: CacheHeader): Uint8Array {
  const out = new Uint8Array(encodedBytesFor(header.layers, header.dtype, header.length, 1));
  out.set(encoded.subarray(0, header.headerBytes), 0);
  const v = view(out);
  v.setUint32(28, header.length, true);
  v.setUint32(32, 1, true);
  const crcAt = header.headerBytes - 4;
  v.setUint32(crcAt, crc32(out, 0, crcAt), true);
  let src = header.headerBytes;
  let dst = header.headerBytes + 4;
  v.setUint32(header.headerBytes, header.length, true);
  const ev = view(encoded);
  for (let c = 0; c < header.chunks; c++) {
    const n = ev.getUint32(src, true);
    const len = n * header.recordBytes;
    out.set(encoded.subarray(src + 4, src + 4 + len), dst);
    dst += len;
    src += len + CHUNK_OVERHEAD;
  }
  v.setUint32(dst, crc32(out, header.headerBytes, dst, chunkSeed(out, 0)), true);
  return out;
}

/** `dtype` when it is a CacheDtype, else a RangeError naming `name`, the values allowed and the one received. */
export function checkCacheDtype(dtype: unknown, name = 'options.dtype'): CacheDtype {
  if (!CACHE_DTYPES.includes(dtype as CacheDtype)) {
    throw new RangeError(`${name} must be one of ${CACHE_DTYPES.join(', ')}, received ${typeof dtype === 'string' ? JSON.stringify(dtype) : String(dtype)}`);
  }
  return dtype as CacheDtype;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
