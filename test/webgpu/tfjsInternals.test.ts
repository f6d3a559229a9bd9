/** @jest-environment ./test/util/webgpuEnvironment.js */
// The webgpu accessor of ops/util/tfjsInternals.ts (the others: test/ops/util/tfjsInternals.test.ts),
// plus the engine-state ones on this backend. Skips visibly without a WebGPU adapter.
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { activeScope, activeTape, isTapeOn, webgpuCpuValues } from '../../ops/util/tfjsInternals';
import { describeWebGPU, indicesOnGpu } from '../util/webgpu';

describeWebGPU('tfjsInternals', () => {
  it('webgpuCpuValues: a tensor\'s values while they are still on the CPU, null once only a GPU buffer holds them', () => {
    const backend = tf.backend() as WebGPUBackend;
    const onCpu = tf.tensor([3, 1, 2], [3], 'int32');
    const values = webgpuCpuValues(backend, onCpu);
    expect(values).toBeInstanceOf(Int32Array);
    expect(Array.from(values as Int32Array)).toEqual([3, 1, 2]);
    const onGpu = indicesOnGpu([0, 1]);
    expect(webgpuCpuValues(backend, onGpu)).toBeNull();
    tf.dispose([onCpu, onGpu]);
  });

  it('reads the engine state as on cpu and wasm', () => {
    let tape: unknown = null;
    let on = false;
    const x = tf.scalar(2);
    const g = tf.grad((v: tf.Tensor) => {
      tape = activeTape();
      on = isTapeOn();
      return tf.square(v) as tf.Scalar;
    })(x);
    expect(on).toBe(true);
    expect(Array.isArray(tape)).toBe(true);
    let scope: unknown = null;
    tf.tidy(() => {
      scope = activeScope();
    });
    expect(scope).not.toBeNull();
    tf.dispose([x, g]);
  });
});
