// CollectiveKVAttention on the cpu backend: the shared algorithm over the backend's own arrays.
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { COLLECTIVE_ATTENTION } from '../kernelNames';
import { cpuValues } from '../util/tfjsInternals';
import { describeProblem, requireInput, jsMatMul, runCollectiveAttention, Views, Workspace } from './core';

/** Scratch is plain Float32Arrays; the matmul is a JS loop, as costly per multiply-add as the token loop. */
class CpuWorkspace implements Workspace<Float32Array> {
  readonly matMulCost = 0.8;
  constructor(private readonly arrays: Views) {}
  views(): Views {
    return this.arrays;
  }
  alloc(size: number): Float32Array {
    return new Float32Array(size);
  }
  data(buf: Float32Array): Float32Array {
    return buf;
  }
  matMul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
    const out = new Float32Array(m * n);
    jsMatMul(a, b, out, m, k, n);
    return out;
  }
  free(): void {
    // garbage collected
  }
}

function collectiveAttentionCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const { inputs } = args;
  const problem = describeProblem(inputs, args.attrs ?? {});
  const values = (name: string) => cpuValues(backend, requireInput(inputs, name));
  const out = new Float32Array(problem.batch * problem.tq * problem.numHeads * problem.dv);
  const mask = inputs.mask == null ? null : (values('mask') as Float32Array | Int32Array | Uint8Array);
  runCollectiveAttention(problem, new CpuWorkspace({
    query: values('query') as Float32Array, indexK: values('indexK') as Int32Array, indexV: values('indexV') as Int32Array,
    userK: values('userK') as Float32Array, userV: values('userV') as Float32Array, poolK: values('poolK') as Float32Array,
    poolV: values('poolV') as Float32Array, mask, out,
  }));
  return backend.makeTensorInfo([problem.batch, problem.tq, problem.numHeads * problem.dv], 'float32', out);
}

export const collectiveAttentionCpuConfig: tf.KernelConfig = {
  kernelName: COLLECTIVE_ATTENTION, backendName: 'cpu', kernelFunc: collectiveAttentionCpu as tf.KernelFunc,
};
