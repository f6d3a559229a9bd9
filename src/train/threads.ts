// Both (all) cores for the wasm backend in Node. tfjs-backend-wasm ships a threaded-SIMD build whose
// XNNPACK kernels (matMul, conv, ...) split work over a pthreadpool, but in Node it never runs:
//  1. the WASM_HAS_MULTITHREAD_SUPPORT flag is false under Node, so the single-threaded build loads;
//  2. the threaded build's pthread workers are started from a `blob:` URL, which Node's Worker
//     refuses (ERR_WORKER_PATH), and the worker then loads the main script from a Blob, too;
//  3. the build sizes its pool as (logical cores / 2), capped by setThreadsCount: 1 on 2 cores;
//  4. running pthreads `ref()` their workers, so a process with a live pool would never exit.
// useWasmThreads works around all four from the outside (no file of tfjs is changed or copied):
// it sets the flag, hands the glue a Worker class that starts tfjs's own pthread worker script
// (wasm-out/*.worker.js, evaluated in place) and points it at tfjs's own glue file, reports
// 2 x n logical cores while the module starts, keeps the workers unreferenced, and restores the
// flag, the Worker global and os.cpus afterwards. Node only: builtins come from
// process.getBuiltinModule, so this module stays importable (and unused) in browsers.
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** The most threads: the threaded build pre-starts 8 pthread workers and its backend caps its pool at 8. */
export const MAX_WASM_THREADS = 8;

const FLAG = 'WASM_HAS_MULTITHREAD_SUPPORT';
const GLUE = 'wasm-out/tfjs-backend-wasm-threaded-simd.js';
const WORKER = 'wasm-out/tfjs-backend-wasm-threaded-simd.worker.js';
const BUNDLE = /[\\/]@tensorflow[\\/]tfjs-backend-wasm[\\/]dist[\\/]tf-backend-wasm\.node\.js$/;

type NodeOs = typeof import('node:os');
type NodePath = typeof import('node:path');
type NodeFs = typeof import('node:fs');
type NodeModule = typeof import('node:module');
type NodeBuffer = typeof import('node:buffer');
type WorkerThreads = typeof import('node:worker_threads');

interface Builtins {
  os: NodeOs;
  path: NodePath;
  fs: NodeFs;
  module: NodeModule;
  buffer: NodeBuffer;
  workerThreads: WorkerThreads;
}

/** What this process's wasm backend was started with (one wasm backend per process). */
let started: { threads: number } | null = null;

function builtins(): Builtins | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const get = proc?.getBuiltinModule;
  if (typeof get !== 'function') return null;
  const workerThreads = get('node:worker_threads') as WorkerThreads | undefined;
  if (workerThreads?.Worker == null || typeof SharedArrayBuffer === 'undefined' || typeof Atomics === 'undefined') return null;
  return {
    os: get('node:os') as NodeOs, path: get('node:path') as NodePath, fs: get('node:fs') as NodeFs,
    module: get('node:module') as NodeModule, buffer: get('node:buffer') as NodeBuffer, workerThreads,
  };
}

/**
 * The folder of the tfjs-backend-wasm copy this process loaded (found in Node's module cache, so the
 * glue and worker files match the running bundle), else the one `require` finds from the working folder.
 */
