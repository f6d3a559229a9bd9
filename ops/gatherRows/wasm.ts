// wasm kernel for gatherRows: the cpu routine run on views of the wasm heap (no copies).
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapFloat32, heapInt32 } from '../util/wasm';
import { assertIndicesInRange, kernelInput } from '../util/validate';
import { gatherRowsGeometry, gatherRowsInto } from './cpu';

// Equals GATHER_ROWS in ./index (not imported: see cpu.ts).
const GATHER_ROWS = 'CollectiveKVGatherRows';
const OP = 'gatherRows';

function gatherRowsWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const table = kernelInput(OP, args.inputs, 'table');
  const index = kernelInput(OP, args.inputs, 'index');
  const gate = args.inputs.gate;
  const { numRows, width, outShape } = gatherRowsGeometry(table, index);
  // Check before allocating, so a bad index leaks no heap memory.
  assertIndicesInRange(OP, 'index', heapInt32(backend, index), numRows);
  const out = backend.makeOutput(outShape, 'float32');
  // Views after the allocation (it may have grown and detached the heap).
  gatherRowsInto(heapFloat32(backend, table), width, heapInt32(backend, index),
    gate == null ? null : heapFloat32(backend, gate), heapFloat32(backend, out));
  return out;
}

tf.registerKernel({ kernelName: GATHER_ROWS, backendName: 'wasm', kernelFunc: gatherRowsWasm as tf.KernelFunc });
