// The browser demo end to end in Chromium (Debian's, driven by playwright-core), on webgpu
// (SwiftShader here) and on wasm: build and load the page, pick five items (one by keyboard), check
// the recommendations change and equal the same model run in Node (cpu backend, recompute from the
// history), reload and check they come back from IndexedDB, corrupt the stored entry and check it
// is rebuilt, and exercise IndexedDBStore's CAS append in the page. Screenshots go to
// tmp/browser-demo-test/screenshots (gitignored).
// The weights are trained once and cached under tmp/browser-demo-weights (keyed by a hash of the
// training code and options), so only the first run pays for training.
// Skipped with a warning without /usr/bin/chromium, unless REQUIRE_BROWSER_WEBGPU=1 (CI).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { recordSkip } from '../util/skip';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { Browser, Page } from 'playwright-core';
import { loadDemoModel, topItems, type DemoManifest, type DemoModel } from '../../examples/browser/model';
import type { DemoState } from '../../examples/browser/app';
import { serveDir } from '../../scripts/browser-demo-serve';

tf.env().set('IS_TEST', true); // no tfjs-node banner

const CHROMIUM = '/usr/bin/chromium';
const REQUIRED = process.env.REQUIRE_BROWSER_WEBGPU === '1';
const ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic'];
const ROOT = path.resolve(__dirname, '../..');
const OUT = path.join(ROOT, 'tmp/browser-demo-test');
const SITE = path.join(OUT, 'site');
const SHOTS = path.join(OUT, 'screenshots');
/** Catalog positions picked (spread over the popularity order, so several topics are involved). */
const PICKS = [0, 7, 3, 12, 18];
/** Page (webgpu/wasm float32) vs Node cpu scores. */
const TOLERANCE = 2e-3;

const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && !REQUIRED) {
  recordSkip('browser demo test', `${CHROMIUM} not found (.ci/install-webgpu.sh --chromium installs it; REQUIRE_BROWSER_WEBGPU=1 makes this a failure)`);
}

function buildSite(): void {
  const tsx = path.join(ROOT, 'node_modules/tsx/dist/cli.mjs');
  execFileSync(process.execPath, [tsx, 'scripts/browser-demo-build.ts', '--out', SITE], { cwd: ROOT, stdio: 'inherit', timeout: 15 * 60000 });
}

function nodeModel(): DemoModel {
  const manifest = JSON.parse(fs.readFileSync(path.join(SITE, 'model.json'), 'utf8')) as DemoManifest;
  const bytes = fs.readFileSync(path.join(SITE, 'weights.bin'));
  return loadDemoModel(manifest, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
}

/** Node's scores for `history`: a full prefill of the history (recompute), not the page's incremental path. */
function nodeScores(model: DemoModel, history: number[]): Float32Array {
  const candidates = Int32Array.from({ length: model.recommender.numItems + 1 }, (_, i) => i);
  return model.recommender.recompute([history], candidates);
}

function demoState(page: Page): Promise<DemoState> {
  return page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as { __DEMO__: DemoState }).__DEMO__)) as DemoState);
}

async function waitIdle(page: Page, picks?: number): Promise<DemoState> {
  await page.waitForFunction((n) => {
    const s = (window as unknown as { __DEMO__?: DemoState }).__DEMO__;
    return s != null && (s.error != null || (s.ready && !s.busy && (n == null || s.picks >= n)));
  }, picks, { timeout: 120000 });
  const state = await demoState(page);
  expect(state.error).toBeUndefined();
  return state;
}

/** The page's top items score the same in Node, and Node's ranking agrees up to near-ties. */
function expectSameRecommendations(model: DemoModel, state: DemoState): void {
  const scores = nodeScores(model, state.history);
  const nodeTop = topItems(scores, state.recommendations.length, state.history);
  state.recommendations.forEach((id, i) => {
    expect([id, Math.abs(scores[id] - state.scores[i]) <= TOLERANCE * Math.max(1, Math.abs(scores[id]))]).toEqual([id, true]);
  });
  const cut = state.scores[state.scores.length - 1];
  for (const id of nodeTop) {
    if (!state.recommendations.includes(id)) expect(scores[id]).toBeLessThanOrEqual(cut + TOLERANCE * Math.max(1, Math.abs(cut)));
  }
}

