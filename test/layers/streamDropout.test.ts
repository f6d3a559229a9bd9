// StreamDropout: seeded masks that change call after call (tfjs's seeded Dropout repeats one), the
// same stream for the same seed, identity in inference, rate checked.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend } from '../util/backends';
import { StreamDropout } from '../../layers/index';

describeEachBackend('StreamDropout', () => {
  const masks = (layer: StreamDropout, calls: number) => Array.from({ length: calls }, () => tf.tidy(() =>
    Array.from((layer.apply(tf.ones([4, 16]), { training: true }) as tf.Tensor).dataSync())));

  test('a seeded layer draws a new mask at each training call, and a second layer with the seed draws the same ones', () => {
    const [a, b] = [masks(new StreamDropout({ rate: 0.5, seed: 3 }), 3), masks(new StreamDropout({ rate: 0.5, seed: 3 }), 3)];
    expect(a[0]).not.toEqual(a[1]);
    expect(a[1]).not.toEqual(a[2]);
    expect(a).toEqual(b);
    // Inverted dropout: kept values are scaled by 1 / (1 - rate).
    expect(new Set(a.flat())).toEqual(new Set([0, 2]));
  });

  test('inference is the identity; the rate is checked; the config round-trips', () => {
    const layer = new StreamDropout({ rate: 0.3, seed: 1 });
    const x = tf.randomNormal([2, 5]);
    const y = layer.apply(x) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual(Array.from(x.dataSync()));
    tf.dispose([x, y]);
    expect(() => new StreamDropout({ rate: 1 })).toThrow(/'rate' must be a number in \[0, 1\), received 1/);
    expect(layer.getConfig()).toMatchObject({ rate: 0.3, seed: 1 });
  });
});
