// CollectiveKVAttention on the wasm backend: the shared algorithm reading and writing the wasm heap
// directly; the pool-form matmuls run on the backend's own SIMD BatchMatMul kernel when present.
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { COLLECTIVE_ATTENTION } from '../kernelNames';
import { describeProblem, requireInput, jsMatMul, runCollectiveAttention, Views, Workspace } from './core';

const INPUT_NAMES = ['query', 'indexK', 'indexV', 'userK', 'userV', 'poolK', 'poolV'] as const;

/** Scratch buffers are heap tensors, so they can be fed to the BatchMatMul kernel without copies. */
class WasmWorkspace implements Workspace<tf.TensorInfo> {
  readonly matMulCost: number;
  private readonly batchMatMul: tf.KernelFunc | null;

  constructor(private readonly backend: BackendWasm, private readonly inputs: tf.NamedTensorInfoMap, private readonly out: tf.TensorInfo) {
    this.batchMatMul = tf.getKernel(tf.BatchMatMul, 'wasm')?.kernelFunc ?? null;
    // Measured: the SIMD matmul does a multiply-add several times cheaper than the JS token loop.
    this.matMulCost = this.batchMatMul == null ? 0.8 : 0.15;
  }

  views(): Views {
    const heap = (t: tf.TensorInfo) => this.backend.typedArrayFromHeap(t);
    const [query, indexK, indexV, userK, userV, poolK, poolV] = INPUT_NAMES.map((name) => heap(requireInput(this.inputs, name)));
    return {
      query: query as Float32Array, indexK: indexK as Int32Array, indexV: indexV as Int32Array, userK: userK as Float32Array,
      userV: userV as Float32Array, poolK: poolK as Float32Array, poolV: poolV as Float32Array,
      mask: this.inputs.mask == null ? null : heap(this.inputs.mask), out: heap(this.out) as Float32Array,
    };
  }

  alloc(size: number): tf.TensorInfo {
    return this.backend.makeOutput([size], 'float32');
  }

  data(buf: tf.TensorInfo): Float32Array {
    return this.backend.typedArrayFromHeap(buf) as Float32Array;
  }

  /** Unbatched and untransposed on purpose: that is the shape the backend hands to XNNPACK. */
  matMul(a: tf.TensorInfo, b: tf.TensorInfo, m: number, k: number, n: number): tf.TensorInfo {
    if (this.batchMatMul != null) {
      return this.batchMatMul({ inputs: { a: { ...a, shape: [m, k] }, b: { ...b, shape: [k, n] } }, backend: this.backend,
        attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
    }
    const out = this.alloc(m * n);
    jsMatMul(this.data(a), this.data(b), this.data(out), m, k, n);
    return out;
  }

  free(buf: tf.TensorInfo): void {
    this.backend.disposeData(buf.dataId);
  }
}

function collectiveAttentionWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const problem = describeProblem(args.inputs, args.attrs ?? {});
  const out = backend.makeOutput([problem.batch, problem.tq, problem.numHeads * problem.dv], 'float32');
  try {
    runCollectiveAttention(problem, new WasmWorkspace(backend, args.inputs, out));
  } catch (e) {
    backend.disposeData(out.dataId); // e.g. an index out of range: leave no orphaned heap data
    throw e;
  }
  return out;
}

export const collectiveAttentionWasmConfig: tf.KernelConfig = {
  kernelName: COLLECTIVE_ATTENTION, backendName: 'wasm', kernelFunc: collectiveAttentionWasm as tf.KernelFunc,
};