/** Flips one byte in the middle of the stored cache entry (CRC-protected payload). */
async function corruptStoredEntry(page: Page): Promise<number> {
  return page.evaluate(() => new Promise<number>((resolve, reject) => {
    const open = indexedDB.open('collectivekv-demo');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction('caches', 'readwrite');
      const store = tx.objectStore('caches');
      const get = store.get('cache:demo');
      get.onsuccess = () => {
        const bytes = (get.result as Uint8Array).slice();
        const at = Math.floor(bytes.length * 0.75);
        bytes[at] ^= 0x5a;
        store.put(bytes, 'cache:demo');
        tx.oncomplete = () => { open.result.close(); resolve(bytes.length); };
      };
      tx.onerror = () => reject(tx.error);
    };
  }));
}

/** IndexedDBStore's CAS append, run in the page (the only place with IndexedDB). */
async function casResults(page: Page): Promise<Record<string, unknown>> {
  return page.evaluate(async () => {
    type Store = {
      set(k: string, v: Uint8Array): Promise<void>; get(k: string): Promise<Uint8Array | undefined>;
      append(k: string, p: { expectHeader: Uint8Array; newHeader: Uint8Array; tail: Uint8Array }): Promise<string>;
      replace(k: string, expect: Uint8Array | undefined, v: Uint8Array): Promise<string>;
      delete(k: string): Promise<boolean>; close(): Promise<void>;
    };
    const Ctor = (window as unknown as { __COLLECTIVEKV__: { IndexedDBStore: new (o: { dbName: string }) => Store } }).__COLLECTIVEKV__.IndexedDBStore;
    const store = new Ctor({ dbName: 'cas-test' });
    const u8 = (...v: number[]) => Uint8Array.from(v);
    await store.set('k', u8(1, 2, 3, 4));
    const conflict = await store.append('k', { expectHeader: u8(9, 9), newHeader: u8(7, 7), tail: u8(5) });
    const ok = await store.append('k', { expectHeader: u8(1, 2), newHeader: u8(7, 8), tail: u8(5) });
    const missing = await store.append('nope', { expectHeader: u8(1, 2), newHeader: u8(7, 8), tail: u8(5) });
    const after = Array.from((await store.get('k')) ?? []);
    // Two racing appends planned from the same header: exactly one may win.
    const race = await Promise.all([6, 7].map((t) => store.append('k', { expectHeader: u8(7, 8), newHeader: u8(8, 8), tail: u8(t) })));
    const raced = Array.from((await store.get('k')) ?? []);
    const deleted = [await store.delete('k'), await store.delete('k')];
    // Conditional whole-value writes: only when absent, or over the expected prefix; one creator wins.
    const created = await Promise.all([1, 2, 3].map((t) => store.replace('r', undefined, u8(t, 0))));
    const replaced = [await store.replace('r', u8(9), u8(4, 4)), await store.replace('r', Uint8Array.of((await store.get('r'))![0]), u8(5, 5))];
    const final = Array.from((await store.get('r')) ?? []);
    await store.delete('r');
    await store.close();
    return { conflict, ok, missing, after, race: race.sort(), raced, deleted, created: created.sort(), replaced, final };
  });
}

