import { auc, ctrMetrics, gauc, logloss, LOGLOSS_EPS, pairedAucDifference, pairedGaucDifference } from '../../src/internal';
import { seededRandom } from '../../src/data/random';

/** O(n^2) definition: fraction of (positive, negative) pairs ordered right, ties one half. */
function bruteAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      sum += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return sum / pairs;
}

describe('auc', () => {
  it('matches hand-computed values', () => {
    // Positive 0.35 beats 0.1 and loses to 0.4; 0.8 beats both: 3 of 4 pairs.
    expect(auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.75, 12);
    // Positive 2 beats 1 and ties 2 (1.5); positive 3 beats both (2): 3.5 / 4.
    expect(auc([1, 2, 2, 3], [0, 1, 0, 1])).toBeCloseTo(0.875, 12);
    expect(auc([3, 1, 2], [1, 0, 1])).toBe(1);
    // Positive 1 beats no negative, positive 4 beats both: 2 of 4.
    expect(auc([1, 2, 3, 4], [1, 0, 0, 1])).toBe(0.5);
    expect(auc([1, 2, 3], [1, 1, 0])).toBe(0);
  });

  it('counts all-equal scores as one half, whatever the order of the samples', () => {
    expect(auc([0.5, 0.5, 0.5, 0.5, 0.5], [1, 0, 0, 1, 0])).toBe(0.5);
    expect(auc(new Float32Array(100).fill(7), Array.from({ length: 100 }, (_, k) => k % 3 === 0 ? 1 : 0))).toBe(0.5);
  });

  it('sorts numerically (not as strings) and handles infinities and negative zero', () => {
    // As strings "10" < "9"; numerically 9 < 10.
    expect(auc([10, 9], [1, 0])).toBe(1);
    expect(auc([-Infinity, Infinity, 0], [0, 1, 0])).toBe(1);
    expect(auc([-0, 0], [1, 0])).toBe(0.5);
  });

  it('equals the pairwise definition on random data with many ties (Float32Array, number[])', () => {
    const rand = seededRandom(11);
    for (let trial = 0; trial < 20; trial++) {
      const n = 2 + Math.floor(rand() * 200);
      const scores = Float32Array.from({ length: n }, () => Math.floor(rand() * 10) / 10);
      const labels = Array.from({ length: n }, (_, k) => (k < 2 ? k : rand() < 0.3 ? 1 : 0));
      expect(auc(scores, labels)).toBeCloseTo(bruteAuc(scores, labels), 12);
    }
  });

  it('rejects bad input with the argument, expected and received values', () => {
    expect(() => auc([0.1, 0.2], [0, 1, 1])).toThrow('auc: scores has length 2 but labels has length 3');
    expect(() => auc([], [])).toThrow('auc: empty input');
    expect(() => auc([0.1, 0.2], [0, 2])).toThrow('auc: labels[1] must be 0 or 1, received 2');
    expect(() => auc([0.1, 0.2], [0.5, 1])).toThrow('labels[0] must be 0 or 1, received 0.5');
    expect(() => auc([0.1, NaN], [0, 1])).toThrow('auc: scores[1] must be a number, received NaN');
    expect(() => auc([0.1, 0.2], [1, 1])).toThrow('auc: needs both classes, received 2 positives and 0 negatives');
  });
});

describe('gauc', () => {
  // User a: the positive 0.9 beats 0.1 and 0.5 -> AUC 1, 3 samples. User b: the positive 0.2 loses
  // to 0.8 -> AUC 0, 2 samples. Users c (two positives) and d (one negative) have one class.
  const scores = [0.9, 0.2, 0.3, 0.1, 0.8, 0.4, 0.6, 0.5];
  const labels = [1, 1, 1, 0, 0, 0, 1, 0];
  const users = ['a', 'b', 'c', 'a', 'b', 'd', 'c', 'a'];

  it('weights per-user AUC by sample count and counts the skipped single-class users', () => {
    const r = gauc(scores, labels, users);
    expect(r.gauc).toBeCloseTo((3 * 1 + 2 * 0) / 5, 12);
    expect(r.usersScored).toBe(2);
    expect(r.usersSkipped).toBe(2);
  });

  it('accepts numeric user ids and typed arrays, and ties within a user count one half', () => {
    const r = gauc(new Float32Array([0.5, 0.5, 0.2, 0.9]), new Int32Array([1, 0, 1, 0]), new Int32Array([7, 7, 9, 9]));
    expect(r.gauc).toBeCloseTo((2 * 0.5 + 2 * 0) / 4, 12);
    expect(r).toMatchObject({ usersScored: 2, usersSkipped: 0 });
  });

  it('is NaN with no scorable user, and says so through the counts', () => {
    const r = gauc([0.1, 0.2], [1, 0], [1, 2]);
    expect(r.gauc).toBeNaN();
    expect(r).toMatchObject({ usersScored: 0, usersSkipped: 2 });
  });

  it('rejects mismatched users and bad ids', () => {
    expect(() => gauc([0.1, 0.2], [1, 0], [1])).toThrow('gauc: users has length 1 but scores has length 2');
    expect(() => gauc([0.1, 0.2], [1, 0], [1, NaN])).toThrow('gauc: users[1] must be a number or string id, received NaN');
    expect(() => gauc([0.1], [3], [1])).toThrow('gauc: labels[0] must be 0 or 1, received 3');
  });
});

