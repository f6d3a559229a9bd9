// Registers every custom kernel of the cpu backend, on import (as tfjs's backends do in their
// register_all_kernels). The per-op files (ops/<op>/cpu.ts, ...) only export their configs.
// Idempotent: a kernel already registered (a second import, or the ESM and CommonJS builds in one
// process) is skipped without tfjs's warning. The package's main entry imports this file.
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { batchedMatMulCpuConfig } from '../batchedMatMul/cpu';
import { collectiveAttentionCpuConfig } from '../collectiveAttention/cpu';
import { gatherRowsCpuConfig, gatherRowsGateGradCpuConfig, gatherRowsTableGradCpuConfig, gatherRowsTailGradCpuConfig } from '../gatherRows/cpu';
import { linearCpuConfig } from '../linear/kernel';
import { routeTop1CpuConfig, routeTop1GradCpuConfig } from '../routeTop1/cpu';
import { routerStepCpuConfig } from '../routerStep/kernel';
import { routingLossCpuConfig, routingLossGradCpuConfig } from '../routingLoss/cpu';
import { scatterAddRowsCpuConfig } from '../scatterAddRows/cpu';
import { transposeMatrixCpuConfig } from '../transposeMatrix/cpu';
import { registerKernels } from '../util/registry';

export const cpuKernelConfigs: readonly KernelConfig[] = [
  batchedMatMulCpuConfig,
  collectiveAttentionCpuConfig,
  gatherRowsCpuConfig,
  gatherRowsTableGradCpuConfig,
  gatherRowsGateGradCpuConfig,
  gatherRowsTailGradCpuConfig,
  linearCpuConfig,
  routeTop1CpuConfig,
  routeTop1GradCpuConfig,
  routerStepCpuConfig,
  routingLossCpuConfig,
  routingLossGradCpuConfig,
  scatterAddRowsCpuConfig,
  transposeMatrixCpuConfig,
];

/** Registers the cpu kernels not registered yet (this module already did on import). */
export function registerCpuKernels(): void {
  registerKernels(cpuKernelConfigs);
}

registerCpuKernels();
