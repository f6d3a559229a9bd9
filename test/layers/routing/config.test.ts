// Router configs shared by both routers: the options removed in 0.2 fail naming the option (in
// arguments as in saved configs, for CollectiveKVAttention and GlobalKVPool alike), and the flat
// options CLIs give map to a full config.
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { CollectiveKVAttention, GlobalKVPool, RemovedOptionError, routerFromFlatOptions } from '../../../layers/index';

function removedError(f: () => unknown): RemovedOptionError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(RemovedOptionError);
    return e as RemovedOptionError;
  }
  throw new Error('expected a RemovedOptionError');
}

describe('removed options', () => {
  beforeAll(() => useBackend('cpu'));
  const base = { numHeads: 1, keyDim: 2 };
  test.each([
    [{ routingBiasRate: 0.01 }, 'routingBiasRate', /^CollectiveKVAttention: option 'routingBiasRate' was removed in 0\.2 \(it gave no gain and trained 1\.7x slower, see docs\/routing\.md\); retrain without it$/],
    [{ routingBiasRate: 0 }, 'routingBiasRate', /option 'routingBiasRate' was removed/],
    [{ routerDim: 32 }, 'routerDim', /^CollectiveKVAttention: option 'routerDim' was removed in 0\.2 \(one run never justified the low-rank router, see docs\/routing\.md\); retrain without it$/],
    [{ router: 'nearest' }, 'router', /^CollectiveKVAttention: router 'nearest' was removed in 0\.2 \('nearest-product' routes as well and faster, see docs\/routing\.md\); retrain with router 'dense' or 'nearest-product'$/],
    [{ router: 'product', gate: 'straight-through' }, 'router', /^CollectiveKVAttention: router 'product' was removed in 0\.2 \(the trainable product-key router lost 0\.033 AUC on SIM/],
    [{ router: { kind: 'product' } }, 'router', /router 'product' was removed in 0\.2/],
  ])('CollectiveKVAttention %p fails naming %s, before any tensor exists', (extra, option, message) => {
    const before = tf.memory().numTensors;
    const e = removedError(() => new CollectiveKVAttention({ ...base, ...extra } as never));
    expect(e.option).toBe(option);
    expect(e.message).toMatch(message);
    // The same through tfjs's deserialization of a saved layer config.
    expect(() => CollectiveKVAttention.fromConfig(CollectiveKVAttention, { ...base, ...extra } as never)).toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
  });

  test("GlobalKVPool's removed router kind fails naming it", () => {
    expect(removedError(() => new GlobalKVPool({ units: 2, poolSize: 16, router: 'product' } as never)).message)
      .toMatch(/^GlobalKVPool: router 'product' was removed in 0\.2/);
    expect(removedError(() => new GlobalKVPool({ units: 2, routingBiasRate: 0.1 } as never)).option).toBe('routingBiasRate');
  });
});

describe('routerFromFlatOptions', () => {
  test('fills every option of the kind, drops the other kind\'s, names bad values and removed kinds', () => {
    expect(routerFromFlatOptions({})).toEqual({ kind: 'dense', gate: 'scaled', peakWeight: 0.01, balanceWeight: 1, balanceTokens: 2048 });
    expect(routerFromFlatOptions({ router: 'nearest-product', quantizationWeight: 0.5, balanceWeight: 0, balanceTokens: 64 }))
      .toEqual({ kind: 'nearest-product', commitmentWeight: 0.25, quantizationWeight: 0.5, lossTokens: 64 });
    expect(routerFromFlatOptions({ gate: 'straight-through', commitmentWeight: 2 }))
      .toEqual({ kind: 'dense', gate: 'straight-through', peakWeight: 0.01, balanceWeight: 1, balanceTokens: 2048 });
    expect(() => routerFromFlatOptions({ router: 'hash' as never }, 'bench')).toThrow(/^bench: argument 'router' must be one of 'dense', 'nearest-product', received "hash"$/);
    expect(() => routerFromFlatOptions({ peakWeight: -1 }, 'bench')).toThrow(/^bench: argument 'router\.peakWeight' must be a finite number >= 0, received -1$/);
    expect(() => routerFromFlatOptions({ router: 'nearest' as never }, 'bench')).toThrow(RemovedOptionError);
  });
});
