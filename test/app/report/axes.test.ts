// Scale choice (log from a span of orders of magnitude), tick placement and human-unit labels.
import { chooseScale, formatBytes, formatMs, linearTicks, ordersSpanned, short, tickAxis } from '../../../src/app/report/axes';

describe('chooseScale', () => {
  test('log from `minOrders` orders of magnitude up, linear below, with zero or negative values, or fewer than 2', () => {
    expect(ordersSpanned([2, 200])).toBeCloseTo(2, 12);
    expect(chooseScale([1.5, 149], 2).type).toBe('linear'); // 1.996 orders
    expect(chooseScale([1.5, 150], 2).type).toBe('log');
    expect(chooseScale([0, 5, 5000], 2).type).toBe('linear');
    expect(chooseScale([-1, 5000], 2).type).toBe('linear');
    expect(chooseScale([7], 0).type).toBe('linear');
    expect(chooseScale([1, 10, NaN], 1).type).toBe('log');
  });

  test('log: the domain pads the data by 1.25 each side, or reaches a tick within 2x; decimal ticks are the powers of 10 inside it', () => {
    const s = chooseScale([1.5, 9, 400, 120682], 2);
    expect(s.domain).toEqual([1, 150852.5]);
    expect(s.ticks).toEqual([1, 10, 100, 1000, 10000, 100000]);
    expect(chooseScale([3, 300], 2).domain).toEqual([2.4, 375]);
  });

  test('binary axes: powers of 2 below 3 orders, powers of 10 from there', () => {
    expect(chooseScale([1, 64, 512], 1, 'binary').ticks).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
    expect(chooseScale([1, 5000], 1, 'binary').ticks).toEqual([1, 10, 100, 1000, 10000]);
  });

  test('bytes: 1, 10 and 100 times B, KiB, MiB', () => {
    expect(chooseScale([800, 5512, 205512, 1027112], 2, 'bytes').ticks).toEqual([1024, 10240, 102400, 1048576]);
  });
});

describe('units', () => {
  test('durations in µs, ms or s with at most 3 significant digits', () => {
    expect([0.25, 1, 20, 999, 1500, 120682.3].map(formatMs)).toEqual(['250 µs', '1 ms', '20 ms', '999 ms', '1.5 s', '121 s']);
  });

  test('bytes in B, KiB, MiB, GiB', () => {
    expect([800, 5512, 102400, 1027112, 1048576, 3 * 2 ** 30].map(formatBytes)).toEqual(['800 B', '5.38 KiB', '100 KiB', '0.98 MiB', '1 MiB', '3 GiB']);
  });

  test('no exponent notation anywhere from 1e-6 to 1e12', () => {
    for (let e = -6; e <= 12; e++) {
      for (const v of [10 ** e, 2 * 10 ** e, 1234.5678 * 10 ** e]) {
        expect(short(v)).not.toMatch(/e/i);
        expect(formatMs(v)).not.toMatch(/e[+-]/);
        expect(formatBytes(v)).not.toMatch(/e[+-]/);
      }
    }
    expect(short(200000)).toBe('200000');
    expect(short(0.000123456)).toBe('0.000123');
  });

  test('tickAxis: exactly these ticks, labelled by a lookup from our formatter', () => {
    const axis = tickAxis([1, 1000, 100000], formatMs);
    expect(axis.values).toEqual([1, 1000, 100000]);
    expect(axis.labelExpr).toBe('["1 ms","1 s","100 s"][indexof([1,1000,100000], datum.value)]');
  });
});

test('linearTicks: round steps of the unit from 0 past the maximum', () => {
  expect(linearTicks(204800, 1024)).toEqual([0, 51200, 102400, 153600, 204800]);
  expect(linearTicks(9.5, 1)).toEqual([0, 2, 4, 6, 8, 10]);
});
