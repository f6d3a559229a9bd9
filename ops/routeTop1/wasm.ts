// wasm kernel for routeTop1: the cpu routine run on views of the wasm heap (no copies).
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { ROUTE_TOP1, ROUTE_TOP1_GRAD } from '../kernelNames';
import { heapFloat32, heapInt32 } from '../util/wasm';
import { kernelInput } from '../util/validate';
import { routeTop1GradInto, routeTop1Into, routeTop1OutShape } from './cpu';

function routeTop1Wasm(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo[] {
  const backend = args.backend as BackendWasm;
  const logits = kernelInput('routeTop1', args.inputs, 'logits');
  const poolSize = logits.shape[logits.shape.length - 1];
  const outShape = routeTop1OutShape(logits.shape);
  const index = backend.makeOutput(outShape, 'int32');
  const gate = backend.makeOutput(outShape, 'float32');
  // Views after the last allocation (an allocation can grow and detach the heap).
  routeTop1Into(heapFloat32(backend, logits), poolSize, heapInt32(backend, index), heapFloat32(backend, gate));
  return [index, gate];
}

function routeTop1GradWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const [dgate, index, gate] = ['dgate', 'index', 'gate'].map((name) => kernelInput('routeTop1', args.inputs, name));
  const poolSize = Number(args.attrs.poolSize);
  const dlogits = backend.makeOutput([...index.shape, poolSize], 'float32');
  routeTop1GradInto(heapFloat32(backend, dgate), heapInt32(backend, index), heapFloat32(backend, gate), poolSize,
    heapFloat32(backend, dlogits));
  return dlogits;
}

export const routeTop1WasmConfig: tf.KernelConfig = { kernelName: ROUTE_TOP1, backendName: 'wasm', kernelFunc: routeTop1Wasm as tf.KernelFunc };
export const routeTop1GradWasmConfig: tf.KernelConfig = { kernelName: ROUTE_TOP1_GRAD, backendName: 'wasm', kernelFunc: routeTop1GradWasm as tf.KernelFunc };
