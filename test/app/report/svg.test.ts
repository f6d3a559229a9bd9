// The report's SVG generator and its XML well-formedness check.
import { dotChart, escapeXml, lineChart, scatterChart } from '../../../src/app/report/svg';
import { checkWellFormed } from '../../../src/app/report/xml';

const series = [
  { label: 'collectivekv <du=1>', points: [{ x: 1, y: 0.5 }, { x: 64, y: 1.5 }, { x: 512, y: 4 }] },
  { label: 'full & co', points: [{ x: 1, y: 1 }, { x: 64, y: 9 }] },
  { label: 'recompute', points: [{ x: 1, y: 3 }, { x: 64, y: 40 }, { x: 512, y: 300 }] },
];

describe('svg charts', () => {
  test('line chart: well formed, one path per series, one circle per point, escaped legend labels, title and desc', () => {
    const svg = lineChart({ title: 'Latency <ms> & batch', xLabel: 'batch', yLabel: 'p50 ms', logX: true, series });
    const info = checkWellFormed(svg);
    expect(info.root).toBe('svg');
    expect(info.counts.path).toBe(3);
    expect(info.counts.circle).toBe(8);
    expect(info.counts.title).toBe(1 + 8); // the chart's own title + one tooltip per marker
    expect(info.counts.desc).toBe(1);
    expect(svg).toContain('<title>Latency &lt;ms&gt; &amp; batch</title>');
    for (const s of series) expect(svg).toContain(`>${escapeXml(s.label)}</text>`);
    expect(svg).not.toContain('<du=1>');
  });

  test('log x axis: ticks at powers of 2 over a short range, powers of 10 over 3+ decades; markers ordered on x', () => {
    const short = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', logX: true, series });
    for (const t of ['1', '2', '4', '512']) expect(short).toContain(`text-anchor="middle">${t}</text>`);
    const long = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', logX: true, series: [{ label: 'a', points: [{ x: 1, y: 1 }, { x: 5000, y: 2 }] }] });
    expect(long).toContain('text-anchor="middle">1000</text>');
    expect(long).not.toContain('text-anchor="middle">2</text>');
    const cx = [...short.matchAll(/<g class="series" data-label="recompute">(.*?)<\/g>/g)][0][1].match(/cx="([\d.]+)"/g)!.map((m) => Number(m.slice(4, -1)));
    expect(cx).toEqual([...cx].sort((a, b) => a - b));
    expect(new Set(cx).size).toBe(3);
  });

  test('scatter chart: markers only; non-finite and (log) non-positive points dropped', () => {
    const svg = scatterChart({ title: 's', xLabel: 'x', yLabel: 'y', logX: true,
      series: [{ label: 'a', points: [{ x: 0, y: 1 }, { x: 2, y: NaN }, { x: 4, y: 2 }, { x: 8, y: 3 }] }] });
    const info = checkWellFormed(svg);
    expect(info.counts.path).toBeUndefined();
    expect(info.counts.circle).toBe(2);
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  test('dot chart: one row per category, null values get no marker', () => {
    const svg = dotChart({ title: 'c', categories: ['ml-1m', 'beauty'], xLabel: 'NDCG@10',
      series: [{ label: 'baseline', values: [0.16, 0.04] }, { label: 'converted', values: [0.155, null] }] });
    const info = checkWellFormed(svg);
    expect(info.counts.circle).toBe(3);
    expect(svg).toContain('>ml-1m</text>');
    expect(svg).toContain('>beauty</text>');
    expect(svg).toContain('>converted</text>');
  });

  test('a single point or a flat series still gives a finite chart', () => {
    const svg = lineChart({ title: 'one', xLabel: 'x', yLabel: 'y', series: [{ label: 'a', points: [{ x: 3, y: 0.2 }] }] });
    checkWellFormed(svg);
    expect(svg).not.toMatch(/NaN|Infinity/);
  });
});

describe('checkWellFormed', () => {
  test.each([
    ['unclosed element', '<svg><g></svg>'],
    ['crossed nesting', '<svg><g><text></g></text></svg>'],
    ['raw ampersand', '<svg><text>a & b</text></svg>'],
    ['unquoted attribute', '<svg width=3></svg>'],
    ['duplicate attribute', '<svg a="1" a="2"></svg>'],
    ['two roots', '<svg></svg><svg></svg>'],
    ['text outside the root', 'x<svg></svg>'],
    ['raw < in an attribute', '<svg a="<"></svg>'],
  ])('rejects %s', (_why, xml) => {
    expect(() => checkWellFormed(xml)).toThrow(/not well-formed/);
  });

  test('accepts a declaration, comments, entities and self-closing tags', () => {
    const info = checkWellFormed('<?xml version="1.0"?>\n<!-- c --><svg a=\'1\'><rect/><text>&lt;&#65;&#x42;&gt;</text></svg>\n');
    expect(info).toEqual({ root: 'svg', counts: { svg: 1, rect: 1, text: 1 } });
  });
});
