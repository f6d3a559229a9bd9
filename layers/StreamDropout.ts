// Dropout with a seeded stream of masks. tfjs's Dropout layer passes its one seed to every call, so
// a seeded tfjs Dropout drops the same units at every step (for a given input shape): not dropout.
// Here each training call draws its seed from a stream started at `seed`, as Keras's Dropout does.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';
import { ArgumentError } from '../ops/util/validate';
import { PACKAGE, checkNonNegativeInt, streamSeed } from './common';

export interface StreamDropoutArgs extends LayerArgs {
  /** Share of the inputs zeroed in training, in [0, 1). */
  rate: number;
  /** Starts the stream of per-call seeds (same seed, same masks call after call). Default: unseeded. */
  seed?: number;
}

export class StreamDropout extends tfl.layers.Layer {
  static className = 'StreamDropout';
  readonly rate: number;
  readonly seed: number | null;
  private calls = 0;

  constructor(args: StreamDropoutArgs) {
    const { rate, seed, ...base } = args ?? ({} as StreamDropoutArgs);
    super(base);
    if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw new ArgumentError(StreamDropout.className, 'rate', 'a number in [0, 1)', String(rate));
    this.rate = rate;
    this.seed = seed == null ? null : checkNonNegativeInt(StreamDropout.className, 'seed', seed);
    this.supportsMasking = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (kwargs.training !== true || this.rate === 0) return tf.clone(x);
    const seed = this.seed == null ? undefined : streamSeed(this.seed, this.calls++);
    return tf.dropout(x, this.rate, undefined, seed);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate, ...(this.seed == null ? {} : { seed: this.seed }) };
  }
}

tf.serialization.registerClass(StreamDropout, PACKAGE);
