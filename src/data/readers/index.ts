// Readers for the interaction files users have (SASRec pairs, one line per user, MovieLens,
// RecBole .inter), producing the `Sequences` shape the rest of the library trains on. Node's fs
// and readline are imported lazily, so the browser bundle that re-exports this module never
// loads them; `parseInteractions` works on a string anywhere.
import type { Sequences } from '../synthetic';
import { BuildOptions, LogBuilder, ReadStats } from './builder';
import { DataFormatError } from './errors';
import { guessFormat, INTERACTION_FORMATS, InteractionFormat, makeParser, ParserOptions } from './formats';
import { IdKind, IdMap } from './ids';

export { DataFormatError } from './errors';
export { IdMap } from './ids';
export type { IdKind } from './ids';
export { INTERACTION_FORMATS } from './formats';
export type { InteractionFormat } from './formats';
export type { ReadStats, SkippedLine } from './builder';

export interface ReadOptions {
  /** File format; 'auto' (default) guesses from the file name and first lines, and says so when it cannot. */
  format?: InteractionFormat | 'auto';
  /** How ids are read; default 'integer' for pairs, lines and movielens, 'token' for recbole. */
  ids?: IdKind;
  /**
   * Dense id order. 'natural' (default): numeric when all ids are integers, else by code units,
   * so a file whose ids already run 1..N keeps them. 'first-seen': order of first appearance.
   */
  idOrder?: 'natural' | 'first-seen';
  /** 'lines' only: false when lines hold items only (the user is the line's position). Default true. */
  firstTokenIsUser?: boolean;
  /** Skip and count malformed lines instead of throwing on the first. Default false. */
  lenient?: boolean;
  /** How many skipped lines to keep as examples. Default 5. */
  maxSkippedExamples?: number;
  /** Drop users with fewer events (default 0: off). */
  minUserInteractions?: number;
  /** Drop items with fewer events (default 0: off). */
  minItemInteractions?: number;
  /** Repeat the minimum filter until every survivor meets both minimums (k-core). Default false: one round. */
  iterativeFilter?: boolean;
  /** Reorder each user's events by timestamp (stable) when the format has timestamps. Default true. */
  sortByTime?: boolean;
  /** 'recbole' only: column names, defaults user_id, item_id, rating, timestamp. */
  recboleFields?: { user?: string; item?: string; rating?: string; timestamp?: string };
  /** Name used in messages for `parseInteractions` input (default '<string>'); also drives auto-detection. */
  name?: string;
}

/**
 * A read interaction file: `Sequences` (so it can be used wherever they are) plus per-event
 * timestamps and ratings when the format has them, the id maps, and what happened while reading.
 */
export interface InteractionLog extends Sequences {
  /** timestamps[u][t]: time of sequences[u][t], in the file's unit (MovieLens: Unix seconds). */
  timestamps?: number[][];
  /** ratings[u][t]: rating of sequences[u][t]. */
  ratings?: number[][];
  /** users.toOriginal(u) is the file's id of sequences[u] (dense user ids are 0-based indices). */
  users: IdMap;
  /** items.toOriginal(i) is the file's id of item i (dense item ids are 1-based; 0 is padding). */
  items: IdMap;
  stats: ReadStats;
}

/** Bytes read from the start of a file to guess its format. */
const SNIFF_BYTES = 64 * 1024;
/** Data lines looked at to guess the format. */
const SNIFF_LINES = 50;

/** Reads an interaction file line by line (streamed: files of hundreds of MB are fine). */
export async function readInteractions(path: string, options: ReadOptions = {}): Promise<InteractionLog> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError(`readInteractions: path must be a non-empty string, received ${String(path)}`);
  const fs = await import('node:fs');
  const readline = await import('node:readline');
  await checkFile(fs, path);
  const format = resolveFormat(path, options, () => sniffLines(fs, path));
  const builder = new LogBuilder(makeParser(format, parserOptions(format, options)), buildOptions(path, format, options));
  await streamLines(fs, readline, path, (line) => builder.line(line));
  return builder.finish();
}

/** Parses file content held in memory (browsers, tests, small files). Same rules as `readInteractions`. */
export function parseInteractions(text: string, options: ReadOptions = {}): InteractionLog {
  if (typeof text !== 'string') throw new TypeError(`parseInteractions: text must be a string, received ${typeof text}`);
  const name = options.name ?? '<string>';
  const lines = text.split(/\r\n|\n|\r/);
  // A final line terminator is not an extra (blank) line.
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const format = resolveFormat(name, options, () => dataLines(lines));
  const builder = new LogBuilder(makeParser(format, parserOptions(format, options)), buildOptions(name, format, options));
  for (const line of lines) builder.line(line);
  return builder.finish();
}

/** Only the `Sequences` part of a log (drops timestamps, ratings, maps and stats). */
export function toSequences(log: InteractionLog): Sequences {
  return { sequences: log.sequences, numItems: log.numItems };
}

/** `readInteractions` reduced to `Sequences`: what the split, batching and models take. */
export async function readSequences(path: string, options: ReadOptions = {}): Promise<Sequences> {
  return toSequences(await readInteractions(path, options));
}

