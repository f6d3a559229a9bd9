// Browser smoke test: the built UMD bundles (dist/collectivekv.umd.js and, for the webgpu kernels,
// dist/collectivekv.webgpu.umd.js: what `npm run build` makes and <script> tags load) in a real Chromium (Debian's, driven by playwright-core), after tfjs's own
// UMD scripts; the page (page.ts, types-only imports, transpiled by TypeScript) compares the webgpu
// kernels, the CollectiveKVAttention forward and a training step against the cpu backend.
// Skipped with a warning when /usr/bin/chromium, the built bundle or a WebGPU adapter is missing,
// unless REQUIRE_BROWSER_WEBGPU=1 (.ci/run builds before testing). Install Chromium with
// `.ci/install-webgpu.sh --chromium`.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { recordSkip } from '../util/skip';
import * as ts from 'typescript';
import type { BrowserResult } from './page';

const CHROMIUM = '/usr/bin/chromium';
const REQUIRED = process.env.REQUIRE_BROWSER_WEBGPU === '1';
const ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic'];
const ROOT = path.join(__dirname, '..', '..');
const BUNDLE = path.join(ROOT, 'dist', 'collectivekv.umd.js');
const WEBGPU_BUNDLE = path.join(ROOT, 'dist', 'collectivekv.webgpu.umd.js');

/** Classic scripts in load order: tfjs's UMD builds (they fill the global `tf`), then ours. */
const SCRIPTS: Record<string, string> = {
  '/tf-core.js': require.resolve('@tensorflow/tfjs-core/dist/tf-core.min.js'),
  '/tf-layers.js': require.resolve('@tensorflow/tfjs-layers/dist/tf-layers.min.js'),
  '/tf-backend-cpu.js': require.resolve('@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.min.js'),
  '/tf-backend-webgpu.js': require.resolve('@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js'),
  '/collectivekv.umd.js': BUNDLE,
  '/collectivekv.webgpu.umd.js': WEBGPU_BUNDLE,
};

/** page.ts as a module script: its imports are types only, so transpiling removes them all. */
function pageScript(): string {
  const source = fs.readFileSync(path.join(__dirname, 'page.ts'), 'utf8');
  return ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.ES2020 } }).outputText;
}

function serve(page: string): Promise<http.Server> {
  const tags = Object.keys(SCRIPTS).map((src) => `<script src="${src}"></script>`).join('');
  const html = `<!doctype html><meta charset="utf-8"><title>collectivekv webgpu</title>${tags}<script type="module" src="/page.js"></script>`;
  const server = http.createServer((req, res) => {
    const file = SCRIPTS[req.url ?? ''];
    const isScript = file != null || req.url === '/page.js';
    res.writeHead(200, { 'content-type': isScript ? 'text/javascript' : 'text/html' });
    res.end(file != null ? fs.readFileSync(file) : req.url === '/page.js' ? page : html);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const haveChromium = fs.existsSync(CHROMIUM);
const haveBundle = fs.existsSync(BUNDLE) && fs.existsSync(WEBGPU_BUNDLE);
if (!haveChromium && !REQUIRED) {
  recordSkip('browser webgpu smoke test', `${CHROMIUM} not found (.ci/install-webgpu.sh --chromium installs it; REQUIRE_BROWSER_WEBGPU=1 makes this a failure)`);
} else if (!haveBundle && !REQUIRED) {
  recordSkip('browser webgpu smoke test', `${BUNDLE} or ${WEBGPU_BUNDLE} not found; run 'npm run build' first (it tests the built bundle)`);
}

((haveChromium && haveBundle) || REQUIRED ? describe : describe.skip)('webgpu kernels in Chromium', () => {
  it('match the cpu backend in the page', async () => {
    const { chromium } = await import('playwright-core');
    const server = await serve(pageScript());
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    try {
      const page = await browser.newPage();
      const { port } = server.address() as AddressInfo;
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(() => (window as unknown as { __RESULT__?: unknown }).__RESULT__ != null, null, { timeout: 90000 });
      const result = await page.evaluate(() => (window as unknown as { __RESULT__: BrowserResult }).__RESULT__);
      expect(result.error).toBeUndefined();
      console.log('browser webgpu result', JSON.stringify(result));
      if (!result.adapter && !REQUIRED) {
        recordSkip('browser webgpu smoke test', 'Chromium found no WebGPU adapter');
        return;
      }
      expect(result.backend).toBe('webgpu');
      // The webgpu bundle registered every webgpu kernel (else the ops below ran their composites).
      const registered = await page.evaluate(() => {
        const g = window as unknown as { tf: { getKernel(name: string, backend: string): unknown };
          collectivekvWebGPU: { webgpuKernelConfigs: Array<{ kernelName: string }> } };
        return g.collectivekvWebGPU.webgpuKernelConfigs.map((c) => [c.kernelName, g.tf.getKernel(c.kernelName, 'webgpu') != null]);
      });
      expect(registered.length).toBeGreaterThan(0);
      for (const [name, ok] of registered) expect([name, ok]).toEqual([name, true]);
      expect(Object.keys(result.maxErrors)).toHaveLength(7);
      for (const [kernel, err] of Object.entries(result.maxErrors)) {
        expect([kernel, err < 1e-4]).toEqual([kernel, true]);
      }
    } finally {
      await browser.close();
      server.close();
    }
  }, 180000);
});
