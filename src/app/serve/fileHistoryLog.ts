// A durable HistoryLog in one append-only file of JSON lines, for a single serving process:
//
//   {"u":"alice","e":[12,7]}
//   {"u":"bob","e":[3]}
//   {"u":"alice","e":[9]}
//
// one line per append. open() reads the whole file into memory (reads are served from there);
// append() writes its line at the end of the file and fdatasyncs it before resolving, so an
// acknowledged event survives a crash. Appends go through one promise chain: they reach the file,
// and resolve, in call order, each with the user's history length after its own events.
//
// A crash mid-append can leave a torn last line (no final newline, or bytes that are not a
// record): open() truncates it (that append was never acknowledged) and reports it through
// options.onRecover and `recovered`. A bad line anywhere else is corruption and open() refuses the
// file, naming the line. A failed write is rolled back (the file truncated to its last good size);
// if even that fails the log refuses further appends. Only one process may write a log.

import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import type { HistoryLog } from '../../internal';

export interface FileHistoryLogOptions {
  /** Called once with a description when open() truncated a torn last line. */
  onRecover?: (message: string) => void;
}

export interface Recovery {
  /** Where the torn tail started (the file's size after truncation). */
  offset: number;
  /** Bytes dropped. */
  droppedBytes: number;
  message: string;
}

/** Longest user id the log accepts (the server's ids are at most 128 characters). */
const MAX_USER_ID = 1024;

export class FileHistoryLog implements HistoryLog {
  private readonly histories = new Map<string, number[]>();
  /** The file's size: where the next line goes. */
  private size: number;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private broken?: Error;

  private constructor(readonly path: string, private readonly handle: fs.FileHandle, size: number, readonly recovered?: Recovery) {
    this.size = size;
  }

  /**
   * Opens (or creates) the log at `path` and loads it. Truncates a torn last line (see
   * `recovered`); refuses a file with a bad line elsewhere.
   */
  static async open(path: string, options: FileHistoryLogOptions = {}): Promise<FileHistoryLog> {
    if (typeof path !== 'string' || path === '') {
      throw new TypeError(`FileHistoryLog.open: argument 'path' must be a non-empty file path, received ${describe(path)}`);
    }
    let handle: fs.FileHandle;
    let created = false;
    try {
      handle = await fs.open(path, 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`FileHistoryLog.open: cannot open ${path}: ${(e as Error).message}`);
      try {
        handle = await fs.open(path, 'wx+');
      } catch (e2) {
        throw new Error(`FileHistoryLog.open: cannot create ${path}: ${(e2 as Error).message}`);
      }
      created = true;
    }
    try {
      if (created) await syncDirectory(path);
      const bytes = await handle.readFile();
      const { histories, goodBytes } = parse(bytes, path);
      let recovered: Recovery | undefined;
      if (goodBytes < bytes.length) {
        const dropped = bytes.length - goodBytes;
        await handle.truncate(goodBytes);
        await handle.datasync();
        recovered = {
          offset: goodBytes, droppedBytes: dropped,
          message: `${path}: truncated a torn last line (${dropped} bytes at offset ${goodBytes}, an append interrupted by a crash; it was never acknowledged)`,
        };
        options.onRecover?.(recovered.message);
      }
      const log = new FileHistoryLog(path, handle, goodBytes, recovered);
      for (const [u, h] of histories) log.histories.set(u, h);
      return log;
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw e;
    }
  }

  read = async (userIds: readonly string[]): Promise<Array<readonly number[] | undefined>> => {
    if (!Array.isArray(userIds)) throw new TypeError(`FileHistoryLog.read: argument 'userIds' must be an array of user ids, received ${describe(userIds)}`);
    return userIds.map((u) => this.histories.get(u)?.slice());
  };

  /**
   * Appends `events` to the user's history, durably (written and fdatasynced) before resolving
   * with the history's length after them. An empty `events` writes nothing and resolves with the
   * current length.
   */
  append(userId: string, events: readonly number[]): Promise<number> {
    try {
      checkUserId('FileHistoryLog.append', userId);
      checkEvents('FileHistoryLog.append', events);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.closed) return Promise.reject(new Error(`FileHistoryLog.append: the log ${this.path} is closed`));
    const items = [...events];
    const run = this.chain.then(() => this.write(userId, items));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Waits for the appends in flight, then closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return this.chain.then(() => undefined);
    this.closed = true;
    await this.chain;
    await this.handle.close();
  }

