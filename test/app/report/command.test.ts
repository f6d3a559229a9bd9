// `collectivekv report`: arguments and report.json checks (drawing is render.test.ts's, in a child process).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseReportArgs, readReportJson, runReportCommand } from '../../../src/app/report/command';
import { canned } from './fixtures';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ckv-report-cmd-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('arguments: one REPORT_JSON, --out defaults to its folder, --charts-only; anything else is named', () => {
  expect(parseReportArgs(['r/report.json'])).toEqual({ json: 'r/report.json', out: 'r', chartsOnly: false });
  expect(parseReportArgs(['r/report.json', '--out', 'o', '--charts-only'])).toEqual({ json: 'r/report.json', out: 'o', chartsOnly: true });
  expect(parseReportArgs(['--help'])).toBeNull();
  expect(() => parseReportArgs([])).toThrow("expected one REPORT_JSON argument, received none");
  expect(() => parseReportArgs(['a', 'b'])).toThrow("expected one REPORT_JSON argument, received 'a' 'b'");
  expect(() => parseReportArgs(['a', '--width', '3'])).toThrow(/--width/);
});

test('report.json: missing, not JSON, or not a bench-all report is an error naming the file', () => {
  const path = join(dir, 'report.json');
  expect(() => readReportJson(path)).toThrow(`REPORT_JSON '${path}' does not exist`);
  writeFileSync(path, '{');
  expect(() => readReportJson(path)).toThrow(`REPORT_JSON '${path}' is not JSON`);
  writeFileSync(path, JSON.stringify({ bytesPerToken: {} }));
  expect(() => readReportJson(path)).toThrow(`must be a bench-all report (meta.format 'collectivekv-report/1'), received meta.format 'undefined'`);
  writeFileSync(path, JSON.stringify(canned()));
  expect(readReportJson(path)).toEqual(canned());
});

test('bad command lines exit 2 with the usage; --help exits 0', async () => {
  const err = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  const lines: string[] = [];
  try {
    expect(await runReportCommand([join(dir, 'none.json')], (l) => lines.push(l))).toBe(2);
    expect(err.mock.calls[0][0]).toMatch(/^collectivekv report: REPORT_JSON '.*none.json' does not exist\n\nUsage: collectivekv report/);
  } finally {
    err.mockRestore();
  }
  expect(await runReportCommand(['--help'], (l) => lines.push(l))).toBe(0);
  expect(lines[0]).toMatch(/^Usage: collectivekv report REPORT_JSON/);
});
