// Builds the package: ESM (one file per module, so bundlers can tree-shake around the files that
// register kernels and classes), CommonJS, a UMD bundle for script tags, one bundled .d.ts, and the
// `collectivekv` command. tfjs is always external: one copy of tfjs-core at run time.
//
// Entries (docs/package.md): the main one (src/index.ts; registers the cpu and wasm kernels and the
// gradients), `collectivekv/internal`, `collectivekv/zoo` and `collectivekv/webgpu` (src/webgpu.ts;
// registers the webgpu kernels), so the main entry carries no webgpu kernel. The ESM build shares
// modules between them; the CommonJS and UMD webgpu bundles (dist/webgpu.cjs,
// dist/collectivekv.webgpu.umd.js) carry their own copy of the few stateless helpers they use.
// Registration is idempotent, so loading both copies of a kernel does no harm. The command
// (dist/cli.cjs, for bin/collectivekv.js) is a bundle of its own that no entry loads.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import typescript from '@rollup/plugin-typescript';
import { dts } from 'rollup-plugin-dts';

const isTfjs = (id) => id.startsWith('@tensorflow/');
const isOptionalPeer = (id) => id === 'ioredis';
// The report's chart packages: ESM-only, loaded by the command with import() (kept as import() in
// CommonJS output, as rollup does for external dynamic imports), never bundled.
const isChartPackage = (id) => id === 'vega' || id === 'vega-lite';
const isNodeBuiltin = (id) => id.startsWith('node:') || ['fs', 'path', 'os', 'util', 'http', 'url', 'crypto', 'zlib', 'readline', 'child_process', 'perf_hooks', 'events', 'stream'].includes(id);

const ts = () => typescript({
  tsconfig: './tsconfig.json',
  include: ['ops/**/*.ts', 'layers/**/*.ts', 'src/**/*.ts'],
  exclude: ['test/**', 'node_modules/**'],
  compilerOptions: { noEmit: false, declaration: false, module: 'esnext', outDir: undefined },
  outputToFilesystem: false,
});

// Marks dist/esm as ES modules for Node, which reads the nearest package.json.
const esmPackageJson = () => ({
  name: 'esm-package-json',
  generateBundle() {
    this.emitFile({ type: 'asset', fileName: 'package.json', source: '{ "type": "module" }\n' });
  },
});

// The app (src/app) imports the library by relative path (src/index.ts, src/webgpu.ts); its bundle
// loads the built package instead, by name, so the command and the library share one copy.
const ROOT = path.dirname(fileURLToPath(import.meta.url));
const PACKAGE_ENTRIES = new Map([['src/index', 'collectivekv'], ['src/internal', 'collectivekv/internal'], ['src/webgpu', 'collectivekv/webgpu']]);
const libraryByName = () => ({
  name: 'library-by-name',
  resolveId(source, importer) {
    if (!importer || !source.startsWith('.')) return null;
    const target = path.relative(ROOT, path.resolve(path.dirname(importer), source)).replace(/\\/g, '/').replace(/\.(ts|js)$/, '');
    const name = PACKAGE_ENTRIES.get(target);
    return name === undefined ? null : { id: name, external: true };
  },
});

// Source maps give file:line in the TypeScript sources (node --enable-source-maps) without
// embedding those sources, which the package does not ship (they were most of its size).
const maps = { sourcemap: true, sourcemapExcludeSources: true };

const umdGlobals = (id) => (isTfjs(id) ? 'tf' : id);
const external = (id) => isTfjs(id) || isOptionalPeer(id) || isNodeBuiltin(id);

export default [
  {
    input: ['src/index.ts', 'src/internal.ts', 'src/webgpu.ts', 'src/zoo/index.ts'],
    external,
    plugins: [ts()],
    output: { dir: 'dist/esm', format: 'es', preserveModules: true, preserveModulesRoot: '.', entryFileNames: '[name].js', ...maps, plugins: [esmPackageJson()] },
  },
  {
    // CommonJS: the public entry, `collectivekv/internal` and `collectivekv/zoo` share chunks of
    // library code, so loading several gives one copy of every class.
    input: { collectivekv: 'src/index.ts', internal: 'src/internal.ts', zoo: 'src/zoo/index.ts' },
    external,
    plugins: [ts()],
    output: { dir: 'dist', format: 'cjs', entryFileNames: '[name].cjs', chunkFileNames: 'chunks/[name]-[hash].cjs', ...maps, exports: 'named' },
  },
  {
    input: 'src/index.ts',
    external,
    plugins: [ts()],
    output: { file: 'dist/collectivekv.umd.js', format: 'umd', name: 'collectivekv', globals: umdGlobals, ...maps, exports: 'named' },
  },
  {
    // `collectivekv/webgpu`; as a script tag, load it after tfjs's UMD scripts (it registers on load).
    input: 'src/webgpu.ts',
    external,
    plugins: [ts()],
    output: [
      { file: 'dist/webgpu.cjs', format: 'cjs', ...maps, exports: 'named' },
      { file: 'dist/collectivekv.webgpu.umd.js', format: 'umd', name: 'collectivekvWebGPU', globals: umdGlobals, ...maps, exports: 'named' },
    ],
  },
  {
    input: 'src/index.ts',
    external,
    plugins: [dts({ compilerOptions: { paths: {} } })],
    output: { file: 'dist/collectivekv.d.ts', format: 'es' },
  },
  {
    input: 'src/webgpu.ts',
    external,
    plugins: [dts({ compilerOptions: { paths: {} } })],
    output: { file: 'dist/webgpu.d.ts', format: 'es' },
  },
  {
    input: 'src/internal.ts',
    external,
    plugins: [dts({ compilerOptions: { paths: {} } })],
    output: { file: 'dist/internal.d.ts', format: 'es' },
  },
  {
    // `collectivekv/zoo`: its declarations import the library's from `collectivekv/internal`
    // instead of carrying a second copy of them.
    input: 'src/zoo/index.ts',
    external,
    plugins: [libraryByName(), dts({ compilerOptions: { paths: {} } })],
    output: { file: 'dist/zoo.d.ts', format: 'es' },
  },
  {
    // The command (src/app/cli/main.ts) loads the package by name; Node resolves it to
    // dist/internal.cjs (and dist/webgpu.cjs) through the package's own exports map.
    input: 'src/app/cli/main.ts',
    external: (id) => id === 'collectivekv' || id.startsWith('collectivekv/') || isTfjs(id) || isOptionalPeer(id) || isChartPackage(id) || isNodeBuiltin(id),
    plugins: [libraryByName(), ts()],
    output: { file: 'dist/cli.cjs', format: 'cjs', ...maps, exports: 'named' },
  },
];
