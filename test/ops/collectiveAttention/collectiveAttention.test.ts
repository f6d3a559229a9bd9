import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, maxAbsDiff, randomIndex, randomTensor, seededRandom } from '../../util/backends';
import {
  COLLECTIVE_ATTENTION, collectiveAttention, collectiveAttentionComposite, CompressedKV, KVPools, setCollectiveAttentionAlgorithm,
} from '../../../ops/collectiveAttention/index';
import { takeLastCollectiveAttentionAlgorithm, setPoolChunkRows } from '../../../ops/collectiveAttention/core';

interface Case {
  name: string;
  batch: number;
  tq: number;
  tk: number;
  numHeads: number;
  dk: number;
  dv?: number;
  userDimK: number;
  userDimV?: number;
  poolK: number;
  poolV?: number;
  attention?: 'softmax' | 'hstu';
  causal?: boolean;
  /** 'random': random padding; 'some-empty': batch row 0 fully masked. */
  mask?: 'random' | 'some-empty';
  scale?: number;
}

interface Inputs {
  query: tf.Tensor;
  cache: CompressedKV;
  pools: KVPools;
}

function makeInputs(c: Case, seed: number): Inputs {
  const dv = c.dv ?? c.dk;
  const duV = c.userDimV ?? c.userDimK;
  const poolV = c.poolV ?? c.poolK;
  const cache: CompressedKV = {
    indexK: randomIndex([c.batch, c.tk], c.poolK, seed + 1),
    indexV: randomIndex([c.batch, c.tk], poolV, seed + 2),
    userK: randomTensor([c.batch, c.tk, c.userDimK], seed + 3),
    userV: randomTensor([c.batch, c.tk, duV], seed + 4),
  };
  if (c.mask != null) cache.mask = makeMask(c, seed + 5);
  return {
    query: randomTensor([c.batch, c.tq, c.numHeads * c.dk], seed, 2),
    cache,
    pools: { poolK: randomTensor([c.poolK, c.numHeads * c.dk - c.userDimK], seed + 6),
      poolV: randomTensor([poolV, c.numHeads * dv - duV], seed + 7) },
  };
}

function makeMask(c: Case, seed: number): tf.Tensor {
  const rand = seededRandom(seed);
  const data = new Float32Array(c.batch * c.tk);
  for (let i = 0; i < data.length; i++) data[i] = rand() < 0.7 ? 1 : 0;
  if (c.mask === 'some-empty') data.fill(0, 0, c.tk);
  return tf.tensor(data, [c.batch, c.tk]);
}

function disposeInputs(x: Inputs): void {
  tf.dispose([x.query, x.cache.indexK, x.cache.indexV, x.cache.userK, x.cache.userV, x.pools.poolK, x.pools.poolV]);
  if (x.cache.mask != null) x.cache.mask.dispose();
}

/**
 * Independent reference in plain TypeScript: materializes every key/value row, splits heads after
 * the concat and applies the documented semantics with float64 arithmetic.
 */
