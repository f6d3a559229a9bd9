// The global pool of collective K (or V) rows and its top-1 router (docs/design.md section 2): one of
// the design card's building blocks. CollectiveKVAttention composes one per shared side; a custom
// attention can compose it the same way (lookup()), or apply it as a layer. The router is a
// strategy (layers/routing/, docs/routing.md).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import type { DisposeResult, LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';
import { gatherRows } from '../ops/index';
import { ArgumentError, describeShape } from '../ops/util/validate';
import {
  InitializerSpec, PACKAGE, PendingLosses, checkBoolean, checkFits, checkLayerArgs, checkMask, checkNonNegativeInt, checkPositiveInt,
  glorotUniform, resolveInitializer, serializeInitializer,
} from './common';
import {
  ResolvedRouterConfig, RoutedRows, Router, RouterSpec, Routing, checkRouterPoolSize, createRouter, resolveRouterConfig, upgradeRouterArgs,
} from './routing/index';

export interface GlobalKVPoolArgs extends LayerArgs {
  /** Width of one pool row (the collective width dg); 0 is an empty pool (the user part is then the whole K/V). */
  units: number;
  /** Rows in the pool (m). Default 1024 (a perfect square for the nearest-product router). */
  poolSize?: number;
  /** The router: 'dense' (default, the paper's), 'nearest-product', or a config with its options (RouterConfig). */
  router?: RouterSpec;
  /** Router (or encoder) bias. Default true. */
  useBias?: boolean;
  /** Router (or encoder) kernel initializer. Default glorotUniform. */
  routerInitializer?: InitializerSpec;
  /** Pool initializer. Default normal(0, 1), the paper's. A seeded one seeds the sub-pools of nearest-product with seed and seed + 2. */
  poolInitializer?: InitializerSpec;
  /** Seeds what the router draws from data (the nearest-product pool's start from the first training batch). Default 0. */
  seed?: number;
  /** Prefix of the weight names (`key_` gives key_pool, key_router, ...), for pools built inside another layer. Default ''. */
  weightPrefix?: string;
}

/** The options of GlobalKVPoolArgs beyond tfjs's LayerArgs (the constructor rejects other keys by name). */
const POOL_OPTION_KEYS: readonly string[] = Object.keys({
  units: true, poolSize: true, router: true, useBias: true, routerInitializer: true, poolInitializer: true, seed: true, weightPrefix: true,
} satisfies Record<Exclude<keyof GlobalKVPoolArgs, keyof LayerArgs>, true>);

/** What lookup() reads besides x. */
export interface PoolLookupOptions {
  /** Default false: inference rows pool[index], no loss. */
  training?: boolean;
  /** float32, x's leading shape (1 valid, 0 padding): the routing loss counts valid tokens only. Default all valid. */
  mask?: tf.Tensor | null;
  /** [..., tailWidth], x's leading shape: joined after each row in the same gather (the user part). */
  tail?: tf.Tensor;
}

/**
 * A global pool with its top-1 router. Input [..., inputDim] -> [..., units]: the chosen pool
 * rows, as the router reads them in training (the dense router: gate * pool[index] with the
 * paper's gate) and pool[index] at inference. Weights (see the router): the dense router's
 * `pool`, `router`, `router_bias`; nearest-product's `pool_a`, `pool_b`, `encoder_kernel`,
 * `encoder_bias`, `pool_ready`; all named with `weightPrefix`. Applied as a layer, the training
 * call's routing loss goes through `addLoss` (see `auxiliaryLoss()`); `kwargs.mask` (x's leading
 * shape, 1 valid) restricts it to valid tokens. Composed inside another layer, `lookup()` returns
 * the rows and the loss to the caller instead.
 */
