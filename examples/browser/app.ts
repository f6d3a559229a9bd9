// The demo page: picks a backend (webgpu, else wasm, else cpu), loads the trained SASRec, restores
// the session from IndexedDB and renders catalog, recommendations, history, cache size and latency.
// The page publishes its state on window.__DEMO__ for the Playwright test.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { IndexedDBStore } from 'collectivekv';
import 'collectivekv/webgpu';
import { TOPIC_NAMES, loadDemoModelAsync, topItems, type DemoManifest, type DemoModel } from './model';
import { DemoSession, type StepResult } from './session';

const RECOMMENDATIONS = 10;
const CATALOG_SIZE = 24;
const TOPIC_COLORS = ['#2457c5', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0e7490', '#a16207', '#be185d'];

/** What the test reads (also handy in the console). */
export interface DemoState {
  ready: boolean;
  busy: boolean;
  backend: string;
  history: number[];
  recommendations: number[];
  /** Scores of `recommendations`, same order. */
  scores: number[];
  source: string;
  note: string;
  picks: number;
  entryBytes: number;
  fullKvBytes: number;
  /** Per token over all blocks, without the entry's header: CollectiveKV as stored (fp16) and a full fp32 KV cache. */
  bytesPerToken: number;
  fullKvBytesPerToken: number;
  tensors: number;
  error?: string;
}

const state: DemoState = {
  ready: false, busy: false, backend: '', history: [], recommendations: [], scores: [], source: '', note: '', picks: 0,
  entryBytes: 0, fullKvBytes: 0, bytesPerToken: 0, fullKvBytesPerToken: 0, tensors: 0,
};
(window as unknown as { __DEMO__: DemoState }).__DEMO__ = state;
// The store class, for the test's CAS checks (the page is the only place with IndexedDB).
(window as unknown as { __COLLECTIVEKV__: object }).__COLLECTIVEKV__ = { IndexedDBStore };

const latencies: Array<{ item: number; ms: number; source: string }> = [];

function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el == null) throw new Error(`demo page: #${id} is missing`);
  return el;
}

// ---------------------------------------------------------------- startup

/** The first backend of the preference order that initializes (?backend= forces one). */
async function pickBackend(): Promise<string> {
  setWasmPaths(new URL('./', location.href).href);
  const forced = new URLSearchParams(location.search).get('backend');
  const order = forced ? [forced] : ['webgpu', 'wasm', 'cpu'];
  for (const name of order) {
    try {
      if (await tf.setBackend(name)) return name;
    } catch {
      // Not available here (no adapter, no wasm): try the next one.
    }
  }
  throw new Error(`no usable tfjs backend among ${order.join(', ')}`);
}

async function loadModel(): Promise<DemoModel> {
  const [manifestRes, weightsRes] = await Promise.all([fetch('model.json'), fetch('weights.bin')]);
  if (!manifestRes.ok || !weightsRes.ok) throw new Error('model.json or weights.bin is missing: run npm run demo:browser:build');
  const manifest = (await manifestRes.json()) as DemoManifest;
  return loadDemoModelAsync(manifest, new Float32Array(await weightsRes.arrayBuffer()));
}

async function main(): Promise<void> {
  state.backend = await pickBackend();
  $('backend').textContent = state.backend;
  const model = await loadModel();
  const o = model.sasrec.options;
  const q = model.manifest.quality;
  $('model-info').textContent = `SASRec, ${o.numBlocks} blocks, d=${o.hiddenDim}, pool ${o.collective.poolSize}, ${o.numItems} items · test HR@10 ${q.hr10.toFixed(2)}`;
  const session = new DemoSession(model, new IndexedDBStore({ dbName: 'collectivekv-demo' }));
  const ui = new Ui(model, session);
  ui.renderCatalog();
  await ui.run(() => session.restore());
  state.ready = true;
}

// ---------------------------------------------------------------- rendering

class Ui {
  constructor(private readonly model: DemoModel, private readonly session: DemoSession) {
    $('reset').addEventListener('click', () => void this.run(async () => {
      await this.session.reset();
      latencies.length = 0;
      return { scores: new Float32Array(0), source: 'empty', decodeMs: 0, storeMs: 0, note: 'History cleared.' };
    }));
  }

  /** Runs one session action (one at a time: clicks during a decode are ignored) and re-renders. */
  async run(action: () => Promise<StepResult>, item?: number): Promise<void> {
    if (state.busy) return;
    state.busy = true;
    try {
      const result = await action();
      if (item != null) {
        latencies.push({ item, ms: result.decodeMs, source: result.source });
        state.picks++;
      }
      this.render(result);
    } catch (e) {
      state.error = String((e as Error)?.stack ?? e);
      this.notice(`Something went wrong: ${(e as Error)?.message ?? e}`, true);
    } finally {
      state.busy = false;
    }
  }