describe('logloss', () => {
  it('matches hand-computed values', () => {
    expect(logloss([0.9, 0.2], [1, 0])).toBeCloseTo(-(Math.log(0.9) + Math.log(0.8)) / 2, 12);
    expect(logloss(new Float32Array([0.5]), [1])).toBeCloseTo(Math.LN2, 7);
  });

  it('clips probabilities to [eps, 1 - eps] (default 1e-7, configurable)', () => {
    expect(LOGLOSS_EPS).toBe(1e-7);
    expect(logloss([0, 1], [1, 0])).toBeCloseTo(-Math.log(1e-7), 9);
    expect(logloss([0, 1], [1, 0], 1e-3)).toBeCloseTo(-Math.log(1e-3), 9);
    expect(logloss([1, 0], [1, 0])).toBeCloseTo(-Math.log(1 - 1e-7), 15);
    expect(logloss([1, 0], [1, 0])).toBeGreaterThan(0);
  });

  it('rejects probabilities outside [0, 1], bad eps and bad input', () => {
    expect(() => logloss([1.5], [1])).toThrow('logloss: probabilities[0] must be in [0, 1], received 1.5');
    expect(() => logloss([0.5], [1], 0)).toThrow('logloss: eps must be in (0, 0.5), received 0');
    expect(() => logloss([0.5], [1], 0.5)).toThrow('eps must be in (0, 0.5)');
    expect(() => logloss([NaN], [1])).toThrow('logloss: scores[0] must be a number, received NaN');
    expect(() => logloss([], [])).toThrow('logloss: empty input');
  });
});

describe('ctrMetrics', () => {
  it('combines the three', () => {
    const r = ctrMetrics([0.9, 0.1, 0.4, 0.6], [1, 0, 0, 1], [1, 1, 2, 2]);
    expect(r).toEqual({ auc: 1, gauc: 1, usersScored: 2, usersSkipped: 0, logloss: logloss([0.9, 0.1, 0.4, 0.6], [1, 0, 0, 1]) });
  });
});

