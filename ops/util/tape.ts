import * as tf from '@tensorflow/tfjs-core';
import { activeTape, isTapeOn } from './tfjsInternals';

/**
 * Whether a gradient tape records ops now (tfjs keeps no public flag; see ./tfjsInternals). A
 * customGrad that keeps references for its gradient computes its value directly when nothing
 * records, so the references the gradient would release are never taken.
 */
export function tapeIsRecording(): boolean {
  return isTapeOn();
}

/**
 * A reference to t's data that outlives the caller's tidy, for a customGrad's gradient (which
 * disposes it). customGrad's `save` clones, and on wasm a clone is a copy that tfjs's kernel leak
 * check (IS_TEST) reports; a reshape shares the data (refcounted), so the reference costs nothing.
 */
export function keptView<T extends tf.Tensor>(t: T): T {
  return tf.keep(tf.reshape(t, t.shape)) as T;
}

/** References a customGrad keeps for its gradient (see keepForGradient). */
export interface GradientRefs<T extends tf.Tensor[]> {
  refs: T;
  /** Disposes the references (once; later calls do nothing). The gradient calls it when done. */
  release(): void;
}

/** References kept under some tape whose gradient has not released them yet. */
const pendingRefs = new Set<{ tape: unknown; tensors: tf.Tensor[] }>();

/**
 * keptView of each tensor, for a customGrad's gradient to read and then release(). When the tape
 * records the call but its gradient never runs (nothing upstream needs a gradient: frozen inputs
 * and weights), the references would stay alive for good; the next keepForGradient under another
 * tape releases them, so such a model holds at most one step's references instead of leaking one
 * set per step.
 */
export function keepForGradient<T extends tf.Tensor[]>(tensors: [...T]): GradientRefs<T> {
  const tape = activeTape();
  for (const entry of pendingRefs) {
    if (entry.tape !== tape) {
      tf.dispose(entry.tensors);
      pendingRefs.delete(entry);
    }
  }
  const entry = { tape, tensors: tensors.map((t) => keptView(t)) };
  pendingRefs.add(entry);
  return {
    refs: entry.tensors as T,
    release: () => {
      if (pendingRefs.delete(entry)) tf.dispose(entry.tensors);
    },
  };
}
