import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../util/backends';
import { generateSynthetic, leaveOneOut, RankingEvaluator, LeaveOneOutSplit } from '../../src/internal';

beforeAll(() => useBackend('cpu'));

const small = { numUsers: 600, numItems: 200, numTopics: 10, minLength: 8, maxLength: 30 };

describe('generateSynthetic', () => {
  it('is reproducible for a seed and differs across seeds', () => {
    const a = generateSynthetic({ ...small, seed: 7 });
    const b = generateSynthetic({ ...small, seed: 7 });
    const c = generateSynthetic({ ...small, seed: 8 });
    expect(a.sequences).toEqual(b.sequences);
    expect(a.sequences).not.toEqual(c.sequences);
  });

  it('respects ids, lengths and no repeats', () => {
    const data = generateSynthetic({ ...small, seed: 1 });
    expect(data.numItems).toBe(200);
    expect(data.sequences).toHaveLength(600);
    for (const seq of data.sequences) {
      expect(seq.length).toBeGreaterThanOrEqual(8);
      expect(seq.length).toBeLessThanOrEqual(30);
      expect(new Set(seq).size).toBe(seq.length);
      for (const id of seq) {
        expect(Number.isInteger(id)).toBe(true);
        expect(id).toBeGreaterThanOrEqual(1);
        expect(id).toBeLessThanOrEqual(200);
      }
    }
  });

  it('has Zipf-like popularity: the top 10% of items take a large share of interactions', () => {
    const data = generateSynthetic({ ...small, seed: 3 });
    const counts = itemCounts(data.sequences, data.numItems).slice(1).sort((x, y) => y - x);
    const total = counts.reduce((s, n) => s + n, 0);
    const top = counts.slice(0, 20).reduce((s, n) => s + n, 0);
    expect(top / total).toBeGreaterThan(0.2); // uniform would be 0.1
  });

  it('consecutive items share a topic far more often than chance', () => {
    const data = generateSynthetic({ ...small, seed: 4 });
    let same = 0;
    let pairs = 0;
    for (const seq of data.sequences) {
      for (let i = 1; i < seq.length; i++, pairs++) same += Number(data.world.topicOfItem[seq[i]] === data.world.topicOfItem[seq[i - 1]]);
    }
    expect(same / pairs).toBeGreaterThan(0.5); // chance is about 1/numTopics = 0.1
  });

  it('rejects bad options with a message naming the option', () => {
    expect(() => generateSynthetic({ numItems: 10, maxLength: 20 })).toThrow(/maxLength/);
    expect(() => generateSynthetic({ numUsers: 0 })).toThrow(/numUsers/);
    expect(() => generateSynthetic({ noise: 2 })).toThrow(/noise/);
  });

  it('an item-to-item transition model beats popularity by a wide margin on the test split', () => {
    const data = generateSynthetic({ ...small, seed: 5 });
    const split = leaveOneOut(data);
    const pop = evaluate(split, (history) => popularityScores(split));
    const transitions = transitionCounts(split);
    const markov = evaluate(split, (history) => {
      const scores = popularityScores(split).map((p) => p * 1e-6);
      const last = history[history.length - 1];
      transitions.get(last)?.forEach((n, next) => { scores[next] += n; });
      return scores;
    });
    expect(markov).toBeGreaterThan(2 * pop);
    expect(pop).toBeGreaterThan(0);
  });
});

function itemCounts(sequences: readonly (readonly number[])[], numItems: number): number[] {
  const counts = new Array<number>(numItems + 1).fill(0);
  for (const seq of sequences) for (const id of seq) counts[id] += 1;
  return counts;
}

function popularityScores(split: LeaveOneOutSplit): number[] {
  return itemCounts(split.train, split.numItems);
}

function transitionCounts(split: LeaveOneOutSplit): Map<number, Map<number, number>> {
  const out = new Map<number, Map<number, number>>();
  for (const seq of split.train) {
    for (let i = 1; i < seq.length; i++) {
      const row = out.get(seq[i - 1]) ?? new Map<number, number>();
      row.set(seq[i], (row.get(seq[i]) ?? 0) + 1);
      out.set(seq[i - 1], row);
    }
  }
  return out;
}

/** Test NDCG@10 of a scorer (filtered history, as both scorers would otherwise re-rank seen items). */
function evaluate(split: LeaveOneOutSplit, score: (history: readonly number[]) => number[]): number {
  const evaluator = new RankingEvaluator([10], { filterHistory: true });
  const rows = split.test.map((c) => score(c.history));
  const scores = tf.tensor2d(rows);
  evaluator.update(scores, split.test.map((c) => c.target), split.test.map((c) => c.history));
  scores.dispose();
  return evaluator.result().ndcg[10];
}
