// Everything the library has, for the application (src/app) and the zoo: `collectivekv/internal`.
// UNSTABLE: names here may change in any release; the public API is src/index.ts.
// Importing it registers the custom kernels of the cpu and wasm backends and their gradients (the
// backends themselves stay optional peers the user imports). WebGPU kernels: `collectivekv/webgpu`.
import '../ops/register/cpu';
import '../ops/register/wasm';
import '../ops/register/gradients';

export * from '../ops/index';
export * from '../layers/index';
export * from './data/index';
export * from './metrics/index';
export * from './cache/index';
export * from './analysis/index';
export * from './convert/index';
export * from './train/index';
