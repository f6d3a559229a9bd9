/**
 * Why a data file cannot be read: names the file, the 1-based line and its content when a line is
 * to blame, so a user can open the file at that line. Callers catch it by class.
 */
export class DataFormatError extends Error {
  constructor(message: string, readonly file: string, readonly line?: number, readonly content?: string) {
    super(message);
    this.name = 'DataFormatError';
  }
}

/** Longest line excerpt put into messages: a 1 MB garbage line must not flood the terminal. */
const EXCERPT_CHARS = 120;

/** A line for a message: truncated, and quoted with escapes so tabs, \r and odd spaces are visible. */
export function excerpt(line: string): string {
  const cut = line.length > EXCERPT_CHARS ? `${line.slice(0, EXCERPT_CHARS)}…` : line;
  return JSON.stringify(cut);
}
