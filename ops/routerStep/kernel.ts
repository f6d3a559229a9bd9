// Kernels for the router step on cpu and wasm: the backends' own linear, routeTop1 and routing-loss
// kernels run back to back, and the logits between them are freed before returning, so they never
// become a tensor (nor a tape entry). Outputs: index, gate, loss, meanProb (the loss gradient's
// [m] statistic).
import * as tf from '@tensorflow/tfjs-core';
import { GATHER_ROWS, LINEAR, ROUTE_TOP1, ROUTER_STEP, ROUTING_LOSS } from '../kernelNames';
import { kernelInput } from '../util/validate';
const OP = 'routeWithLoss';

function runOn(backendName: string, kernelName: string, args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend;
  attrs: tf.NamedAttrMap }): tf.TensorInfo[] {
  const kernel = tf.getKernel(kernelName, backendName);
  if (kernel == null) throw new Error(`${OP}: backend ${backendName} has no ${kernelName} kernel`);
  const out = kernel.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]);
  return Array.isArray(out) ? out : [out];
}

// x [N, de], mask [N]; with attrs.sampled the balance term runs on the rows in balanceRows only.
function makeRouterStepKernel(backendName: string): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as tf.KernelBackend;
    const [x, kernel, bias, mask, balanceRows] = ['x', 'router', 'bias', 'mask', 'balanceRows'].map((name) => kernelInput(OP, args.inputs, name));
    const poolSize = kernel.shape[1];
    const attrs = args.attrs ?? {};
    const run = (name: string, inputs: tf.NamedTensorInfoMap, a: tf.NamedAttrMap) => runOn(backendName, name, { inputs, backend, attrs: a });
    const [logits] = run(LINEAR, { x, kernel, bias }, {});
    const [index, gate] = run(ROUTE_TOP1, { logits }, { poolSize });
    const [loss, meanProb] = attrs.sampled === true ? sampledLoss(run, backend, logits, mask, balanceRows, attrs) : run(ROUTING_LOSS, { logits, mask }, attrs);
    backend.disposeData(logits.dataId);
    return [index, gate, loss, meanProb];
  };
}

type Run = (name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap) => tf.TensorInfo[];

/** Peak over all rows + balance over the gathered rows: [loss, meanProb of the gathered rows]. */
function sampledLoss(run: Run, backend: tf.KernelBackend, logits: tf.TensorInfo, mask: tf.TensorInfo, rows: tf.TensorInfo,
  attrs: tf.NamedAttrMap): tf.TensorInfo[] {
  // The row gather, not GatherV2 (wasm's runs ~10x slower on [N, m]); the mask's [S] in plain JS.
  const [sampleLogits] = run(GATHER_ROWS, { table: logits, index: rows }, {});
  const maskValues = backend.readSync(mask.dataId) as Float32Array;
  const sampleShape = [rows.shape[0]];
  const sampleValues = Float32Array.from(backend.readSync(rows.dataId) as Int32Array, (r) => maskValues[r]);
  const sampleMask: tf.TensorInfo = { dataId: backend.write(sampleValues, sampleShape, 'float32'), shape: sampleShape, dtype: 'float32' };
  const [balance, meanProb] = run(ROUTING_LOSS, { logits: sampleLogits, mask: sampleMask }, { peakWeight: 0, balanceWeight: attrs.balanceWeight });
  for (const t of [sampleLogits, sampleMask]) backend.disposeData(t.dataId);
  if (Number(attrs.peakWeight) === 0) return [balance, meanProb];
  const [peak, unused] = run(ROUTING_LOSS, { logits, mask }, { peakWeight: attrs.peakWeight, balanceWeight: 0 });
  const [loss] = run(tf.Add, { a: peak, b: balance }, {});
  for (const t of [peak, unused, balance]) backend.disposeData(t.dataId);
  return [loss, meanProb];
}

export const routerStepCpuConfig: tf.KernelConfig = { kernelName: ROUTER_STEP, backendName: 'cpu', kernelFunc: makeRouterStepKernel('cpu') };
export const routerStepWasmConfig: tf.KernelConfig = { kernelName: ROUTER_STEP, backendName: 'wasm', kernelFunc: makeRouterStepKernel('wasm') };
