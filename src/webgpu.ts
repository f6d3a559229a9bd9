// The `collectivekv/webgpu` entry: importing it registers the custom kernels of tfjs's webgpu
// backend (ops/register/webgpu). Import it next to @tensorflow/tfjs-backend-webgpu, in addition to
// the main entry (which registers the cpu and wasm kernels and every gradient). It does not load
// @tensorflow/tfjs-backend-webgpu itself, and the main entry does not load these kernels.
/**
 * Importing it registers the custom kernels of tfjs's webgpu backend; import it next to
 * @tensorflow/tfjs-backend-webgpu, in addition to the main entry.
 * @module collectivekv/webgpu
 */

import '../ops/register/webgpu';

export { registerWebGPUKernels, webgpuKernelConfigs } from '../ops/register/webgpu';
