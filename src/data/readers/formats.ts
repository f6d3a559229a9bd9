import { IdKind, parseId } from './ids';

/** The file formats the readers understand. */
export type InteractionFormat = 'pairs' | 'lines' | 'movielens' | 'recbole';
export const INTERACTION_FORMATS: readonly InteractionFormat[] = ['pairs', 'lines', 'movielens', 'recbole'];

/** Receives the events of one valid line, in file order. */
export type EventSink = (user: string, item: string, rating: number, timestamp: number) => void;

/**
 * Parses the data lines of one format. `parse` returns why a line is malformed (an "expected ..."
 * phrase) without emitting anything, or null after emitting all the line's events: a bad line is
 * never half-read.
 */
export interface LineParser {
  readonly format: InteractionFormat;
  /** True when the first non-blank line is a header, handed to `header` instead of `parse`. */
  readonly hasHeader: boolean;
  hasRatings(): boolean;
  hasTimestamps(): boolean;
  /** Reads the header; returns why it is unusable, or null. */
  header(line: string): string | null;
  parse(line: string, emit: EventSink): string | null;
}

export interface ParserOptions {
  ids: IdKind;
  /** 'lines' only: the first token of a line is the user id (S3-Rec layout). False: items only, one user per line. */
  firstTokenIsUser: boolean;
  /** 'recbole' only: column names (the part before ':' in the header). */
  recboleFields: { user: string; item: string; rating: string; timestamp: string };
}

const WHITESPACE = /\s+/;
/** Decimal numbers only: Number() alone would accept "0x10", "" and " ". */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function parseDecimal(raw: string): number | null {
  if (!DECIMAL.test(raw)) return null;
  const value = Number(raw);
  return Number.isFinite(value) ? value : null;
}

function idPhrase(kind: IdKind): string {
  return kind === 'integer' ? "a non-negative integer id (pass ids: 'token' for string ids)" : 'a non-empty id';
}

/** Whitespace-separated tokens of a non-blank line. */
function tokens(line: string): string[] {
  return line.trim().split(WHITESPACE);
}

/** SASRec: `user item` per line, already in time order per user. */
function pairsParser(o: ParserOptions): LineParser {
  return {
    format: 'pairs', hasHeader: false, hasRatings: () => false, hasTimestamps: () => false, header: () => null,
    parse(line, emit) {
      const t = tokens(line);
      if (t.length !== 2) return `2 whitespace-separated fields "user item", found ${t.length}`;
      const user = parseId(t[0], o.ids);
      if (user == null) return `user field: ${idPhrase(o.ids)}`;
      const item = parseId(t[1], o.ids);
      if (item == null) return `item field: ${idPhrase(o.ids)}`;
      emit(user, item, NaN, NaN);
      return null;
    },
  };
}

/** One user per line: `user item1 item2 ...` (or items only), items in time order. */
function linesParser(o: ParserOptions): LineParser {
  let row = 0;
  return {
    format: 'lines', hasHeader: false, hasRatings: () => false, hasTimestamps: () => false, header: () => null,
    parse(line, emit) {
      const t = tokens(line);
      const first = o.firstTokenIsUser ? 1 : 0;
      // Items-only files have no user ids: the user is the line's position among data lines
      // (counted before validation, so a skipped line does not renumber the users after it).
      row++;
      const user = o.firstTokenIsUser ? parseId(t[0], o.ids) : String(row);
      if (user == null) return `user field (first token): ${idPhrase(o.ids)}`;
      const items: string[] = [];
      for (let k = first; k < t.length; k++) {
        const item = parseId(t[k], o.ids);
        if (item == null) return `item field ${k + 1}: ${idPhrase(o.ids)}`;
        items.push(item);
      }
      for (const item of items) emit(user, item, NaN, NaN);
      return null;
    },
  };
}

/** MovieLens `user::item::rating::timestamp` (ratings.dat) or the tab-separated u.data of ML-100K. */
function movielensParser(o: ParserOptions): LineParser {
  return {
    format: 'movielens', hasHeader: false, hasRatings: () => true, hasTimestamps: () => true, header: () => null,
    parse(line, emit) {
      const f = line.includes('::') ? line.split('::').map((x) => x.trim()) : tokens(line);
      if (f.length !== 4) return `4 fields "user::item::rating::timestamp" (or tab-separated), found ${f.length}`;
      const user = parseId(f[0], o.ids);
      if (user == null) return `user field: ${idPhrase(o.ids)}`;
      const item = parseId(f[1], o.ids);
      if (item == null) return `item field: ${idPhrase(o.ids)}`;
      const rating = parseDecimal(f[2]);
      if (rating == null) return 'rating field: a decimal number';
      const timestamp = parseDecimal(f[3]);
      if (timestamp == null) return 'timestamp field: a decimal number';
      emit(user, item, rating, timestamp);
      return null;
    },
  };
}

