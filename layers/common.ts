// Helpers shared by the layers: argument checks, initializers, activations, projections, and the
// per-layer holder of auxiliary losses. Plain functions so every layer uses one implementation.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Constraint } from '@tensorflow/tfjs-layers/dist/constraints';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import type { Regularizer } from '@tensorflow/tfjs-layers/dist/regularizers';
import type { LayerArgs } from '@tensorflow/tfjs-layers/dist/engine/topology';
import type { ActivationIdentifier } from '@tensorflow/tfjs-layers/dist/keras_format/activation_config';
import { linear } from '../ops/linear/index';
import { activeScope } from '../ops/util/tfjsInternals';
import { ArgumentError, describeShape, dim } from '../ops/util/validate';

/** Package name under which all layers are registered for (de)serialization. */
export const PACKAGE = 'collectivekv';

/** An initializer: an instance, a tfjs name ('glorotUniform', 'glorot_uniform', 'zeros', ...), or its saved config. */
export type InitializerSpec = Initializer | string | { className: string; config: tf.serialization.ConfigDict };

// ---------------------------------------------------------------- argument checks

/** A received value as errors show it: strings quoted (so "8" and 8 differ), tensors by shape, objects briefly. */
export function describeValue(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x);
  if (x == null || typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint') return String(x);
  if (x instanceof tf.Tensor) return `a tensor of shape ${describeShape(x.shape)}`;
  if (typeof x === 'function') return 'a function';
  if (Array.isArray(x)) return `an array of ${x.length} items`;
  let json: string | undefined;
  try {
    json = JSON.stringify(x);
  } catch {
    json = undefined;
  }
  if (json == null) return String(x);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

export function checkPositiveInt(layer: string, arg: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new ArgumentError(layer, arg, 'a positive integer', describeValue(n));
  }
  return n;
}

export function checkNonNegative(layer: string, arg: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
    throw new ArgumentError(layer, arg, 'a finite number >= 0', describeValue(x));
  }
  return x;
}

export function checkPositive(layer: string, arg: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) {
    throw new ArgumentError(layer, arg, 'a finite number > 0', describeValue(x));
  }
  return x;
}

export function checkRate(layer: string, arg: string, x: unknown): number {
  if (typeof x !== 'number' || !(x >= 0 && x < 1)) {
    throw new ArgumentError(layer, arg, 'a number in [0, 1)', describeValue(x));
  }
  return x;
}

export function checkBoolean(layer: string, arg: string, x: unknown): boolean {
  if (typeof x !== 'boolean') throw new ArgumentError(layer, arg, 'a boolean (true or false)', describeValue(x));
  return x;
}

export function checkOneOf<T extends string>(layer: string, arg: string, x: unknown, allowed: readonly T[]): T {
  if (typeof x !== 'string' || !(allowed as readonly string[]).includes(x)) {
    throw new ArgumentError(layer, arg, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, describeValue(x));
  }
  return x as T;
}

/**
 * The keys of tfjs's LayerArgs, which tfjs-layers' Layer reads itself, plus `customObjects`, which
 * tfjs's deserialization adds to every saved config it passes to a constructor.
 */
export const LAYER_ARG_KEYS: readonly string[] = [...Object.keys({
  inputShape: true, batchInputShape: true, batchSize: true, dtype: true, name: true, trainable: true, weights: true, inputDType: true,
} satisfies Record<keyof LayerArgs, true>), 'customObjects'];

/**
 * A layer's constructor argument, checked before anything reads it: an options object (a missing or
 * non-object one names the required options), with no key but `options` and LAYER_ARG_KEYS (a key
 * holding undefined is ignored), and a boolean `trainable`. `example` shows a minimal valid object.
 */
