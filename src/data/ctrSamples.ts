// CTR samples from interaction sequences (docs/design.md section 8, the paper's CTR setting): per user,
// chronological (history prefix, candidate, label) triples, a chronological split, and batches
// that carry per-event features (position from the end, time-gap bucket, rating) next to the
// item ids, so that the K/V source of a target-attention model is really per user (docs/design.md section 4, the caveat).
import { Random, randomInt, seededRandom, shuffleInPlace } from './random';
import type { Sequences } from './synthetic';

/** Sequences plus the optional per-event columns of an `InteractionLog` (same indexing). */
export interface CtrEventLog extends Sequences {
  /** timestamps[u][t]: time of sequences[u][t] (any unit; seconds for MovieLens). */
  timestamps?: number[][];
  /** ratings[u][t]: rating of sequences[u][t] (MovieLens: 1..5). */
  ratings?: number[][];
}

/**
 * One CTR sample: the user's events [0, position) are the history; `candidate` is shown at the
 * time of event `position`; `label` 1 = click.
 */
export interface CtrSample {
  user: number;
  position: number;
  candidate: number;
  label: 0 | 1;
}

/** How labels are made: the next item vs sampled negatives, or the rating of each event. */
export type CtrLabelRule = { kind: 'next-item' } | { kind: 'rating'; minRating: number };

export interface CtrSampleOptions {
  label?: CtrLabelRule;
  /** 'next-item' only: sampled negatives per positive (default 1). */
  negativesPerPositive?: number;
  /** Seeds negative sampling (default 1). */
  seed?: number;
  /** Events a history needs before a sample is made at a position (default 1). */
  minHistory?: number;
  /**
   * Keep only the most recent positions of each user for training (the evaluation positions are
   * always kept). Default: all. Bounds the epoch size on long-history data.
   */
  maxTrainPositionsPerUser?: number;
  /** 'user' (default): last position test, the one before validation. 'time': global timestamp quantiles. */
  split?: 'user' | 'time';
  /** 'time' split: fractions of the time range's event quantiles for train and validation (default [0.8, 0.1]). */
  timeFractions?: [number, number];
}

export interface CtrSplit {
  train: CtrSample[];
  validation: CtrSample[];
  test: CtrSample[];
  data: CtrEventLog;
}

/** Parses a label rule: 'next-item' or 'rating>=X'. */
export function parseCtrLabel(text: string): CtrLabelRule {
  if (text === 'next-item') return { kind: 'next-item' };
  const m = /^rating>=(-?\d+(?:\.\d+)?)$/.exec(text);
  if (m) return { kind: 'rating', minRating: Number(m[1]) };
  throw new Error(`parseCtrLabel: label must be 'next-item' or 'rating>=X' (e.g. rating>=4), received '${text}'`);
}

interface ResolvedCtrOptions {
  label: CtrLabelRule;
  negativesPerPositive: number;
  seed: number;
  minHistory: number;
  maxTrainPositionsPerUser: number;
  split: 'user' | 'time';
  timeFractions: [number, number];
}

function resolveCtrOptions(data: CtrEventLog, o: CtrSampleOptions): ResolvedCtrOptions {
  const r: ResolvedCtrOptions = {
    label: o.label ?? { kind: 'next-item' },
    negativesPerPositive: o.negativesPerPositive ?? 1,
    seed: o.seed ?? 1,
    minHistory: o.minHistory ?? 1,
    maxTrainPositionsPerUser: o.maxTrainPositionsPerUser ?? Number.POSITIVE_INFINITY,
    split: o.split ?? 'user',
    timeFractions: o.timeFractions ?? [0.8, 0.1],
  };
  const check = (name: string, ok: boolean, expected: string, received: unknown) => {
    if (!ok) throw new Error(`ctrSamples: ${name} must be ${expected}, received ${String(received)}`);
  };
  check('negativesPerPositive', Number.isInteger(r.negativesPerPositive) && r.negativesPerPositive >= 1, 'a positive integer', r.negativesPerPositive);
  check('minHistory', Number.isInteger(r.minHistory) && r.minHistory >= 1, 'a positive integer', r.minHistory);
  check('maxTrainPositionsPerUser', r.maxTrainPositionsPerUser >= 1, 'a positive integer or Infinity', r.maxTrainPositionsPerUser);
  check('split', r.split === 'user' || r.split === 'time', "'user' or 'time'", r.split);
  const [a, b] = r.timeFractions;
  check('timeFractions', a > 0 && b > 0 && a + b < 1, '[train, validation] fractions with a sum below 1', r.timeFractions);
  if (r.label.kind === 'rating') check('ratings', data.ratings != null, "present for label 'rating>=X' (this data has no ratings)", 'none');
  if (r.split === 'time') check('timestamps', data.timestamps != null, "present for split 'time' (this data has no timestamps)", 'none');
  return r;
}

