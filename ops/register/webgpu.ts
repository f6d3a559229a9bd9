// Registers every custom kernel of the webgpu backend, on import (see ./cpu.ts). Not imported by the
// package's main entry: users of the webgpu backend import the `collectivekv/webgpu` entry
// (src/webgpu.ts), as they import @tensorflow/tfjs-backend-webgpu itself. The kernels import only
// that backend's types, so this file does not load the backend either.
// Kernels with no webgpu version (batchedMatMul, linear, routerStep, transposeMatrix, and the
// backward kernels of gatherRows and routeTop1) leave their ops to run composite ops on webgpu.
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { collectiveAttentionWebGPUConfig } from '../collectiveAttention/webgpu';
import { gatherRowsWebGPUConfig } from '../gatherRows/webgpu';
import { routeTop1WebGPUConfig } from '../routeTop1/webgpu';
import { routingLossGradWebGPUConfig, routingLossWebGPUConfig } from '../routingLoss/webgpu';
import { scatterAddRowsWebGPUConfig } from '../scatterAddRows/webgpu';
import { registerKernels } from '../util/registry';

export const webgpuKernelConfigs: readonly KernelConfig[] = [
  collectiveAttentionWebGPUConfig,
  gatherRowsWebGPUConfig,
  routeTop1WebGPUConfig,
  routingLossWebGPUConfig,
  routingLossGradWebGPUConfig,
  scatterAddRowsWebGPUConfig,
];

/** Registers the webgpu kernels not registered yet (this module already did on import). */
export function registerWebGPUKernels(): void {
  registerKernels(webgpuKernelConfigs);
}

registerWebGPUKernels();