export class GlobalKVPool extends tfl.layers.Layer {
  static className = 'GlobalKVPool';
  readonly poolSize: number;
  readonly units: number;
  readonly useBias: boolean;
  readonly router: ResolvedRouterConfig;
  readonly seed: number;
  readonly weightPrefix: string;
  private readonly strategy: Router;
  private readonly routerInit: Initializer;
  private readonly poolInit: Initializer;
  private readonly auxLosses = new PendingLosses();

  constructor(args: GlobalKVPoolArgs) {
    const name = GlobalKVPool.className;
    const a = upgradeRouterArgs(name, args);
    super(checkLayerArgs(name, a, { required: ['units'], example: '{ units: 16, poolSize: 1024 }', options: POOL_OPTION_KEYS }));
    this.units = checkNonNegativeInt(name, 'units', a.units);
    this.poolSize = checkPositiveInt(name, 'poolSize', a.poolSize ?? 1024);
    checkFits(name, 'units', this.units, 1, 'units');
    checkFits(name, 'poolSize', this.poolSize, Math.max(1, this.units), `the pool [poolSize, units = ${this.units}]`);
    this.useBias = checkBoolean(name, 'useBias', a.useBias ?? true);
    this.router = resolveRouterConfig(name, a.router);
    checkRouterPoolSize(name, this.router, this.poolSize);
    this.seed = checkNonNegativeInt(name, 'seed', a.seed ?? 0);
    this.weightPrefix = a.weightPrefix ?? '';
    if (typeof this.weightPrefix !== 'string') throw new ArgumentError(name, 'weightPrefix', 'a string', String(this.weightPrefix));
    this.routerInit = resolveInitializer(name, 'routerInitializer', a.routerInitializer, glorotUniform);
    this.poolInit = resolveInitializer(name, 'poolInitializer', a.poolInitializer, standardNormal);
    this.strategy = createRouter(this.router, { poolSize: this.poolSize, units: this.units, name: this.name, seed: this.seed });
    this.addLoss(() => this.auxLosses.take());
  }

  /** [weight name, columns] of the weights whose rows are the input's features: what build checks against the backend. */
  inputColumns(): Array<[string, number]> {
    return this.strategy.inputColumns().map(([name, columns]) => [`${this.weightPrefix}${name}`, columns]);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const inputDim = shape[shape.length - 1];
    if (inputDim == null) {
      throw new ArgumentError(GlobalKVPool.className, 'inputs', 'a known last dimension', describeShape(shape.map((d) => d ?? -1)));
    }
    for (const [weight, columns] of this.inputColumns()) {
      checkFits(GlobalKVPool.className, 'inputs', inputDim, columns, `${weight} [input width, ${columns}]`, true);
    }
    this.strategy.build({
      inputDim, useBias: this.useBias, kernelInitializer: this.routerInit, poolInitializer: (offset) => offsetSeed(this.poolInit, offset),
      addWeight: (weight, shape, init, trainable) => this.addWeight(`${this.weightPrefix}${weight}`, shape, 'float32', init, undefined, trainable),
    });
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [...shape.slice(0, -1), this.units];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const training = kwargs.training === true;
    const [out, aux] = tf.tidy(() => {
      const mask = training && kwargs.mask instanceof tf.Tensor ? this.checkedMask(kwargs.mask, x) : null;
      const { rows, index, loss } = this.lookup(x, { training, mask });
      index.dispose();
      return loss == null ? [rows] : [rows, loss];
    });
    if (aux != null) this.auxLosses.push(aux as tf.Scalar);
    return out;
  }

  /**
   * The rows of x [..., inputDim] (joined to options.tail), the chosen rows and, in training, the
   * routing loss: new tensors the caller owns (nothing is added to this layer's losses). For a
   * layer that composes this one (as CollectiveKVAttention does).
   */
  lookup(x: tf.Tensor, options: PoolLookupOptions = {}): RoutedRows {
    this.assertBuilt();
    const { training = false, mask = null, tail } = options;
    if (training) return this.strategy.train(x, mask, tail);
    const index = this.strategy.index(x);
    return { rows: tf.tidy(() => gatherRows(this.strategy.pool(), index, undefined, tail)), index, loss: null };
  }