  renderCatalog(): void {
    const popularity = this.model.manifest.popularity;
    const ids = Array.from({ length: popularity.length - 1 }, (_, i) => i + 1).sort((a, b) => popularity[b] - popularity[a] || a - b);
    const grid = $('catalog');
    grid.replaceChildren(...ids.slice(0, CATALOG_SIZE).map((id) => this.itemButton(id)));
  }

  private render(result: StepResult): void {
    const { history } = this.session;
    const recs = result.scores.length > 0 ? topItems(result.scores, RECOMMENDATIONS, history) : [];
    Object.assign(state, {
      history: history.slice(), recommendations: recs, scores: recs.map((id) => result.scores[id]), source: result.source,
      note: result.note ?? '', tensors: tf.memory().numTensors,
    });
    this.renderRecommendations(recs, result.scores);
    this.renderHistory(history);
    this.renderCache();
    this.renderLatency(result);
    this.renderNotice(result);
  }

  private renderRecommendations(recs: number[], scores: Float32Array): void {
    $('recs-hint').textContent = recs.length > 0 ? 'Ranked by the model for your history. Pick one to continue.' : 'Pick an item to get recommendations.';
    $('recs').replaceChildren(...recs.map((id, rank) => {
      const li = document.createElement('li');
      const button = this.itemButton(id, scores[id]);
      const r = document.createElement('span');
      r.className = 'rank';
      r.textContent = `${rank + 1}.`;
      button.prepend(r);
      li.append(button);
      return li;
    }));
  }

  private renderHistory(history: number[]): void {
    $('history').replaceChildren(...history.map((id) => {
      const li = document.createElement('li');
      li.textContent = this.itemName(id);
      li.style.borderColor = this.topicColor(id);
      return li;
    }));
    $('history').setAttribute('aria-label', `${history.length} items picked`);
  }

  private renderCache(): void {
    const f = this.session.figures();
    state.entryBytes = f.entryBytes;
    state.fullKvBytes = f.fullKvBytes;
    state.bytesPerToken = f.bytesPerToken;
    state.fullKvBytesPerToken = f.fullKvBytesPerToken;
    const pct = f.fullKvBytes > 0 ? (100 * f.entryBytes) / f.fullKvBytes : 0;
    const text = f.tokens === 0
      ? 'No cache yet.'
      : `${f.tokens} tokens: ${fmtBytes(f.entryBytes)} stored in IndexedDB (header, checksums and item ids included) vs ${fmtBytes(f.fullKvBytes)} for a full fp32 KV cache (${pct.toFixed(1)}%). Per token over all blocks: ${f.bytesPerToken} B (fp16) vs ${f.fullKvBytesPerToken} B (full KV, fp32).`;
    $('cache-caption').textContent = text;
    $('cache-chart').replaceChildren(barChart([
      { label: 'CollectiveKV entry', value: f.entryBytes, color: '#2457c5' },
      { label: 'Full KV equivalent', value: f.fullKvBytes, color: '#9aa5b1' },
    ], fmtBytes, text));
  }

  private renderLatency(result: StepResult): void {
    $('latency').textContent = latencies.length > 0 ? `${latencies[latencies.length - 1].ms.toFixed(1)} ms (${latencies[latencies.length - 1].source})` : result.source === 'restored' ? `${result.decodeMs.toFixed(1)} ms (restore)` : '–';
    const recent = latencies.slice(-20);
    const text = recent.length === 0 ? 'No picks yet.'
      : `Last ${recent.length} picks: median ${median(recent.map((l) => l.ms)).toFixed(1)} ms, last ${recent[recent.length - 1].ms.toFixed(1)} ms. The first pick is a one-token prefill, later picks are decode steps.`;
    $('latency-caption').textContent = text;
    $('latency-chart').replaceChildren(barChart(recent.map((l, i) => ({
      label: `#${latencies.length - recent.length + i + 1}`, value: l.ms, color: l.source === 'decode' ? '#2457c5' : '#c2410c',
    })), (v) => `${v.toFixed(1)} ms`, text, true));
    const body = document.querySelector('#latency-table tbody') as HTMLElement;
    body.replaceChildren(...latencies.map((l, i) => row([String(i + 1), this.itemName(l.item), l.source, l.ms.toFixed(2)])));
  }

