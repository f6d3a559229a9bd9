// cpu kernel of batchedMatMul: the backend's own BatchMatMul (its loop has no slower batched path),
// registered (ops/register/cpu) so the op and its gradient run the same way on cpu as on wasm.
import * as tf from '@tensorflow/tfjs-core';
import { BATCHED_MAT_MUL } from '../kernelNames';
import { kernelInput } from '../util/validate';
import { ownBatchMatMul } from './ownKernel';

const OP = 'batchedMatMul';

function batchedMatMulCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  return ownBatchMatMul('cpu', kernelInput(OP, args.inputs, 'a'), kernelInput(OP, args.inputs, 'b'), args.backend);
}

export const batchedMatMulCpuConfig: tf.KernelConfig = { kernelName: BATCHED_MAT_MUL, backendName: 'cpu', kernelFunc: batchedMatMulCpu as tf.KernelFunc };
