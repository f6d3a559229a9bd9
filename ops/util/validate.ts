import * as tf from '@tensorflow/tfjs-core';

/** Errors name the op, the argument, what was expected and what was received. */
export class ArgumentError extends Error {
  constructor(op: string, arg: string, expected: string, received: string) {
    super(`${op}: argument '${arg}' must be ${expected}, received ${received}`);
    this.name = 'ArgumentError';
  }
}

export function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function assertRank(op: string, arg: string, t: tf.Tensor, ranks: number[]): void {
  if (!ranks.includes(t.rank)) {
    const expected = ranks.length === 1 ? `rank ${ranks[0]}` : `rank ${ranks.join(' or ')}`;
    throw new ArgumentError(op, arg, `a tensor of ${expected}`, `rank ${t.rank} (shape ${describeShape(t.shape)})`);
  }
}

export function assertIntDtype(op: string, arg: string, t: tf.Tensor): void {
  if (t.dtype !== 'int32') {
    throw new ArgumentError(op, arg, 'an int32 tensor of row indices', `dtype ${t.dtype}`);
  }
}

/**
 * A balance-term row sample: a non-empty int32 [S] of row indices. Shape and dtype only: reading the
 * indices would stall a GPU backend on every training step.
 */
export function assertRowSample(op: string, arg: string, rows: tf.Tensor): void {
  assertRank(op, arg, rows, [1]);
  assertIntDtype(op, arg, rows);
  if (rows.size === 0) throw new ArgumentError(op, arg, 'at least one row', 'an empty tensor');
}

export function assertFloatDtype(op: string, arg: string, t: tf.Tensor): void {
  if (t.dtype !== 'float32') {
    throw new ArgumentError(op, arg, 'a float32 tensor', `dtype ${t.dtype}`);
  }
}

export function assertShape(op: string, arg: string, t: tf.Tensor, expected: readonly number[]): void {
  const same = t.shape.length === expected.length && t.shape.every((n, i) => n === expected[i]);
  if (!same) {
    throw new ArgumentError(op, arg, `of shape ${describeShape(expected)}`, `shape ${describeShape(t.shape)}`);
  }
}

export function assertPositiveInt(op: string, arg: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new ArgumentError(op, arg, 'a positive integer', String(n));
  }
}

/** Thrown by kernels that read indices: an index outside [0, numRows). */
export function indexOutOfRange(op: string, arg: string, value: number, numRows: number, position: number): ArgumentError {
  return new ArgumentError(op, arg, `indices in [0, ${numRows})`, `${value} at flat position ${position}`);
}

/** True when the active backend has a kernel of this name; otherwise ops run their composite. */
export function hasKernel(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) != null;
}

/** Size of axis `axis` (negative counts from the end); tfjs's generic shape type hides that it is a number. */
export function dim(t: { shape: readonly number[] | number[] }, axis: number): number {
  const shape = t.shape as readonly number[];
  return shape[axis < 0 ? shape.length + axis : axis];
}

/**
 * Kernels call this before allocating their outputs, so a bad index throws without leaking a
 * half-built output (on wasm an output is heap memory that only an explicit dispose frees).
 */
export function assertIndicesInRange(op: string, arg: string, index: ArrayLike<number>, numRows: number): void {
  for (let p = 0; p < index.length; p++) {
    const r = index[p];
    if (!(r >= 0 && r < numRows)) throw indexOutOfRange(op, arg, r, numRows, p);
  }
}

/** A kernel's named input; runKernel callers that skip the op's validation get a named error. */
export function kernelInput(op: string, inputs: tf.NamedTensorInfoMap, name: string): tf.TensorInfo {
  const t = inputs[name];
  if (t == null) throw new ArgumentError(op, name, 'a tensor', 'nothing');
  return t;
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
