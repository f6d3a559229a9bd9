// Kernels for linear: the backend's own _FusedMatMul (matmul + bias in one output) run on 3-D views
// of the inputs, its output relabeled to [..., out]. Views are metadata only (same dataId), so no
// Reshape or Add is recorded on the tape. cpu and wasm only (tested there; webgl textures are
// shape-bound, so a relabeled view is not safe in general); other backends run the composite.
import * as tf from '@tensorflow/tfjs-core';
import { LINEAR } from '../kernelNames';
import { kernelInput } from '../util/validate';
const OP = 'linear';

function view(t: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

function makeLinearKernel(backendName: string): tf.KernelFunc {
  return (args) => {
    const { backend } = args;
    const x = kernelInput(OP, args.inputs, 'x');
    const kernel = kernelInput(OP, args.inputs, 'kernel');
    const bias = kernelInput(OP, args.inputs, 'bias');
    const [inDim, outDim] = kernel.shape;
    const lead = x.shape.slice(0, -1);
    const rows = lead.reduce((a, b) => a * b, 1);
    const fused = tf.getKernel(tf._FusedMatMul, backendName);
    if (fused == null) throw new Error(`${OP}: backend ${backendName} has no _FusedMatMul kernel`);
    const y = fused.kernelFunc({
      inputs: { a: view(x, [1, rows, inDim]), b: view(kernel, [1, inDim, outDim]), bias },
      backend,
      attrs: { transposeA: false, transposeB: false, activation: 'linear', leakyreluAlpha: 0 },
    }) as tf.TensorInfo;
    return view(y, [...lead, outDim]);
  };
}

export const linearCpuConfig: tf.KernelConfig = { kernelName: LINEAR, backendName: 'cpu', kernelFunc: makeLinearKernel('cpu') };
export const linearWasmConfig: tf.KernelConfig = { kernelName: LINEAR, backendName: 'wasm', kernelFunc: makeLinearKernel('wasm') };
