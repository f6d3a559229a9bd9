import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../util/backends';
import { pairedNdcg10, rankingMetrics, rankTargets, RankingEvaluator } from '../../src/internal';

beforeAll(() => useBackend('cpu'));

// Column 0 is padding: its (huge) score must never count.
const scores = () => tf.tensor2d([
  [100, 0.9, 0.1, 0.5, 0.3], // target 3 (0.5): only item 1 is higher -> rank 2
  [100, 0.2, 0.2, 0.2, 0.9], // target 1 (0.2) ties with 2 and 3, 4 is higher -> pessimistic rank 4
  [100, 0.1, 0.2, 0.3, 0.4], // target 4 -> rank 1
]);
const targets = [3, 1, 4];

describe('rankTargets', () => {
  it('ignores the padding column and counts ties pessimistically', () => {
    const s = scores();
    expect(Array.from(rankTargets(s, targets))).toEqual([2, 4, 1]);
    s.dispose();
  });

  it('filters history items but never the target', () => {
    const s = scores();
    const ranks = rankTargets(s, targets, [[1, 3], [2, 3, 1], []], { filterHistory: true });
    expect(Array.from(ranks)).toEqual([1, 2, 1]);
    s.dispose();
  });

  it('filters only the last historyWindow items of each history', () => {
    const s = scores();
    // Row 0: item 1 (above the target) is outside a 1-item window, so it still counts: rank 2.
    // Row 1: a 1-item window drops item 4 (the only one above) but not the ties 2 and 3: rank 3.
    const ranks = rankTargets(s, targets, [[1, 2], [2, 3, 4], []], { filterHistory: true, historyWindow: 1 });
    expect(Array.from(ranks)).toEqual([2, 3, 1]);
    const wider = rankTargets(s, targets, [[1, 2], [2, 3, 4], []], { filterHistory: true, historyWindow: 2 });
    expect(Array.from(wider)).toEqual([1, 2, 1]);
    expect(() => rankTargets(s, targets, [[1], [2], [3]], { filterHistory: true, historyWindow: 0 })).toThrow(/historyWindow must be a positive integer, received 0/);
    s.dispose();
  });

  it('ranks a NaN target last and rejects bad targets', () => {
    const s = tf.tensor2d([[0, NaN, 1, 2]]);
    expect(Array.from(rankTargets(s, [1]))).toEqual([3]);
    expect(() => rankTargets(s, [0])).toThrow(/outside/);
    expect(() => rankTargets(s, [4])).toThrow(/outside/);
    expect(() => rankTargets(s, [1, 2])).toThrow(/targets/);
    s.dispose();
  });

  it('does not leak tensors', () => {
    const s = scores();
    const before = tf.memory().numTensors;
    rankTargets(s, targets, [[1], [2], [3]], { filterHistory: true });
    expect(tf.memory().numTensors).toBe(before);
    s.dispose();
  });
});

describe('ranking metrics', () => {
  it('match hand-computed HR, NDCG and MRR', () => {
    const s = scores();
    const r = rankingMetrics(s, targets, [1, 2, 3, 10]);
    s.dispose();
    expect(r.count).toBe(3);
    expect(r.hr[1]).toBeCloseTo(1 / 3);
    expect(r.hr[2]).toBeCloseTo(2 / 3);
    expect(r.hr[3]).toBeCloseTo(2 / 3);
    expect(r.ndcg[2]).toBeCloseTo((1 + 1 / Math.log2(3)) / 3);
    expect(r.mrr[3]).toBeCloseTo((1 + 0.5) / 3);
    // K = 10 exceeds the 4 items: every target is a hit.
    expect(r.hr[10]).toBeCloseTo(1);
    expect(r.ndcg[10]).toBeCloseTo((1 + 1 / Math.log2(3) + 1 / Math.log2(5)) / 3);
    expect(r.mrr[10]).toBeCloseTo((1 + 0.5 + 0.25) / 3);
  });

  it('accumulates over batches like one big batch', () => {
    const all = new RankingEvaluator([2]);
    const s = scores();
    all.update(s, targets);
    const parts = new RankingEvaluator([2]);
    const a = tf.slice(s, [0, 0], [2, 5]);
    const b = tf.slice(s, [2, 0], [1, 5]);
    parts.update(a, targets.slice(0, 2));
    parts.update(b, targets.slice(2));
    expect(parts.result()).toEqual(all.result());
    tf.dispose([s, a, b]);
  });

  it('constant scores rank every target last', () => {
    const s = tf.zeros([2, 6]);
    const r = rankingMetrics(s, [1, 5], [4, 5]);
    expect(r.hr[4]).toBe(0);
    expect(r.hr[5]).toBe(1);
    s.dispose();
  });
});

describe('pairedNdcg10', () => {
  test('mean and standard error of the per-user NDCG@10 differences, from ranks', () => {
    // Users: rank 1 vs 3, 2 vs 2, 11 vs 1 -> differences 1 - 0.5, 0, 0 - 1.
    const r = pairedNdcg10(Int32Array.from([1, 2, 11]), Int32Array.from([3, 2, 1]));
    const d = [0.5, 0, -1];
    const mean = (0.5 + 0 - 1) / 3;
    const sd = Math.sqrt(d.reduce((t, x) => t + (x - mean) ** 2, 0) / 2);
    expect(r.mean).toBeCloseTo(mean, 12);
    expect(r.standardError).toBeCloseTo(sd / Math.sqrt(3), 12);
    expect(pairedNdcg10(Int32Array.from([1]), Int32Array.from([1, 2])).mean).toBeNaN();
  });
});
