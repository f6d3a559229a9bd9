// Opt-in fast gradients for tfjs's own embedding lookups (tf.gather, the Embedding layer).
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { scatterAddCpu } from '../scatterAddRows/cpu';
import { scatterAddWasm } from '../scatterAddRows/wasm';
import { ArgumentError, describeShape, kernelInput } from '../util/validate';

const USS = tf.UnsortedSegmentSum;
const BACKENDS = ['cpu', 'wasm'] as const;
type Backend = (typeof BACKENDS)[number];

/** The kernels we displaced, per backend (undefined: there was none), while enabled. */
let displaced: Map<Backend, tf.KernelConfig | undefined> | null = null;

/**
 * Makes the gradient of tfjs's gather (and so of the `Embedding` layer from
 * `@tensorflow/tfjs-layers`) fast on cpu and available on wasm, by serving tfjs's
 * `UnsortedSegmentSum` kernel with this package's scatter-add (the scatterAddRows kernels):
 *
 * - **wasm**: tfjs-backend-wasm 4.22 has no `UnsortedSegmentSum`, so any model with an Embedding
 *   layer (or a `tf.gather` on a trained tensor) throws "Kernel 'UnsortedSegmentSum' not
 *   registered for backend 'wasm'" in `model.fit`. This registers one. Probed with a model of
 *   Embedding + LayerNormalization + Dropout + Dense + softmax cross-entropy (sparse and dense)
 *   + Adam, and gather gradients on axes 0 and 1: `UnsortedSegmentSum` is the only kernel wasm
 *   lacks for that. (Other training kernels wasm still lacks, not covered here:
 *   Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter/Input, Einsum.)
 * - **cpu**: tfjs's `UnsortedSegmentSum` loops once per segment (table row) over all inputs
 *   (O(rows x indices x width): about 2 minutes for a 3416x64 table and 3200 indices); the
 *   scatter-add is one pass over the inputs (milliseconds). The original kernel is kept and
 *   `restoreDefaultEmbeddingGradients()` puts it back.
 *
 * Semantics match tfjs's: output [numSegments, ...x.shape after segmentIds' rank] in x's dtype
 * (float32 or int32), segment ids outside [0, numSegments) are dropped.
 *
 * Explicit opt-in (importing the package changes nothing): it replaces a global tfjs kernel for
 * every user of tfjs in the process. Call it after the backends are imported (importing a backend
 * afterwards re-registers tfjs's own kernel over ours). Idempotent.
 */
export function useFastEmbeddingGradients(): void {
  if (displaced != null) return;
  displaced = new Map();
  for (const backendName of BACKENDS) {
    displaced.set(backendName, tf.getKernel(USS, backendName));
    replaceKernel({ kernelName: USS, backendName, kernelFunc: backendName === 'cpu' ? segmentSumCpu : segmentSumWasm });
  }
}

/** Undoes useFastEmbeddingGradients(): tfjs's own kernels again (none on wasm). Idempotent. */
export function restoreDefaultEmbeddingGradients(): void {
  if (displaced == null) return;
  for (const backendName of BACKENDS) {
    const original = displaced.get(backendName);
    if (original == null) unregisterIfPresent(backendName);
    else replaceKernel(original);
  }
  displaced = null;
}

/** True between useFastEmbeddingGradients() and restoreDefaultEmbeddingGradients(). */
export function isFastEmbeddingGradientsEnabled(): boolean {
  return displaced != null;
}

/** Unregisters first: registering over an existing kernel works but logs a duplicate warning. */
function replaceKernel(config: tf.KernelConfig): void {
  unregisterIfPresent(config.backendName);
  tf.registerKernel(config);
}

function unregisterIfPresent(backendName: string): void {
  if (tf.getKernel(USS, backendName) != null) tf.unregisterKernel(USS, backendName);
}

interface SegmentSumArgs {
  x: tf.TensorInfo;
  segmentIds: tf.TensorInfo;
  numSegments: number;
  outShape: number[];
}

/** Inputs of an UnsortedSegmentSum call, checked the way the scatter-add needs them. */
function segmentSumArgs(inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap | undefined): SegmentSumArgs {
  const x = kernelInput(USS, inputs, 'x');
  const segmentIds = kernelInput(USS, inputs, 'segmentIds');
  const numSegments = attrs?.numSegments as number;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new ArgumentError(USS, 'x', 'a float32 or int32 tensor', `dtype ${x.dtype}`);
  }
  const k = segmentIds.shape.length;
  if (!segmentIds.shape.every((n, i) => n === x.shape[i])) {
    throw new ArgumentError(USS, 'segmentIds', `of a leading shape of x ${describeShape(x.shape)}`,
      `shape ${describeShape(segmentIds.shape)}`);
  }
  return { x, segmentIds, numSegments, outShape: [numSegments, ...x.shape.slice(k)] };
}

function segmentSumCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const a = segmentSumArgs(args.inputs, args.attrs);
  return scatterAddCpu(args.backend as MathBackendCPU, a.x, a.segmentIds, a.numSegments, a.outShape);
}

function segmentSumWasm(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const a = segmentSumArgs(args.inputs, args.attrs);
  return scatterAddWasm(args.backend as BackendWasm, a.x, a.segmentIds, a.numSegments, a.outShape);
}
