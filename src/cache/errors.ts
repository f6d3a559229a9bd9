// Typed errors of the cache codec and stores. Callers (the engine) catch them by class to decide
// between "recompute and repair" and "give up": every rejected entry is one of these, never a
// RangeError from a DataView or a silently wrong cache.

/** Base class: any reason a stored cache cannot be used. */
export class CacheError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The bytes are not a well-formed cache: bad magic, bad CRC, truncated, inconsistent fields. */
export class CacheCorruptError extends CacheError {}

/** The bytes are a cache in a format version this library does not read. */
export class CacheVersionError extends CacheError {
  constructor(readonly found: number, readonly supported: readonly number[]) {
    super(`cache format version ${found} is not supported (this library reads ${supported.join(', ')})`);
  }
}

/** The cache is intact but was written by another model (config or pool weights differ). */
export class CacheModelMismatchError extends CacheError {
  constructor(readonly expected: string, readonly found: string) {
    super(`cache was written by model ${found}, expected model ${expected}`);
  }
}

/** The store could not be reached or failed the command (outage, timeout). */
export class CacheStoreError extends CacheError {
  constructor(message: string, readonly cause?: unknown) {
    super(message);
  }
}

/**
 * A write kept losing the compare-and-swap against concurrent writers of the same key; gave up
 * after `attempts`. Nothing was written by this call: retrying it is safe.
 */
export class CacheConflictError extends CacheError {
  readonly retryable = true;
  constructor(readonly key: string, readonly attempts: number) {
    super(`write to '${key}' lost the race against concurrent writers ${attempts} times in a row; retry the call`);
  }
}

/**
 * The user has no usable cache entry (missing, corrupt or written by another model) and the engine
 * has no history to rebuild it from: the call fails rather than create a truncated cache.
 */
export class HistoryRequiredError extends CacheError {
  constructor(readonly userId: string, readonly reason: string) {
    super(`user ${JSON.stringify(userId.slice(0, 64))} has no usable cache entry (${reason}) and there is no history to rebuild it from: `
      + "give the engine a history log (options.histories), or pass the user's prior events as options.history ([] for a new user)");
  }
}
