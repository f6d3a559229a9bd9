// scripts/build-if-stale.mjs, run as npm runs it, on a scratch tree with its own rollup.config.mjs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const SCRIPT = join(__dirname, '../../scripts/build-if-stale.mjs');
const OUTPUTS = ['dist/esm/src/index.js', 'dist/main.cjs', 'dist/x.umd.js', 'dist/x.d.ts'];

let root: string;
const write = (rel: string, text: string, seconds?: number) => {
  const path = join(root, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  if (seconds != null) utimesSync(path, seconds, seconds);
};
const run = (...args: string[]) => spawnSync(process.execPath, [SCRIPT, '--root', root, ...args], { cwd: root, encoding: 'utf8' });

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ckv-stale-'));
  // The shapes of the real config: preserveModules ESM, an object input, file outputs (one an array).
  write('rollup.config.mjs', `export default [
    { input: ['src/index.ts'], output: { dir: 'dist/esm', preserveModules: true, preserveModulesRoot: '.', entryFileNames: '[name].js' } },
    { input: { main: 'src/index.ts' }, output: { dir: 'dist', entryFileNames: '[name].cjs' } },
    { input: 'src/index.ts', output: [{ file: 'dist/x.umd.js' }, { file: 'dist/x.d.ts' }] },
  ];\n`, 1000);
  write('package.json', JSON.stringify({ name: 'scratch', private: true, scripts: { build: 'node build.js' } }), 1000);
  write('build.js', `const fs = require('fs'); for (const f of ${JSON.stringify(OUTPUTS)}) { fs.mkdirSync(require('path').dirname(f), { recursive: true }); fs.writeFileSync(f, 'built'); }\n`, 1000);
  write('src/index.ts', 'export {};\n', 2000);
  write('examples/a/b.ts', 'export {};\n', 2000);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

test('--check: stale while an output is missing or a source is newer than the oldest output; up to date otherwise', () => {
  let r = run('--check');
  expect([r.status, r.stdout.trim()]).toEqual([1, 'dist is stale: dist/esm/src/index.js is missing']);
  OUTPUTS.forEach((f, i) => write(f, 'built', 3000 + i));
  r = run('--check');
  expect([r.status, r.stdout.trim()]).toEqual([0, 'dist is up to date (no source changed since dist/esm/src/index.js was built)']);
  write('examples/a/b.ts', 'export const x = 1;\n', 3001.5);
  r = run('--check');
  expect([r.status, r.stdout.trim()]).toEqual([1, 'dist is stale: examples/a/b.ts changed since dist/esm/src/index.js was built']);
  write('package.json', JSON.stringify({ name: 'scratch', scripts: {} }), 5000);
  expect(run('--check').stdout.trim()).toBe('dist is stale: package.json and 1 more changed since dist/esm/src/index.js was built');
});

test('stale: runs npm run build, after which the tree is up to date; a bad argument exits 2', () => {
  const r = run();
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('dist is stale: dist/esm/src/index.js is missing; building');
  expect(run().stdout.trim()).toMatch(/^dist is up to date/);
  const bad = run('--force');
  expect(bad.status).toBe(2);
  expect(bad.stderr).toContain("unknown argument '--force'");
});
