// Popularity and first-order Markov anchors against hand-computed ranks.
import { anchorMetrics, rankByScore } from '../../src/metrics/anchors';
import type { LeaveOneOutSplit } from '../../src/data/split';

// Training parts: item 1 three times, 2 twice, 3 once, 4 never; transitions 1->2 (x2), 2->1, 1->3.
const split: LeaveOneOutSplit = {
  numItems: 4,
  train: [[1, 2, 1, 3], [1, 2]],
  validation: [],
  test: [
    { user: 0, history: [1, 2, 1, 3, 4], target: 2 },
    { user: 1, history: [1, 2, 1], target: 3 },
  ],
};

describe('anchors', () => {
  it('popularity ranks by training counts (pessimistic ties)', () => {
    // Counts: 1:3, 2:2, 3:1, 4:0. Target 2 -> rank 2; target 3 -> rank 3.
    const r = anchorMetrics('popularity', split, split.test, { ks: [1, 2, 3] });
    expect(r.hr).toEqual({ 1: 0, 2: 0.5, 3: 1 });
    expect(r.mrr[3]).toBeCloseTo((1 / 2 + 1 / 3) / 2, 12);
  });

  it('Markov ranks by transitions from the last history item, ties by popularity', () => {
    // Case 0: last item 4 has no transitions: popularity order, target 2 -> rank 2.
    // Case 1: last item 1: 1->2 (2), 1->3 (1): 2 first, then 3 -> rank 2 (popularity would say 3).
    const r = anchorMetrics('markov', split, split.test, { ks: [1, 2] });
    expect(r.hr).toEqual({ 1: 0, 2: 1 });
    expect(r.ndcg[2]).toBeCloseTo(1 / Math.log2(3), 12);
  });

  it('filters the history (or its last window) from the ranking, never the target', () => {
    // Case 1 with its history [1, 2, 1] removed: item 2 is gone, target 3 ranks 1.
    expect(anchorMetrics('markov', split, [split.test[1]], { ks: [1], filterHistory: true }).hr[1]).toBe(1);
    // Only the last item (1) filtered: item 2 still outranks 3.
    expect(anchorMetrics('markov', split, [split.test[1]], { ks: [1], filterHistory: true, historyWindow: 1 }).hr[1]).toBe(0);
  });

  it('ties rank pessimistically: a constant score ranks the target last', () => {
    expect(rankByScore(() => 0, 4, { user: 0, history: [], target: 1 })).toBe(4);
  });
});
