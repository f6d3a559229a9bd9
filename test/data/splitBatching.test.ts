import { useBackend } from '../util/backends';
import { batchTensor, epochSeed, evaluationBatches, leaveOneOut, padLeft, seededRandom, trainingBatches, trainingExamples } from '../../src/internal';

beforeAll(() => useBackend('cpu'));

describe('leaveOneOut', () => {
  const data = { numItems: 9, sequences: [[1, 2, 3, 4, 5], [6, 7], [8, 9, 1]] };
  const split = leaveOneOut(data);

  it('holds out the last item for test and the second to last for validation', () => {
    expect(split.train).toEqual([[1, 2, 3], [6, 7], [8]]);
    expect(split.validation).toEqual([{ user: 0, history: [1, 2, 3], target: 4 }, { user: 2, history: [8], target: 9 }]);
    expect(split.test).toEqual([{ user: 0, history: [1, 2, 3, 4], target: 5 }, { user: 2, history: [8, 9], target: 1 }]);
  });

  it('keeps every item exactly once across train, validation and test', () => {
    data.sequences.forEach((seq, u) => {
      const v = split.validation.filter((c) => c.user === u).map((c) => c.target);
      const t = split.test.filter((c) => c.user === u).map((c) => c.target);
      expect([...split.train[u], ...v, ...t]).toEqual(seq);
    });
  });
});

describe('padding and batches', () => {
  it('left-pads with 0 and keeps the most recent items when truncating', () => {
    expect(Array.from(padLeft([5, 6], 4))).toEqual([0, 0, 5, 6]);
    expect(Array.from(padLeft([1, 2, 3, 4, 5], 3))).toEqual([3, 4, 5]);
    expect(Array.from(padLeft([], 2))).toEqual([0, 0]);
  });

  it('shifts targets by one and skips sequences shorter than 2', () => {
    const ex = trainingExamples([[1, 2, 3], [4], [5, 6, 7, 8, 9]], 3);
    expect(ex).toHaveLength(2);
    expect(Array.from(ex[0].input)).toEqual([0, 1, 2]);
    expect(Array.from(ex[0].target)).toEqual([0, 2, 3]);
    expect(Array.from(ex[1].input)).toEqual([6, 7, 8]);
    expect(Array.from(ex[1].target)).toEqual([7, 8, 9]);
  });

  it('shuffles reproducibly per seed and epoch and covers every example once', () => {
    const train = Array.from({ length: 23 }, (_, u) => [u + 1, u + 2]);
    const ex = trainingExamples(train, 2);
    const firstColumn = (seed: number, epoch: number) => [...trainingBatches(ex, 5, seed, epoch)].flatMap((b) =>
      Array.from({ length: b.batchSize }, (_, r) => b.targets[r * b.maxLength + 1]));
    const a = firstColumn(1, 0);
    expect(firstColumn(1, 0)).toEqual(a);
    expect(firstColumn(1, 1)).not.toEqual(a);
    expect(firstColumn(2, 0)).not.toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(train.map((s) => s[1]));
    const sizes = [...trainingBatches(ex, 5, 1)].map((b) => b.batchSize);
    expect(sizes).toEqual([5, 5, 5, 5, 3]);
  });

  it('length buckets: every example once, similar lengths together, each batch cut to its longest row', () => {
    const rand = (i: number) => ((i * 7919) % 97) / 97;
    const train = Array.from({ length: 200 }, (_, u) => Array.from({ length: 2 + Math.floor(rand(u) * 12) }, (_, t) => 1 + ((u + t) % 50)));
    const ex = trainingExamples(train, 10);
    const batches = [...trainingBatches(ex, 8, 3, 0, { bucketByLength: true, bucketPoolBatches: 25 })];
    expect([...trainingBatches(ex, 8, 3, 0, { bucketByLength: true, bucketPoolBatches: 25 })]).toEqual(batches);
    const seen: number[] = [];
    let cells = 0;
    for (const b of batches) {
      const w = b.maxLength;
      const lengths = Array.from({ length: b.batchSize }, (_, r) => b.inputs.subarray(r * w, (r + 1) * w).filter((id) => id !== 0).length);
      expect(Math.max(...lengths)).toBe(w);
      cells += b.batchSize * w;
      for (let r = 0; r < b.batchSize; r++) {
        // Rows are the full examples' last w slots: the same ids, left padding removed.
        const user = ex.findIndex((e) => !seen.includes(ex.indexOf(e)) && e.length === lengths[r]
          && e.input.subarray(10 - w).every((id, t) => id === b.inputs[r * w + t]) && e.target.subarray(10 - w).every((id, t) => id === b.targets[r * w + t]));
        expect(user).toBeGreaterThanOrEqual(0);
        seen.push(user);
      }
    }
    expect(seen).toHaveLength(ex.length);
    // One pool of 200 sorted rows: batches hold near-equal lengths, so far fewer cells than the padded 200 x 10.
    expect(cells).toBeLessThan(ex.reduce((n, e) => n + e.length!, 0) + 25 * 8);
    // Loss weights: each batch's positions over the average batch's (mean 1), so positions weigh the same.
    const positions = batches.map((b) => b.targets.filter((t) => t !== 0).length);
    const mean = positions.reduce((a, b) => a + b, 0) / batches.length;
    batches.forEach((b, i) => expect(b.lossWeight).toBeCloseTo(positions[i] / mean, 10));
    expect(new Set(positions).size).toBeGreaterThan(1);
    expect([...trainingBatches(ex, 8, 3, 0)].every((b) => b.lossWeight === undefined)).toBe(true);
    expect(() => [...trainingBatches(ex, 8, 3, 0, { bucketByLength: true, bucketPoolBatches: 0 })]).toThrow(/bucketPoolBatches must be a positive integer, received 0/);
  });

  it('evaluation batches keep order, pad histories and make int32 tensors', () => {
    const cases = [{ user: 0, history: [1, 2], target: 3 }, { user: 1, history: [4], target: 5 }, { user: 2, history: [6, 7, 8], target: 9 }];
    const batches = [...evaluationBatches(cases, 2, 3)];
    expect(batches.map((b) => Array.from(b.targets))).toEqual([[3, 5], [9]]);
    expect(Array.from(batches[0].inputs)).toEqual([0, 1, 2, 0, 0, 4]);
    const t = batchTensor(batches[0].inputs, batches[0].batchSize, batches[0].maxLength);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('int32');
    t.dispose();
  });
});

describe('epochSeed', () => {
  it('keeps stream 0 as the batch order always had it, and gives other streams other numbers', () => {
    // (7 * 0x9e3779b1) ^ ((2 + 1) * 0x85ebca6b), 32-bit: the seed of epoch 2 for seed 7 before streams existed.
    expect(epochSeed(7, 2)).toBe(3259436182);
    expect(epochSeed(7, 2, 0)).toBe(3259436182);
    const draws = (s: number) => { const r = seededRandom(s); return [r(), r(), r()]; };
    expect(draws(epochSeed(7, 2, 1))).not.toEqual(draws(epochSeed(7, 2)));
    expect(epochSeed(7, 2, 1)).not.toBe(epochSeed(7, 3, 1));
  });
});