function loopReference(x: Inputs, c: Case): Float64Array {
  const dv = c.dv ?? c.dk;
  const H = c.numHeads;
  const q = x.query.dataSync();
  const jk = x.cache.indexK.dataSync();
  const jv = x.cache.indexV.dataSync();
  const uk = x.cache.userK.dataSync();
  const uv = x.cache.userV.dataSync();
  const pk = x.pools.poolK.dataSync();
  const pv = x.pools.poolV.dataSync();
  const mask = x.cache.mask?.dataSync();
  const [dK, dV] = [H * c.dk, H * dv];
  const [gK, gV] = [dK - c.userDimK, dV - (c.userDimV ?? c.userDimK)];
  const key = (b: number, i: number, col: number) => (col < gK ? pk[jk[b * c.tk + i] * gK + col] : uk[(b * c.tk + i) * (dK - gK) + col - gK]);
  const value = (b: number, i: number, col: number) => (col < gV ? pv[jv[b * c.tk + i] * gV + col] : uv[(b * c.tk + i) * (dV - gV) + col - gV]);
  const scale = c.scale ?? 1 / Math.sqrt(c.dk);
  const out = new Float64Array(c.batch * c.tq * dV);
  for (let b = 0; b < c.batch; b++) {
    for (let t = 0; t < c.tq; t++) {
      const valid: number[] = [];
      for (let i = 0; i < c.tk; i++) {
        const visible = !c.causal || i <= t + c.tk - c.tq;
        if (visible && (mask == null || mask[b * c.tk + i] !== 0)) valid.push(i);
      }
      if (valid.length === 0) continue;
      for (let h = 0; h < H; h++) {
        const s = valid.map((i) => {
          let acc = 0;
          for (let cc = 0; cc < c.dk; cc++) acc += q[(b * c.tq + t) * dK + h * c.dk + cc] * key(b, i, h * c.dk + cc);
          return acc * scale;
        });
        let a: number[];
        if (c.attention === 'hstu') {
          a = s.map((z) => z / (1 + Math.exp(-z)) / valid.length);
        } else {
          const m = Math.max(...s);
          const e = s.map((z) => Math.exp(z - m));
          const sum = e.reduce((u, w) => u + w, 0);
          a = e.map((z) => z / sum);
        }
        for (let cc = 0; cc < dv; cc++) {
          let acc = 0;
          valid.forEach((i, n) => { acc += a[n] * value(b, i, h * dv + cc); });
          out[(b * c.tq + t) * dV + h * dv + cc] = acc;
        }
      }
    }
  }
  return out;
}

function maxDiffToReference(actual: tf.Tensor, expected: Float64Array): number {
  const got = actual.dataSync();
  expect(got.length).toBe(expected.length);
  let m = 0;
  for (let i = 0; i < got.length; i++) m = Math.max(m, Math.abs(got[i] - expected[i]));
  return m;
}

const CASES: Case[] = [
  { name: 'softmax, userDim 1, pool 256', batch: 2, tq: 1, tk: 40, numHeads: 4, dk: 8, userDimK: 1, poolK: 256 },
  { name: 'hstu, userDim 1, pool 255', batch: 2, tq: 1, tk: 33, numHeads: 4, dk: 8, userDimK: 1, poolK: 255, attention: 'hstu' },
  { name: 'batch 1, Tk 1, pool 1', batch: 1, tq: 1, tk: 1, numHeads: 2, dk: 4, userDimK: 1, poolK: 1 },
  { name: 'Tq > 1 causal softmax, pool 257', batch: 2, tq: 5, tk: 12, numHeads: 3, dk: 5, userDimK: 3, poolK: 257, causal: true },
  { name: 'Tq > 1 causal hstu with mask', batch: 3, tq: 4, tk: 9, numHeads: 2, dk: 6, userDimK: 1, poolK: 7, attention: 'hstu',
    causal: true, mask: 'random' },
  { name: 'fully masked rows (softmax)', batch: 3, tq: 2, tk: 10, numHeads: 2, dk: 4, userDimK: 1, poolK: 5, mask: 'some-empty' },
  { name: 'fully masked rows (hstu, causal)', batch: 2, tq: 3, tk: 6, numHeads: 2, dk: 4, userDimK: 2, poolK: 5, mask: 'some-empty',
    attention: 'hstu', causal: true },
  { name: 'userDim 0', batch: 2, tq: 2, tk: 15, numHeads: 4, dk: 4, userDimK: 0, poolK: 16 },
  { name: 'odd head size 7, userDim 3', batch: 2, tq: 1, tk: 20, numHeads: 3, dk: 7, userDimK: 3, poolK: 9 },
  { name: 'user part spans heads (userDim > dk)', batch: 2, tq: 2, tk: 11, numHeads: 4, dk: 3, userDimK: 5, poolK: 6, causal: true },
  { name: 'dv != dk, different K/V pools and user dims', batch: 2, tq: 2, tk: 14, numHeads: 2, dk: 6, dv: 5, userDimK: 1,
    userDimV: 3, poolK: 8, poolV: 13, mask: 'random' },
  { name: 'explicit scale', batch: 1, tq: 3, tk: 8, numHeads: 2, dk: 4, userDimK: 1, poolK: 4, scale: 0.3 },
];

