// wasm kernels for gatherRows and its backward pass: the cpu routines run on views of the wasm
// heap (no copies).
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { GATHER_ROWS, GATHER_ROWS_GATE_GRAD, GATHER_ROWS_TABLE_GRAD, GATHER_ROWS_TAIL_GRAD } from '../kernelNames';
import { scatterAddInto } from '../scatterAddRows/cpu';
import { heapFloat32, heapInt32 } from '../util/wasm';
import { assertIndicesInRange, kernelInput } from '../util/validate';
import { gatherRowsGeometry, gatherRowsInto, gradStride, rowDotsInto, tailColumnsInto, tailGradShape } from './cpu';

const OP = 'gatherRows';

function gatherRowsWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const table = kernelInput(OP, args.inputs, 'table');
  const index = kernelInput(OP, args.inputs, 'index');
  const { gate, tail } = args.inputs;
  const { numRows, width, tailWidth, outShape } = gatherRowsGeometry(table, index, tail);
  // Check before allocating, so a bad index leaks no heap memory.
  assertIndicesInRange(OP, 'index', heapInt32(backend, index), numRows);
  const out = backend.makeOutput(outShape, 'float32');
  // Views after the allocation (it may have grown and detached the heap).
  gatherRowsInto(heapFloat32(backend, table), width, heapInt32(backend, index),
    gate == null ? null : heapFloat32(backend, gate), heapFloat32(backend, out),
    tail == null ? null : { values: heapFloat32(backend, tail), width: tailWidth });
  return out;
}

function tableGradWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const dy = kernelInput(OP, args.inputs, 'dy');
  const index = kernelInput(OP, args.inputs, 'index');
  const gate = kernelInput(OP, args.inputs, 'gate');
  const numRows = args.attrs?.numRows as number;
  const width = args.attrs?.width as number;
  const out = backend.makeOutput([numRows, width], 'float32');
  // Views after the allocation; malloc'd memory is not zeroed.
  const outView = heapFloat32(backend, out);
  outView.fill(0);
  scatterAddInto(outView, heapFloat32(backend, dy), heapInt32(backend, index), width, numRows, gradStride(dy),
    heapFloat32(backend, gate));
  return out;
}

function gateGradWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const dy = kernelInput(OP, args.inputs, 'dy');
  const table = kernelInput(OP, args.inputs, 'table');
  const index = kernelInput(OP, args.inputs, 'index');
  const out = backend.makeOutput(index.shape, 'float32');
  rowDotsInto(heapFloat32(backend, dy), gradStride(dy), heapFloat32(backend, table), table.shape[1],
    heapInt32(backend, index), heapFloat32(backend, out));
  return out;
}

function tailGradWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const dy = kernelInput(OP, args.inputs, 'dy');
  const width = args.attrs?.width as number;
  const out = backend.makeOutput(tailGradShape(dy, width), 'float32');
  tailColumnsInto(heapFloat32(backend, dy), gradStride(dy), width, heapFloat32(backend, out));
  return out;
}

export const gatherRowsWasmConfig: tf.KernelConfig = { kernelName: GATHER_ROWS, backendName: 'wasm', kernelFunc: gatherRowsWasm as tf.KernelFunc };
export const gatherRowsTableGradWasmConfig: tf.KernelConfig = { kernelName: GATHER_ROWS_TABLE_GRAD, backendName: 'wasm', kernelFunc: tableGradWasm as tf.KernelFunc };
export const gatherRowsGateGradWasmConfig: tf.KernelConfig = { kernelName: GATHER_ROWS_GATE_GRAD, backendName: 'wasm', kernelFunc: gateGradWasm as tf.KernelFunc };
export const gatherRowsTailGradWasmConfig: tf.KernelConfig = { kernelName: GATHER_ROWS_TAIL_GRAD, backendName: 'wasm', kernelFunc: tailGradWasm as tf.KernelFunc };
