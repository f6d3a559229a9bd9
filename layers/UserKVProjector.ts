// The user-specific part of each key (or value): act(x W + b), a few numbers per token that the
// cache stores next to the pool index. One of the design card's building blocks:
// CollectiveKVAttention composes one per shared side, and a custom attention can too.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import type { LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';
import { ArgumentError, describeShape } from '../ops/util/validate';
import {
  InitializerSpec, PACKAGE, checkBoolean, checkFits, checkLayerArgs, checkPositiveInt, dense, glorotUniform, resolveActivation, resolveInitializer,
  serializeInitializer, zeros,
} from './common';

/** act(x kernel + bias) on x [..., inputDim] -> [..., units]. */
export function userProjection(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null,
  activation: (t: tf.Tensor) => tf.Tensor): tf.Tensor {
  return tf.tidy(() => activation(dense(x, kernel, bias)));
}

export interface UserKVProjectorArgs extends LayerArgs {
  /** Output width (the user-specific width du). Default 1. */
  units?: number;
  /** Any tfjs activation id. Default 'swish' (SiLU). */
  activation?: string;
  /** Default true. */
  useBias?: boolean;
  /** Default glorotUniform. */
  kernelInitializer?: InitializerSpec;
  /** Prefix of the weight names (`key_user_` gives key_user_kernel, key_user_bias), for projectors built inside another layer. Default ''. */
  weightPrefix?: string;
}

/** The options of UserKVProjectorArgs beyond tfjs's LayerArgs (the constructor rejects other keys by name). */
const PROJECTOR_OPTION_KEYS: readonly string[] = Object.keys({
  units: true, activation: true, useBias: true, kernelInitializer: true, weightPrefix: true,
} satisfies Record<Exclude<keyof UserKVProjectorArgs, keyof LayerArgs>, true>);

/**
 * act(x W + b): [..., inputDim] -> [..., units]. Weights `kernel` [inputDim, units], `bias` [units]
 * (with useBias), named with `weightPrefix`. A layer composing it calls `call(x, {})` directly.
 */
export class UserKVProjector extends tfl.layers.Layer {
  static className = 'UserKVProjector';
  readonly units: number;
  readonly activation: string;
  readonly useBias: boolean;
  readonly weightPrefix: string;
  private readonly kernelInit: Initializer;
  private readonly act: (t: tf.Tensor) => tf.Tensor;
  private kernel: tfl.LayerVariable | null = null;
  private bias: tfl.LayerVariable | null = null;

  constructor(args: UserKVProjectorArgs = {}) {
    super(checkLayerArgs(UserKVProjector.className, args, { required: [], example: '{ units: 1 }', options: PROJECTOR_OPTION_KEYS }));
    const name = UserKVProjector.className;
    this.units = checkPositiveInt(name, 'units', args.units ?? 1);
    checkFits(name, 'units', this.units, 1, 'units');
    this.activation = args.activation ?? 'swish';
    this.act = resolveActivation(name, 'activation', this.activation);
    this.useBias = checkBoolean(name, 'useBias', args.useBias ?? true);
    this.kernelInit = resolveInitializer(name, 'kernelInitializer', args.kernelInitializer, glorotUniform);
    this.weightPrefix = args.weightPrefix ?? '';
    if (typeof this.weightPrefix !== 'string') throw new ArgumentError(name, 'weightPrefix', 'a string', String(this.weightPrefix));
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const inputDim = shape[shape.length - 1];
    if (inputDim == null) {
      throw new ArgumentError(UserKVProjector.className, 'inputs', 'a known last dimension', describeShape(shape.map((d) => d ?? -1)));
    }
    checkFits(UserKVProjector.className, 'inputs', inputDim, this.units, `${this.weightPrefix}kernel [input width, ${this.units}]`, true);
    this.kernel = this.addWeight(`${this.weightPrefix}kernel`, [inputDim, this.units], 'float32', this.kernelInit);
    if (this.useBias) this.bias = this.addWeight(`${this.weightPrefix}bias`, [this.units], 'float32', zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [...shape.slice(0, -1), this.units];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (this.kernel == null) throw new ArgumentError(UserKVProjector.className, 'this', 'a built layer', 'an unbuilt layer');
    return userProjection(x, this.kernel.read(), this.bias?.read() ?? null, this.act);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      units: this.units,
      activation: this.activation,
      useBias: this.useBias,
      kernelInitializer: serializeInitializer(this.kernelInit),
      ...(this.weightPrefix === '' ? {} : { weightPrefix: this.weightPrefix }),
    };
  }
}

tf.serialization.registerClass(UserKVProjector, PACKAGE);