describeEachBackend('collectiveAttention kernel', (backend) => {
  afterEach(() => {
    setCollectiveAttentionAlgorithm('auto');
    setPoolChunkRows(null);
  });

  it('is registered', () => {
    expect(tf.getKernel(COLLECTIVE_ATTENTION, backend)).toBeDefined();
  });

  for (const algorithm of ['direct', 'pool'] as const) {
    describe(`forced ${algorithm}`, () => {
      for (const c of CASES) {
        it(c.name, () => {
          setCollectiveAttentionAlgorithm(algorithm);
          takeLastCollectiveAttentionAlgorithm();
          const x = makeInputs(c, 11);
          const options = { numHeads: c.numHeads, attention: c.attention, causal: c.causal, scale: c.scale };
          const fused = collectiveAttention(x.query, x.cache, x.pools, options);
          expect(takeLastCollectiveAttentionAlgorithm()).toBe(algorithm);
          const composite = collectiveAttentionComposite(x.query, x.cache, x.pools, options);
          expect(maxAbsDiff(fused, composite)).toBeLessThan(1e-4);
          expect(maxDiffToReference(fused, loopReference(x, c))).toBeLessThan(1e-4);
          tf.dispose([fused, composite]);
          disposeInputs(x);
        });
      }
    });
  }

  it('pool form processes queries in chunks', () => {
    setCollectiveAttentionAlgorithm('pool');
    setPoolChunkRows(3);
    const c: Case = { name: 'chunks', batch: 3, tq: 3, tk: 10, numHeads: 2, dk: 4, userDimK: 1, poolK: 6, causal: true, mask: 'random' };
    const x = makeInputs(c, 5);
    const fused = collectiveAttention(x.query, x.cache, x.pools, { numHeads: 2, causal: true });
    expect(maxDiffToReference(fused, loopReference(x, c))).toBeLessThan(1e-4);
    fused.dispose();
    disposeInputs(x);
  });

  it('fully masked query rows are exactly zero', () => {
    const c: Case = { name: 'zeros', batch: 2, tq: 2, tk: 5, numHeads: 2, dk: 4, userDimK: 1, poolK: 3, mask: 'some-empty' };
    for (const algorithm of ['direct', 'pool'] as const) {
      setCollectiveAttentionAlgorithm(algorithm);
      const x = makeInputs(c, 3);
      const out = collectiveAttention(x.query, x.cache, x.pools, { numHeads: 2 });
      const first = out.dataSync().slice(0, c.tq * 8);
      expect(Array.from(first)).toEqual(new Array(c.tq * 8).fill(0));
      expect(Math.max(...Array.from(out.dataSync().slice(c.tq * 8)).map(Math.abs))).toBeGreaterThan(0);
      out.dispose();
      disposeInputs(x);
    }
  });

  it("'auto' picks the pool form for long histories and the token loop for short ones", () => {
    const long: Case = { name: 'long', batch: 2, tq: 1, tk: 400, numHeads: 2, dk: 8, userDimK: 1, poolK: 8 };
    const short: Case = { name: 'short', batch: 2, tq: 1, tk: 3, numHeads: 2, dk: 8, userDimK: 1, poolK: 512 };
    for (const [c, expected] of [[long, 'pool'], [short, 'direct']] as const) {
      const x = makeInputs(c, 9);
      const out = collectiveAttention(x.query, x.cache, x.pools, { numHeads: 2 });
      expect(takeLastCollectiveAttentionAlgorithm()).toBe(expected);
      expect(maxDiffToReference(out, loopReference(x, c))).toBeLessThan(1e-4);
      out.dispose();
      disposeInputs(x);
    }
  });

  for (const arg of ['indexK', 'indexV'] as const) {
    for (const bad of [-1, 4]) {
      it(`rejects ${arg} value ${bad} outside [0, poolSize)`, () => {
        const c: Case = { name: 'bad', batch: 1, tq: 1, tk: 3, numHeads: 2, dk: 4, userDimK: 1, poolK: 4 };
        const x = makeInputs(c, 1);
        const good = x.cache[arg];
        const cache = { ...x.cache, [arg]: tf.tensor2d([[0, bad, 1]], [1, 3], 'int32') };
        const before = backendDataIds();
        expect(() => collectiveAttention(x.query, cache, x.pools, { numHeads: 2 }))
          .toThrow(new RegExp(`cache\\.${arg}.*\\[0, 4\\).*${bad} at flat position 1`));
        expect(backendDataIds()).toBe(before);
        cache[arg].dispose();
        x.cache[arg] = good;
        disposeInputs(x);
      });
    }
  }

  it('rejects malformed inputs naming the argument', () => {
    const c: Case = { name: 'shapes', batch: 2, tq: 1, tk: 3, numHeads: 2, dk: 4, userDimK: 1, poolK: 4 };
    const x = makeInputs(c, 2);
    const run = (patch: Partial<Inputs & CompressedKV & KVPools>, heads = 2) => () => collectiveAttention(
      patch.query ?? x.query, { ...x.cache, ...pick(patch, ['indexK', 'indexV', 'userK', 'userV', 'mask']) },
      { ...x.pools, ...pick(patch, ['poolK', 'poolV']) }, { numHeads: heads });
    const extra: tf.Tensor[] = [];
    const t = <T extends tf.Tensor>(v: T) => { extra.push(v); return v; };
    expect(run({ query: t(tf.zeros([3, 1, 8])) })).toThrow(/'query'/);
    expect(run({ query: t(tf.zeros([2, 8])) })).toThrow(/'query'/);
    expect(run({ indexK: t(tf.zeros([2, 3])) })).toThrow(/'cache\.indexK'/);
    expect(run({ indexV: t(tf.zeros([2, 4], 'int32')) })).toThrow(/'cache\.indexV'/);
    expect(run({ userK: t(tf.zeros([2, 3, 2])) })).toThrow(/'pools\.poolK'/);
    expect(run({ userV: t(tf.zeros([2, 2, 1])) })).toThrow(/'cache\.userV'/);
    expect(run({ poolK: t(tf.zeros([4, 6])) })).toThrow(/'pools\.poolK'/);
    expect(run({ poolK: t(tf.zeros([0, 7])) })).toThrow(/'pools\.poolK'/);
    expect(run({ poolV: t(tf.zeros([4, 7], 'int32')) })).toThrow(/'pools\.poolV'/);
    expect(run({ mask: t(tf.ones([2, 4])) })).toThrow(/'cache\.mask'/);
    expect(run({}, 3)).toThrow(/'numHeads'/);
    tf.dispose(extra);
    disposeInputs(x);
  });

  it('leaks no tensors or backend data over repeated calls', () => {
    const c: Case = { name: 'leak', batch: 2, tq: 2, tk: 30, numHeads: 2, dk: 4, userDimK: 1, poolK: 5, mask: 'random', causal: true };
    const x = makeInputs(c, 4);
    for (const algorithm of ['direct', 'pool', 'auto'] as const) {
      setCollectiveAttentionAlgorithm(algorithm);
      collectiveAttention(x.query, x.cache, x.pools, { numHeads: 2 }).dispose(); // warm-up: kernel setup
      const before = tf.memory();
      const dataIdsBefore = backendDataIds();
      for (let i = 0; i < 5; i++) {
        const out = collectiveAttention(x.query, x.cache, x.pools, { numHeads: 2, causal: true });
        out.dataSync();
        out.dispose();
      }
      const after = tf.memory();
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numDataBuffers).toBe(before.numDataBuffers);
      expect(after.numBytes).toBe(before.numBytes);
      expect(backendDataIds()).toBe(dataIdsBefore);
    }
    disposeInputs(x);
  });
});

/** Data buffers the backend holds, including scratch a kernel allocated behind the engine's back. */
function backendDataIds(): number {
  return tf.engine().backend.numDataIds();
}

function pick<T extends object>(o: T, keys: string[]): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => keys.includes(k))) as Partial<T>;
}
