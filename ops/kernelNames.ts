// The names of every custom kernel this package registers with tfjs, in one place. Kernel files,
// gradient files, ops and tests import them from here. This module imports nothing, so it is always
// fully initialized before any module that registers or runs a kernel reads it.

/** batchedMatMul: a [..., M, K] x b [..., K, N] (cpu, wasm). */
export const BATCHED_MAT_MUL = 'CollectiveKVBatchedMatMul';
/** collectiveAttention: attention read straight from a compressed cache (cpu, wasm, webgpu). */
export const COLLECTIVE_ATTENTION = 'CollectiveKVAttention';
/** gatherRows: pool lookup with optional gate and tail (cpu, wasm, webgpu). */
export const GATHER_ROWS = 'CollectiveKVGatherRows';
/** Backward kernels of gatherRows (cpu, wasm); without them the gradient runs composite ops. */
export const GATHER_ROWS_TABLE_GRAD = 'CollectiveKVGatherRowsTableGrad';
export const GATHER_ROWS_GATE_GRAD = 'CollectiveKVGatherRowsGateGrad';
export const GATHER_ROWS_TAIL_GRAD = 'CollectiveKVGatherRowsTailGrad';
/** linear: y = x W + b over the last axis (cpu, wasm). */
export const LINEAR = 'CollectiveKVLinear';
/** routeTop1: argmax and gate over the pool axis (cpu, wasm, webgpu). */
export const ROUTE_TOP1 = 'CollectiveKVRouteTop1';
/** routeTop1's backward kernel (cpu, wasm). */
export const ROUTE_TOP1_GRAD = 'CollectiveKVRouteTop1Grad';
/** routeWithLoss: linear + routeTop1 + routing loss without keeping the logits (cpu, wasm). */
export const ROUTER_STEP = 'CollectiveKVRouterStep';
/** fusedRoutingLoss: peak + balance loss of one routed pool (cpu, wasm, webgpu). */
export const ROUTING_LOSS = 'CollectiveKVRoutingLoss';
/** fusedRoutingLoss's backward kernel (cpu, wasm, webgpu). */
export const ROUTING_LOSS_GRAD = 'CollectiveKVRoutingLossGrad';
/** scatterAddRows: the gradient of a row lookup (cpu, wasm, webgpu). */
export const SCATTER_ADD_ROWS = 'CollectiveKVScatterAddRows';
/** transposeMatrix: [rows, cols] -> [cols, rows] (cpu, wasm). */
export const TRANSPOSE_MATRIX = 'CollectiveKVTransposeMatrix';

/** Every custom kernel name, for tests and tools that walk the registry. */
export const KERNEL_NAMES = [
  BATCHED_MAT_MUL, COLLECTIVE_ATTENTION, GATHER_ROWS, GATHER_ROWS_TABLE_GRAD, GATHER_ROWS_GATE_GRAD, GATHER_ROWS_TAIL_GRAD, LINEAR,
  ROUTE_TOP1, ROUTE_TOP1_GRAD, ROUTER_STEP, ROUTING_LOSS, ROUTING_LOSS_GRAD, SCATTER_ADD_ROWS, TRANSPOSE_MATRIX,
] as const;
