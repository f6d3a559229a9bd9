// Command-line values shared by every command: each check names the flag, what it expects and
// what it received, and throws a UsageError (printed with a pointer to --help, exit code 2).

/** A bad command line. */
export class UsageError extends Error {}

/** A positive integer (digits only), or undefined when the flag is absent. */
export function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value == null) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, received '${value}'`);
  return n;
}

/** An integer >= min, or undefined when the flag is absent. */
export function integerAtLeast(flag: string, value: string | undefined, min: number): number | undefined {
  if (value == null) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} must be an integer >= ${min}, received '${value}'`);
  return n;
}

/** A finite number > 0, or undefined when the flag is absent. */
export function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value == null) return undefined;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`${flag} must be a positive number, received '${value}'`);
  return n;
}

/** A finite number >= 0, or undefined when the flag is absent. */
export function nonNegativeNumber(flag: string, value: string | undefined): number | undefined {
  if (value == null) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0) || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number >= 0, received '${value}'`);
  return n;
}

/** A number in [0, 1), or undefined when the flag is absent. */
export function rate(flag: string, value: string | undefined): number | undefined {
  if (value == null) return undefined;
  const n = Number(value);
  if (!(n >= 0 && n < 1)) throw new UsageError(`${flag} must be in [0, 1), received '${value}'`);
  return n;
}

/** A number strictly between 0 and 1, or undefined when the flag is absent. */
export function openUnitFraction(flag: string, value: string | undefined): number | undefined {
  if (value == null) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !(n > 0 && n < 1)) throw new UsageError(`${flag} must be a number in (0, 1), received '${value}'`);
  return n;
}

/** One of the allowed words. */
export function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${allowed.join(', ')}, received '${value}'`);
  return value as T;
}

/** One of the allowed words, or undefined when the flag is absent. */
export function optionalOneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  return value == null ? undefined : oneOf(flag, value, allowed);
}

/** --filter-history (the whole history) or --filter-window (the model's input window); not both. */
export function historyFilter(wholeHistory: boolean, window: boolean): true | 'window' | undefined {
  if (wholeHistory && window) {
    throw new UsageError('--filter-history and --filter-window exclude each other: the first filters the whole history, the second only the input window');
  }
  return wholeHistory ? true : window ? 'window' : undefined;
}