/**
 * Chronological CTR samples, split. 'next-item': at every position p >= minHistory the true item is
 * a positive and `negativesPerPositive` items the user never interacted with (in the whole
 * sequence, distinct) are negatives. 'rating': every event is one sample labelled rating >= X.
 * Users with too few positions for a user split (3) contribute training samples only.
 */
export function ctrSamples(data: CtrEventLog, options: CtrSampleOptions = {}): CtrSplit {
  const o = resolveCtrOptions(data, options);
  const rand = seededRandom(o.seed);
  const out: CtrSplit = { train: [], validation: [], test: [], data };
  const cut = o.split === 'time' ? timeCuts(data.timestamps as number[][], o.timeFractions) : null;
  data.sequences.forEach((seq, user) => {
    const positions = seq.length - o.minHistory;
    if (positions <= 0) return;
    const seen = o.label.kind === 'next-item' ? new Set(seq) : null;
    const firstTrain = Math.max(o.minHistory, seq.length - 2 - o.maxTrainPositionsPerUser);
    for (let p = o.minHistory; p < seq.length; p++) {
      const bucket = cut == null ? userBucket(p, seq.length, positions) : timeBucket((data.timestamps as number[][])[user][p], cut);
      if (bucket === 'train' && cut == null && p < firstTrain) continue;
      const target = bucket === 'train' ? out.train : bucket === 'validation' ? out.validation : out.test;
      pushSamples(target, data, user, p, o, seen, rand);
    }
  });
  if (cut != null && o.maxTrainPositionsPerUser < Number.POSITIVE_INFINITY) out.train = keepRecent(out.train, o.maxTrainPositionsPerUser);
  return out;
}

function userBucket(p: number, length: number, positions: number): 'train' | 'validation' | 'test' {
  if (positions < 3) return 'train';
  if (p === length - 1) return 'test';
  return p === length - 2 ? 'validation' : 'train';
}

/** Event-time quantiles that end the train and validation periods. */
function timeCuts(timestamps: number[][], [fTrain, fVal]: [number, number]): [number, number] {
  const all = Float64Array.from(timestamps.flat()).sort();
  const at = (f: number) => all[Math.min(all.length - 1, Math.floor(f * all.length))];
  return [at(fTrain), at(fTrain + fVal)];
}

function timeBucket(t: number, [trainEnd, valEnd]: [number, number]): 'train' | 'validation' | 'test' {
  if (t < trainEnd) return 'train';
  return t < valEnd ? 'validation' : 'test';
}

/** The most recent `max` positions per user of a sample list (samples of a user are contiguous and in time order). */
function keepRecent(samples: CtrSample[], max: number): CtrSample[] {
  const lastPositions = new Map<number, number[]>();
  for (const s of samples) {
    const list = lastPositions.get(s.user) ?? [];
    if (list[list.length - 1] !== s.position) list.push(s.position);
    lastPositions.set(s.user, list);
  }
  return samples.filter((s) => {
    const list = lastPositions.get(s.user) as number[];
    return s.position >= list[Math.max(0, list.length - max)];
  });
}

