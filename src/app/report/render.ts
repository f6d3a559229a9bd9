// Renders the report's Vega-Lite specs (charts.ts) to SVG in Node, no browser: vega-lite compiles a
// spec, vega draws it headless. Both are ESM-only with top-level await, so they load by import()
// (kept as import() in the CommonJS bundle), and they are optional: only the report needs them, and
// a missing one fails the report with the install command, not the library on load.
import type { Chart } from './charts';
import { escapeXml } from './xml';

/** Renders one chart to a standalone SVG document. */
export type ChartRenderer = (chart: Chart) => Promise<string>;

/** The packages the charts need, with the ranges the project tests against. */
export const CHART_PACKAGES = { vega: '^6.0.0', 'vega-lite': '^6.0.0' } as const;

export class ChartPackageMissingError extends Error {
  constructor(readonly packageName: string, cause: unknown) {
    super(`the report's charts need the npm package '${packageName}', which is not installed: run `
      + `npm install --save-dev ${Object.entries(CHART_PACKAGES).map(([n, r]) => `${n}@${r}`).join(' ')} (${(cause as Error)?.message ?? cause})`);
    this.name = 'ChartPackageMissingError';
  }
}

type Vega = typeof import('vega');
type VegaLite = typeof import('vega-lite');

/** Loads vega and vega-lite; throws ChartPackageMissingError naming the one that is not installed. */
export async function loadChartRenderer(): Promise<ChartRenderer> {
  // Literal specifiers, so the bundler sees (and leaves external) exactly these two packages.
  const vega = await importOrExplain('vega', () => import('vega') as Promise<Vega>);
  const vegaLite = await importOrExplain('vega-lite', () => import('vega-lite') as Promise<VegaLite>);
  return (chart) => renderChart(chart, vega, vegaLite);
}

async function importOrExplain<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const code = (e as { code?: string }).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((e as Error).message).includes(`'${name}'`)) {
      throw new ChartPackageMissingError(name, e);
    }
    throw e;
  }
}

/** Compiles and draws `chart.spec`, then gives the SVG its text alternative (<title> and <desc>). */
export async function renderChart(chart: Chart, vega: Vega, vegaLite: VegaLite): Promise<string> {
  const compiled = vegaLite.compile(chart.spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return withTextAlternative(await view.toSVG(), chart);
  } finally {
    view.finalize();
  }
}

/** Inserts <title> and <desc> as the root's first children: the SVG's accessible name and description. */
export function withTextAlternative(svg: string, chart: Pick<Chart, 'title' | 'description'>): string {
  const open = /^\s*<svg\b[^>]*>/.exec(svg);
  if (open == null) throw new Error(`withTextAlternative: expected an <svg> document, received '${svg.slice(0, 40)}...'`);
  const end = open.index + open[0].length;
  return `${svg.slice(0, end)}<title>${escapeXml(chart.title)}</title><desc>${escapeXml(chart.description)}</desc>${svg.slice(end)}\n`;
}
