import { UsageError, integerAtLeast, oneOf, positiveInt, positiveNumber, rate } from '../../../src/app/command/flags';

describe('command-line values', () => {
  it('parse valid values and pass absent flags through as undefined', () => {
    expect(positiveInt('--n', '12')).toBe(12);
    expect(positiveInt('--n', undefined)).toBeUndefined();
    expect(integerAtLeast('--n', '0', 0)).toBe(0);
    expect(positiveNumber('--lr', '2e-3')).toBe(0.002);
    expect(rate('--dropout', '0')).toBe(0);
    expect(oneOf('--share', 'kv', ['k', 'v', 'kv'] as const)).toBe('kv');
  });

  it.each([
    [() => positiveInt('--n', '0'), "--n must be a positive integer, received '0'"],
    [() => positiveInt('--n', '1.5'), "--n must be a positive integer, received '1.5'"],
    [() => positiveInt('--n', '1e3'), "--n must be a positive integer, received '1e3'"],
    [() => integerAtLeast('--n', '-1', 0), "--n must be an integer >= 0, received '-1'"],
    [() => integerAtLeast('--n', '', 0), "--n must be an integer >= 0, received ''"],
    [() => positiveNumber('--lr', 'Infinity'), "--lr must be a positive number, received 'Infinity'"],
    [() => positiveNumber('--lr', 'abc'), "--lr must be a positive number, received 'abc'"],
    [() => rate('--dropout', '1'), "--dropout must be in [0, 1), received '1'"],
    [() => oneOf('--share', 'q', ['k', 'v'] as const), "--share must be one of k, v, received 'q'"],
  ])('reject bad values as a UsageError naming the flag (%#)', (parse, message) => {
    expect(parse).toThrow(message);
    expect(parse).toThrow(UsageError);
  });
});
