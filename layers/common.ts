// Helpers shared by the layers: argument checks, initializers, activations, projections, and the
// per-layer holder of auxiliary losses. Plain functions so every layer uses one implementation.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import type { ActivationIdentifier } from '@tensorflow/tfjs-layers/dist/keras_format/activation_config';
import { linear } from '../ops/linear/index';
import { ArgumentError, describeShape, dim } from '../ops/util/validate';

/** Package name under which all layers are registered for (de)serialization. */
export const PACKAGE = 'collectivekv';

/** An initializer: an instance, a tfjs name ('glorotUniform', 'glorot_uniform', 'zeros', ...), or its saved config. */
export type InitializerSpec = Initializer | string | { className: string; config: tf.serialization.ConfigDict };

// ---------------------------------------------------------------- argument checks

export function checkPositiveInt(layer: string, arg: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new ArgumentError(layer, arg, 'a positive integer', String(n));
  }
  return n;
}

export function checkNonNegative(layer: string, arg: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
    throw new ArgumentError(layer, arg, 'a finite number >= 0', String(x));
  }
  return x;
}

export function checkPositive(layer: string, arg: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) {
    throw new ArgumentError(layer, arg, 'a finite number > 0', String(x));
  }
  return x;
}

export function checkRate(layer: string, arg: string, x: unknown): number {
  if (typeof x !== 'number' || !(x >= 0 && x < 1)) {
    throw new ArgumentError(layer, arg, 'a number in [0, 1)', String(x));
  }
  return x;
}

export function checkOneOf<T extends string>(layer: string, arg: string, x: unknown, allowed: readonly T[]): T {
  if (typeof x !== 'string' || !(allowed as readonly string[]).includes(x)) {
    throw new ArgumentError(layer, arg, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, JSON.stringify(x));
  }
  return x as T;
}

/** A rank-3 float input [B, T, width?]; `width` checked when the layer is already built. */
export function checkSequence(layer: string, arg: string, t: tf.Tensor, width?: number): void {
  if (t.rank !== 3) {
    throw new ArgumentError(layer, arg, 'a tensor of rank 3 [batch, time, features]', `shape ${describeShape(t.shape)}`);
  }
  if (width != null && dim(t, 2) !== width) {
    throw new ArgumentError(layer, arg, `last dimension ${width} (the width the layer was built with)`,
      `shape ${describeShape(t.shape)}`);
  }
}

/** The padding mask [B, T] as float32 (a new tensor the caller owns), or an error naming `arg`. */
export function checkMask(layer: string, arg: string, mask: tf.Tensor, batch: number, time: number): tf.Tensor {
  if (mask.rank !== 2 || dim(mask, 0) !== batch || dim(mask, 1) !== time) {
    throw new ArgumentError(layer, arg, `of shape ${describeShape([batch, time])} (1 valid, 0 padding)`,
      `shape ${describeShape(mask.shape)}`);
  }
  return tf.cast(mask, 'float32');
}

// ---------------------------------------------------------------- initializers

/** Resolves an initializer spec through tfjs's serialization registry (where tfjs-layers registers its own). */
export function resolveInitializer(layer: string, arg: string, spec: InitializerSpec | undefined, fallback: () => Initializer): Initializer {
  if (spec == null) return fallback();
  if (isInitializer(spec)) return spec;
  const className = typeof spec === 'string' ? pascalCase(spec) : spec.className;
  const config = typeof spec === 'string' ? {} : spec.config;
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (entry == null) {
    throw new ArgumentError(layer, arg, 'a tfjs initializer (instance, name such as \'glorotUniform\', or saved config)',
      JSON.stringify(spec));
  }
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config) as unknown as Initializer;
}

export function serializeInitializer(init: Initializer): { className: string; config: tf.serialization.ConfigDict } {
  return { className: init.getClassName(), config: init.getConfig() };
}

function isInitializer(spec: InitializerSpec): spec is Initializer {
  return typeof spec !== 'string' && typeof (spec as Initializer).getClassName === 'function';
}

function pascalCase(id: string): string {
  return id.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}

export function glorotUniform(): Initializer {
  return tfl.initializers.glorotUniform({});
}