export function checkLayerArgs<T>(layer: string, args: T, spec: { required: readonly string[]; example: string; options: readonly string[] }): T {
  if (args == null || typeof args !== 'object' || Array.isArray(args)) {
    const needs = spec.required.length === 0 ? 'an options object (or nothing)'
      : `an options object with ${spec.required.join(' and ')} (e.g. ${spec.example})`;
    throw new ArgumentError(layer, 'args', needs, describeValue(args));
  }
  const known = new Set([...spec.options, ...LAYER_ARG_KEYS]);
  for (const [key, value] of Object.entries(args as object)) {
    if (value === undefined || known.has(key)) continue;
    const near = [...known].find((k) => k.toLowerCase() === key.toLowerCase());
    const expected = near != null ? `an option of ${layer} (did you mean '${near}'?)`
      : `an option of ${layer}: ${spec.options.join(', ')} (or tfjs's ${LAYER_ARG_KEYS.join(', ')})`;
    throw new ArgumentError(layer, key, expected, describeValue(value));
  }
  const { trainable } = args as { trainable?: unknown };
  if (trainable != null) checkBoolean(layer, 'trainable', trainable);
  return args;
}

// ---------------------------------------------------------------- allocation bounds

/**
 * Most float32 values one tensor can hold, by backend: a weight beyond it can never be allocated,
 * so the layers reject the arguments (or input widths) that would need one before creating any
 * weight, instead of failing inside tfjs or the backend. Upper bounds, not promises: a tensor
 * within them can still fail for want of memory.
 * - wasm: (2^32 - 2^16) / 4 = 1073725440. The module's heap, which holds every tensor, grows to at
 *   most 4 GiB - 64 KiB (tfjs-backend-wasm 4.x's emscripten build).
 * - any other backend (cpu, webgl, webgpu, ...): 2^31 - 1, the longest typed array that every
 *   JavaScript engine allows (V8 allowed no more before 2021; Node 20 allows 2^32); tfjs reads and
 *   writes a tensor's values through one. A WebGPU device's maxStorageBufferBindingSize may be
 *   lower still; tfjs reports that limit itself.
 */
export const MAX_TENSOR_VALUES = { wasm: (2 ** 32 - 2 ** 16) / 4, other: 2 ** 31 - 1 } as const;

/** The active backend's MAX_TENSOR_VALUES, with the words an error names it by. */
export function tensorValueLimit(backend: string | null | undefined = tf.getBackend()): { values: number; text: string } {
  if (backend === 'wasm') {
    return { values: MAX_TENSOR_VALUES.wasm, text: `the largest tensor the 'wasm' backend can allocate (${MAX_TENSOR_VALUES.wasm} float32 values: its heap is at most 4 GiB - 64 KiB)` };
  }
  const name = backend == null ? 'the backend' : `the '${backend}' backend`;
  return { values: MAX_TENSOR_VALUES.other, text: `the largest tensor ${name} can allocate (${MAX_TENSOR_VALUES.other} values: the longest typed array)` };
}

/**
 * Throws unless a weight of `received` x `per` values (`what`, e.g. "the key pool [poolSize, 63]")
 * fits tensorValueLimit(); `arg` holds `received` (an input's last dimension when `input`), and the
 * error gives the largest value that fits. `per` must itself fit (check the other factor first).
 */
