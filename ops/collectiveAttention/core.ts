// Backend-independent CollectiveKV attention over flat typed-array views. The cpu and wasm kernels
// only differ in where buffers live and which matmul they use; both are supplied by a Workspace.
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { ArgumentError, indexOutOfRange } from '../util/validate';

// Bound once: in a hot loop `Math.exp` is a global lookup, slow under jest's vm context.
const { exp } = Math;

/**
 * 'direct': loop over history tokens, dotting the query with each token's pool row.
 * 'pool': score the query against the whole pool with one batched matmul, then look scores up per
 * token and accumulate weights per pool row for a second matmul. 'auto' compares their costs.
 */
export type CollectiveAttentionAlgorithm = 'auto' | 'direct' | 'pool';

let forcedAlgorithm: CollectiveAttentionAlgorithm = 'auto';

/** Forces one algorithm for every later call (tests, benchmarks); returns the previous setting. */
export function setCollectiveAttentionAlgorithm(algorithm: CollectiveAttentionAlgorithm): CollectiveAttentionAlgorithm {
  const previous = forcedAlgorithm;
  forcedAlgorithm = algorithm;
  return previous;
}

export function getCollectiveAttentionAlgorithm(): CollectiveAttentionAlgorithm {
  return forcedAlgorithm;
}

let lastAlgorithm: 'direct' | 'pool' | null = null;

/**
 * The algorithm the most recent kernel call ran, then forgets it (so tests can tell that the kernel,
 * not the composite, ran, and that forcing and 'auto' work).
 */
export function takeLastCollectiveAttentionAlgorithm(): 'direct' | 'pool' | null {
  const last = lastAlgorithm;
  lastAlgorithm = null;
  return last;
}

let chunkRowsOverride: number | null = null;

/** Caps the queries per pool-form chunk (tests exercise chunking with it); null restores the default. */
export function setPoolChunkRows(rows: number | null): void {
  chunkRowsOverride = rows;
}

/** Shapes and attributes of one call, all resolved to plain numbers. */
export interface Problem {
  batch: number;
  tq: number;
  tk: number;
  numHeads: number;
  /** Per-head key and value widths. */
  dk: number;
  dv: number;
  poolRowsK: number;
  poolRowsV: number;
  /** Widths of the collective parts (pool columns); the user parts follow them. */
  poolWidthK: number;
  poolWidthV: number;
  userDimK: number;
  userDimV: number;
  hstu: boolean;
  causal: boolean;
  scale: number;
}

export interface Views {
  query: Float32Array;
  indexK: Int32Array;
  indexV: Int32Array;
  userK: Float32Array;
  userV: Float32Array;
  poolK: Float32Array;
  poolV: Float32Array;
  mask: ArrayLike<number> | null;
  out: Float32Array;
}

/**
 * Where scratch buffers live and how they are multiplied. `views()` must be called again after
 * any alloc/matMul: on wasm an allocation can grow (and move) the heap, detaching older views.
 */
export interface Workspace<Buf> {
  views(): Views;
  alloc(size: number): Buf;
  data(buf: Buf): Float32Array;
  /** out[i, j] = sum_l a[i, l] * b[l, j]: a [m, k], b [k, n], out [m, n]. */
  matMul(a: Buf, b: Buf, m: number, k: number, n: number): Buf;
  free(buf: Buf): void;
  /** Cost of one matmul multiply-add relative to one multiply-add of the per-token JS loop. */
  readonly matMulCost: number;
}

const OP = 'collectiveAttention';