export function zeros(): Initializer {
  return tfl.initializers.zeros();
}

// ---------------------------------------------------------------- activations

/** A unary activation by tfjs id (validated now so that bad ids fail at construction, naming `arg`). */
export function resolveActivation(layer: string, arg: string, id: string): (x: tf.Tensor) => tf.Tensor {
  let act: tfl.layers.Layer;
  try {
    act = tfl.layers.activation({ activation: id as ActivationIdentifier });
  } catch {
    throw new ArgumentError(layer, arg, 'a tfjs activation id (\'swish\', \'relu\', \'linear\', ...)', JSON.stringify(id));
  }
  // The Activation layer has no weights; reusing it gives exactly tfjs's activation semantics.
  return (x) => act.apply(x) as tf.Tensor;
}

// ---------------------------------------------------------------- projections

/** x [..., in] @ kernel [in, out] (+ bias [out]) on any leading shape. */
export function dense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
  // One kernel (ops/linear): saves no wide intermediates for the backward pass (matters on wasm).
  return linear(x, kernel, bias);
}

// ---------------------------------------------------------------- auxiliary losses

/**
 * Aux-loss scalars of the training-mode calls since the last read. `take()` returns their sum and
 * forgets them, so a loss is counted once per forward and never carried to the next batch.
 *
 * The scalars are kept (tf.keep) because tfjs runs `model.apply` inside a tidy that would
 * otherwise dispose them before anyone reads them; the layer disposes them itself. Entries
 * pushed under a different tidy scope than the previous ones belong to an older forward pass that
 * nobody read: they are dropped then, so a layer holds at most one forward's losses.
 */
export class PendingLosses {
  private pending: tf.Scalar[] = [];
  private scope: unknown = null;

  push(loss: tf.Scalar): void {
    const scope = tf.engine().state.activeScope ?? null;
    if (scope !== this.scope) this.clear();
    this.scope = scope;
    this.pending.push(tf.keep(loss));
  }

  /**
   * The sum (a zero scalar when nothing is pending) as a new tensor in the caller's scope; the
   * gradient flows through it to the forward pass that produced the losses.
   */
  take(): tf.Scalar {
    const losses = this.pending;
    this.pending = [];
    if (losses.length === 0) return tf.scalar(0);
    const sum = (losses.length === 1 ? tf.clone(losses[0]) : tf.addN(losses)) as tf.Scalar;
    // The tape only needs their ids and shapes for backprop, not their data.
    tf.dispose(losses);
    return sum;
  }

  /** Drops (and disposes) anything pending. */
  clear(): void {
    tf.dispose(this.pending);
    this.pending = [];
  }
}

// ---------------------------------------------------------------- balance-loss token sampling

/**
 * Picks the rows whose router softmax the balance loss averages, when a call has more tokens
 * than `tokens` (0 = always all rows). A seeded stream per layer (seeded from the layer name and
 * advanced per call), so a training run repeats exactly. Rows are drawn among all rows, padding
 * included: the mask then weights them, and choosing among valid rows only would need a device
 * read of the mask.
 */
export class BalanceSampler {
  private state: number;

  constructor(readonly tokens: number, name: string) {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    this.state = h >>> 0;
  }

  /** tokens distinct row indices in [0, rows), ascending; null when every row is used. */
  sample(rows: number): Int32Array | null {
    if (this.tokens === 0 || rows <= this.tokens) return null;
    // Partial Fisher-Yates over a lazily swapped index map: O(tokens) time and memory.
    const swapped = new Map<number, number>();
    const out = new Int32Array(this.tokens);
    for (let i = 0; i < this.tokens; i++) {
      const j = i + Math.floor(this.next() * (rows - i));
      const vj = swapped.get(j) ?? j;
      swapped.set(j, swapped.get(i) ?? i);
      out[i] = vj;
    }
    return out.sort();
  }

  /** mulberry32. */
  private next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** Default of the layers' `balanceTokens`. */
export const DEFAULT_BALANCE_TOKENS = 2048;

export function checkNonNegativeInt(layer: string, arg: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new ArgumentError(layer, arg, 'an integer >= 0', String(n));
  return n;
}
