/** @jest-environment ./test/util/webgpuEnvironment.js */
import * as tf from '@tensorflow/tfjs-core';
import { ROUTE_TOP1, routeTop1 } from '../../ops/routeTop1/index';
import { compareWithCpu, describeWebGPU, leakAcrossRepeats, randomFloats, seeded } from '../util/webgpu';

const route = (data: Float32Array, shape: number[]) => () => {
  const r = routeTop1(tf.tensor(data, shape));
  return [r.index, r.gate];
};

describeWebGPU('routeTop1', () => {
  it('runs its own webgpu kernel', () => {
    expect(tf.getBackend()).toBe('webgpu');
    expect(tf.getKernel(ROUTE_TOP1, 'webgpu')).toBeDefined();
  });

  // Pool sizes around the workgroup size (64) and its multiples; row counts not multiples of 64.
  it.each([
    [[1, 1]], [[3, 255]], [[70, 256]], [[5, 257]], [[2, 4096]], [[257]], [[2, 3, 65]], [[1, 1, 2, 129]],
  ])('matches cpu for logits %j', async (shape) => {
    const data = randomFloats(shape.reduce((a, b) => a * b, 1), shape.length * 1000 + shape[shape.length - 1], 4);
    const [index, gate] = await compareWithCpu(route(data, shape));
    expect(index).toBe(0);
    expect(gate).toBeLessThan(1e-4);
  });

  it('breaks ties to the lowest index, as tf.argMax', async () => {
    const rand = seeded(7);
    const data = Float32Array.from({ length: 9 * 300 }, () => Math.floor(rand() * 3)); // many equal maxima
    const [index, gate] = await compareWithCpu(route(data, [9, 300]));
    expect(index).toBe(0);
    expect(gate).toBeLessThan(1e-6); // float32 exp vs the cpu kernel's float64 Math.exp
  });

  it('picks column 0 of an all -Infinity row and the finite maximum otherwise', async () => {
    const data = new Float32Array(2 * 100).fill(-Infinity);
    data[100 + 77] = -5;
    const r = routeTop1(tf.tensor(data, [2, 100]));
    expect(Array.from(await r.index.data())).toEqual([0, 77]);
    tf.dispose([r.index, r.gate]);
  });

  it('does not leak tensors or GPU buffers', async () => {
    const data = randomFloats(100 * 257, 3);
    const growth = await leakAcrossRepeats(async () => {
      const [index, gate] = tf.tidy(() => {
        const r = routeTop1(tf.tensor(data, [100, 257]));
        return [r.index, r.gate];
      });
      await Promise.all([index.data(), gate.data()]);
      tf.dispose([index, gate]);
    });
    expect(growth).toEqual({ tensors: 0, buffers: 0 });
  });
});
