/**
 * How raw ids in a file are read. 'integer': non-negative decimal integers (leading zeros ignored,
 * so "007" is 7); anything else is a malformed line, never a silently truncated id ("12abc" is not
 * 12). 'token': any non-empty string, compared exactly (RecBole's `:token` columns, unicode ids).
 */
export type IdKind = 'integer' | 'token';

const DIGITS = /^\d+$/;

/** The canonical key of a raw id, or null when the id is not valid for `kind`. */
export function parseId(raw: string, kind: IdKind): string | null {
  if (raw.length === 0) return null;
  if (kind === 'token') return raw;
  if (!DIGITS.test(raw)) return null;
  // Beyond 2^53 two different ids could map to the same number: refuse rather than merge them.
  if (raw.length > 15 && Number(raw) > Number.MAX_SAFE_INTEGER) return null;
  return raw.length > 1 && raw.charCodeAt(0) === 48 ? raw.replace(/^0+(?=\d)/, '') : raw;
}

/**
 * A two-way map between the ids of a file and dense ids: `base` 1 for items (0 is padding), 0 for
 * users (the index of the user's sequence). Kept with the data so predictions can be translated back.
 */
export class IdMap {
  private readonly index: Map<string, number>;

  /** `originals[k]` is the file's id of dense id `k + base`. */
  constructor(readonly originals: readonly string[], readonly base: number, readonly kind: IdKind) {
    this.index = new Map(originals.map((id, k) => [id, k + base]));
  }

  get size(): number {
    return this.originals.length;
  }

  /** Dense id of a file id (a number is read as its decimal form), or undefined when absent. */
  toDense(original: string | number): number | undefined {
    const key = parseId(String(original), this.kind);
    return key == null ? undefined : this.index.get(key);
  }

  /** The file's id of a dense id; throws outside base..base + size - 1. */
  toOriginal(dense: number): string {
    const k = dense - this.base;
    if (!Number.isInteger(dense) || k < 0 || k >= this.originals.length) {
      throw new RangeError(`IdMap.toOriginal: dense id must be an integer in ${this.base}..${this.base + this.originals.length - 1}, received ${dense}`);
    }
    return this.originals[k];
  }
}

/**
 * Compare function for 'natural' id order: numeric when every id is a decimal integer (so a file
 * whose ids already run 1..N keeps them), else by UTF-16 code units (deterministic, locale-free).
 */
export function naturalOrder(keys: readonly string[]): (a: string, b: string) => number {
  if (keys.every((k) => DIGITS.test(k) && (k.length === 1 || k[0] !== '0'))) return (a, b) => Number(a) - Number(b);
  return (a, b) => (a < b ? -1 : a > b ? 1 : 0);
}
