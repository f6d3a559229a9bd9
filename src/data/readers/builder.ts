import { DataFormatError, excerpt } from './errors';
import { IdKind, IdMap, naturalOrder } from './ids';
import { InteractionFormat, LineParser } from './formats';

/** A line that lenient reading skipped. */
export interface SkippedLine {
  /** 1-based line number in the file (blank lines and the header count). */
  line: number;
  /** The line, truncated to 120 characters. */
  content: string;
  /** What the line should have looked like. */
  reason: string;
}

/** What happened while reading: enough to report and to check a file against its published statistics. */
export interface ReadStats {
  file: string;
  format: InteractionFormat;
  /** Lines read, including blank lines and the header. */
  lines: number;
  blankLines: number;
  /** Events read from valid lines, before filtering. */
  rawInteractions: number;
  /** Events kept (the sum of the sequence lengths). */
  interactions: number;
  /** Malformed lines skipped (lenient mode only; strict mode throws on the first). */
  skipped: number;
  /** The first few skipped lines (at most `maxSkippedExamples`). */
  skippedExamples: SkippedLine[];
  /** Users and items removed by the minimum-interaction filter. */
  removedUsers: number;
  removedItems: number;
  /** Filter rounds run (0 without a filter; more than 1 only with `iterativeFilter`). */
  filterRounds: number;
  /** True when events were reordered by timestamp within users. */
  sortedByTime: boolean;
}

export interface BuildOptions {
  file: string;
  ids: IdKind;
  lenient: boolean;
  maxSkippedExamples: number;
  minUserInteractions: number;
  minItemInteractions: number;
  iterativeFilter: boolean;
  idOrder: 'natural' | 'first-seen';
  sortByTime: boolean;
}

/** The reader's result before the public wrapper: sequences, per-event extras, id maps, stats. */
export interface BuiltLog {
  sequences: number[][];
  numItems: number;
  timestamps?: number[][];
  ratings?: number[][];
  users: IdMap;
  items: IdMap;
  stats: ReadStats;
}

const BOM = '\uFEFF';
const REPLACEMENT = '\uFFFD';

/**
 * Accumulates events line by line (ids interned in first-seen order, columns in flat arrays so
 * ten million events stay cheap), then groups, sorts, filters and renumbers them in `finish`.
 */
export class LogBuilder {
  private readonly userIndex = new Map<string, number>();
  private readonly itemIndex = new Map<string, number>();
  private readonly userKeys: string[] = [];
  private readonly itemKeys: string[] = [];
  // Typed columns: half the memory of number[] and nothing for the garbage collector to scan.
  private readonly eventUser = new GrowableColumn(Int32Array);
  private readonly eventItem = new GrowableColumn(Int32Array);
  private readonly eventRating = new GrowableColumn(Float64Array);
  private readonly eventTime = new GrowableColumn(Float64Array);
  private lineNo = 0;
  private blank = 0;
  private headerSeen = false;
  private skipped = 0;
  private readonly examples: SkippedLine[] = [];
  private readonly emit = (user: string, item: string, rating: number, timestamp: number): void => {
    this.eventUser.push(intern(this.userIndex, this.userKeys, user));
    this.eventItem.push(intern(this.itemIndex, this.itemKeys, item));
    // Formats without ratings or timestamps store neither (10M events: 160 MB saved).
    if (this.parser.hasRatings()) this.eventRating.push(rating);
    if (this.parser.hasTimestamps()) this.eventTime.push(timestamp);
  };

  constructor(private readonly parser: LineParser, private readonly o: BuildOptions) {}

  /** One raw line, without its line terminator (a trailing \r from CRLF is tolerated). */
  line(raw: string): void {
    this.lineNo++;
    let line = raw;
    if (this.lineNo === 1 && line.startsWith(BOM)) line = line.slice(1);
    // Only the end is trimmed here: a leading tab is an empty first column in a RecBole file, and
    // dropping it would shift every column (the whitespace formats trim their own lines).
    line = line.trimEnd();
    if (line.length === 0 || line.trimStart().length === 0) {
      this.blank++;
      return;
    }
    // Invalid UTF-8 decodes to U+FFFD: two different broken ids would collapse into one.
    if (line.includes(REPLACEMENT)) return this.malformed(raw, 'valid UTF-8 text (found an undecodable byte)');
    if (this.parser.hasHeader && !this.headerSeen) {
      this.headerSeen = true;
      const reason = this.parser.header(line);
      // Without columns no line can be read, so a bad header is fatal even when lenient.
      if (reason != null) throw this.error(raw, reason);
      return;
    }
    const reason = this.parser.parse(line, this.emit);
    if (reason != null) this.malformed(raw, reason);
  }