  private renderNotice(result: StepResult): void {
    if (result.source === 'restored') this.notice(`Restored ${this.session.history.length} picks and the recommendations from IndexedDB (decoded from the stored cache, nothing recomputed).`);
    else if (result.source === 'rebuilt') this.notice(`Rebuilt the cache: ${result.note}. Recomputed from your history and stored again.`, true);
    else this.notice(result.note ?? '');
  }

  private notice(text: string, warn = false): void {
    const el = $('notice');
    el.textContent = text;
    el.classList.toggle('warn', warn);
  }

  private itemButton(id: number, score?: number): HTMLButtonElement {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'item';
    button.dataset.item = String(id);
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.style.background = this.topicColor(id);
    dot.setAttribute('aria-hidden', 'true');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = `Item ${id}`;
    const topic = document.createElement('span');
    topic.className = 'topic';
    topic.textContent = this.topicName(id);
    name.append(topic);
    button.append(dot, name);
    if (score != null) {
      const s = document.createElement('span');
      s.className = 'score';
      s.textContent = score.toFixed(2);
      s.setAttribute('aria-label', `score ${score.toFixed(2)}`);
      button.append(s);
    }
    button.addEventListener('click', () => void this.run(() => this.session.click(id), id));
    return button;
  }

  private topicName(id: number): string {
    const t = this.model.manifest.topicOfItem[id];
    return TOPIC_NAMES[t] ?? `Topic ${t + 1}`;
  }

  private topicColor(id: number): string {
    return TOPIC_COLORS[this.model.manifest.topicOfItem[id] % TOPIC_COLORS.length];
  }

  private itemName(id: number): string {
    return `Item ${id} (${this.topicName(id)})`;
  }
}

// ---------------------------------------------------------------- small helpers

interface Bar { label: string; value: number; color: string }

const SVG = 'http://www.w3.org/2000/svg';

/** A horizontal (or vertical, `columns`) bar chart; `alt` is its text alternative (role=img). */
function barChart(bars: Bar[], fmt: (v: number) => string, alt: string, columns = false): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', alt);
  const max = Math.max(1e-9, ...bars.map((b) => b.value));
  if (columns) {
    const w = 300;
    const h = 90;
    svg.setAttribute('viewBox', `0 0 ${w} ${h + 14}`);
    const bw = w / Math.max(bars.length, 10);
    bars.forEach((b, i) => {
      const bh = Math.max(1, (b.value / max) * h);
      svg.append(rect(i * bw + 1, h - bh, bw - 2, bh, b.color, `${b.label}: ${fmt(b.value)}`));
    });
    svg.append(text(0, h + 12, `max ${fmt(max)}`, 10));
    return svg;
  }
  const rowH = 26;
  svg.setAttribute('viewBox', `0 0 300 ${bars.length * rowH}`);
  bars.forEach((b, i) => {
    const bw = Math.max(2, (b.value / max) * 120);
    svg.append(text(0, i * rowH + 16, b.label, 11), rect(118, i * rowH + 4, bw * 0.95, 16, b.color, `${b.label}: ${fmt(b.value)}`),
      text(122 + bw * 0.95, i * rowH + 16, fmt(b.value), 11));
  });
  return svg;
}

function rect(x: number, y: number, w: number, h: number, fill: string, title: string): SVGRectElement {
  const r = document.createElementNS(SVG, 'rect');
  for (const [k, v] of Object.entries({ x, y, width: w, height: h, fill, rx: 2 })) r.setAttribute(k, String(v));
  const t = document.createElementNS(SVG, 'title');
  t.textContent = title;
  r.append(t);
  return r;
}

function text(x: number, y: number, content: string, size: number): SVGTextElement {
  const t = document.createElementNS(SVG, 'text');
  t.setAttribute('x', String(x));
  t.setAttribute('y', String(y));
  t.setAttribute('font-size', String(size));
  t.setAttribute('fill', '#1d232b');
  t.textContent = content;
  return t;
}

function row(cells: string[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.append(...cells.map((c) => Object.assign(document.createElement('td'), { textContent: c })));
  return tr;
}

function fmtBytes(n: number): string {
  return n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`;
}

function median(values: number[]): number {
  const s = values.slice().sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor((s.length - 1) / 2)];
}

main().catch((e: unknown) => {
  state.error = String((e as Error)?.stack ?? e);
  const el = document.getElementById('notice');
  if (el) {
    el.textContent = `The demo could not start: ${(e as Error)?.message ?? e}`;
    el.classList.add('warn');
  }
});