describe('pairedAucDifference (DeLong)', () => {
  /** O(mn) DeLong from the pairwise kernel: placements, then var(a - b)/m + var(a - b)/n. */
  function bruteDeLong(a: number[], b: number[], labels: number[]): { difference: number; standardError: number } {
    const kernel = (x: number, y: number) => (x > y ? 1 : x === y ? 0.5 : 0);
    const pos = labels.flatMap((y, k) => (y === 1 ? [k] : []));
    const neg = labels.flatMap((y, k) => (y === 0 ? [k] : []));
    const v10 = (s: number[]) => pos.map((i) => neg.reduce((t, j) => t + kernel(s[i], s[j]), 0) / neg.length);
    const v01 = (s: number[]) => neg.map((j) => pos.reduce((t, i) => t + kernel(s[i], s[j]), 0) / pos.length);
    const variance = (x: number[]) => {
      const m = x.reduce((t, v) => t + v, 0) / x.length;
      return x.reduce((t, v) => t + (v - m) ** 2, 0) / (x.length - 1);
    };
    const d10 = v10(b).map((v, i) => v - v10(a)[i]);
    const d01 = v01(b).map((v, i) => v - v01(a)[i]);
    return { difference: bruteAuc(b, labels) - bruteAuc(a, labels), standardError: Math.sqrt(variance(d10) / pos.length + variance(d01) / neg.length) };
  }

  it('matches the pairwise definition, ties included, and its difference is the AUC difference', () => {
    const rand = seededRandom(11);
    const labels = Array.from({ length: 60 }, () => (rand() < 0.4 ? 1 : 0));
    // Rounded scores: many ties within and across classes.
    const a = labels.map((y) => Math.round((y + rand() * 2) * 4) / 4);
    const b = labels.map((y, k) => Math.round((0.5 * a[k] + y * 0.3 + rand()) * 4) / 4);
    const got = pairedAucDifference(a, b, labels);
    const want = bruteDeLong(a, b, labels);
    expect(got.difference).toBeCloseTo(want.difference, 12);
    expect(got.difference).toBeCloseTo(auc(b, labels) - auc(a, labels), 12);
    expect(got.standardError).toBeCloseTo(want.standardError, 12);
    expect(got.standardError).toBeGreaterThan(0);
  });

  it('is 0 +- 0 for identical scores', () => {
    const labels = [1, 0, 1, 0, 0, 1];
    const s = [0.9, 0.1, 0.4, 0.5, 0.2, 0.8];
    expect(pairedAucDifference(s, s, labels)).toEqual({ difference: 0, standardError: 0 });
  });

  it('its standard error matches the spread of the difference over repeated samples', () => {
    // 300 seeded data sets of 400 samples; two correlated scorers of different quality.
    const rand = seededRandom(5);
    const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const differences: number[] = [];
    const errors: number[] = [];
    for (let r = 0; r < 300; r++) {
      const labels = Array.from({ length: 400 }, () => (rand() < 0.5 ? 1 : 0));
      const shared = labels.map(() => normal());
      const a = labels.map((y, k) => 0.8 * y + shared[k] + 0.5 * normal());
      const b = labels.map((y, k) => 0.9 * y + shared[k] + 0.5 * normal());
      const p = pairedAucDifference(a, b, labels);
      differences.push(p.difference);
      errors.push(p.standardError);
    }
    const m = differences.reduce((t, v) => t + v, 0) / differences.length;
    const spread = Math.sqrt(differences.reduce((t, v) => t + (v - m) ** 2, 0) / (differences.length - 1));
    const meanError = errors.reduce((t, v) => t + v, 0) / errors.length;
    expect(meanError / spread).toBeGreaterThan(0.85);
    expect(meanError / spread).toBeLessThan(1.15);
  });

  it('rejects mismatched lengths, bad labels and too few samples of a class', () => {
    expect(() => pairedAucDifference([0.1, 0.2], [0.1], [1, 0])).toThrow(/labels has length 2/);
    expect(() => pairedAucDifference([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], [1, 0, 2, 0])).toThrow(/labels\[2\] must be 0 or 1, received 2/);
    expect(() => pairedAucDifference([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [1, 0, 0])).toThrow(/at least 2 samples of each class, received 1 positives and 2 negatives/);
  });
});

describe('pairedGaucDifference', () => {
  it('is the gAUC difference, with the error of a weighted mean of per-user differences', () => {
    // Users 1 and 2 scored; user 3 (one class) skipped.
    const users = [1, 1, 1, 2, 2, 2, 2, 3, 3];
    const labels = [1, 0, 0, 1, 1, 0, 0, 1, 1];
    const a = [0.9, 0.5, 0.95, 0.2, 0.7, 0.4, 0.1, 0.5, 0.6];
    const b = [0.9, 0.5, 0.4, 0.6, 0.7, 0.4, 0.1, 0.2, 0.6];
    const got = pairedGaucDifference(a, b, labels, users);
    // Per user: AUC a = (0.5, 0.75), b = (1, 1); differences 0.5 and 0.25 with weights 3 and 4.
    const difference = (3 * 0.5 + 4 * 0.25) / 7;
    expect(got.difference).toBeCloseTo(difference, 12);
    expect(got.difference).toBeCloseTo(gauc(b, labels, users).gauc - gauc(a, labels, users).gauc, 12);
    const spread = (3 * (0.5 - difference)) ** 2 + (4 * (0.25 - difference)) ** 2;
    expect(got.standardError).toBeCloseTo(Math.sqrt(spread * 2) / 7, 12);
    expect(() => pairedGaucDifference(a.slice(0, 3), b.slice(0, 3), labels.slice(0, 3), users.slice(0, 3))).toThrow(/at least 2 users with both classes, received 1/);
    expect(() => pairedGaucDifference(a, b, labels, users.slice(1))).toThrow(/users has length 8 but scores has length 9/);
  });
});