function pushSamples(target: CtrSample[], data: CtrEventLog, user: number, p: number, o: ResolvedCtrOptions, seen: Set<number> | null,
  rand: Random): void {
  const item = data.sequences[user][p];
  if (o.label.kind === 'rating') {
    const rating = (data.ratings as number[][])[user][p];
    target.push({ user, position: p, candidate: item, label: rating >= o.label.minRating ? 1 : 0 });
    return;
  }
  target.push({ user, position: p, candidate: item, label: 1 });
  for (const negative of sampleNegatives(seen as Set<number>, data.numItems, o.negativesPerPositive, rand)) {
    target.push({ user, position: p, candidate: negative, label: 0 });
  }
}

/**
 * `count` distinct items outside `seen`, uniformly (rejection, then a scan when the user has seen
 * most of the catalog). Fewer when not enough unseen items exist.
 */
export function sampleNegatives(seen: ReadonlySet<number>, numItems: number, count: number, rand: Random): number[] {
  const picked = new Set<number>();
  const available = numItems - seen.size;
  const want = Math.min(count, Math.max(0, available));
  for (let attempt = 0; picked.size < want && attempt < 50 * want; attempt++) {
    const id = 1 + randomInt(rand, numItems);
    if (!seen.has(id)) picked.add(id);
  }
  if (picked.size < want) {
    const rest = [];
    for (let id = 1; id <= numItems; id++) if (!seen.has(id) && !picked.has(id)) rest.push(id);
    shuffleInPlace(rest, rand);
    for (const id of rest.slice(0, want - picked.size)) picked.add(id);
  }
  return [...picked];
}

// ---------------------------------------------------------------- per-event features

/** Buckets of the position-from-the-end feature (log2 scale; bucket 0 = padding). */
export const POSITION_BUCKETS = 12;
/** Buckets of the time-gap feature (log2 of the gap in the data's unit; 0 = padding or no timestamps). */
export const TIME_BUCKETS = 24;
/** Rating feature values (0 = padding or no ratings; ratings are clipped to 1..RATING_VALUES-1). */
export const RATING_VALUES = 11;

/** 1 + floor(log2(1 + k)), capped: the most recent event (k = 0) is bucket 1. */
export function positionBucket(fromEnd: number): number {
  return Math.min(POSITION_BUCKETS - 1, 1 + Math.floor(Math.log2(1 + fromEnd)));
}

/** 1 + floor(log2(1 + gap)) for a non-negative gap, capped. */
export function timeGapBucket(gap: number): number {
  return Math.min(TIME_BUCKETS - 1, 1 + Math.floor(Math.log2(1 + Math.max(0, gap))));
}

function ratingValue(r: number): number {
  return Math.max(1, Math.min(RATING_VALUES - 1, Math.round(r)));
}

// ---------------------------------------------------------------- batches

/** A batch of CTR samples as flat row-major arrays; histories are left-padded (most recent last). */
export interface CtrBatch {
  batchSize: number;
  /** History slots per row. */
  historyLength: number;
  /** [B, L] item ids (0 = padding). */
  items: Int32Array;
  /** [B, L] position-from-the-end buckets. */
  positions: Int32Array;
  /** [B, L] time-gap buckets (event time to the candidate's time; 0 without timestamps). */
  timeGaps: Int32Array;
  /** [B, L] rating values (0 without ratings). */
  ratings: Int32Array;
  /** [B, L] 1 when the event is a positive (rating rule), else 1 for every event (implicit data), 0 padding. */
  eventLabels: Int32Array;
  /** [B] candidate item ids. */
  candidates: Int32Array;
  /** [B] 0/1 labels. */
  labels: Float32Array;
  /** [B] user indices (for gAUC). */
  users: Int32Array;
}

export interface CtrBatchOptions {
  /** History slots (the most recent events are kept). */
  historyLength: number;
  /** With the rating rule: events below this rating are labelled 0 in `eventLabels`. */
  minRating?: number;
}

