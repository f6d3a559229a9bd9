/** @jest-environment ./test/util/webgpuEnvironment.js */
import * as tf from '@tensorflow/tfjs-core';
import { routeTop1 } from '../../ops/routeTop1/index';
import { compareWithCpu, describeWebGPU, randomFloats } from '../util/webgpu';

describeWebGPU('routeTop1', () => {
  it('matches cpu', async () => {
    const logits = randomFloats(5 * 257, 1);
    const [di, dg] = await compareWithCpu(() => {
      const r = routeTop1(tf.tensor(logits, [5, 257]));
      return [r.index, r.gate];
    });
    expect(di).toBe(0);
    expect(dg).toBeLessThan(1e-4);
  });
});
