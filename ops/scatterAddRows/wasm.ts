// wasm kernel for scatterAddRows: the cpu routine (scatterAddInto) run on views of the wasm heap.
// scatterAddWasm is also what useFastEmbeddingGradients() registers as wasm's UnsortedSegmentSum.
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { SCATTER_ADD_ROWS } from '../kernelNames';
import { heapInt32, heapNumeric } from '../util/wasm';
import { assertIndicesInRange, kernelInput } from '../util/validate';
import { NumericArray, scatterAddInto, scatterWidth } from './cpu';
const OP = 'scatterAddRows';

/** Allocates a zeroed heap output of `outShape` in rows' dtype and scatter-adds `rows` into it. */
export function scatterAddWasm(backend: BackendWasm, rows: tf.TensorInfo, index: tf.TensorInfo,
  numRows: number, outShape: number[]): tf.TensorInfo {
  const out = backend.makeOutput(outShape, rows.dtype);
  // Views after the allocation (it may have grown and detached the heap); malloc'd memory is not zeroed.
  const outView = heapNumeric(backend, out) as NumericArray;
  outView.fill(0);
  const idx = heapInt32(backend, index);
  scatterAddInto(outView, heapNumeric(backend, rows) as NumericArray, idx,
    scatterWidth(rows.shape, idx.length, outShape), numRows);
  return out;
}

function scatterAddRowsWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const rows = kernelInput(OP, args.inputs, 'rows');
  const index = kernelInput(OP, args.inputs, 'index');
  const numRows = args.attrs?.numRows as number;
  // Check before allocating, so a bad index leaks no heap memory.
  assertIndicesInRange(OP, 'index', heapInt32(backend, index), numRows);
  const width = rows.shape[rows.shape.length - 1];
  return scatterAddWasm(backend, rows, index, numRows, [numRows, width]);
}

export const scatterAddRowsWasmConfig: tf.KernelConfig = { kernelName: SCATTER_ADD_ROWS, backendName: 'wasm', kernelFunc: scatterAddRowsWasm as tf.KernelFunc };
