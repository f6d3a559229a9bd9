// `collectivekv report REPORT_JSON [--out DIR] [--charts-only]`: draws report.md and charts/*.svg again
// from a report.json written by `bench all` (after a change to the charts or the markdown, no re-run
// needed). --charts-only leaves report.md as it is: an old report's text stays as it was written.
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { ChartPackageMissingError, REPORT_FORMAT, ReportData, buildCharts, writeCharts, writeReport } from './report';

export const REPORT_USAGE = `Usage: collectivekv report REPORT_JSON [--out DIR] [--charts-only]

Writes report.md and charts/*.svg again from a report.json written by 'collectivekv bench all'.
The charts need the npm packages vega and vega-lite (npm install --save-dev vega vega-lite).

  --out DIR       output folder (default: the folder of REPORT_JSON; report.json is written there too)
  --charts-only   draw charts/*.svg only; report.json and report.md stay as they are`;

export interface ReportArgs {
  json: string;
  out: string;
  chartsOnly: boolean;
}

/** Parses the command line; null for --help. Throws an Error naming the bad argument. */
export function parseReportArgs(argv: string[]): ReportArgs | null {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { out: { type: 'string' }, 'charts-only': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) return null;
  if (positionals.length !== 1) {
    throw new Error(`expected one REPORT_JSON argument, received ${positionals.length === 0 ? 'none' : positionals.map((p) => `'${p}'`).join(' ')}`);
  }
  return { json: positionals[0], out: values.out ?? dirname(positionals[0]), chartsOnly: values['charts-only'] ?? false };
}

/** Reads and checks a report.json; throws an Error naming the file and what is wrong with it. */
export function readReportJson(path: string): ReportData {
  if (!existsSync(path)) throw new Error(`REPORT_JSON '${path}' does not exist`);
  let data: ReportData;
  try {
    data = JSON.parse(readFileSync(path, 'utf8')) as ReportData;
  } catch (e) {
    throw new Error(`REPORT_JSON '${path}' is not JSON (${(e as Error).message})`);
  }
  if (data?.meta?.format !== REPORT_FORMAT || data.results == null) {
    throw new Error(`REPORT_JSON '${path}' must be a bench-all report (meta.format '${REPORT_FORMAT}'), received meta.format '${data?.meta?.format}'`);
  }
  return data;
}

/** The `report` command; returns the exit code (2: bad command line or file, 1: the charts could not be drawn). */
export async function runReportCommand(argv: string[], log: (line: string) => void = console.log): Promise<number> {
  let args: ReportArgs | null;
  let data: ReportData;
  try {
    args = parseReportArgs(argv);
    if (args == null) {
      log(REPORT_USAGE);
      return 0;
    }
    data = readReportJson(args.json);
  } catch (e) {
    console.error(`collectivekv report: ${(e as Error).message}\n\n${REPORT_USAGE}`);
    return 2;
  }
  try {
    const files = args.chartsOnly ? await writeCharts(args.out, buildCharts(data.results))
      : await writeReport(args.out, data).then((w) => [w.json, w.markdown, ...w.charts]);
    log(files.map((f) => `wrote ${f}`).join('\n'));
    return 0;
  } catch (e) {
    if (!(e instanceof ChartPackageMissingError)) throw e;
    console.error(`collectivekv report: ${e.message}`);
    return 1;
  }
}
