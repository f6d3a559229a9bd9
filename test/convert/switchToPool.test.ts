// switchToPool: a CollectiveKVAttention trained in its 'full' phase becomes 'pooled' with the
// k-means pool of its own warm-up K/V; the forward stays within the quantization error.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';
import { CollectiveKVAttention } from '../../layers/index';
import { switchToPool } from '../../src/convert/index';

function build(poolSize: number, extra: Record<string, unknown> = {}) {
  const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, userDim: 1, poolSize, poolSeed: 3, kvPhase: 'full', name: 'att', ...extra });
  const input = tfl.input({ shape: [8, 6] });
  const model = tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor });
  return { layer, model };
}

describeEachBackend('switchToPool', () => {
  test('with a row per token the switched forward equals the warm-up forward (zero quantization error)', () => {
    const { layer, model } = build(32);
    const x = randomTensor([4, 8, 6], 1);
    const before = model.predict(x) as tf.Tensor;
    const [report] = switchToPool([layer], () => tf.dispose(model.predict(x)), { seed: 2 });
    expect(layer.kvPhase).toBe('pooled');
    expect(report.key?.tokens).toBe(32);
    expect(report.key?.relativeInertia).toBeLessThan(1e-6);
    expect(report.key?.routingAgreement).toBe(1);
    const after = model.predict(x) as tf.Tensor;
    expect(maxAbsDiff(before, after)).toBeLessThan(1e-4);
    tf.dispose([x, before, after]);
    model.dispose();
  });

  test('with fewer rows every token routes to its nearest centroid (agreement 1) and the k-means inertia is partial', () => {
    const { layer, model } = build(4);
    const x = randomTensor([4, 8, 6], 5);
    const before = model.predict(x) as tf.Tensor;
    const [report] = switchToPool([layer], () => tf.dispose(model.predict(x)));
    for (const side of [report.key, report.value]) {
      expect(side?.routingAgreement).toBe(1);
      expect(side?.relativeInertia).toBeGreaterThan(0);
      expect(side?.relativeInertia).toBeLessThan(1);
    }
    const after = model.predict(x) as tf.Tensor;
    const diff = maxAbsDiff(before, after);
    expect(diff).toBeGreaterThan(0);
    expect(Number.isFinite(diff)).toBe(true);
    tf.dispose([x, before, after]);
    model.dispose();
  });

  test('a sample with fewer valid tokens than poolSize fails naming the layer, and the layer stays in its full phase', () => {
    const { layer, model } = build(64);
    const x = randomTensor([2, 8, 6], 1);
    expect(() => switchToPool([layer], () => tf.dispose(model.predict(x)))).toThrow(/runSample.*poolSize = 64.*'att'.*received 16 tokens/);
    expect(layer.kvPhase).toBe('full');
    tf.dispose(x);
    model.dispose();
  });

  test('layers already pooled are left alone; bad options are named', () => {
    const { layer, model } = build(4, { kvPhase: 'pooled' });
    let ran = false;
    expect(switchToPool([layer], () => { ran = true; })).toEqual([]);
    expect(ran).toBe(false);
    layer.setKVPhase('full');
    expect(() => switchToPool([layer], () => {}, { kmeansIterations: 0 })).toThrow(/options.kmeansIterations/);
    model.dispose();
  });

  test('a layer without warm-up weights cannot enter the full phase', () => {
    expect(() => new CollectiveKVAttention({ numHeads: 2, keyDim: 4, warmupWeights: false, kvPhase: 'full' }))
      .toThrow(/'kvPhase' must be 'pooled' \(this layer has no warm-up weights/);
    expect(() => new CollectiveKVAttention({ numHeads: 2, keyDim: 4, kvPhase: 'half' as never })).toThrow(/kvPhase/);
  });
});
