import { BalanceSampler } from '../../layers/common';

describe('BalanceSampler', () => {
  it('draws distinct, ascending rows in range, repeats per name, and differs by name and call', () => {
    const a = new BalanceSampler(50, 'layer/key');
    const b = new BalanceSampler(50, 'layer/key');
    const first = Array.from(a.sample(1000)!);
    expect(Array.from(b.sample(1000)!)).toEqual(first);
    expect(new Set(first).size).toBe(50);
    expect(first.every((r, i) => r >= 0 && r < 1000 && (i === 0 || r > first[i - 1]))).toBe(true);
    expect(Array.from(a.sample(1000)!)).not.toEqual(first);
    expect(Array.from(new BalanceSampler(50, 'layer/value').sample(1000)!)).not.toEqual(first);
  });

  it('uses every row (null) at or under its size, or when off', () => {
    expect(new BalanceSampler(8, 'x').sample(8)).toBeNull();
    expect(new BalanceSampler(0, 'x').sample(100000)).toBeNull();
    const rows = Array.from(new BalanceSampler(9, 'x').sample(10)!);
    expect(rows).toHaveLength(9);
    expect(new Set(rows).size).toBe(9);
  });

  it('covers rows uniformly', () => {
    const s = new BalanceSampler(10, 'u');
    const counts = new Array<number>(40).fill(0);
    for (let i = 0; i < 2000; i++) for (const r of s.sample(40)!) counts[r] += 1;
    // Each row is drawn with probability 1/4 per call: 500 expected, sd ~19.
    for (const c of counts) expect(Math.abs(c - 500)).toBeLessThan(100);
  });
});
