// cpu kernel of batchedMatMul: the backend's own BatchMatMul (its loop has no slower batched path),
// registered so the op and its gradient run the same way on cpu as on wasm.
import * as tf from '@tensorflow/tfjs-core';
import { kernelInput } from '../util/validate';
import { ownBatchMatMul } from './ownKernel';

// Equals BATCHED_MAT_MUL in ./index (not imported: TDZ, see grad.ts).
const BATCHED_MAT_MUL = 'CollectiveKVBatchedMatMul';
const OP = 'batchedMatMul';

function batchedMatMulCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  return ownBatchMatMul('cpu', kernelInput(OP, args.inputs, 'a'), kernelInput(OP, args.inputs, 'b'), args.backend);
}

tf.registerKernel({ kernelName: BATCHED_MAT_MUL, backendName: 'cpu', kernelFunc: batchedMatMulCpu as tf.KernelFunc });