/** Builds a batch for `samples` (history = events before each sample's position, never after). */
export function ctrBatch(data: CtrEventLog, samples: readonly CtrSample[], options: CtrBatchOptions): CtrBatch {
  const L = options.historyLength;
  if (!Number.isInteger(L) || L < 1) throw new Error(`ctrBatch: historyLength must be a positive integer, received ${L}`);
  const B = samples.length;
  const b: CtrBatch = {
    batchSize: B, historyLength: L, items: new Int32Array(B * L), positions: new Int32Array(B * L), timeGaps: new Int32Array(B * L),
    ratings: new Int32Array(B * L), eventLabels: new Int32Array(B * L), candidates: new Int32Array(B), labels: new Float32Array(B),
    users: new Int32Array(B),
  };
  samples.forEach((s, row) => {
    b.candidates[row] = s.candidate;
    b.labels[row] = s.label;
    b.users[row] = s.user;
    fillHistory(b, row, data, s, options);
  });
  return b;
}

function fillHistory(b: CtrBatch, row: number, data: CtrEventLog, s: CtrSample, options: CtrBatchOptions): void {
  const L = b.historyLength;
  const seq = data.sequences[s.user];
  const times = data.timestamps?.[s.user];
  const ratings = data.ratings?.[s.user];
  const kept = Math.min(s.position, L);
  const now = times?.[s.position];
  for (let i = 0; i < kept; i++) {
    const t = s.position - kept + i;
    const slot = row * L + (L - kept) + i;
    b.items[slot] = seq[t];
    b.positions[slot] = positionBucket(s.position - 1 - t);
    if (times != null && now != null) b.timeGaps[slot] = timeGapBucket(now - times[t]);
    if (ratings != null) b.ratings[slot] = ratingValue(ratings[t]);
    b.eventLabels[slot] = ratings != null && options.minRating != null ? (ratings[t] >= options.minRating ? 1 : 0) : 1;
  }
}

/** Training batches in a seeded order (the same seed and epoch give the same batches). */
export function* ctrBatches(data: CtrEventLog, samples: readonly CtrSample[], batchSize: number,
  options: CtrBatchOptions & { seed?: number; epoch?: number; shuffle?: boolean }): Generator<CtrBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`ctrBatches: batchSize must be a positive integer, received ${batchSize}`);
  const order = samples.map((_, i) => i);
  if (options.shuffle ?? true) shuffleInPlace(order, seededRandom(((options.seed ?? 1) * 7919 + (options.epoch ?? 0) * 104729) >>> 0));
  for (let start = 0; start < order.length; start += batchSize) {
    yield ctrBatch(data, order.slice(start, start + batchSize).map((i) => samples[i]), options);
  }
}

// ---------------------------------------------------------------- baselines and synthetic features

/** Popularity of each item among the training histories and positives: a scorer that ignores the user. */
export function itemPopularity(split: CtrSplit): Float64Array {
  const counts = new Float64Array(split.data.numItems + 1);
  const lastTrain = new Map<number, number>();
  for (const s of split.train) lastTrain.set(s.user, Math.max(lastTrain.get(s.user) ?? 0, s.position));
  // Only events the training period has seen: a user's prefix up to its last training position.
  lastTrain.forEach((p, user) => {
    const seq = split.data.sequences[user];
    for (let t = 0; t <= p && t < seq.length; t++) counts[seq[t]] += 1;
  });
  return counts;
}

/**
 * Seeded per-event timestamps (sessions: short gaps inside, long gaps between) and ratings (1..5,
 * a user bias plus noise) for data that has none, so the synthetic CTR data exercises every
 * per-event feature. They carry no signal about the next item; they only make the cache per user.
 */
export function withSyntheticEventFeatures(data: Sequences, seed = 1): CtrEventLog {
  const rand = seededRandom(seed);
  const timestamps: number[][] = [];
  const ratings: number[][] = [];
  for (const seq of data.sequences) {
    let t = 1_000_000 + Math.floor(rand() * 1_000_000);
    const bias = rand() * 2 - 1;
    const times: number[] = [];
    const rs: number[] = [];
    for (let i = 0; i < seq.length; i++) {
      t += rand() < 0.2 ? Math.floor(rand() * 500_000) : Math.floor(rand() * 600);
      times.push(t);
      rs.push(Math.max(1, Math.min(5, Math.round(3.5 + bias + (rand() * 2 - 1)))));
    }
    timestamps.push(times);
    ratings.push(rs);
  }
  return { sequences: data.sequences, numItems: data.numItems, timestamps, ratings };
}
