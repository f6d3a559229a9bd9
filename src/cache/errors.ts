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

/** Appends kept colliding with concurrent appends to the same key; gave up after `attempts`. */
export class CacheAppendConflictError extends CacheError {
  constructor(readonly key: string, readonly attempts: number) {
    super(`append to '${key}' lost the race ${attempts} times in a row`);
  }
}
