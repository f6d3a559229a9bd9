// Views into the wasm backend's heap, so JS kernels read inputs and write outputs in place.
// The backend is an optional peer: only its type is imported here.
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';

/**
 * A Float32Array over a float32 tensor's heap memory. Take views only AFTER the kernel's last
 * makeOutput: an allocation may grow the heap, which detaches every earlier view.
 */
export function heapFloat32(backend: BackendWasm, t: TensorInfo): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`heapFloat32: expected a float32 tensor, got ${t.dtype}`);
  return backend.typedArrayFromHeap(t) as Float32Array;
}

/** An Int32Array over an int32 tensor's heap memory (same caveat as heapFloat32). */
export function heapInt32(backend: BackendWasm, t: TensorInfo): Int32Array {
  if (t.dtype !== 'int32') throw new Error(`heapInt32: expected an int32 tensor, got ${t.dtype}`);
  return backend.typedArrayFromHeap(t) as Int32Array;
}

/** A view of any numeric tensor (float32, int32, bool), for dtype-generic kernels. */
export function heapNumeric(backend: BackendWasm, t: TensorInfo): Float32Array | Int32Array | Uint8Array {
  return backend.typedArrayFromHeap(t) as Float32Array | Int32Array | Uint8Array;
}

/** Frees an output allocated by this kernel when the kernel fails after allocating. */
export function freeOutput(backend: BackendWasm, t: TensorInfo): void {
  backend.disposeData(t.dataId, true);
}
