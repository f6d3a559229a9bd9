// useWasmThreads: the wasm backend on 1, 2 and 3 threads gives the same training step. A process
// starts its wasm backend once, so each thread count runs in its own `node` child (threadsChild.ts).
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { MAX_WASM_THREADS, useWasmThreads } from '../../src/train/threads';

interface ChildResult {
  threads: number;
  again: number;
  other: string;
  loss: number;
  lossAfter: number;
  gradients: Record<string, number[]>;
  elementwise: number[];
  leaked: number;
}

const ROOT = resolve(__dirname, '../..');
const CHILD_TIMEOUT_MS = 90_000;

/** Runs the child to its end: it must exit by itself with status 0 (no worker keeps it alive). */
function runChild(threads: number): Promise<ChildResult> {
  return new Promise((done, fail) => {
    execFile(process.execPath, ['--import', 'tsx', resolve(__dirname, 'threadsChild.ts'), String(threads)],
      { cwd: ROOT, timeout: CHILD_TIMEOUT_MS, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
        if (error != null) {
          const how = error.killed ? `still running after ${CHILD_TIMEOUT_MS} ms (killed)` : `exit ${String(error.code)}`;
          fail(new Error(`child on ${threads} thread(s): ${how}\n${stderr}`));
          return;
        }
        done(JSON.parse(stdout.trim().split('\n').pop() as string) as ChildResult);
      });
  });
}

const maxAbs = (xs: number[]) => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
const maxAbsDiff = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

describe('useWasmThreads', () => {
  it.each([0, -1, 1.5, MAX_WASM_THREADS + 1, Number.NaN, '2' as unknown as number])('rejects n = %p, naming the argument', async (n) => {
    await expect(useWasmThreads(n)).rejects.toThrow(`useWasmThreads: n must be an integer from 1 to ${MAX_WASM_THREADS}, got ${String(n)}`);
  });

  it('asks for the wasm backend to be imported first (nothing here imports it)', async () => {
    await expect(useWasmThreads(2)).rejects.toThrow("useWasmThreads: the wasm backend is not registered; import '@tensorflow/tfjs-backend-wasm' first");
  });

  it('does nothing, says why and returns 0 without Node >= 20.16 builtins', async () => {
    const proc = process as unknown as { getBuiltinModule?: unknown };
    const saved = proc.getBuiltinModule;
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      proc.getBuiltinModule = undefined;
      await expect(useWasmThreads(2)).resolves.toBe(0);
      expect(warn).toHaveBeenCalledWith(expect.stringContaining('useWasmThreads: does nothing here: it needs Node.js >= 20.16'));
    } finally {
      proc.getBuiltinModule = saved;
      warn.mockRestore();
    }
  });

  describe('a training step on 1, 2 and 3 threads (child processes)', () => {
    let results: ChildResult[];

    beforeAll(async () => {
      results = [];
      // One after another: each child's threads get the machine's cores.
      for (const n of [1, 2, 3]) results.push(await runChild(n));
    }, 4 * CHILD_TIMEOUT_MS);

    it('runs the backend on the threads asked for, once per process', () => {
      expect(results.map((r) => r.threads)).toEqual([1, 2, 3]);
      expect(results.map((r) => r.again)).toEqual([1, 2, 3]);
      expect(results[0].other).toBe('useWasmThreads: the wasm backend already runs 1 thread(s); one process starts it once (asked for 2)');
      expect(results[1].other).toBe('useWasmThreads: the wasm backend already runs 2 thread(s); one process starts it once (asked for 1)');
    });

    // Tolerance: XNNPACK splits a product's output tiles over threads, so each sum keeps its order and
    // the results have been identical; threaded kernels are still allowed to reorder a reduction, so
    // loss and gradients must agree to 1e-5 of their magnitude. Element-wise kernels: identical.
    it('gives the same loss, gradients and updated loss (to 1e-5 relative)', () => {
      const [one, ...more] = results;
      for (const r of more) {
        expect(Math.abs(r.loss - one.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(one.loss));
        expect(Math.abs(r.lossAfter - one.lossAfter)).toBeLessThanOrEqual(1e-5 * Math.abs(one.lossAfter));
        expect(Object.keys(r.gradients).sort()).toEqual(['b1', 'b2', 'w1', 'w2']);
        for (const [name, g] of Object.entries(one.gradients)) {
          expect(r.gradients[name]).toHaveLength(g.length);
          expect(maxAbsDiff(r.gradients[name], g)).toBeLessThanOrEqual(1e-5 * maxAbs(g));
        }
      }
      expect(one.lossAfter).toBeLessThan(one.loss);
    });

    it('gives identical element-wise results', () => {
      for (const r of results.slice(1)) expect(r.elementwise).toEqual(results[0].elementwise);
    });

    it('leaks no tensor', () => {
      expect(results.map((r) => r.leaked)).toEqual([0, 0, 0]);
    });
  });
});