  /** The inference route of x [..., inputDim]: chosen rows, gates, (equivalent) router logits. The caller owns them. */
  route(x: tf.Tensor): Routing {
    this.assertBuilt();
    return this.strategy.route(x);
  }

  /** The inference index of x [..., inputDim] (what a cache stores). */
  index(x: tf.Tensor): tf.Tensor {
    this.assertBuilt();
    return this.strategy.index(x);
  }

  /** The pool [poolSize, units]: the variable (not a copy), or nearest-product's product of the sub-pools (a new tensor: call inside a tidy). */
  poolTable(): tf.Tensor {
    this.assertBuilt();
    return this.strategy.pool();
  }

  /**
   * Changes router options of this pool's router kind in place (e.g. the recipe's balanceWeight
   * after the switch); checked like the constructor's. The kind cannot change.
   */
  setRouterOptions(options: Partial<ResolvedRouterConfig>): void {
    if (options.kind != null && options.kind !== this.router.kind) {
      throw new ArgumentError(GlobalKVPool.className, 'options.kind', `'${this.router.kind}' (the pool's router)`, String(options.kind));
    }
    const resolved = resolveRouterConfig(GlobalKVPool.className, { ...this.router, ...options } as RouterSpec);
    Object.assign(this.router, resolved);
    Object.assign(this.strategy.config, resolved);
  }

  /** The routing loss of x over every valid token (mask: x's leading shape), as training adds it but without a token sample; null when it has no weight. */
  routingLoss(x: tf.Tensor, mask: tf.Tensor | null = null): tf.Scalar | null {
    this.assertBuilt();
    return this.strategy.loss(x, mask);
  }

  /** Sum of the routing losses of the training calls (as a layer) since the last read; reading clears it. */
  auxiliaryLoss(): tf.Scalar {
    return this.auxLosses.take();
  }

  override dispose(): DisposeResult {
    this.auxLosses.clear();
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      units: this.units,
      poolSize: this.poolSize,
      router: { ...this.router },
      useBias: this.useBias,
      routerInitializer: serializeInitializer(this.routerInit),
      poolInitializer: serializeInitializer(this.poolInit),
      ...(this.seed === 0 ? {} : { seed: this.seed }),
      ...(this.weightPrefix === '' ? {} : { weightPrefix: this.weightPrefix }),
    };
  }

  private assertBuilt(): void {
    if (!this.built) throw new ArgumentError(GlobalKVPool.className, 'this', 'a built layer (call it once, or build it)', 'an unbuilt layer');
  }

  private checkedMask(mask: tf.Tensor, x: tf.Tensor): tf.Tensor {
    const lead = x.shape.slice(0, -1);
    if (mask.rank !== lead.length || !lead.every((n, i) => mask.shape[i] === n)) {
      throw new ArgumentError(GlobalKVPool.className, 'mask', `of shape ${describeShape(lead)}`, `shape ${describeShape(mask.shape)}`);
    }
    return lead.length === 2 ? checkMask(GlobalKVPool.className, 'mask', mask, lead[0], lead[1]) : tf.cast(mask, 'float32');
  }
}

/** normal(0, 1), the reference's pool init. */
export function standardNormal(): Initializer {
  return tfl.initializers.randomNormal({ mean: 0, stddev: 1 });
}

/** `init` with `offset` added to its seed (the same initializer when it has no seed, or offset 0). */
function offsetSeed(init: Initializer, offset: number): Initializer {
  const config = init.getConfig() as { seed?: number | null };
  if (offset === 0 || config.seed == null) return init;
  return resolveInitializer(GlobalKVPool.className, 'poolInitializer', { className: init.getClassName(), config: { ...config, seed: config.seed + offset } },
    standardNormal);
}

tf.serialization.registerClass(GlobalKVPool, PACKAGE);
