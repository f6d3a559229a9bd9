/** @jest-environment ./test/util/webgpuEnvironment.js */
// Regressions found outside the kernel tests. The browser demo's SASRec (d=32, window 40,
// CollectiveKVAttention) run forward on webgpu once corrupted a live int32 tensor created before it
// and made a later tfjs Gather fail to create its buffer. Checked here on the demo's exact options:
// the earlier tensor reads back intact and the output equals the cpu backend's.
import * as tf from '@tensorflow/tfjs-core';
import { describeWebGPU, maxAbs } from '../util/webgpu';
import { buildSasrec } from '../../src/zoo/sequential/sasrec';
import { DEMO_SASREC } from '../../examples/browser/model';

async function onBackend<T>(backend: 'cpu' | 'webgpu', f: () => Promise<T>): Promise<T> {
  const before = tf.getBackend();
  await tf.setBackend(backend);
  try {
    return await f();
  } finally {
    await tf.setBackend(before);
  }
}

describeWebGPU('demo SASRec forward', () => {
  it('leaves earlier tensors intact and matches cpu', async () => {
    const opts = { ...DEMO_SASREC, dropout: 0 };
    const weights = await onBackend('cpu', async () => {
      const s = buildSasrec(opts);
      tf.tidy(() => { s.model.apply(tf.ones([1, opts.maxLength])); });
      const w = s.model.getWeights().map((t) => ({ values: Float32Array.from(t.dataSync()), shape: t.shape.slice() }));
      s.model.dispose();
      return w;
    });
    const input = Array.from({ length: opts.maxLength }, (_, i) => (i < 10 ? 0 : 1 + ((i * 7) % opts.numItems)));
    const run = (backend: 'cpu' | 'webgpu') => onBackend(backend, async () => {
      const ids = tf.tensor2d([[1]], [1, 1], 'int32');
      const s = buildSasrec(opts);
      tf.tidy(() => { s.model.apply(tf.ones([1, opts.maxLength])); });
      const fresh = weights.map((w) => tf.tensor(w.values, w.shape));
      s.model.setWeights(fresh);
      tf.dispose(fresh);
      const x = tf.tensor2d([input], [1, opts.maxLength], 'int32');
      const out = s.model.apply(x) as tf.Tensor;
      const values = Float32Array.from(await out.data());
      const check = tf.notEqual(ids, 0);
      const idsOk = Array.from(await check.data());
      const idsValues = Array.from(await ids.data());
      // A later tfjs gather (the second failure of the report) must still run.
      const g = tf.gather(tf.tensor1d([5, 6, 7]), tf.tensor1d([2], 'int32'));
      const gathered = Array.from(await g.data());
      tf.dispose([ids, x, out, check, g]);
      s.model.dispose();
      return { values, idsOk, idsValues, gathered };
    });
    const cpu = await run('cpu');
    const gpu = await run('webgpu');
    expect(gpu.idsValues).toEqual([1]);
    expect(gpu.idsOk).toEqual([1]);
    expect(gpu.gathered).toEqual([7]);
    expect(gpu.values.length).toBe(cpu.values.length);
    expect(maxAbs(gpu.values, cpu.values)).toBeLessThan(1e-4);
  });
});
