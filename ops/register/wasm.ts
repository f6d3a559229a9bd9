// Registers every custom kernel of the wasm backend, on import (see ./cpu.ts). The kernels import
// only the wasm backend's types: the backend itself stays an optional peer that the user imports.
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { batchedMatMulWasmConfig } from '../batchedMatMul/wasm';
import { collectiveAttentionWasmConfig } from '../collectiveAttention/wasm';
import { gatherRowsGateGradWasmConfig, gatherRowsTableGradWasmConfig, gatherRowsTailGradWasmConfig, gatherRowsWasmConfig } from '../gatherRows/wasm';
import { linearWasmConfig } from '../linear/kernel';
import { routeTop1GradWasmConfig, routeTop1WasmConfig } from '../routeTop1/wasm';
import { routerStepWasmConfig } from '../routerStep/kernel';
import { routingLossGradWasmConfig, routingLossWasmConfig } from '../routingLoss/wasm';
import { scatterAddRowsWasmConfig } from '../scatterAddRows/wasm';
import { transposeMatrixWasmConfig } from '../transposeMatrix/wasm';
import { registerKernels } from '../util/registry';

export const wasmKernelConfigs: readonly KernelConfig[] = [
  batchedMatMulWasmConfig,
  collectiveAttentionWasmConfig,
  gatherRowsWasmConfig,
  gatherRowsTableGradWasmConfig,
  gatherRowsGateGradWasmConfig,
  gatherRowsTailGradWasmConfig,
  linearWasmConfig,
  routeTop1WasmConfig,
  routeTop1GradWasmConfig,
  routerStepWasmConfig,
  routingLossWasmConfig,
  routingLossGradWasmConfig,
  scatterAddRowsWasmConfig,
  transposeMatrixWasmConfig,
];

/** Registers the wasm kernels not registered yet (this module already did on import). */
export function registerWasmKernels(): void {
  registerKernels(wasmKernelConfigs);
}

registerWasmKernels();