export function checkFits(layer: string, arg: string, received: number, per: number, what: string, input = false): void {
  const limit = tensorValueLimit();
  const values = received * per;
  if (values <= limit.values) return;
  const most = Math.floor(limit.values / per);
  throw new ArgumentError(layer, arg, `${input ? 'a last dimension of ' : ''}at most ${most} so that ${what} fits ${limit.text}`,
    `${input ? 'last dimension ' : ''}${received} (${what} would hold ${values} values)`);
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
  if (!(mask instanceof tf.Tensor)) {
    throw new ArgumentError(layer, arg, `a tensor of rank 2 and shape ${describeShape([batch, time])} (1 valid, 0 padding)`, describeValue(mask));
  }
  if (mask.rank !== 2 || dim(mask, 0) !== batch || dim(mask, 1) !== time) {
    throw new ArgumentError(layer, arg, `of shape ${describeShape([batch, time])} (rank 2 [batch, time]; 1 valid, 0 padding)`,
      `shape ${describeShape(mask.shape)} (rank ${mask.rank})`);
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

// ---------------------------------------------------------------- regularizers and constraints

/** A regularizer: an instance (tfl.regularizers.l2()), a name ('l1', 'l2', 'l1l2'), or its saved config. */
export type RegularizerSpec = Regularizer | string | { className: string; config: tf.serialization.ConfigDict };
/** A constraint: an instance (tfl.constraints.nonNeg()), a name ('nonNeg', 'maxNorm', 'unitNorm', 'minMaxNorm'), or its saved config. */
export type ConstraintSpec = Constraint | string | { className: string; config: tf.serialization.ConfigDict };

// tfjs exports neither base class as a value: found through an instance, so subclasses pass too.
const REGULARIZER_BASE: object = Object.getPrototypeOf(Object.getPrototypeOf(tfl.regularizers.l1()));
const CONSTRAINT_BASE: object = Object.getPrototypeOf(Object.getPrototypeOf(tfl.constraints.nonNeg()));

/** Names tfjs's identifiers do not cover: Keras's 'l1' and 'l2' (factor 0.01, Keras's default). */
const REGULARIZER_NAMES: Record<string, () => Regularizer> = {
  l1: () => tfl.regularizers.l1({ l1: 0.01 }),
  l2: () => tfl.regularizers.l2({ l2: 0.01 }),
  l1l2: () => tfl.regularizers.l1l2(),
};

/** A regularizer spec resolved (null when absent), through tfjs's serialization registry. */
export function resolveRegularizer(layer: string, arg: string, spec: RegularizerSpec | null | undefined): Regularizer | null {
  if (spec == null) return null;
  if (typeof spec === 'string' && REGULARIZER_NAMES[spec] != null) return REGULARIZER_NAMES[spec]();
  return resolveRegistered(layer, arg, spec, REGULARIZER_BASE,
    'a tfjs regularizer (tfl.regularizers.l2(), a name \'l1\', \'l2\' or \'l1l2\', or a saved { className, config })') as Regularizer;
}

/** A constraint spec resolved (null when absent), through tfjs's serialization registry. */
export function resolveConstraint(layer: string, arg: string, spec: ConstraintSpec | null | undefined): Constraint | null {
  if (spec == null) return null;
  return resolveRegistered(layer, arg, spec, CONSTRAINT_BASE,
    'a tfjs constraint (tfl.constraints.nonNeg(), a name \'nonNeg\', \'maxNorm\', \'unitNorm\' or \'minMaxNorm\', or a saved { className, config })') as Constraint;
}

/** A regularizer or constraint as tfjs saves it: { className, config }. */
export function serializeObject(x: Regularizer | Constraint): { className: string; config: tf.serialization.ConfigDict } {
  return { className: x.getClassName(), config: x.getConfig() };
}

function resolveRegistered(layer: string, arg: string, spec: object | string, base: object, expected: string): object {
  if (typeof spec === 'object' && spec != null && Object.prototype.isPrototypeOf.call(base, spec)) return spec;
  const named = typeof spec === 'string' ? { className: pascalCase(spec), config: {} }
    : (spec as { className?: unknown; config?: unknown });
  const className = typeof named.className === 'string' ? named.className : '';
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  const config = named.config == null ? {} : named.config;
  if (entry == null || typeof config !== 'object' || !Object.prototype.isPrototypeOf.call(base, entry[0].prototype)) {
    throw new ArgumentError(layer, arg, expected, describeValue(spec));
  }
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config as tf.serialization.ConfigDict);
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
    const scope = activeScope();
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

/** The seed of call `call` (0-based) of a stream started at `seed`: each call draws new masks, a rerun the same ones. */
export function streamSeed(seed: number, call: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(call + 1, 0xc2b2ae35)) >>> 0;
}