/**
 * The format of a file from its name and first lines; throws a DataFormatError that says why when
 * it cannot tell.
 */
export function detectFormat(fileName: string, firstLines: readonly string[]): InteractionFormat {
  const guess = guessFormat(fileName, dataLines(firstLines));
  if (INTERACTION_FORMATS.includes(guess as InteractionFormat)) return guess as InteractionFormat;
  throw new DataFormatError(`${fileName}: cannot tell the file format: ${guess}; pass format: ${INTERACTION_FORMATS.map((f) => `'${f}'`).join(' | ')}`, fileName);
}

function resolveFormat(name: string, options: ReadOptions, sample: () => string[]): InteractionFormat {
  const format = options.format ?? 'auto';
  if (format === 'auto') return detectFormat(name, sample());
  if (!INTERACTION_FORMATS.includes(format)) {
    throw new DataFormatError(`${name}: unknown format '${String(format)}': expected 'auto' or ${INTERACTION_FORMATS.map((f) => `'${f}'`).join(', ')}`, name);
  }
  return format;
}

/** Non-blank lines, BOM and trailing whitespace removed, at most SNIFF_LINES. */
function dataLines(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (let k = 0; k < lines.length && out.length < SNIFF_LINES; k++) {
    const line = (k === 0 ? lines[k].replace(/^\uFEFF/, '') : lines[k]).trimEnd();
    if (line.trim().length > 0) out.push(line);
  }
  return out;
}

type Fs = typeof import('node:fs');

async function checkFile(fs: Fs, path: string): Promise<void> {
  let stat: import('node:fs').Stats;
  try {
    stat = await fs.promises.stat(path);
  } catch (e) {
    throw new DataFormatError(`readInteractions: cannot read ${path}: ${(e as Error).message}`, path);
  }
  if (!stat.isFile()) throw new DataFormatError(`readInteractions: ${path} is not a regular file`, path);
}

/**
 * Calls `onLine` for every line of the file (readline splits on \n, \r\n and \r). Plain 'line'
 * events rather than `for await`, which costs about a third more on a million-line file; the
 * first error (from the stream or from `onLine`) stops reading and rejects.
 */
function streamLines(fs: Fs, readline: typeof import('node:readline'), path: string, onLine: (line: string) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const stream = fs.createReadStream(path, { encoding: 'utf8' });
    const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
    let failed = false;
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      lines.close();
      stream.destroy();
      reject(e);
    };
    lines.on('line', (line) => {
      if (failed) return;
      try {
        onLine(line);
      } catch (e) {
        fail(e);
      }
    });
    stream.on('error', (e) => fail(new DataFormatError(`readInteractions: cannot read ${path}: ${e.message}`, path)));
    lines.on('close', () => { if (!failed) resolve(); });
  });
}

/** The first lines of a file (a partial last line of the chunk is dropped). */
function sniffLines(fs: Fs, path: string): string[] {
  const fd = fs.openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const n = fs.readSync(fd, buffer, 0, SNIFF_BYTES, 0);
    const lines = buffer.subarray(0, n).toString('utf8').split(/\r\n|\n|\r/);
    if (n === SNIFF_BYTES && lines.length > 1) lines.pop();
    return dataLines(lines);
  } finally {
    fs.closeSync(fd);
  }
}

function parserOptions(format: InteractionFormat, o: ReadOptions): ParserOptions {
  return {
    ids: idKind(format, o),
    firstTokenIsUser: o.firstTokenIsUser ?? true,
    recboleFields: {
      user: o.recboleFields?.user ?? 'user_id',
      item: o.recboleFields?.item ?? 'item_id',
      rating: o.recboleFields?.rating ?? 'rating',
      timestamp: o.recboleFields?.timestamp ?? 'timestamp',
    },
  };
}

function idKind(format: InteractionFormat, o: ReadOptions): IdKind {
  const ids = o.ids ?? (format === 'recbole' ? 'token' : 'integer');
  if (ids !== 'integer' && ids !== 'token') throw new TypeError(`readInteractions: ids must be 'integer' or 'token', received '${String(ids)}'`);
  return ids;
}

function buildOptions(file: string, format: InteractionFormat, o: ReadOptions): BuildOptions {
  const count = (key: 'maxSkippedExamples' | 'minUserInteractions' | 'minItemInteractions', fallback: number) => {
    const v = o[key] ?? fallback;
    if (!Number.isInteger(v) || v < 0) throw new TypeError(`readInteractions: ${key} must be a non-negative integer, received ${v}`);
    return v;
  };
  const idOrder = o.idOrder ?? 'natural';
  if (idOrder !== 'natural' && idOrder !== 'first-seen') {
    throw new TypeError(`readInteractions: idOrder must be 'natural' or 'first-seen', received '${String(idOrder)}'`);
  }
  return {
    file, ids: idKind(format, o), lenient: o.lenient ?? false, idOrder,
    maxSkippedExamples: count('maxSkippedExamples', 5),
    minUserInteractions: count('minUserInteractions', 0),
    minItemInteractions: count('minItemInteractions', 0),
    iterativeFilter: o.iterativeFilter ?? false,
    sortByTime: o.sortByTime ?? true,
  };
}