/** Reads shapes and attrs of the kernel call; the op has already validated them. */
export function describeProblem(inputs: Record<string, TensorInfo | undefined>, attrs: NamedAttrMap): Problem {
  const need = (name: string) => requireInput(inputs, name);
  const [query, indexK, userK, userV, poolK, poolV] = ['query', 'indexK', 'userK', 'userV', 'poolK', 'poolV'].map(need);
  const numHeads = attrs.numHeads as number;
  const userDimK = userK.shape[2];
  const userDimV = userV.shape[2];
  const dk = query.shape[2] / numHeads;
  const dv = (poolV.shape[1] + userDimV) / numHeads;
  const scale = attrs.scale as number;
  return {
    batch: indexK.shape[0], tq: query.shape[1], tk: indexK.shape[1], numHeads, dk, dv,
    poolRowsK: poolK.shape[0], poolRowsV: poolV.shape[0], poolWidthK: poolK.shape[1], poolWidthV: poolV.shape[1],
    userDimK, userDimV, hstu: attrs.attention === 'hstu', causal: attrs.causal === true,
    scale: scale == null || scale < 0 ? 1 / Math.sqrt(dk) : scale,
  };
}

export function requireInput(inputs: Record<string, TensorInfo | undefined>, name: string): TensorInfo {
  const t = inputs[name];
  if (t == null) throw new ArgumentError(OP, name, 'a tensor', 'nothing');
  return t;
}

/** Throws indexOutOfRange (naming the argument) before any output is written. */
export function checkIndices(p: Problem, v: Views): void {
  checkRange(v.indexK, p.poolRowsK, 'cache.indexK');
  checkRange(v.indexV, p.poolRowsV, 'cache.indexV');
}

function checkRange(index: Int32Array, rows: number, arg: string): void {
  for (let i = 0; i < index.length; i++) {
    const j = index[i];
    if (j < 0 || j >= rows) throw indexOutOfRange(OP, arg, j, rows, i);
  }
}

/** Per-query cost of each algorithm, in per-token-loop multiply-adds. */
export function chooseAlgorithm(p: Problem, matMulCost: number): 'direct' | 'pool' {
  if (forcedAlgorithm !== 'auto') return forcedAlgorithm;
  const dK = p.numHeads * p.dk;
  const dV = p.numHeads * p.dv;
  const rows = p.batch * p.tq;
  const direct = rows * p.tk * (dK + dV);
  // Matmuls over the whole pool, a lookup and a scatter per token and head, zeroing/reading W, and
  // re-laying out both pools once per call.
  const pool = rows * ((p.poolRowsK * dK + p.poolRowsV * dV) * matMulCost + p.tk * p.numHeads * 4 + p.poolRowsV * p.numHeads)
    + p.poolRowsK * dK + p.poolRowsV * dV;
  return pool < direct ? 'pool' : 'direct';
}

/** Entry point shared by the kernels: validates indices, then runs the cheaper algorithm. */
export function runCollectiveAttention<Buf>(p: Problem, ws: Workspace<Buf>): 'direct' | 'pool' {
  const v = ws.views();
  checkIndices(p, v);
  v.out.fill(0); // wasm outputs are not zero-initialized; queries with no valid key stay zero
  if (p.batch * p.tq === 0 || p.tk === 0) return 'direct';
  const algorithm = chooseAlgorithm(p, ws.matMulCost);
  lastAlgorithm = algorithm;
  if (algorithm === 'pool') runPool(p, ws);
  else runDirect(p, v);
  return algorithm;
}

/** Columns of head h inside a width = poolWidth + userDim vector: pool part then user part. */
interface HeadSplit {
  /** Pool columns [p0, p1) (same index in the full vector). */
  p0: number;
  p1: number;
  /** User columns [u0, u1), counted inside the user part. */
  u0: number;
  u1: number;
}

function headSplit(h: number, width: number, poolWidth: number): HeadSplit {
  const c0 = h * width;
  const c1 = c0 + width;
  return { p0: Math.min(c0, poolWidth), p1: Math.min(c1, poolWidth), u0: Math.max(c0, poolWidth) - poolWidth,
    u1: Math.max(c1, poolWidth) - poolWidth };
}

function headSplits(p: Problem): { keys: HeadSplit[]; values: HeadSplit[] } {
  const keys: HeadSplit[] = [];
  const values: HeadSplit[] = [];
  for (let h = 0; h < p.numHeads; h++) {
    keys.push(headSplit(h, p.dk, p.poolWidthK));
    values.push(headSplit(h, p.dv, p.poolWidthV));
  }
  return { keys, values };
}

