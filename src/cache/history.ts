// The history of record behind the cache. The cache is a derived copy: an entry can be evicted,
// lost with a store restart or rejected as corrupt, and is then rebuilt from the history. So that
// no acknowledged event is ever lost, the engine writes events to a HistoryLog before it touches
// the cache, and every cache entry records how many of the user's history events it reflects
// (docs/cache.md, "No acknowledged event is lost").

/** Users' full histories, oldest first (undefined: the user is unknown). */
export type HistorySource = (userIds: readonly string[]) => Promise<Array<readonly number[] | undefined>>;

/** A durable history of record that the engine both reads and writes. */
export interface HistoryLog {
  /** The full histories of `userIds`, oldest first (undefined or [] for a user with no events). */
  read: HistorySource;
  /**
   * Records `events` after the user's history, durably, before resolving; resolves with the
   * history's length after them (so the events are its last `events.length` items). Concurrent
   * calls for one user must be serialized by the log (each sees the length its own events ended at).
   */
  append(userId: string, events: readonly number[]): Promise<number>;
}

/** True when `x` is a HistoryLog (an object with read and append) rather than a plain HistorySource. */
export function isHistoryLog(x: HistorySource | HistoryLog | undefined): x is HistoryLog {
  return typeof x === 'object' && x !== null && typeof x.read === 'function' && typeof x.append === 'function';
}

/**
 * An in-process HistoryLog: for tests, demos and single-process services whose real history of
 * record lives elsewhere. Not durable: it is lost with the process.
 */
export class MemoryHistoryLog implements HistoryLog {
  private readonly histories = new Map<string, number[]>();

  constructor(initial: Readonly<Record<string, readonly number[]>> = {}) {
    for (const [user, items] of Object.entries(initial)) this.histories.set(user, [...items]);
  }

  read = async (userIds: readonly string[]): Promise<Array<readonly number[] | undefined>> =>
    userIds.map((u) => {
      const h = this.histories.get(u);
      return h === undefined ? undefined : h.slice();
    });

  async append(userId: string, events: readonly number[]): Promise<number> {
    const h = this.histories.get(userId) ?? [];
    h.push(...events);
    this.histories.set(userId, h);
    return h.length;
  }

  /** A copy of one user's history (undefined when unknown). */
  historyOf(userId: string): number[] | undefined {
    return this.histories.get(userId)?.slice();
  }

  /** The users with at least one event. */
  users(): string[] {
    return [...this.histories.keys()];
  }
}
