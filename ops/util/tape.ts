import * as tf from '@tensorflow/tfjs-core';

/**
 * Whether a gradient tape records ops now (tfjs keeps no public flag). A customGrad that keeps
 * references for its gradient computes its value directly when nothing records, so the
 * references the gradient would release are never taken.
 */
export function tapeIsRecording(): boolean {
  const engine = tf.engine() as unknown as { isTapeOn?: () => boolean };
  return typeof engine.isTapeOn === 'function' ? engine.isTapeOn() : true;
}

/**
 * A reference to t's data that outlives the caller's tidy, for a customGrad's gradient (which
 * disposes it). customGrad's `save` clones, and on wasm a clone is a copy that tfjs's kernel leak
 * check (IS_TEST) reports; a reshape shares the data (refcounted), so the reference costs nothing.
 */
export function keptView<T extends tf.Tensor>(t: T): T {
  return tf.keep(tf.reshape(t, t.shape)) as T;
}
