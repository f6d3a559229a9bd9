// Every accessor of ops/util/tfjsInternals.ts, on the backends it applies to (cpu, wasm; the webgpu
// one in test/webgpu/tfjsInternals.test.ts). These tests are the tripwire for a tfjs upgrade: an
// internal that moved makes its accessor throw TfjsInternalMovedError here, naming it, instead of
// breaking some kernel or layer far away.
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { batchedMatMul } from '../../../ops/batchedMatMul/index';
import { MIN_MACS_PER_ENTRY } from '../../../ops/batchedMatMul/wasm';
import {
  activeScope, activeTape, CHECKED_TFJS_VERSION, cpuValues, isTapeOn, takeWasmDataIds, TfjsInternalMovedError, wasmModule, webgpuCpuValues,
} from '../../../ops/util/tfjsInternals';
import { describeEachBackend, maxAbsDiff, randomTensor, useBackend } from '../../util/backends';

describe('tfjsInternals', () => {
  it('was checked against the installed tfjs major version', () => {
    // A new major release needs every accessor re-checked (and CHECKED_TFJS_VERSION updated).
    expect(tf.version_core.split('.')[0]).toBe(CHECKED_TFJS_VERSION.split('.')[0]);
  });

  it('names the internal, the checked and the found version when one moved', () => {
    const error = new TfjsInternalMovedError('X.y');
    expect(error.message).toBe(`tfjs internal X.y moved: collectivekv was checked against tfjs ${CHECKED_TFJS_VERSION}, found ${tf.version_core}`);
    expect(error.name).toBe('TfjsInternalMovedError');
  });

  it('throws TfjsInternalMovedError for backends that lack what an accessor reads', () => {
    const t = { dataId: {}, shape: [1], dtype: 'float32' } as tf.TensorInfo;
    expect(() => cpuValues({} as MathBackendCPU, t)).toThrow(/tfjs internal MathBackendCPU\.data moved/);
    expect(() => wasmModule({} as BackendWasm)).toThrow(/tfjs internal BackendWasm\.wasm\.cwrap moved/);
    expect(() => wasmModule({ wasm: { cwrap: () => null } } as unknown as BackendWasm)).toThrow(/BackendWasm\.wasm\.tfjs\.registerTensor/);
    expect(() => takeWasmDataIds({} as BackendWasm, 1)).toThrow(/tfjs internal BackendWasm\.dataIdNextNumber moved/);
    expect(() => webgpuCpuValues({} as WebGPUBackend, t)).toThrow(/tfjs internal WebGPUBackend\.tensorMap moved/);
  });
});

describeEachBackend('tfjsInternals, engine state', () => {
  it('isTapeOn: off outside a gradient, on inside one, off after it', () => {
    expect(isTapeOn()).toBe(false);
    let inside: boolean | null = null;
    const x = tf.scalar(2);
    const g = tf.grad((v: tf.Tensor) => {
      inside = isTapeOn();
      return tf.square(v) as tf.Scalar;
    })(x);
    expect(inside).toBe(true);
    expect(isTapeOn()).toBe(false);
    tf.dispose([x, g]);
  });

  it('activeTape: one tape per outermost gradient, shared by nested ones', () => {
    const tapes: unknown[] = [];
    const x = tf.scalar(3);
    const f = (v: tf.Tensor) => {
      tapes.push(activeTape());
      return tf.square(v) as tf.Scalar;
    };
    const g1 = tf.grad(f)(x);
    const g2 = tf.grad(f)(x);
    const nested = tf.grad((v: tf.Tensor) => {
      const outer = activeTape();
      const inner = tf.grad((w: tf.Tensor) => {
        tapes.push([outer, activeTape()]);
        return tf.mul(w, v) as tf.Scalar;
      })(v);
      return tf.mul(inner, v) as tf.Scalar;
    })(x);
    const [first, second, [outer, inner]] = tapes as [unknown, unknown, [unknown, unknown]];
    expect(Array.isArray(first)).toBe(true);
    expect(Array.isArray(second)).toBe(true);
    expect(second).not.toBe(first);
    expect(inner).toBe(outer);
    tf.dispose([x, g1, g2, nested]);
  });

  it('activeScope: the innermost open tidy, a new one per tidy', () => {
    const seen: unknown[] = [];
    tf.tidy(() => {
      seen.push(activeScope(), activeScope());
      tf.tidy(() => {
        seen.push(activeScope());
      });
      seen.push(activeScope());
    });
    tf.tidy(() => {
      seen.push(activeScope());
    });
    const [a, aAgain, inner, aAfter, b] = seen;
    expect(a).not.toBeNull();
    expect(typeof a).toBe('object');
    expect(aAgain).toBe(a);
    expect(inner).not.toBe(a);
    expect(aAfter).toBe(a);
    expect(b).not.toBe(a);
  });
});

describe('tfjsInternals, cpu backend', () => {
  beforeAll(() => useBackend('cpu'));

  it('cpuValues reads a tensor\'s values', () => {
    const t = tf.tensor([1.5, -2, 3], [3], 'float32');
    const i = tf.tensor([4, 5], [2], 'int32');
    const backend = tf.backend() as MathBackendCPU;
    expect(Array.from(cpuValues(backend, t) as Float32Array)).toEqual([1.5, -2, 3]);
    expect(cpuValues(backend, i)).toBeInstanceOf(Int32Array);
    expect(Array.from(cpuValues(backend, i) as Int32Array)).toEqual([4, 5]);
    tf.dispose([t, i]);
  });
});

describe('tfjsInternals, wasm backend', () => {
  beforeAll(() => useBackend('wasm'));

  it('takeWasmDataIds hands out ids from the backend\'s own counter', () => {
    const backend = tf.backend() as BackendWasm;
    const ids = takeWasmDataIds(backend, 3);
    expect(ids[1]).toBe(ids[0] + 1);
    expect(ids[2]).toBe(ids[0] + 2);
    // The backend's next tensor gets an id after them: ours never collide with a live tensor's.
    const t = tf.zeros([2]);
    expect(backend.dataIdMap.get(t.dataId)?.id).toBeGreaterThan(ids[2]);
    t.dispose();
  });

  it('wasmModule exposes cwrap, registerTensor and disposeData', () => {
    const m = wasmModule(tf.backend() as BackendWasm);
    expect(typeof m.cwrap).toBe('function');
    expect(typeof m.registerTensor).toBe('function');
    expect(typeof m.disposeData).toBe('function');
    expect(typeof m.cwrap<(...args: unknown[]) => void>('BatchMatMul', null,
      ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number'])).toBe('function');
    expect(wasmModule(tf.backend() as BackendWasm)).toBe(m);
  });

  it('the kernel built on them (batchedMatMul\'s module path) computes the right products and leaks nothing', () => {
    // Above the per-entry threshold and batched: runs cwrap'd BatchMatMul on registered heap views.
    const [batch, m, k, n] = [3, 40, 32, 32];
    expect(m * k * n).toBeGreaterThanOrEqual(MIN_MACS_PER_ENTRY);
    const a = randomTensor([batch, m, k], 1);
    const b = randomTensor([batch, k, n], 2);
    const before = (tf.backend() as BackendWasm).numDataIds();
    const got = batchedMatMul(a, b);
    const want = tf.matMul(a, b);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-4);
    tf.dispose([got, want]);
    expect((tf.backend() as BackendWasm).numDataIds()).toBe(before);
    tf.dispose([a, b]);
  });
});
