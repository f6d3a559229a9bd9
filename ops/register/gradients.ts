// Registers the gradient of every custom kernel, on import (as tfjs-core's
// register_all_gradients): one per kernel an op runs under a tape, whichever backend runs it.
// Idempotent (see ./cpu.ts). The package's main entry imports this file; without it, training
// through an op whose kernel is registered fails with tfjs's "gradient function not found".
// collectiveAttention has none: it is inference only.
import type { GradConfig } from '@tensorflow/tfjs-core';
import { batchedMatMulGradientConfig } from '../batchedMatMul/grad';
import { gatherRowsGradientConfig } from '../gatherRows/grad';
import { linearGradientConfig } from '../linear/grad';
import { routeTop1GradientConfig } from '../routeTop1/grad';
import { routerStepGradientConfig } from '../routerStep/grad';
import { routingLossGradientConfig } from '../routingLoss/grad';
import { scatterAddRowsGradientConfig } from '../scatterAddRows/grad';
import { transposeMatrixGradientConfig } from '../transposeMatrix/grad';
import { registerGradients } from '../util/registry';

export const gradientConfigs: readonly GradConfig[] = [
  batchedMatMulGradientConfig,
  gatherRowsGradientConfig,
  linearGradientConfig,
  routeTop1GradientConfig,
  routerStepGradientConfig,
  routingLossGradientConfig,
  scatterAddRowsGradientConfig,
  transposeMatrixGradientConfig,
];

/** Registers the gradients not registered yet (this module already did on import). */
export function registerKernelGradients(): void {
  registerGradients(gradientConfigs);
}

registerKernelGradients();