(haveChromium || REQUIRED ? describe : describe.skip)('browser demo in Chromium', () => {
  let browser: Browser;
  let server: http.Server;
  let base: string;
  let model: DemoModel;

  beforeAll(async () => {
    buildSite();
    await tf.setBackend('cpu');
    model = nodeModel();
    server = await serveDir(SITE);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    fs.mkdirSync(SHOTS, { recursive: true });
  }, 16 * 60000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    model?.sasrec.model.dispose();
  });

  const scenario = async (backend: string): Promise<void> => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await context.newPage();
      await page.goto(`${base}?backend=${backend}`);
      const start = await page.waitForFunction(() => {
        const s = (window as unknown as { __DEMO__?: DemoState }).__DEMO__;
        return s != null && (s.ready || s.error != null);
      }, null, { timeout: 120000 }).then(() => demoState(page));
      if (start.error != null && /no usable tfjs backend/.test(start.error) && !REQUIRED) {
        recordSkip(`browser demo on ${backend}`, 'Chromium could not start that backend here');
        return;
      }
      expect(start.error).toBeUndefined();
      expect(start.backend).toBe(backend);
      expect(start.history).toEqual([]);

      const seen: number[][] = [];
      const tensorCounts: number[] = [];
      const catalog = page.locator('#catalog button.item');
      for (const [n, position] of PICKS.entries()) {
        if (n === 2) {
          // Keyboard only: focus the button and press Enter.
          await catalog.nth(position).focus();
          await page.keyboard.press('Enter');
        } else {
          await catalog.nth(position).click();
        }
        const s = await waitIdle(page, n + 1);
        expect(s.history).toHaveLength(n + 1);
        expect(s.source).toBe(n === 0 ? 'prefill' : 'decode');
        seen.push(s.recommendations);
        tensorCounts.push(s.tensors);
      }
      // Decode steps replace the cache tensors, they do not pile up (no leak per pick).
      expect(tensorCounts[4]).toBe(tensorCounts[1]);
      const state = await waitIdle(page, PICKS.length);
      expect(new Set(seen.map((r) => r.join(','))).size).toBeGreaterThan(1);
      expect(state.recommendations).toHaveLength(10);
      expectSameRecommendations(model, state);
      expect(state.entryBytes).toBeGreaterThan(0);
      // A few tokens: the entry's fixed header (64 + 20 per layer) still weighs; per token it is > 10x smaller.
      expect(state.entryBytes * 5).toBeLessThan(state.fullKvBytes);
      expect(state.bytesPerToken * 10).toBeLessThan(state.fullKvBytesPerToken);
      expect(await page.locator('#latency-table tbody tr').count()).toBe(PICKS.length);
      await page.screenshot({ path: path.join(SHOTS, `demo-${backend}.png`), fullPage: true });

      await page.reload();
      const restored = await waitIdle(page);
      expect(restored.source).toBe('restored');
      expect(restored.history).toEqual(state.history);
      expect(restored.recommendations).toEqual(state.recommendations);
      restored.scores.forEach((s, i) => expect(Math.abs(s - state.scores[i])).toBeLessThan(TOLERANCE));
      expect(await page.locator('#notice').textContent()).toMatch(/Restored 5 picks/);

      await corruptStoredEntry(page);
      await page.reload();
      const rebuilt = await waitIdle(page);
      expect(rebuilt.source).toBe('rebuilt');
      expect(rebuilt.note).toMatch(/unreadable/);
      expect(await page.locator('#notice').textContent()).toMatch(/Rebuilt the cache/);
      expect(rebuilt.history).toEqual(state.history);
      expectSameRecommendations(model, rebuilt);
      await page.screenshot({ path: path.join(SHOTS, `demo-${backend}-rebuilt.png`), fullPage: true });
      // The rebuilt entry is good again: the next load restores it.
      await page.reload();
      expect((await waitIdle(page)).source).toBe('restored');

      expect(await casResults(page)).toEqual({
        conflict: 'conflict', ok: 'ok', missing: 'missing', after: [7, 8, 3, 4, 5], race: ['conflict', 'ok'],
        raced: expect.arrayContaining([8, 8, 3, 4, 5]), deleted: [true, false],
        created: ['conflict', 'conflict', 'ok'], replaced: ['conflict', 'ok'], final: [5, 5],
      });
    } finally {
      await context.close();
    }
  };

  it('runs on wasm: picks, Node parity, IndexedDB restore, corrupt-entry rebuild', () => scenario('wasm'), 300000);
  // The page reads every tensor asynchronously: tfjs-backend-webgpu 4.22's synchronous readback
  // (dataSync/readSync) returns zeros on SwiftShader and loses the device (see session.ts).
  it('runs on webgpu: picks, Node parity, IndexedDB restore, corrupt-entry rebuild', () => scenario('webgpu'), 300000);
});
