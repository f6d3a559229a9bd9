// Kernels for the router step on cpu and wasm: the backends' own linear, routeTop1 and routing-loss
// kernels run back to back, and the logits between them are freed before returning, so they never
// become a tensor (nor a tape entry). Outputs: index, gate, loss, meanProb (the loss gradient's
// [m] statistic).
import * as tf from '@tensorflow/tfjs-core';
import { kernelInput } from '../util/validate';

// Equal the names in ../linear, ../routeTop1, ../routingLoss and ./index (not imported: TDZ, as
// in those folders).
const LINEAR = 'CollectiveKVLinear';
const ROUTE_TOP1 = 'CollectiveKVRouteTop1';
const ROUTING_LOSS = 'CollectiveKVRoutingLoss';
const ROUTER_STEP = 'CollectiveKVRouterStep';
const OP = 'routeWithLoss';

function runOn(backendName: string, kernelName: string, args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend;
  attrs: tf.NamedAttrMap }): tf.TensorInfo[] {
  const kernel = tf.getKernel(kernelName, backendName);
  if (kernel == null) throw new Error(`${OP}: backend ${backendName} has no ${kernelName} kernel`);
  const out = kernel.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]);
  return Array.isArray(out) ? out : [out];
}

function makeRouterStepKernel(backendName: string): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as tf.KernelBackend;
    const [x, kernel, bias, mask] = ['x', 'router', 'bias', 'mask'].map((name) => kernelInput(OP, args.inputs, name));
    const poolSize = kernel.shape[1];
    const [logits] = runOn(backendName, LINEAR, { inputs: { x, kernel, bias }, backend, attrs: {} });
    const [index, gate] = runOn(backendName, ROUTE_TOP1, { inputs: { logits }, backend, attrs: { poolSize } });
    const [loss, meanProb] = runOn(backendName, ROUTING_LOSS, { inputs: { logits, mask }, backend, attrs: args.attrs ?? {} });
    backend.disposeData(logits.dataId);
    return [index, gate, loss, meanProb];
  };
}

for (const backendName of ['cpu', 'wasm']) {
  tf.registerKernel({ kernelName: ROUTER_STEP, backendName, kernelFunc: makeRouterStepKernel(backendName) });
}
