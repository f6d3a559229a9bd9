// CPU kernels for the fused routing loss and its gradient; the math is in ./core (shared with wasm).
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { ROUTING_LOSS, ROUTING_LOSS_GRAD } from '../kernelNames';
import { cpuValues } from '../util/tfjsInternals';
import { kernelInput } from '../util/validate';
import { RoutingLossWeights, routingLossBackward, routingLossForward } from './core';
const OP = 'fusedRoutingLoss';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };

/** The loss weights from a kernel's attrs (the op has validated them). */
export function lossWeights(attrs: tf.NamedAttrMap | undefined): RoutingLossWeights {
  return { peakWeight: Number(attrs?.peakWeight ?? 0), balanceWeight: Number(attrs?.balanceWeight ?? 0) };
}

/** Pool size m: the last axis of logits. */
export function poolAxis(logits: tf.TensorInfo): number {
  return logits.shape[logits.shape.length - 1];
}

function values(backend: MathBackendCPU, t: tf.TensorInfo): tf.backend_util.TypedArray {
  return cpuValues(backend, t) as tf.backend_util.TypedArray;
}

/** Outputs: the scalar loss and meanProb [m] (saved for the gradient; tiny). */
function routingLossCpu(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as MathBackendCPU;
  const logits = kernelInput(OP, args.inputs, 'logits');
  const mask = kernelInput(OP, args.inputs, 'mask');
  const m = poolAxis(logits);
  const meanProb = new Float32Array(m);
  const loss = routingLossForward(values(backend, logits) as Float32Array, m, values(backend, mask), lossWeights(args.attrs), meanProb);
  return [backend.makeTensorInfo([], 'float32', new Float32Array([loss])), backend.makeTensorInfo([m], 'float32', meanProb)];
}

/** Inputs dy (scalar), logits, mask, meanProb; output dlogits of logits' shape. */
function routingLossGradCpu(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const dy = kernelInput(OP, args.inputs, 'dy');
  const logits = kernelInput(OP, args.inputs, 'logits');
  const mask = kernelInput(OP, args.inputs, 'mask');
  const meanProb = kernelInput(OP, args.inputs, 'meanProb');
  const m = poolAxis(logits);
  const logitValues = values(backend, logits) as Float32Array;
  const dlogits = new Float32Array(logitValues.length);
  routingLossBackward(values(backend, dy)[0], logitValues, m, values(backend, mask), values(backend, meanProb) as Float32Array,
    lossWeights(args.attrs), dlogits);
  return backend.makeTensorInfo(logits.shape, 'float32', dlogits);
}

export const routingLossCpuConfig: tf.KernelConfig = { kernelName: ROUTING_LOSS, backendName: 'cpu', kernelFunc: routingLossCpu as tf.KernelFunc };
export const routingLossGradCpuConfig: tf.KernelConfig = { kernelName: ROUTING_LOSS_GRAD, backendName: 'cpu', kernelFunc: routingLossGradCpu as tf.KernelFunc };
