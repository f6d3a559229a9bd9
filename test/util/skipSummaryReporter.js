// A jest reporter that ends the run with what was skipped and why. Jest prints "N skipped" but drops
// the console output of files whose tests all skip, so the skip helpers (test/util/skip.ts) and the
// webgpu environment append their reasons to a per-run log under os.tmpdir(), named here by
// COLLECTIVEKV_SKIP_LOG before any test file runs (workers inherit the environment).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const SKIP_LOG_ENV = 'COLLECTIVEKV_SKIP_LOG';

/** Lines of the summary from jest's aggregated results and the recorded entries (exported for its test). */
function summarize(results, entries, rootDir) {
  const rel = (p) => (p ? path.relative(rootDir, p).split(path.sep).join('/') : '(unknown file)');
  // Per file, per reason: what it skipped (several suites of one file often share one reason).
  const grouped = new Map();
  for (const e of entries.filter((x) => x.reason != null)) {
    const key = rel(e.testPath);
    if (!grouped.has(key)) grouped.set(key, new Map());
    const whats = grouped.get(key).get(e.reason) ?? [];
    if (!whats.includes(e.what)) whats.push(e.what);
    grouped.get(key).set(e.reason, whats);
  }
  const byFile = new Map([...grouped].map(([key, reasons]) => [key, [...reasons].map(([reason, whats]) => `${whats.join(', ')}: ${reason}`)]));
  const lines = [];
  const files = [];
  for (const file of results.testResults) {
    const skipped = file.testResults.filter((t) => t.status === 'pending' || t.status === 'skipped' || t.status === 'disabled').length;
    const key = rel(file.testFilePath);
    const reasons = byFile.get(key) ?? [];
    byFile.delete(key);
    if (skipped === 0 && reasons.length === 0) continue;
    files.push(key);
    const count = skipped === 0 ? 'inside passing tests' : `${skipped} test${skipped === 1 ? '' : 's'}`;
    lines.push(`  ${key} (${count}): ${reasons.length > 0 ? reasons.join('; ') : 'no reason recorded (a .skip in the file)'}`);
  }
  for (const [key, reasons] of byFile) lines.push(`  ${key}: ${reasons.join('; ')}`);
  const out = [];
  if (lines.length > 0) {
    out.push(`Skipped: ${results.numPendingTests} test${results.numPendingTests === 1 ? '' : 's'}${files.length > 0 ? ` in ${files.length} file${files.length === 1 ? '' : 's'}` : ''}, and why:`, ...lines);
    out.push('  (REQUIRE_WEBGPU=1, REQUIRE_BROWSER_WEBGPU=1, REQUIRE_REDIS=1 turn a missing driver or service into a failure, as in CI.)');
  }
  if (entries.some((e) => e.note === 'dawn')) {
    out.push("Note: the 'Warning: ...' lines on stderr come from Dawn, the native code of the npm package webgpu (adapter limits, "
      + 'driver messages); it writes them straight to the process stderr, where jest cannot silence them. They do not affect the results.');
  }
  return out;
}

function readEntries(file) {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
}

class SkipSummaryReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
    this.watching = globalConfig.watch || globalConfig.watchAll;
    this.file = path.join(os.tmpdir(), `collectivekv-jest-skips-${process.pid}-${Date.now()}.jsonl`);
    process.env[SKIP_LOG_ENV] = this.file;
  }

  onRunStart() {
    fs.rmSync(this.file, { force: true });
  }

  onRunComplete(_contexts, results) {
    const lines = summarize(results, readEntries(this.file), this.rootDir);
    fs.rmSync(this.file, { force: true });
    if (lines.length === 0) return;
    const text = `\n${lines.join('\n')}\n`;
    // Jest's own summary ("Tests: ... skipped") is printed after every custom reporter; ours goes
    // after it, at exit, written synchronously (except in watch mode, which does not exit).
    if (this.watching) process.stderr.write(text);
    else process.once('exit', () => fs.writeSync(2, text));
  }
}

module.exports = SkipSummaryReporter;
module.exports.summarize = summarize;
