// wasm kernel for transposeMatrix: the cpu routine on views of the wasm heap (no copies).
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { TRANSPOSE_MATRIX } from '../kernelNames';
import { heapNumeric } from '../util/wasm';
import { transposeInput, transposeInto } from './cpu';

function transposeMatrixWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = transposeInput(args.inputs);
  const [rows, cols] = x.shape;
  const out = backend.makeOutput([cols, rows], x.dtype);
  // Views after the allocation (it may have grown and detached the heap).
  transposeInto(heapNumeric(backend, x), heapNumeric(backend, out) as Float32Array | Int32Array, rows, cols);
  return out;
}

export const transposeMatrixWasmConfig: tf.KernelConfig = { kernelName: TRANSPOSE_MATRIX, backendName: 'wasm', kernelFunc: transposeMatrixWasm as tf.KernelFunc };
