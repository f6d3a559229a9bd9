// Skipped tests say why, and the reason reaches the end of `npm test`: jest drops the console output
// of a file whose tests all skip, so each skip is also appended to this run's skip log (a file under
// os.tmpdir() named by COLLECTIVEKV_SKIP_LOG), which test/util/skipSummaryReporter.js prints.
import { appendFileSync } from 'node:fs';

/** Set by the summary reporter for the run; absent when jest runs without it (then only the warning shows). */
export const SKIP_LOG_ENV = 'COLLECTIVEKV_SKIP_LOG';

/** Warns now and records `what` was skipped and `reason` for the end-of-run summary. */
export function recordSkip(what: string, reason: string): void {
  console.warn(`SKIPPED ${what}: ${reason}`);
  const log = process.env[SKIP_LOG_ENV];
  if (log) appendFileSync(log, `${JSON.stringify({ testPath: expect.getState().testPath ?? null, what, reason })}\n`);
}

/** describe() when `skipReason` is null; otherwise describe.skip() with the reason recorded. */
export function describeUnless(skipReason: string | null, title: string, body: () => void): void {
  if (skipReason == null) {
    describe(title, body);
    return;
  }
  recordSkip(`"${title}"`, skipReason);
  describe.skip(title, body);
}