  private malformed(raw: string, reason: string): void {
    if (!this.o.lenient) throw this.error(raw, reason);
    this.skipped++;
    if (this.examples.length < this.o.maxSkippedExamples) {
      this.examples.push({ line: this.lineNo, content: raw.length > 120 ? `${raw.slice(0, 120)}…` : raw, reason });
    }
  }

  private error(raw: string, reason: string): DataFormatError {
    return new DataFormatError(
      `${this.o.file}:${this.lineNo}: malformed ${this.parser.format} line ${excerpt(raw)}: expected ${reason}`
        + (this.o.lenient ? '' : ' (pass lenient: true to skip and count malformed lines)'),
      this.o.file, this.lineNo, raw);
  }

  finish(): BuiltLog {
    if (this.parser.hasHeader && !this.headerSeen) {
      throw new DataFormatError(`${this.o.file}: empty ${this.parser.format} file: expected a header line`, this.o.file);
    }
    const timed = this.parser.hasTimestamps() && this.o.sortByTime;
    const byUser = groupByUser(this.eventUser.view(), this.userKeys.length);
    if (timed) sortWithinUsers(byUser, this.eventTime.view());
    const filter = filterCounts(byUser, this.eventItem.view(), this.itemKeys.length, this.o);
    const users = renumber(this.userKeys, filter.userAlive, this.o.idOrder);
    const items = renumber(this.itemKeys, filter.itemAlive, this.o.idOrder);
    const built = this.assemble(byUser, filter.eventAlive, users.order, items.dense,
      this.parser.hasTimestamps(), this.parser.hasRatings());
    const stats: ReadStats = {
      file: this.o.file, format: this.parser.format, lines: this.lineNo, blankLines: this.blank,
      rawInteractions: this.eventUser.length, interactions: built.count, skipped: this.skipped,
      skippedExamples: this.examples, removedUsers: this.userKeys.length - users.order.length,
      removedItems: this.itemKeys.length - items.originals.length, filterRounds: filter.rounds, sortedByTime: timed,
    };
    return {
      sequences: built.sequences, numItems: items.originals.length,
      ...(this.parser.hasTimestamps() ? { timestamps: built.timestamps } : {}),
      ...(this.parser.hasRatings() ? { ratings: built.ratings } : {}),
      users: new IdMap(users.order.map((u) => this.userKeys[u]), 0, this.o.ids),
      items: new IdMap(items.originals, 1, this.o.ids),
      stats,
    };
  }

  /** Per surviving user in new order: dense item ids, timestamps and ratings of the kept events. */
  private assemble(byUser: Grouped, eventAlive: Uint8Array, userOrder: number[], itemDense: Int32Array,
    withTime: boolean, withRating: boolean) {
    const eventItem = this.eventItem.view();
    const eventTime = this.eventTime.view();
    const eventRating = this.eventRating.view();
    const sequences: number[][] = [];
    const timestamps: number[][] = [];
    const ratings: number[][] = [];
    let count = 0;
    for (const u of userOrder) {
      const seq: number[] = [];
      const ts: number[] = [];
      const rs: number[] = [];
      for (let k = byUser.start[u]; k < byUser.start[u + 1]; k++) {
        const e = byUser.events[k];
        if (!eventAlive[e]) continue;
        seq.push(itemDense[eventItem[e]]);
        if (withTime) ts.push(eventTime[e]);
        if (withRating) rs.push(eventRating[e]);
      }
      sequences.push(seq);
      if (withTime) timestamps.push(ts);
      if (withRating) ratings.push(rs);
      count += seq.length;
    }
    return { sequences, timestamps, ratings, count };
  }
}

type Column = Int32Array | Float64Array;

/** An append-only typed array that doubles its capacity when full. */
class GrowableColumn<T extends Column> {
  private data: T;
  length = 0;

