// The two anchors every next-item quality claim is read against (docs/results: a baseline weaker
// than a first-order Markov chain proves nothing), ranked by the same rule and filters as models.
//   popularity: every item scored by its count in the users' training parts;
//   Markov: by its count of transitions from the case's last history item, counted in the
//   training parts, ties broken by popularity.
import type { LeaveOneOutSplit, NextItemCase } from '../data/split';
import { RankingEvaluator, type RankOptions, type RankingResult } from './ranking';

export type AnchorKind = 'popularity' | 'markov';

export interface AnchorOptions extends RankOptions {
  /** Cutoffs (default [10]). */
  ks?: readonly number[];
}

/** Counts of each item (index = item id) in the training parts. */
function itemCounts(train: readonly (readonly number[])[], numItems: number): Float64Array {
  const counts = new Float64Array(numItems + 1);
  for (const seq of train) for (const id of seq) counts[id]++;
  return counts;
}

/** Transition counts from each item to the next, in the training parts: from -> (to -> count). */
function transitions(train: readonly (readonly number[])[]): Map<number, Map<number, number>> {
  const out = new Map<number, Map<number, number>>();
  for (const seq of train) {
    for (let i = 1; i < seq.length; i++) {
      const row = out.get(seq[i - 1]) ?? new Map<number, number>();
      row.set(seq[i], (row.get(seq[i]) ?? 0) + 1);
      out.set(seq[i - 1], row);
    }
  }
  return out;
}

/**
 * 1-based rank of `target` among items 1..numItems by `score` (pessimistic ties, as rankTargets:
 * 1 + the other ranked items scoring >= the target), with the case's history items (its last
 * `historyWindow`) other than the target removed when `filterHistory`.
 */
export function rankByScore(score: (item: number) => number, numItems: number, c: NextItemCase, options: RankOptions = {}): number {
  const removed = new Set<number>();
  if (options.filterHistory) {
    const window = options.historyWindow ?? Infinity;
    for (const id of c.history.slice(Math.max(0, c.history.length - window))) if (id !== c.target) removed.add(id);
  }
  const own = score(c.target);
  let rank = 1;
  for (let id = 1; id <= numItems; id++) if (id !== c.target && !removed.has(id) && score(id) >= own) rank++;
  return rank;
}

/** Metrics of an anchor over `cases` (the split's test or validation cases). */
export function anchorMetrics(kind: AnchorKind, split: LeaveOneOutSplit, cases: readonly NextItemCase[], options: AnchorOptions = {}): RankingResult {
  const { ks = [10], ...rank } = options;
  const popularity = itemCounts(split.train, split.numItems);
  const scale = Math.max(...popularity) + 1;
  const moves = kind === 'markov' ? transitions(split.train) : undefined;
  const evaluator = new RankingEvaluator(ks, rank);
  const ranks = cases.map((c) => {
    const row = moves?.get(c.history[c.history.length - 1]);
    // Integers below 2^53: the Markov count first, popularity as the tie-break, exactly.
    const score = (id: number) => (row?.get(id) ?? 0) * scale + popularity[id];
    return rankByScore(score, split.numItems, c, rank);
  });
  evaluator.addRanks(ranks);
  return evaluator.result();
}
