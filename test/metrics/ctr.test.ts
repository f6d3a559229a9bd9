import { auc, ctrMetrics, gauc, logloss, LOGLOSS_EPS } from '../../src/index';
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
