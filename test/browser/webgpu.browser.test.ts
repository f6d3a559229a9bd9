// Browser smoke test: the webgpu kernels in a real Chromium (Debian's, driven by playwright-core),
// compared in the page against the cpu backend. The page is bundled with esbuild (present as
// tsx's dependency) and served from 127.0.0.1 by a throwaway http server.
// Skipped with a warning when /usr/bin/chromium or a WebGPU adapter is missing, unless
// REQUIRE_BROWSER_WEBGPU=1. Install Chromium with `.ci/install-webgpu.sh --chromium`.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { BrowserResult } from './page';

const CHROMIUM = '/usr/bin/chromium';
const REQUIRED = process.env.REQUIRE_BROWSER_WEBGPU === '1';
const ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic'];

async function bundlePage(): Promise<string> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [path.join(__dirname, 'page.ts')], bundle: true, format: 'iife', platform: 'browser', write: false,
    target: 'es2020', logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

function serve(script: string): Promise<http.Server> {
  const html = '<!doctype html><meta charset="utf-8"><title>collectivekv webgpu</title><script src="/page.js"></script>';
  const server = http.createServer((req, res) => {
    const isScript = req.url === '/page.js';
    res.writeHead(200, { 'content-type': isScript ? 'text/javascript' : 'text/html' });
    res.end(isScript ? script : html);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && !REQUIRED) {
  console.warn(`SKIPPED browser webgpu smoke test: ${CHROMIUM} not found (.ci/install-webgpu.sh --chromium installs it).`);
}

(haveChromium || REQUIRED ? describe : describe.skip)('webgpu kernels in Chromium', () => {
  it('match the cpu backend in the page', async () => {
    const { chromium } = await import('playwright-core');
    const server = await serve(await bundlePage());
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
        console.warn('SKIPPED browser webgpu smoke test: Chromium found no WebGPU adapter.');
        return;
      }
      expect(result.backend).toBe('webgpu');
      expect(Object.keys(result.maxErrors)).toHaveLength(5);
      for (const [kernel, err] of Object.entries(result.maxErrors)) {
        expect([kernel, err < 1e-4]).toEqual([kernel, true]);
      }
    } finally {
      await browser.close();
      server.close();
    }
  }, 180000);
});
