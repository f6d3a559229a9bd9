// wasm kernels for the fused routing loss and its gradient: the ./core routines run on views of
// the wasm heap, so the only heap memory they take is their outputs (no full-size temporaries).
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { ROUTING_LOSS, ROUTING_LOSS_GRAD } from '../kernelNames';
import { heapFloat32, heapNumeric } from '../util/wasm';
import { kernelInput } from '../util/validate';
import { routingLossBackward, routingLossForward } from './core';
import { lossWeights, poolAxis } from './cpu';

const OP = 'fusedRoutingLoss';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };

function routingLossWasm(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as BackendWasm;
  const logits = kernelInput(OP, args.inputs, 'logits');
  const mask = kernelInput(OP, args.inputs, 'mask');
  const m = poolAxis(logits);
  const loss = backend.makeOutput([], 'float32');
  const meanProb = backend.makeOutput([m], 'float32');
  // Views after the last allocation (an allocation can grow and detach the heap).
  const value = routingLossForward(heapFloat32(backend, logits), m, heapNumeric(backend, mask), lossWeights(args.attrs),
    heapFloat32(backend, meanProb));
  heapFloat32(backend, loss)[0] = value;
  return [loss, meanProb];
}

function routingLossGradWasm(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const dy = kernelInput(OP, args.inputs, 'dy');
  const logits = kernelInput(OP, args.inputs, 'logits');
  const mask = kernelInput(OP, args.inputs, 'mask');
  const meanProb = kernelInput(OP, args.inputs, 'meanProb');
  const dlogits = backend.makeOutput(logits.shape, 'float32');
  routingLossBackward(heapFloat32(backend, dy)[0], heapFloat32(backend, logits), poolAxis(logits), heapNumeric(backend, mask),
    heapFloat32(backend, meanProb), lossWeights(args.attrs), heapFloat32(backend, dlogits));
  return dlogits;
}

export const routingLossWasmConfig: tf.KernelConfig = { kernelName: ROUTING_LOSS, backendName: 'wasm', kernelFunc: routingLossWasm as tf.KernelFunc };
export const routingLossGradWasmConfig: tf.KernelConfig = { kernelName: ROUTING_LOSS_GRAD, backendName: 'wasm', kernelFunc: routingLossGradWasm as tf.KernelFunc };
