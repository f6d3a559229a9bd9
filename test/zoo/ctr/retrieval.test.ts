import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, randomTensor, seededRandom } from '../../util/backends';
import {
  hammingDistance, hammingTopK, sdimAggregate, sdimCollisions, simHash, softSearchTopK, targetAttentionScores, topKByScore,
} from '../../../src/zoo/ctr/retrieval';

const B = 3;
const T = 9;
const D = 5;

/** Row-major nested arrays of a tensor. */
function rows(t: tf.Tensor): number[][] {
  return t.arraySync() as number[][];
}

/** Mask with row r's first `pad[r]` slots padding (left padding, like the batches). */
function leftPadMask(pad: number[]): tf.Tensor2D {
  return tf.tensor2d(pad.map((p) => Array.from({ length: T }, (_, t) => (t < p ? 0 : 1))));
}

/** Brute force: valid slots sorted by score (desc), ties to the later slot when `recentFirst`, first k. */
function bruteTopK(scores: number[], mask: number[], k: number, recentFirst = false): number[] {
  const slots = scores.map((s, t) => ({ s, t })).filter(({ t }) => mask[t] > 0);
  slots.sort((a, b) => (b.s !== a.s ? b.s - a.s : recentFirst ? b.t - a.t : a.t - b.t));
  return slots.slice(0, k).map(({ t }) => t);
}

describeEachBackend('CTR retrieval units', () => {
  const pad = [0, 2, 6];

  it('soft search picks the top-k inner products among valid slots (SIM)', () => {
    const cand = randomTensor([B, D], 1);
    const hist = randomTensor([B, T, D], 2);
    const mask = leftPadMask(pad);
    const top = softSearchTopK(cand, hist, mask, 4);
    const c = rows(cand);
    const h = hist.arraySync() as number[][][];
    const got = rows(top.indices);
    for (let b = 0; b < B; b++) {
      const scores = h[b].map((e) => e.reduce((s, x, i) => s + x * c[b][i], 0));
      const want = bruteTopK(scores, rows(mask)[b], 4);
      expect(got[b].slice(0, want.length)).toEqual(want);
      // Row 2 has 3 valid events: the 4th pick is padding and flagged invalid.
      expect(rows(top.valid)[b]).toEqual([1, 1, 1, 1].map((_, i) => (i < want.length ? 1 : 0)));
    }
    tf.dispose([cand, hist, mask, top.indices, top.valid]);
  });

  it('SimHash signs and Hamming distances match a brute force; Hamming top-k prefers recent ties (ETA)', () => {
    const planes = randomTensor([D, 8], 3);
    const cand = randomTensor([B, D], 4);
    const hist = randomTensor([B, T, D], 5);
    const mask = leftPadMask(pad);
    const [sc, sh] = [simHash(cand, planes), simHash(hist, planes)];
    const p = rows(planes);
    const sign = (x: number[]) => p[0].map((_, j) => (x.reduce((s, xi, i) => s + xi * p[i][j], 0) >= 0 ? 1 : -1));
    const c = rows(cand);
    const h = hist.arraySync() as number[][][];
    expect(rows(sc)).toEqual(c.map(sign));
    const dist = rows(hammingDistance(sc, sh));
    const top = hammingTopK(sc, sh, mask, 3);
    for (let b = 0; b < B; b++) {
      const want = h[b].map((e) => sign(e).reduce((n, bit, j) => n + (bit !== sign(c[b])[j] ? 1 : 0), 0));
      expect(dist[b]).toEqual(want);
      expect(rows(top.indices)[b]).toEqual(bruteTopK(want.map((d) => -d), rows(mask)[b], 3, true));
    }
    tf.dispose([planes, cand, hist, mask, sc, sh, top.indices, top.valid]);
  });

  it('SDIM collisions and aggregation match a loop over hashes and events', () => {
    const m = 4;
    const tau = 2;
    const rand = seededRandom(9);
    const bit = () => (rand() < 0.5 ? -1 : 1);
    const c = Array.from({ length: B }, () => Array.from({ length: m * tau }, bit));
    const h = Array.from({ length: B }, () => Array.from({ length: T }, () => Array.from({ length: m * tau }, bit)));
    const values = randomTensor([B, T, D], 10);
    const mask = leftPadMask(pad);
    const coll = sdimCollisions(tf.tensor2d(c), tf.tensor3d(h), mask, m, tau);
    const agg = sdimAggregate(coll, values);
    const v = values.arraySync() as number[][][];
    const gotColl = coll.arraySync() as number[][][];
    const gotAgg = rows(agg);
    for (let b = 0; b < B; b++) {
      const want = new Array(D).fill(0);
      for (let j = 0; j < m; j++) {
        const sum = new Array(D).fill(0);
        for (let t = 0; t < T; t++) {
          const hit = rows(mask)[b][t] > 0 && c[b].slice(j * tau, (j + 1) * tau).every((x, i) => x === h[b][t][j * tau + i]);
          expect(gotColl[b][j][t]).toBe(hit ? 1 : 0);
          if (hit) v[b][t].forEach((x, i) => { sum[i] += x; });
        }
        const norm = Math.sqrt(sum.reduce((s, x) => s + x * x, 0) + 1e-12);
        sum.forEach((x, i) => { want[i] += x / norm / m; });
      }
      gotAgg[b].forEach((x, i) => expect(x).toBeCloseTo(want[i], 5));
    }
    tf.dispose([values, mask, coll, agg]);
  });

  it('TWIN scores are the head-averaged scaled dot products; its top-k matches the brute force', () => {
    const heads = 2;
    const q = randomTensor([B, 6], 11);
    const k = randomTensor([B, T, 6], 12);
    const mask = leftPadMask(pad);
    const scores = targetAttentionScores(q, k, heads);
    const top = topKByScore(scores, mask, 5);
    const qa = rows(q);
    const ka = k.arraySync() as number[][][];
    for (let b = 0; b < B; b++) {
      const want = ka[b].map((key) => {
        let s = 0;
        for (let hd = 0; hd < heads; hd++) for (let i = 0; i < 3; i++) s += qa[b][hd * 3 + i] * key[hd * 3 + i] / Math.sqrt(3);
        return s / heads;
      });
      rows(scores)[b].forEach((x, t) => expect(x).toBeCloseTo(want[t], 5));
      const picked = bruteTopK(want, rows(mask)[b], 5);
      expect(rows(top.indices)[b].slice(0, picked.length)).toEqual(picked);
    }
    tf.dispose([q, k, mask, scores, top.indices, top.valid]);
  });

  it('rejects bad arguments with the argument named', () => {
    const s = tf.zeros([2, 3]);
    expect(() => topKByScore(s, s, 0)).toThrow(/k must be a positive integer, received 0/);
    expect(() => simHash(tf.zeros([2, 4]), tf.zeros([3, 8]))).toThrow(/planes' first \(3\), received 4/);
    expect(() => sdimCollisions(tf.zeros([2, 6]), tf.zeros([2, 3, 6]), s, 4, 2)).toThrow(/numHashes \* bitsPerHash = 8/);
    tf.dispose(s);
  });
});
