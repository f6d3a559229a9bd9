/** @jest-environment ./test/util/webgpuEnvironment.js */
// fusedRoutingLoss on webgpu: the forward (loss and the saved meanProb) and the gradient kernel
// against the cpu kernels, over pool sizes around the workgroup size, masks of every dtype, zero
// weights, all-padding batches; finite differences on webgpu; no leaks.
import * as tf from '@tensorflow/tfjs-core';
import { ROUTING_LOSS, ROUTING_LOSS_GRAD, fusedRoutingLoss } from '../../ops/routingLoss/index';
import { compareWithCpu, describeWebGPU, finiteDifferenceErrorAsync, leakAcrossRepeats, randomFloats, seeded } from '../util/webgpu';

type MaskKind = 'none' | 'float32' | 'int32' | 'bool' | 'padding-only';

/** A mask over `rows` with about a third padding (none: null; padding-only: all 0). */
function maskOf(kind: MaskKind, shape: number[]): tf.Tensor | null {
  if (kind === 'none') return null;
  const rows = shape.reduce((a, b) => a * b, 1);
  const rand = seeded(rows + 17);
  const values = Array.from({ length: rows }, () => (kind === 'padding-only' ? 0 : rand() < 0.33 ? 0 : 1));
  return tf.tensor(values, shape, kind === 'padding-only' ? 'float32' : kind);
}

/** The loss, the saved meanProb (second kernel output) and d loss / d logits, as one list. */
function lossAndGradient(logitValues: Float32Array, shape: number[], kind: MaskKind, weights: { peakWeight: number; balanceWeight: number }): tf.Tensor[] {
  const logits = tf.tensor(logitValues, shape);
  const mask = maskOf(kind, shape.slice(0, -1));
  const valid = mask ?? tf.ones(shape.slice(0, -1));
  const attrs = weights as unknown as tf.NamedAttrMap;
  const outputs = tf.engine().runKernel(ROUTING_LOSS, { logits, mask: valid }, attrs) as tf.Tensor[];
  const grad = tf.grad((x: tf.Tensor) => fusedRoutingLoss(x, mask, weights))(logits);
  return [...outputs, grad];
}

const BOTH = { peakWeight: 0.01, balanceWeight: 1 };

describeWebGPU('fusedRoutingLoss kernels', () => {
  it('both kernels are registered for webgpu (so the op does not take its composite)', () => {
    expect(tf.getKernel(ROUTING_LOSS, 'webgpu')).toBeDefined();
    expect(tf.getKernel(ROUTING_LOSS_GRAD, 'webgpu')).toBeDefined();
  });

  // Rows not a multiple of 64, pool sizes 1, 63, 255, 256, 257 and a 4096-row pool.
  it.each([
    [[1, 1, 1], 'float32'], [[2, 35, 63], 'float32'], [[3, 5, 255], 'int32'], [[70, 256], 'bool'], [[2, 3, 257], 'none'], [[9, 4096], 'float32'],
  ] as [number[], MaskKind][])('shape %j, mask %s: loss, meanProb and gradient match cpu', async (shape, kind) => {
    const values = randomFloats(shape.reduce((a, b) => a * b, 1), shape.length * 100 + shape[shape.length - 1], 3);
    const diffs = await compareWithCpu(() => lossAndGradient(values, shape, kind, BOTH));
    console.log(`routingLoss ${JSON.stringify(shape)} ${kind} webgpu vs cpu max abs error [loss, meanProb, dlogits]`, diffs);
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it.each([
    [{ peakWeight: 0, balanceWeight: 1 }], [{ peakWeight: 0.5, balanceWeight: 0 }], [{ peakWeight: 0, balanceWeight: 0 }],
  ])('weights %j match cpu', async (weights) => {
    const values = randomFloats(4 * 6 * 19, 5, 2);
    const diffs = await compareWithCpu(() => lossAndGradient(values, [4, 6, 19], 'float32', weights));
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it('an all-padding batch gives loss 0 and a zero gradient, as cpu', async () => {
    const values = randomFloats(5 * 7, 6);
    const diffs = await compareWithCpu(() => lossAndGradient(values, [5, 7], 'padding-only', BOTH));
    expect(Math.max(...diffs)).toBeLessThan(1e-6);
  });

  it('gradient agrees with finite differences on webgpu', async () => {
    // Distinct logits spaced well above eps, so the finite-difference step never changes the argmax.
    const values = Float32Array.from({ length: 6 * 11 }, (_, i) => ((i * 37) % 66) / 20 - 1.6);
    const mask = tf.tensor([1, 1, 0, 1, 1, 1]);
    const x = tf.tensor(values, [6, 11]);
    const err = await finiteDifferenceErrorAsync((t) => fusedRoutingLoss(t, mask, { peakWeight: 0.3, balanceWeight: 1 }), x, 1e-2, 66);
    expect(err).toBeLessThan(2e-3);
    tf.dispose([mask, x]);
  });

  it('forward and gradient do not leak tensors or GPU buffers', async () => {
    const x = tf.tensor(randomFloats(3 * 8 * 33, 7), [3, 8, 33]);
    const mask = maskOf('float32', [3, 8]);
    const growth = await leakAcrossRepeats(async () => {
      const [loss, grad] = tf.tidy(() => {
        const f = (t: tf.Tensor) => fusedRoutingLoss(t, mask, BOTH);
        return [f(x), tf.grad(f)(x)];
      });
      await Promise.all([loss.data(), grad.data()]);
      tf.dispose([loss, grad]);
    });
    expect(growth).toEqual({ tensors: 0, buffers: 0 });
    tf.dispose([x, mask as tf.Tensor]);
  });
});
