// wasm kernel of batchedMatMul: XNNPACK once per batch entry, in place on the heap.
//
// The backend's BatchMatMul gives XNNPACK only a product with batch 1 and no transposes; anything
// else runs a scalar loop. Here every batch entry's operands and output are registered with the
// module as temporary tensors at their offsets in the batch's heap memory (no copies), and the
// module's BatchMatMul runs on them as single products. Small products stay on the backend's
// kernel: per entry the module call costs ~25 us, more than the loop it would save.
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BATCHED_MAT_MUL } from '../kernelNames';
import { takeWasmDataIds, wasmModule, WasmModuleInternals } from '../util/tfjsInternals';
import { kernelInput } from '../util/validate';
import { ownBatchMatMul } from './ownKernel';

const OP = 'batchedMatMul';

/** Multiply-adds per batch entry below which the backend's own batched loop is faster (measured). */
export const MIN_MACS_PER_ENTRY = 32768;

type ModuleBatchMatMul = (aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number,
  transposeA: boolean, transposeB: boolean, outId: number) => void;

const moduleBatchMatMul = new WeakMap<object, ModuleBatchMatMul>();

/** The module's BatchMatMul, wrapped once per module (through ../util/tfjsInternals: not public API). */
function singleProduct(wasm: WasmModuleInternals): ModuleBatchMatMul {
  let f = moduleBatchMatMul.get(wasm);
  if (f == null) {
    f = wasm.cwrap<ModuleBatchMatMul>('BatchMatMul', null,
      ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']);
    moduleBatchMatMul.set(wasm, f);
  }
  return f;
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

function batchedMatMulWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const a = kernelInput(OP, args.inputs, 'a');
  const b = kernelInput(OP, args.inputs, 'b');
  const rank = a.shape.length;
  const [m, k, n] = [a.shape[rank - 2], a.shape[rank - 1], b.shape[rank - 1]];
  const lead = a.shape.slice(0, -2);
  const batch = lead.reduce((x, y) => x * y, 1);
  if (batch <= 1 || m * k * n < MIN_MACS_PER_ENTRY) return ownBatchMatMul('wasm', a, b, backend);
  const out = backend.makeOutput([...lead, m, n], 'float32');
  const wasm = wasmModule(backend);
  const product = singleProduct(wasm);
  // Ids from the backend's own counter, so they never collide with a live tensor's.
  const ids = takeWasmDataIds(backend, 3);
  const offsets = [a, b, out].map((t) => backend.getMemoryOffset(t.dataId));
  const sizes = [m * k, k * n, m * n];
  const [aShape, bShape] = [shapeBytes([1, m, k]), shapeBytes([1, k, n])];
  for (let i = 0; i < batch; i++) {
    for (let j = 0; j < 3; j++) wasm.registerTensor(ids[j], sizes[j], offsets[j] + 4 * i * sizes[j]);
    try {
      product(ids[0], aShape, 3, ids[1], bShape, 3, false, false, ids[2]);
    } finally {
      // Disposing an id also drops XNNPACK's operator cached for it (its packed copy of this entry's b).
      for (const id of ids) wasm.disposeData(id);
    }
  }
  return out;
}

export const batchedMatMulWasmConfig: tf.KernelConfig = { kernelName: BATCHED_MAT_MUL, backendName: 'wasm', kernelFunc: batchedMatMulWasm as tf.KernelFunc };
