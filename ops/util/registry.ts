// Registration helpers for ops/register/*: each file there lists its kernel (or gradient) configs
// and registers them in one call. Registering is idempotent: a kernel or gradient already in tfjs's
// registry (a second import, or the ESM and CommonJS builds both loaded in one process; tfjs keeps
// one registry per process) is left alone, so tfjs prints no "already registered" warnings.
import * as tf from '@tensorflow/tfjs-core';

/** Registers each kernel not registered yet for its backend. */
export function registerKernels(configs: readonly tf.KernelConfig[]): void {
  for (const config of configs) {
    if (tf.getKernel(config.kernelName, config.backendName) == null) tf.registerKernel(config);
  }
}

/** Registers each gradient not registered yet for its kernel. */
export function registerGradients(configs: readonly tf.GradConfig[]): void {
  for (const config of configs) {
    if (tf.getGradient(config.kernelName) == null) tf.registerGradient(config);
  }
}