function wasmPackageDir(b: Builtins): string {
  const req = b.module.createRequire(b.path.join(process.cwd(), 'noop.js'));
  const loaded = Object.keys(req.cache ?? {}).find((file) => BUNDLE.test(file));
  if (loaded != null) return b.path.dirname(b.path.dirname(loaded));
  try {
    return b.path.dirname(req.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  } catch {
    throw new Error(`useWasmThreads: cannot find @tensorflow/tfjs-backend-wasm from ${process.cwd()}`);
  }
}

/** The wasm backend's XNNPACK thread count (its pthreadpool, the one its kernels run on). */
function backendThreads(): number {
  const backend = tf.findBackend('wasm') as BackendWasm | null;
  if (backend == null) throw new Error('useWasmThreads: the wasm backend is not initialized');
  return backend.wasm.tfjs.getThreadsCount();
}

/**
 * Runs the wasm backend's kernels on `n` threads in Node: the calling thread and n - 1 pthread
 * workers, over tfjs-backend-wasm's threaded-SIMD build (which tfjs itself does not start in Node).
 * Opt-in; call it once, after `import '@tensorflow/tfjs-backend-wasm'` and before
 * `tf.setBackend('wasm')` or anything else that initializes the wasm backend. It initializes the
 * wasm backend (the active backend stays whatever was set before; none set: wasm becomes active).
 *
 * n = 1 starts the default single-threaded SIMD build (no workers). Threads speed up tfjs's XNNPACK
 * kernels (matMul of unbatched or batch-1 operands, conv2d, ...); element-wise kernels and
 * collectivekv's JS kernels stay on the calling thread. The build pre-starts 8 pthread workers
 * whatever n is (about 0.3 s and 65 MB); they never keep the process alive. The pool's threads
 * spin while they wait for work, and every threaded kernel waits for all of them: on a machine whose
 * other cores are busy, n > 1 is slower, and only XNNPACK's kernels are threaded (measurements:
 * docs/threads.md).
 * Threaded kernels may sum in another order: results match the single-threaded build to float
 * rounding, not bit for bit.
 *
 * @param n threads (1..8); more than the machine's cores only adds contention.
 * @returns the threads XNNPACK actually runs on (read back from the backend); 0 where this does
 *   nothing: outside Node (browsers start tfjs's threaded build themselves when cross-origin
 *   isolated; use tfjs-backend-wasm's setThreadsCount there).
 */
export async function useWasmThreads(n: number): Promise<number> {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_WASM_THREADS) {
    throw new Error(`useWasmThreads: n must be an integer from 1 to ${MAX_WASM_THREADS}, got ${String(n)}`);
  }
  const found = builtins();
  if (found == null) {
    console.warn('useWasmThreads: does nothing here: it needs Node.js >= 20.16 (process.getBuiltinModule, worker_threads, SharedArrayBuffer); '
      + "in browsers tfjs-backend-wasm starts its threaded build itself (cross-origin isolated pages; see its setThreadsCount)");
    return 0;
  }
  const b: Builtins = found;
  const engine = tf.engine();
  if (engine.findBackendFactory('wasm') == null) {
    throw new Error("useWasmThreads: the wasm backend is not registered; import '@tensorflow/tfjs-backend-wasm' first");
  }
  if (started != null) {
    if (started.threads === n) return backendThreads();
    throw new Error(`useWasmThreads: the wasm backend already runs ${started.threads} thread(s); one process starts it once (asked for ${n})`);
  }
  if (engine.registry['wasm'] != null) {
    throw new Error("useWasmThreads: the wasm backend is already initialized; call useWasmThreads(n) before tf.setBackend('wasm') or tf.ready()");
  }
  const previous = engine.backendName as string | null | undefined;
  if (n === 1) {
    await initialize(previous);
    started = { threads: 1 };
    return backendThreads();
  }

  const dir = wasmPackageDir(b);
  const gluePath = b.path.join(dir, GLUE);
  const workerPath = b.path.join(dir, WORKER);
  if (!b.fs.existsSync(gluePath) || !b.fs.existsSync(workerPath)) {
    throw new Error(`useWasmThreads: ${dir} lacks the threaded build (${GLUE}); is @tensorflow/tfjs-backend-wasm >= 4.x installed whole?`);
  }
  const req = b.module.createRequire(workerPath);
  const contents = (req(workerPath) as { wasmWorkerContents?: unknown }).wasmWorkerContents;
  if (typeof contents !== 'string') throw new Error(`useWasmThreads: ${workerPath} does not export wasmWorkerContents`);
  // tfjs escapes the newlines inside the script's string literals the same way before making its Blob.
  const workerCode = contents.replace(/\n/g, '\\n');
  const workerBytes = b.buffer.Buffer.byteLength(workerCode);
  let failure: Error | null = null;

  const NodeWorker = b.workerThreads.Worker;
  // The glue's pthread workers: tfjs's blob: URL of its worker script becomes that script, evaluated.
  class PthreadWorker extends NodeWorker {
    constructor(url: string | URL, options?: import('node:worker_threads').WorkerOptions) {
      const href = String(url);
      if (!href.startsWith('blob:')) {
        super(url, options);
        return;
      }
      const blob = b.buffer.resolveObjectURL(href);
      if (blob == null || blob.size !== workerBytes) {
        failure = new Error(`useWasmThreads: the pthread worker script of the loaded tfjs-backend-wasm differs from ${workerPath} (two versions installed?)`);
        throw failure;
      }
      super(workerCode, { eval: true });
    }

    // The first message loads the glue; tfjs sends it as a Blob, which a Node worker cannot import.
    override postMessage(message: unknown, transferList?: readonly import('node:worker_threads').TransferListItem[]): void {
      const m = message as { cmd?: string; urlOrBlob?: unknown } | null;
      if (m != null && m.cmd === 'load' && typeof m.urlOrBlob !== 'string') message = { ...m, urlOrBlob: gluePath };
      super.postMessage(message, transferList);
    }

    // Running pthreads ref() their worker; the pool's threads never end, so they would hold the process.
    override ref(): void {}
  }

  const g = globalThis as Record<string, unknown>;
  const workerDescriptor = Object.getOwnPropertyDescriptor(g, 'Worker');
  const cpus = b.os.cpus;
  const flag = await tf.env().getAsync(FLAG);
  // The glue assigns `globalThis.Worker = worker_threads.Worker` as it starts: keep ours in place.
  Object.defineProperty(g, 'Worker', { configurable: true, enumerable: false, get: () => PthreadWorker, set: () => undefined });
  // The build's pool is (logical cores / 2) threads, read once while the module starts.
  const real = cpus.call(b.os);
  b.os.cpus = () => Array.from({ length: 2 * n }, (_, i) => real[i % real.length]);
  tf.env().set(FLAG, true);
  try {
    await initialize(previous);
  } catch (e) {
    throw failure ?? e;
  } finally {
    b.os.cpus = cpus;
    tf.env().set(FLAG, flag);
    if (workerDescriptor != null) Object.defineProperty(g, 'Worker', workerDescriptor);
    else delete g['Worker'];
  }
  started = { threads: n };
  return backendThreads();
}

/** Initializes wasm through tf.setBackend, then gives the previously active backend back. */
async function initialize(previous: string | null | undefined): Promise<void> {
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('useWasmThreads: the wasm backend failed to initialize (see the warning above)');
  if (previous != null && previous !== 'wasm') await tf.setBackend(previous);
}
