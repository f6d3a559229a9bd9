import {
  CtrSample, ctrBatch, ctrBatches, ctrSamples, generateSynthetic, itemPopularity, parseCtrLabel, positionBucket, seededRandom, sampleNegatives,
  timeGapBucket, withSyntheticEventFeatures,
} from 'collectivekv/internal';

const data = withSyntheticEventFeatures(generateSynthetic({ numUsers: 60, numItems: 90, numTopics: 6, minLength: 4, maxLength: 30, seed: 4 }), 4);

function groups(samples: CtrSample[]): Map<string, CtrSample[]> {
  const out = new Map<string, CtrSample[]>();
  for (const s of samples) out.set(`${s.user}:${s.position}`, [...(out.get(`${s.user}:${s.position}`) ?? []), s]);
  return out;
}

describe('ctrSamples (next-item labels)', () => {
  const split = ctrSamples(data, { seed: 11, negativesPerPositive: 2 });
  const all = [...split.train, ...split.validation, ...split.test];

  it('per position: the true next item positive, distinct never-interacted negatives', () => {
    for (const group of groups(all).values()) {
      const { user, position } = group[0];
      const seq = data.sequences[user];
      expect(group.filter((s) => s.label === 1).map((s) => s.candidate)).toEqual([seq[position]]);
      const negatives = group.filter((s) => s.label === 0).map((s) => s.candidate);
      expect(negatives).toHaveLength(2);
      expect(new Set(negatives).size).toBe(2);
      for (const n of negatives) expect(seq.includes(n)).toBe(false);
    }
  });

  it('splits per user by time: last position test, the one before validation', () => {
    for (const s of split.test) expect(s.position).toBe(data.sequences[s.user].length - 1);
    for (const s of split.validation) expect(s.position).toBe(data.sequences[s.user].length - 2);
    const lastTrain = new Map<number, number>();
    for (const s of split.train) lastTrain.set(s.user, Math.max(lastTrain.get(s.user) ?? 0, s.position));
    for (const s of split.validation) expect(lastTrain.get(s.user)).toBe(s.position - 1);
  });

  it('batches never show an event at or after the sample position', () => {
    const batch = ctrBatch(data, all, { historyLength: 12 });
    all.forEach((s, row) => {
      const seq = data.sequences[s.user];
      const history = Array.from(batch.items.subarray(row * 12, row * 12 + 12)).filter((id) => id !== 0);
      expect(history).toEqual(seq.slice(Math.max(0, s.position - 12), s.position));
      // The most recent event is 0 steps from the end: bucket 1.
      if (history.length > 0) expect(batch.positions[row * 12 + 11]).toBe(1);
    });
  });

  it('the same seed reproduces the samples, another seed changes the negatives', () => {
    expect(ctrSamples(data, { seed: 11, negativesPerPositive: 2 })).toEqual(split);
    const other = ctrSamples(data, { seed: 12, negativesPerPositive: 2 });
    expect(other.train.map((s) => s.candidate)).not.toEqual(split.train.map((s) => s.candidate));
  });

  it('maxTrainPositionsPerUser keeps the most recent training positions', () => {
    const recent = ctrSamples(data, { seed: 11, maxTrainPositionsPerUser: 3 });
    for (const group of groups(recent.train).values()) {
      const { user, position } = group[0];
      expect(position).toBeGreaterThanOrEqual(data.sequences[user].length - 5);
    }
  });

  it('popularity counts only what the training period saw', () => {
    const counts = itemPopularity(split);
    const testItems = new Set(split.test.filter((s) => s.label === 1).map((s) => s.candidate));
    const total = counts.reduce((a, b) => a + b, 0);
    const expected = split.train.filter((s) => s.label === 1).length
      + new Set(split.train.map((s) => s.user)).size; // each user's prefix adds its first event
    expect(total).toBe(expected);
    expect(testItems.size).toBeGreaterThan(0);
  });
});

describe('ctrSamples (rating labels, time split)', () => {
  it("'rating>=4' labels every event by its rating, without sampled negatives", () => {
    const split = ctrSamples(data, { label: parseCtrLabel('rating>=4') });
    for (const s of [...split.train, ...split.test]) {
      expect(s.candidate).toBe(data.sequences[s.user][s.position]);
      expect(s.label).toBe((data.ratings as number[][])[s.user][s.position] >= 4 ? 1 : 0);
    }
    expect(new Set(split.train.map((s) => s.label))).toEqual(new Set([0, 1]));
  });

  it('a global time split puts every test event after every training event', () => {
    const split = ctrSamples(data, { split: 'time' });
    const time = (s: CtrSample) => (data.timestamps as number[][])[s.user][s.position];
    const lastTrain = Math.max(...split.train.map(time));
    const firstVal = Math.min(...split.validation.map(time));
    const firstTest = Math.min(...split.test.map(time));
    expect(lastTrain).toBeLessThan(firstVal);
    expect(Math.max(...split.validation.map(time))).toBeLessThan(firstTest);
  });

  it('names the argument and what it expected', () => {
    expect(() => parseCtrLabel('rating>4')).toThrow(/'next-item' or 'rating>=X'.*received 'rating>4'/);
    expect(() => ctrSamples({ sequences: [[1, 2, 3]], numItems: 5 }, { label: { kind: 'rating', minRating: 4 } })).toThrow(/ratings must be present/);
    expect(() => ctrSamples(data, { negativesPerPositive: 0 })).toThrow(/negativesPerPositive must be a positive integer, received 0/);
  });
});

describe('features and negatives', () => {
  it('buckets are log2 and capped', () => {
    expect([0, 1, 2, 3, 6, 7].map(positionBucket)).toEqual([1, 2, 2, 3, 3, 4]);
    expect(positionBucket(1e9)).toBe(11);
    expect(timeGapBucket(0)).toBe(1);
    expect(timeGapBucket(1e12)).toBe(23);
  });

  it('ctrBatches: the same seed and epoch give the same batches, another epoch another order of the same samples', () => {
    const split = ctrSamples(data, { seed: 3 });
    const options = { historyLength: 6, seed: 4, epoch: 1 };
    const users = (batches: { users: Int32Array }[]) => batches.flatMap((b) => Array.from(b.users));
    const all = [...ctrBatches(data, split.train, 16, options)];
    expect([...ctrBatches(data, split.train, 16, options)]).toEqual(all);
    const next = users([...ctrBatches(data, split.train, 16, { ...options, epoch: 2 })]);
    expect(next).not.toEqual(users(all));
    expect(next.slice().sort((a, b) => a - b)).toEqual(users(all).sort((a, b) => a - b));
  });

  it('sampleNegatives avoids seen items and stops at what is left', () => {
    const seen = new Set([1, 2, 3, 4]);
    const got = sampleNegatives(seen, 6, 5, seededRandom(1));
    expect(got.sort()).toEqual([5, 6]);
  });
});
