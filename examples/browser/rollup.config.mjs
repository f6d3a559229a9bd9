// Bundles the browser demo page (examples/browser/app.ts) into one script with rollup, the project's
// bundler. Used by scripts/browser-demo-build.ts, or directly:
//   npx rollup -c examples/browser/rollup.config.mjs
//
// tfjs: its packages' "module" entries are many small ES modules that import CommonJS packages
// (long, seedrandom), which rollup cannot read without the commonjs plugin (not a dependency here).
// Each tfjs package also ships a flat ES bundle (dist/*.fesm.js) with those inlined; we use those.
// What is still left:
//  - the wasm backend's emscripten glue imports Node built-ins on its Node code path only -> empty modules;
//  - the cpu backend imports seedrandom for its Multinomial kernel only (never used here) -> a stub that
//    says so if it is ever called.
// 'collectivekv' and 'collectivekv/webgpu' resolve to the library's source, as tsconfig's paths do for type checking.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import typescript from '@rollup/plugin-typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tfjs = (pkg, file) => path.join(root, 'node_modules/@tensorflow', pkg, 'dist', file);

const ALIASES = {
  '@tensorflow/tfjs-core': tfjs('tfjs-core', 'tf-core.fesm.js'),
  '@tensorflow/tfjs-layers': tfjs('tfjs-layers', 'tf-layers.fesm.js'),
  '@tensorflow/tfjs-backend-cpu': tfjs('tfjs-backend-cpu', 'tf-backend-cpu.fesm.js'),
  '@tensorflow/tfjs-backend-wasm': tfjs('tfjs-backend-wasm', 'tf-backend-wasm.fesm.js'),
  '@tensorflow/tfjs-backend-webgpu': tfjs('tfjs-backend-webgpu', 'tf-backend-webgpu.fesm.js'),
  collectivekv: path.join(root, 'src/index.ts'),
  'collectivekv/webgpu': path.join(root, 'src/webgpu.ts'),
};

const NODE_ONLY = new Set(['fs', 'path', 'os', 'perf_hooks', 'crypto', 'util', 'worker_threads', 'readline', 'zlib', 'http', 'url',
  'child_process', 'events', 'stream', 'net', 'ioredis']);
const EMPTY = '\0empty-module';
const SEEDRANDOM = '\0seedrandom-stub';

function browserResolve() {
  return {
    name: 'collectivekv-browser-resolve',
    resolveId(id) {
      if (id in ALIASES) return ALIASES[id];
      if (id === 'seedrandom') return SEEDRANDOM;
      if (NODE_ONLY.has(id.replace(/^node:/, ''))) return EMPTY;
      return null;
    },
    load(id) {
      if (id === EMPTY) return 'export default {};';
      if (id === SEEDRANDOM) {
        return "export function alea() { throw new Error('seedrandom is not bundled in the browser demo'); }";
      }
      return null;
    },
  };
}

export function demoConfig(outFile = path.join(root, 'examples/browser/dist/app.js')) {
  return {
    input: path.join(root, 'examples/browser/app.ts'),
    plugins: [
      browserResolve(),
      typescript({
        tsconfig: path.join(root, 'tsconfig.json'),
        include: ['ops/**/*.ts', 'layers/**/*.ts', 'src/**/*.ts', 'examples/**/*.ts'].map((g) => path.join(root, g)),
        exclude: ['test/**', 'node_modules/**'],
        compilerOptions: { noEmit: false, declaration: false, module: 'esnext', outDir: undefined },
        outputToFilesystem: false,
      }),
    ],
    // Node-only library modules (Redis store, file readers) are imported but never run in the page.
    onwarn(warning, warn) {
      if (warning.code === 'CIRCULAR_DEPENDENCY' || warning.code === 'THIS_IS_UNDEFINED') return;
      if (warning.code === 'MISSING_EXPORT' && warning.exporter === EMPTY) return;
      warn(warning);
    },
    output: { file: outFile, format: 'es', sourcemap: true, inlineDynamicImports: true },
  };
}

export default demoConfig();
