// Real SVGs from the chart specs, drawn by vega in a child Node process: vega and vega-lite are ESM
// with top-level await, which jest's module system cannot load. Skipped, with the reason in the run's
// summary, when they are not installed (they are optional: only the report command needs them).
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildCharts } from '../../../src/app/report/charts';
import { ChartPackageMissingError, withTextAlternative } from '../../../src/app/report/render';
import { checkWellFormed, escapeXml } from '../../../src/app/report/xml';
import { describeUnless } from '../../util/skip';
import { canned } from './fixtures';

const ROOT = join(__dirname, '../../..');
const RENDER = pathToFileURL(join(ROOT, 'src/app/report/render.ts')).href;

/** Why vega cannot be loaded in a plain Node process here, or null when it can. */
function vegaUnavailable(): string | null {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('vega'); await import('vega-lite');"], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
  return r.status === 0 ? null : `vega/vega-lite do not load in Node (${(r.stderr.split('\n').find((l) => /Error/.test(l)) ?? `exit ${r.status}`).trim()}); npm install --save-dev vega vega-lite`;
}

/** Draws `charts` (JSON on stdin) with src/app/report/render.ts, through tsx, in a child process. */
function renderInChild(charts: unknown[]): Promise<string[]> {
  const code = `const m = await import(${JSON.stringify(RENDER)}); const render = await (m.loadChartRenderer ?? m.default.loadChartRenderer)();
    let input = ''; for await (const chunk of process.stdin) input += chunk;
    const out = []; for (const c of JSON.parse(input)) out.push(await render(c));
    process.stdout.write(JSON.stringify(out));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => (status === 0 ? resolve(JSON.parse(stdout) as string[]) : reject(new Error(`render child exited ${status}:\n${stderr}`))));
    child.stdin.end(JSON.stringify(charts));
  });
}

const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

describeUnless(vegaUnavailable(), 'charts drawn by vega', () => {
  test('every chart of a report: well-formed SVG with title, description, legend, human-unit ticks and per-point labels', async () => {
    const charts = buildCharts(canned().results);
    const svgs = await renderInChild(charts);
    expect(svgs).toHaveLength(charts.length);
    charts.forEach((chart, i) => {
      const svg = svgs[i];
      expect(checkWellFormed(svg).root).toBe('svg');
      expect(svg).toMatch(/^<svg [^>]*><title>[^<]+<\/title><desc>[^<]+<\/desc>/);
      expect(svg).toContain(`<title>${escapeXml(chart.title)}</title>`);
      for (const s of chart.series) expect(texts(svg)).toContain(escapeXml(s));
      for (const t of texts(svg)) expect(t).not.toMatch(/\de[+-]?\d/);
    });
    const latency = svgs[charts.findIndex((c) => c.file === 'latency-vs-batch-h200.svg')];
    expect(texts(latency)).toEqual(expect.arrayContaining(['10 ms', '100 ms', 'p50 latency (log scale)', '1', '2', '64']));
    expect(latency).toContain('aria-label="recompute, batch 64: p50 400 ms"');
    const energy = svgs[charts.findIndex((c) => c.file === 'svd-energy-ml-1m.svg')];
    expect(energy).toContain('aria-label="block0_attention V"');
    const bytes = svgs[charts.findIndex((c) => c.file === 'cache-bytes-per-user.svg')];
    // 2400 B to 200 KiB: under 2 orders, so linear, in round KiB.
    expect(texts(bytes)).toEqual(expect.arrayContaining(['0 KiB', '50 KiB', '100 KiB', '150 KiB', '200 KiB']));
  });
});

test('withTextAlternative puts an escaped <title> and <desc> first in the root', () => {
  const svg = withTextAlternative('<svg xmlns="http://www.w3.org/2000/svg" width="3"><rect/></svg>', { title: 'a < b', description: 'x & y' });
  expect(svg).toBe('<svg xmlns="http://www.w3.org/2000/svg" width="3"><title>a &lt; b</title><desc>x &amp; y</desc><rect/></svg>\n');
  expect(() => withTextAlternative('<html/>', { title: '', description: '' })).toThrow(/expected an <svg> document/);
});

test('a missing chart package is named with the install command', () => {
  const e = new ChartPackageMissingError('vega-lite', new Error("Cannot find package 'vega-lite'"));
  expect(e.message).toMatch(/need the npm package 'vega-lite', which is not installed: run npm install --save-dev vega@\^6.0.0 vega-lite@\^6.0.0/);
});
