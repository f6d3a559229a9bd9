// CPU kernel for routeTop1, plus the array routine the wasm kernel reuses on heap views.
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { ROUTE_TOP1, ROUTE_TOP1_GRAD } from '../kernelNames';
import { cpuValues } from '../util/tfjsInternals';
import { kernelInput, sizeOf } from '../util/validate';

const OP = 'routeTop1';

/**
 * Per row of `poolSize` logits: the first maximum (ties go to the lowest index, like tf.argMax)
 * and the sigmoid of that maximum. One pass, no temporaries.
 */
export function routeTop1Into(logits: Float32Array, poolSize: number, index: Int32Array, gate: Float32Array): void {
  const rows = index.length;
  for (let r = 0, base = 0; r < rows; r++, base += poolSize) {
    let best = 0;
    let max = logits[base];
    for (let j = 1; j < poolSize; j++) {
      const v = logits[base + j];
      if (v > max) { max = v; best = j; }
    }
    index[r] = best;
    gate[r] = 1 / (1 + Math.exp(-max));
  }
}

/**
 * Gradient of the gate w.r.t. logits, written straight into dlogits (rows x poolSize, every entry
 * written: wasm outputs start uninitialized): zero except dgate * g * (1 - g) at the winning column
 * (d sigmoid(x)/dx = g (1 - g)). Replaces equal + cast + mul, three logits-sized temporaries.
 */
export function routeTop1GradInto(dgate: Float32Array, index: Int32Array, gate: Float32Array, poolSize: number,
  dlogits: Float32Array): void {
  dlogits.fill(0, 0, index.length * poolSize);
  for (let r = 0; r < index.length; r++) {
    const g = gate[r];
    dlogits[r * poolSize + index[r]] = dgate[r] * g * (1 - g);
  }
}

/** Output shape of index and gate: logits' shape without the pool axis. */
export function routeTop1OutShape(logitsShape: readonly number[]): number[] {
  return logitsShape.slice(0, -1);
}

function routeTop1Cpu(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo[] {
  const backend = args.backend as MathBackendCPU;
  const logits = kernelInput(OP, args.inputs, 'logits');
  const poolSize = logits.shape[logits.shape.length - 1];
  const outShape = routeTop1OutShape(logits.shape);
  const index = new Int32Array(sizeOf(outShape));
  const gate = new Float32Array(index.length);
  routeTop1Into(cpuValues(backend, logits) as Float32Array, poolSize, index, gate);
  return [backend.makeTensorInfo(outShape, 'int32', index), backend.makeTensorInfo(outShape, 'float32', gate)];
}

/** Inputs dgate, index, gate (logits' leading shape); attr poolSize; output dlogits [..., poolSize]. */
function routeTop1GradCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const [dgate, index, gate] = ['dgate', 'index', 'gate'].map((name) => kernelInput(OP, args.inputs, name));
  const poolSize = Number(args.attrs.poolSize);
  const read = (t: tf.TensorInfo) => cpuValues(backend, t);
  const dlogits = new Float32Array(sizeOf(index.shape) * poolSize);
  routeTop1GradInto(read(dgate) as Float32Array, read(index) as Int32Array, read(gate) as Float32Array, poolSize, dlogits);
  return backend.makeTensorInfo([...index.shape, poolSize], 'float32', dlogits);
}

export const routeTop1CpuConfig: tf.KernelConfig = { kernelName: ROUTE_TOP1, backendName: 'cpu', kernelFunc: routeTop1Cpu as tf.KernelFunc };
export const routeTop1GradCpuConfig: tf.KernelConfig = { kernelName: ROUTE_TOP1_GRAD, backendName: 'cpu', kernelFunc: routeTop1GradCpu as tf.KernelFunc };