  constructor(private readonly make: new (n: number) => T) {
    this.data = new make(1024);
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new this.make(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  /** The filled part (a view, not a copy). */
  view(): T {
    return this.data.subarray(0, this.length) as T;
  }
}

function intern(index: Map<string, number>, keys: string[], key: string): number {
  let id = index.get(key);
  if (id === undefined) {
    id = keys.length;
    index.set(key, id);
    keys.push(key);
  }
  return id;
}

/** Event indices grouped by user (CSR layout); within a user, file order. */
interface Grouped {
  start: Int32Array;
  events: Int32Array;
}

/** Counting sort by user: stable, so each user's events stay in file order. */
function groupByUser(eventUser: Int32Array, numUsers: number): Grouped {
  const start = new Int32Array(numUsers + 1);
  for (const u of eventUser) start[u + 1]++;
  for (let u = 0; u < numUsers; u++) start[u + 1] += start[u];
  const fill = start.slice(0, numUsers);
  const events = new Int32Array(eventUser.length);
  eventUser.forEach((u, e) => { events[fill[u]++] = e; });
  return { start, events };
}

/** Orders each user's events by timestamp; ties keep file order (the event index breaks them). */
function sortWithinUsers(g: Grouped, time: Float64Array): void {
  for (let u = 0; u + 1 < g.start.length; u++) {
    const slice = g.events.subarray(g.start[u], g.start[u + 1]);
    let sorted = true;
    for (let k = 1; k < slice.length && sorted; k++) sorted = time[slice[k - 1]] <= time[slice[k]];
    if (!sorted) slice.sort((a, b) => time[a] - time[b] || a - b);
  }
}

/**
 * Minimum-interaction filter. One round drops every event whose user or item has fewer events
 * than its minimum, both counted on the round's input; `iterativeFilter` repeats rounds until
 * nothing changes (the k-core, where every survivor meets both minimums).
 */
function filterCounts(g: Grouped, eventItem: Int32Array, numItems: number, o: BuildOptions) {
  const numUsers = g.start.length - 1;
  const eventAlive = new Uint8Array(eventItem.length).fill(1);
  const userAlive = new Uint8Array(numUsers).fill(1);
  const itemAlive = new Uint8Array(numItems).fill(1);
  const active = o.minUserInteractions > 1 || o.minItemInteractions > 1;
  let rounds = 0;
  for (let changed = active; changed; rounds++) {
    changed = false;
    const userCount = new Int32Array(numUsers);
    const itemCount = new Int32Array(numItems);
    for (let u = 0; u < numUsers; u++) {
      for (let k = g.start[u]; k < g.start[u + 1]; k++) {
        const e = g.events[k];
        if (eventAlive[e]) { userCount[u]++; itemCount[eventItem[e]]++; }
      }
    }
    for (let u = 0; u < numUsers; u++) {
      for (let k = g.start[u]; k < g.start[u + 1]; k++) {
        const e = g.events[k];
        if (eventAlive[e] && (userCount[u] < o.minUserInteractions || itemCount[eventItem[e]] < o.minItemInteractions)) {
          eventAlive[e] = 0;
          changed = true;
        }
      }
    }
    if (!o.iterativeFilter) changed = false;
  }
  // Recount: a user or item lives when it keeps at least one event.
  userAlive.fill(0);
  itemAlive.fill(0);
  for (let u = 0; u < numUsers; u++) {
    for (let k = g.start[u]; k < g.start[u + 1]; k++) {
      const e = g.events[k];
      if (eventAlive[e]) { userAlive[u] = 1; itemAlive[eventItem[e]] = 1; }
    }
  }
  return { eventAlive, userAlive, itemAlive, rounds };
}

/** Surviving first-seen indices in the requested order, and first-seen index -> dense id (base 1). */
function renumber(keys: readonly string[], alive: Uint8Array, idOrder: 'natural' | 'first-seen') {
  const order: number[] = [];
  alive.forEach((a, k) => { if (a) order.push(k); });
  if (idOrder === 'natural') {
    const cmp = naturalOrder(order.map((k) => keys[k]));
    order.sort((a, b) => cmp(keys[a], keys[b]));
  }
  const dense = new Int32Array(keys.length);
  order.forEach((k, rank) => { dense[k] = rank + 1; });
  return { order, dense, originals: order.map((k) => keys[k]) };
}