/** Fills `list` with the keys query t of batch b may see (causal band and mask); returns how many. */
function collectValid(p: Problem, mask: ArrayLike<number> | null, b: number, t: number, list: Int32Array): number {
  const limit = p.causal ? Math.min(p.tk, t + p.tk - p.tq + 1) : p.tk;
  let n = 0;
  const base = b * p.tk;
  for (let i = 0; i < limit; i++) {
    if (mask == null || mask[base + i] !== 0) list[n++] = i;
  }
  return n;
}

/** Turns n scores into attention weights in place (softmax, or HSTU's SiLU / count). */
function normalize(w: Float64Array, n: number, hstu: boolean): void {
  if (hstu) {
    for (let i = 0; i < n; i++) {
      const s = w[i];
      w[i] = s / (1 + exp(-s)) / n;
    }
    return;
  }
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (w[i] > max) max = w[i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = exp(w[i] - max);
    w[i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) w[i] *= inv;
}

/** q_u . uk_i for the user columns of one head (query columns poolWidth + u). */
function userScore(q: Float32Array, qOff: number, uk: Float32Array, ukOff: number, s: HeadSplit): number {
  let acc = 0;
  for (let u = s.u0; u < s.u1; u++) acc += q[qOff + u] * uk[ukOff + u];
  return acc;
}

/** out[user columns of head] += sum_i w_i uv_i. */
function addUserOutput(p: Problem, v: Views, b: number, oOff: number, s: HeadSplit, list: Int32Array, w: Float64Array, n: number): void {
  if (s.u1 <= s.u0) return;
  const du = p.userDimV;
  const uOut = oOff + p.poolWidthV;
  for (let u = s.u0; u < s.u1; u++) {
    let acc = 0;
    for (let x = 0; x < n; x++) acc += w[x] * v.userV[(b * p.tk + list[x]) * du + u];
    v.out[uOut + u] += acc;
  }
}

/** Per-token loop: cost ~ valid tokens x (dk + dv) per query and head. */
function runDirect(p: Problem, v: Views): void {
  const { keys, values } = headSplits(p);
  const list = new Int32Array(p.tk);
  const w = new Float64Array(p.tk);
  const acc = new Float64Array(p.dv);
  const dK = p.numHeads * p.dk;
  const dV = p.numHeads * p.dv;
  const { query: q, poolK, poolV, indexK, indexV, userK } = v;
  for (let b = 0; b < p.batch; b++) {
    for (let t = 0; t < p.tq; t++) {
      const n = collectValid(p, v.mask, b, t, list);
      if (n === 0) continue;
      const qOff = (b * p.tq + t) * dK;
      const oOff = (b * p.tq + t) * dV;
      for (let h = 0; h < p.numHeads; h++) {
        const ks = keys[h];
        const qUser = qOff + p.poolWidthK;
        for (let x = 0; x < n; x++) {
          const tok = b * p.tk + list[x];
          const row = indexK[tok] * p.poolWidthK;
          let s = 0;
          for (let c = ks.p0; c < ks.p1; c++) s += q[qOff + c] * poolK[row + c];
          s += userScore(q, qUser, userK, tok * p.userDimK, ks);
          w[x] = s * p.scale;
        }
        normalize(w, n, p.hstu);
        const vs = values[h];
        const width = vs.p1 - vs.p0;
        acc.fill(0, 0, width);
        for (let x = 0; x < n; x++) {
          const row = indexV[b * p.tk + list[x]] * p.poolWidthV + vs.p0;
          const a = w[x];
          for (let c = 0; c < width; c++) acc[c] += a * poolV[row + c];
        }
        for (let c = 0; c < width; c++) v.out[oOff + vs.p0 + c] += acc[c];
        addUserOutput(p, v, b, oOff, vs, list, w, n);
      }
    }
  }
}

/** Upper bound on floats in one [rows, poolRows] scratch (scores or weights) buffer of one head. */
const MAX_SCRATCH = 1 << 21;

/** Pool columns of head h: [c0, c0 + n). */
function poolColumns(h: number, width: number, poolWidth: number): { c0: number; n: number } {
  const c0 = h * width;
  return { c0, n: Math.max(0, Math.min(width, poolWidth - c0)) };
}

/**
 * Pool-matmul form, per head h (one matmul each: the wasm backend's fast XNNPACK path only takes
 * unbatched, untransposed operands): S_h = q_h . PkT_h over the whole pool, scores are lookups
 * S_h[jk_i] plus the user term; weights are summed per pool row W_h[jv_i] += a_i and the collective
 * output is W_h . Pv_h. Queries are processed in chunks to bound scratch memory.
 */
function runPool<Buf>(p: Problem, ws: Workspace<Buf>): void {
  const H = p.numHeads;
  const rowsTotal = p.batch * p.tq;
  const chunk = chunkRowsOverride ?? Math.max(1, Math.floor(MAX_SCRATCH / Math.max(p.poolRowsK, p.poolRowsV)));
  const keyCols = range(H).map((h) => poolColumns(h, p.dk, p.poolWidthK));
  const valueCols = range(H).map((h) => poolColumns(h, p.dv, p.poolWidthV));
  const owned: Buf[] = [];
  const track = (b: Buf) => { owned.push(b); return b; };
  try {
    const poolK = keyCols.map(({ n }) => (n > 0 ? track(ws.alloc(n * p.poolRowsK)) : null));
    const poolV = valueCols.map(({ n }) => (n > 0 ? track(ws.alloc(n * p.poolRowsV)) : null));
    const v = ws.views();
    keyCols.forEach(({ c0, n }, h) => { const b = poolK[h]; if (b != null) transposePoolSlice(v.poolK, ws.data(b), p.poolRowsK, p.poolWidthK, c0, n); });
    valueCols.forEach(({ c0, n }, h) => { const b = poolV[h]; if (b != null) copyPoolSlice(v.poolV, ws.data(b), p.poolRowsV, p.poolWidthV, c0, n); });
    const scratch = { list: new Int32Array(p.tk), w: new Float64Array(p.tk) };
    for (let r0 = 0; r0 < rowsTotal; r0 += chunk) {
      const rows = Math.min(chunk, rowsTotal - r0);
      const scores = keyCols.map(({ c0, n }, h) => scoreAgainstPool(p, ws, track, poolK[h], r0, rows, c0, n));
      const weights = range(H).map(() => track(ws.alloc(rows * p.poolRowsV)));
      const wv = weights.map((b) => { const d = ws.data(b); d.fill(0); return d; });
      scoreAndScatter(p, ws.views(), scores.map((b) => (b == null ? null : ws.data(b))), wv, r0, rows, scratch);
      for (const b of scores) if (b != null) release(ws, owned, b);
      valueCols.forEach(({ c0, n }, h) => {
        const pv = poolV[h];
        if (pv == null) return;
        const o = track(ws.matMul(weights[h], pv, rows, p.poolRowsV, n));
        addCollectiveOutput(p, ws.views().out, ws.data(o), r0, rows, c0, n);
        release(ws, owned, o);
      });
      for (const b of weights) release(ws, owned, b);
    }
  } finally {
    for (const b of owned) ws.free(b);
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function release<Buf>(ws: Workspace<Buf>, owned: Buf[], b: Buf): void {
  owned.splice(owned.indexOf(b), 1);
  ws.free(b);
}

/** S [rows, poolRows] = q[r0.., c0..c0+n) . PkT_h, or null for a head with no pool columns. */
function scoreAgainstPool<Buf>(p: Problem, ws: Workspace<Buf>, track: (b: Buf) => Buf, poolT: Buf | null, r0: number, rows: number,
  c0: number, n: number): Buf | null {
  if (poolT == null) return null;
  const qb = track(ws.alloc(rows * n));
  const q = ws.views().query;
  const dst = ws.data(qb);
  const dK = p.numHeads * p.dk;
  for (let r = 0; r < rows; r++) {
    const s = (r0 + r) * dK + c0;
    for (let c = 0; c < n; c++) dst[r * n + c] = q[s + c];
  }
  return track(ws.matMul(qb, poolT, rows, n, p.poolRowsK));
}

/** dst[c, j] = pool[j, c0 + c]: the head's key columns, transposed for q . PkT. */
function transposePoolSlice(pool: Float32Array, dst: Float32Array, rows: number, poolWidth: number, c0: number, n: number): void {
  for (let j = 0; j < rows; j++) {
    const s = j * poolWidth + c0;
    for (let c = 0; c < n; c++) dst[c * rows + j] = pool[s + c];
  }
}

/** dst[j, c] = pool[j, c0 + c]: the head's value columns. */
function copyPoolSlice(pool: Float32Array, dst: Float32Array, rows: number, poolWidth: number, c0: number, n: number): void {
  for (let j = 0; j < rows; j++) dst.set(pool.subarray(j * poolWidth + c0, j * poolWidth + c0 + n), j * n);
}

function scoreAndScatter(p: Problem, v: Views, S: (Float32Array | null)[], W: Float32Array[], r0: number, rows: number,
  scratch: { list: Int32Array; w: Float64Array }): void {
  const { keys, values } = headSplits(p);
  const { list, w } = scratch;
  const jk = new Int32Array(p.tk);
  const jv = new Int32Array(p.tk);
  const { indexK, indexV } = v;
  const dK = p.numHeads * p.dk;
  const dV = p.numHeads * p.dv;
  const mK = p.poolRowsK;
  const mV = p.poolRowsV;
  for (let r = 0; r < rows; r++) {
    const row = r0 + r;
    const b = Math.floor(row / p.tq);
    const t = row - b * p.tq;
    const n = collectValid(p, v.mask, b, t, list);
    if (n === 0) continue;
    const base = b * p.tk;
    for (let x = 0; x < n; x++) jk[x] = indexK[base + list[x]];
    const qUser = row * dK + p.poolWidthK;
    for (let x = 0; x < n; x++) jv[x] = indexV[base + list[x]];
    for (let h = 0; h < p.numHeads; h++) {
      const ks = keys[h];
      const Sh = S[h];
      if (Sh == null) w.fill(0, 0, n);
      else lookupScores(Sh, r * mK, jk, n, w);
      if (ks.u1 > ks.u0) {
        for (let x = 0; x < n; x++) w[x] += userScore(v.query, qUser, v.userK, (base + list[x]) * p.userDimK, ks);
      }
      scaleScores(w, n, p.scale);
      normalize(w, n, p.hstu);
      scatterWeights(W[h], r * mV, jv, n, w);
      addUserOutput(p, v, b, row * dV, values[h], list, w, n);
    }
  }
}

// The three loops below are kept tiny and monomorphic: they run once per (token, head).
function lookupScores(S: Float32Array, off: number, j: Int32Array, n: number, w: Float64Array): void {
  for (let x = 0; x < n; x++) w[x] = S[off + j[x]];
}

function scaleScores(w: Float64Array, n: number, scale: number): void {
  for (let x = 0; x < n; x++) w[x] *= scale;
}

function scatterWeights(W: Float32Array, off: number, j: Int32Array, n: number, w: Float64Array): void {
  for (let x = 0; x < n; x++) W[off + j[x]] += w[x];
}

/** out[r0 + r, c0 + c] += O[r, c]. */
function addCollectiveOutput(p: Problem, out: Float32Array, O: Float32Array, r0: number, rows: number, c0: number, n: number): void {
  const dV = p.numHeads * p.dv;
  for (let r = 0; r < rows; r++) {
    const d = (r0 + r) * dV + c0;
    for (let c = 0; c < n; c++) out[d + c] += O[r * n + c];
  }
}

/** Plain-JS matmul for backends without a faster one; skips zero entries of a (W is sparse). */
export function jsMatMul(a: Float32Array, b: Float32Array, out: Float32Array, m: number, k: number, n: number): void {
  out.fill(0, 0, m * n);
  for (let i = 0; i < m; i++) {
    const oRow = i * n;
    for (let l = 0; l < k; l++) {
      const x = a[i * k + l];
      if (x === 0) continue;
      const bRow = l * n;
      for (let j = 0; j < n; j++) out[oRow + j] += x * b[bRow + j];
    }
  }
}