/**
 * RecBole atomic `.inter` file: a tab-separated header of `name:type` columns, then rows. Columns
 * are found by name, so extra columns and any column order work; rating and timestamp are optional.
 */
function recboleParser(o: ParserOptions): LineParser {
  const f = o.recboleFields;
  let col = { user: -1, item: -1, rating: -1, timestamp: -1 };
  let needed = 0;
  return {
    format: 'recbole', hasHeader: true,
    hasRatings: () => col.rating >= 0,
    hasTimestamps: () => col.timestamp >= 0,
    header(line) {
      const names = line.split('\t').map((h) => h.trim().split(':')[0]);
      const find = (name: string) => names.indexOf(name);
      col = { user: find(f.user), item: find(f.item), rating: find(f.rating), timestamp: find(f.timestamp) };
      if (col.user < 0 || col.item < 0) {
        return `a tab-separated header with columns "${f.user}:token" and "${f.item}:token", found columns [${names.join(', ')}]`;
      }
      needed = Math.max(col.user, col.item, col.rating, col.timestamp) + 1;
      return null;
    },
    parse(line, emit) {
      const v = line.split('\t');
      if (v.length < needed) return `at least ${needed} tab-separated fields (per the header), found ${v.length}`;
      const user = parseId(v[col.user].trim(), o.ids);
      if (user == null) return `${f.user} field: ${idPhrase(o.ids)}`;
      const item = parseId(v[col.item].trim(), o.ids);
      if (item == null) return `${f.item} field: ${idPhrase(o.ids)}`;
      const rating = col.rating >= 0 ? parseDecimal(v[col.rating].trim()) : NaN;
      if (rating == null) return `${f.rating} field: a decimal number`;
      const timestamp = col.timestamp >= 0 ? parseDecimal(v[col.timestamp].trim()) : NaN;
      if (timestamp == null) return `${f.timestamp} field: a decimal number`;
      emit(user, item, rating, timestamp);
      return null;
    },
  };
}

export function makeParser(format: InteractionFormat, o: ParserOptions): LineParser {
  switch (format) {
    case 'pairs': return pairsParser(o);
    case 'lines': return linesParser(o);
    case 'movielens': return movielensParser(o);
    case 'recbole': return recboleParser(o);
  }
}

/** RecBole header cells look like `user_id:token`, `rating:float`, `tags:token_seq`. */
const RECBOLE_CELL = /^[^\s:]+:(token|float|token_seq|float_seq)$/;

/**
 * Guesses the format from the file name and its first data lines; returns a reason instead when
 * it cannot tell. Pairs vs lines: a pairs file has exactly two fields on every line, a lines file
 * has varying counts (a lines file whose sampled users all have exactly one item reads as pairs,
 * which is why the sample is many lines long).
 */
export function guessFormat(fileName: string, sample: readonly string[]): InteractionFormat | string {
  const base = fileName.replace(/^.*[\\/]/, '').toLowerCase();
  if (base.endsWith('.inter')) return 'recbole';
  if (sample.length === 0) return 'the file has no data lines';
  const first = sample[0];
  const cells = first.split('\t').map((c) => c.trim());
  if (cells.length >= 2 && cells.every((c) => RECBOLE_CELL.test(c))) return 'recbole';
  if (first.includes('::') || base === 'ratings.dat') return 'movielens';
  const counts = sample.map((line) => tokens(line).length);
  const allNumeric4 = sample.every((line) => line.includes('\t') && tokens(line).length === 4
    && tokens(line).every((t) => parseDecimal(t) != null));
  if (base === 'u.data' || allNumeric4) return 'movielens';
  if (counts.every((n) => n === 2)) return 'pairs';
  if (counts.every((n) => n >= 2) && counts.some((n) => n > 2)) return 'lines';
  return `its first line ${JSON.stringify(first.slice(0, 80))} matches no format (pairs "user item", lines "user item1 item2 ...", movielens "user::item::rating::timestamp", recbole header "user_id:token\\titem_id:token...")`;
}