  /** Users with at least one event. */
  users(): string[] {
    return [...this.histories.keys()];
  }

  private async write(userId: string, events: number[]): Promise<number> {
    if (this.broken) throw new Error(`FileHistoryLog.append: the log ${this.path} failed earlier and refuses appends: ${this.broken.message}`);
    const history = this.histories.get(userId);
    if (events.length === 0) return history?.length ?? 0;
    const line = Buffer.from(`${JSON.stringify({ u: userId, e: events })}\n`, 'utf8');
    try {
      let written = 0;
      while (written < line.length) {
        const { bytesWritten } = await this.handle.write(line, written, line.length - written, this.size + written);
        written += bytesWritten;
      }
      await this.handle.datasync();
    } catch (e) {
      // Roll back to the last good size so a half-written line cannot be followed by good ones.
      try {
        await this.handle.truncate(this.size);
        await this.handle.datasync();
      } catch (e2) {
        this.broken = e2 as Error;
      }
      throw new Error(`FileHistoryLog.append: cannot write ${this.path}: ${(e as Error).message}`);
    }
    this.size += line.length;
    const h = history ?? [];
    h.push(...events);
    this.histories.set(userId, h);
    return h.length;
  }
}

/** Loads the lines; `goodBytes` is where the valid records end (a torn last line follows, if any). */
function parse(bytes: Buffer, path: string): { histories: Map<string, number[]>; goodBytes: number } {
  const histories = new Map<string, number[]>();
  let start = 0;
  let line = 0;
  while (start < bytes.length) {
    line++;
    const end = bytes.indexOf(0x0a, start);
    const last = end < 0 || end === bytes.length - 1;
    // No newline: an append torn by a crash (the newline is the last byte written).
    if (end < 0) return { histories, goodBytes: start };
    const record = toRecord(bytes.subarray(start, end).toString('utf8'));
    if (typeof record === 'string') {
      if (last) return { histories, goodBytes: start };
      throw new Error(`FileHistoryLog.open: ${path} line ${line} ${record}; the log is corrupt (only a torn last line is repaired)`);
    }
    const h = histories.get(record.u);
    if (h === undefined) histories.set(record.u, record.e);
    else h.push(...record.e);
    start = end + 1;
  }
  return { histories, goodBytes: start };
}

/** The record on a line, or why it is not one. */
function toRecord(text: string): { u: string; e: number[] } | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'is not JSON';
  }
  const r = value as { u?: unknown; e?: unknown };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'is not a {"u", "e"} record';
  if (typeof r.u !== 'string' || r.u === '' || r.u.length > MAX_USER_ID) return "has no user id 'u'";
  if (!Array.isArray(r.e) || !r.e.every(isItem)) return "has no item id list 'e'";
  return { u: r.u, e: r.e as number[] };
}

function isItem(x: unknown): boolean {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 1;
}

function checkUserId(fn: string, userId: unknown): void {
  if (typeof userId !== 'string' || userId.length < 1 || userId.length > MAX_USER_ID) {
    throw new TypeError(`${fn}: argument 'userId' must be a string of 1..${MAX_USER_ID} characters, received ${typeof userId === 'string' ? `${userId.length} characters` : describe(userId)}`);
  }
}

function checkEvents(fn: string, events: unknown): void {
  if (!Array.isArray(events)) throw new TypeError(`${fn}: argument 'events' must be an array of item ids, received ${describe(events)}`);
  events.forEach((x: unknown, i: number) => {
    if (!isItem(x)) throw new RangeError(`${fn}: events[${i}] must be a positive integer item id, received ${typeof x === 'number' ? String(x) : describe(x)}`);
  });
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  if (typeof x === 'string') return x === '' ? 'an empty string' : 'a string';
  return typeof x;
}

/** Makes a new file's directory entry durable. Best effort: some platforms cannot open directories. */
async function syncDirectory(path: string): Promise<void> {
  let dir: fs.FileHandle | undefined;
  try {
    dir = await fs.open(dirname(path), 'r');
    await dir.sync();
  } catch {
    // not supported here (e.g. Windows): the file itself is still synced on every append
  } finally {
    await dir?.close().catch(() => undefined);
  }
}
