// WebGPU kernels for the fused routing loss and its gradient (the math and notation are in ./core).
// A short fixed chain of programs, so nothing logits-sized is written except dlogits itself:
//   RowStats  one invocation per row: max, first argmax, softmax denominator (and, for the
//             gradient, dot_r = sum_j p_rj g_j); [rows, 4]
//   MaskCount one workgroup: C = max(sum of the mask, 1); [1]
//   MeanProb  one invocation per pool row j: q_j = (1/C) sum_r v_r p_rj; [m]
//   Loss      one workgroup: peak over rows + KL over the pool, shared-memory sums; [1]
//   Grad      one invocation per logit: the formula of routingLossBackward
// Accumulation is float32 (the cpu kernel uses float64): at a few thousand rows that is ~1e-6
// relative, well inside the 1e-4 the webgpu tests allow.
import * as tf from '@tensorflow/tfjs-core';
import { ROUTING_LOSS, ROUTING_LOSS_GRAD } from '../kernelNames';
import {
  flatDispatch, FlatProgram, input, ProgramUniforms, view, WebGPUBackend, webgpuKernelConfig, WebGPUProgram, WORKGROUP_SIZE,
} from '../util/webgpu';
import { lossWeights, poolAxis } from './cpu';
import type { RoutingLossWeights } from './core';
const OP = 'fusedRoutingLoss';

/** The clamp of q in log(q m), as in ./core (the f32 nearest to 1e-30 is a normal number). */
const FLOOR = '1e-30';

/** WGSL shared by the programs: g_j of ./core, reading meanProb. */
const BALANCE_GRADIENT = `
  fn balanceGradient(q : f32, m : i32) -> f32 {
    return log(max(q, ${FLOOR}) * f32(m)) + 1.0;
  }
`;

function ints(...values: number[]): ProgramUniforms {
  // One entry per scalar: the backend aligns a multi-value entry like a vector, not like i32 fields.
  return values.map((n) => ({ type: 'int32' as const, data: [n] }));
}

function floats(...values: number[]): ProgramUniforms {
  return values.map((n) => ({ type: 'float32' as const, data: [n] }));
}

/**
 * stats[r] = (max_r, first argmax_r as f32, sum_j exp(z_rj - max_r), dot_r). dot_r only with
 * `withDot` (the gradient; it reads meanProb), else 0. Rows of mask weight 0 are still computed:
 * cheaper than a branch the loss and gradient programs skip anyway.
 */
export class RowStatsProgram extends FlatProgram implements WebGPUProgram {
  uniforms = 'rows : i32, m : i32,';
  private readonly withDot: boolean;

  constructor(rows: number, withDot: boolean) {
    super();
    this.withDot = withDot;
    this.variableNames = withDot ? ['logits', 'meanProb'] : ['logits'];
    this.shaderKey = `collectivekvRoutingRowStats_${withDot}`;
    this.outputShape = [rows * 4];
    this.dispatch = flatDispatch(rows);
  }

  getUserCode(): string {
    const dot = this.withDot ? `
          var dot = 0.0;
          for (var j = 0; j < m; j++) {
            dot += exp(logits[base + j] - best) * balanceGradient(meanProb[j], m);
          }
          result[index * 4 + 3] = dot / sum;` : `
          result[index * 4 + 3] = 0.0;`;
    return `
      ${BALANCE_GRADIENT}
      fn main(index : i32) {
        if (index < uniforms.rows) {
          let m = uniforms.m;
          let base = index * m;
          var best = logits[base];
          var at = 0;
          for (var j = 1; j < m; j++) {
            let v = logits[base + j];
            if (v > best) { best = v; at = j; }
          }
          var sum = 0.0;
          for (var j = 0; j < m; j++) {
            sum += exp(logits[base + j] - best);
          }
          result[index * 4] = best;
          result[index * 4 + 1] = f32(at);
          result[index * 4 + 2] = sum;${dot}
        }
      }
    `;
  }
}

/** WGSL of a one-workgroup sum: each invocation accumulates `body` into `acc`, then a tree reduction into partial[0]. */
function workgroupSum(name: string): string {
  return `
    var<workgroup> ${name} : array<f32, ${WORKGROUP_SIZE}>;
    fn reduce_${name}(tid : i32) -> f32 {
      workgroupBarrier();
      for (var stride = ${WORKGROUP_SIZE / 2}; stride > 0; stride = stride / 2) {
        if (tid < stride) { ${name}[tid] += ${name}[tid + stride]; }
        workgroupBarrier();
      }
      return ${name}[0];
    }
  `;
}

/** count[0] = max(sum_r f32(mask[r]), 1). One workgroup; mask may be float32 or int32 (bool). */
export class MaskCountProgram implements WebGPUProgram {
  variableNames = ['mask'];
  outputShape = [1];
  shaderKey = 'collectivekvRoutingMaskCount';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  workgroupSize: [number, number, number] = [WORKGROUP_SIZE, 1, 1];
  uniforms = 'rows : i32,';

  getUserCode(): string {
    return `
      ${workgroupSum('partial')}
      fn main(index : i32) {
        var acc = 0.0;
        for (var r = index; r < uniforms.rows; r += ${WORKGROUP_SIZE}) { acc += f32(mask[r]); }
        partial[index] = acc;
        let total = reduce_partial(index);
        if (index == 0) { result[0] = max(total, 1.0); }
      }
    `;
  }
}

/** q_j = (1/C) sum_r v_r exp(z_rj - max_r) / sum_r: one invocation per pool row, looping over rows. */
export class MeanProbProgram extends FlatProgram implements WebGPUProgram {
  override variableNames = ['logits', 'mask', 'stats', 'count'];
  override shaderKey = 'collectivekvRoutingMeanProb';
  uniforms = 'rows : i32, m : i32,';

  constructor(m: number) {
    super(m);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.m) {
          var acc = 0.0;
          for (var r = 0; r < uniforms.rows; r++) {
            let v = f32(mask[r]);
            if (v != 0.0) {
              acc += v * exp(logits[r * uniforms.m + index] - stats[r * 4]) / stats[r * 4 + 2];
            }
          }
          result[index] = acc / count[0];
        }
      }
    `;
  }
}

/** loss = peakWeight * (-(1/C) sum_r v_r log sigmoid(max_r)) + balanceWeight * sum_j q_j log(max(q_j, floor) m). */
export class RoutingLossProgram implements WebGPUProgram {
  variableNames = ['mask', 'stats', 'meanProb', 'count'];
  outputShape = [1];
  shaderKey = 'collectivekvRoutingLoss';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  workgroupSize: [number, number, number] = [WORKGROUP_SIZE, 1, 1];
  uniforms = 'rows : i32, m : i32, peakWeight : f32, balanceWeight : f32,';

  getUserCode(): string {
    return `
      ${workgroupSum('peakPart')}
      ${workgroupSum('klPart')}
      // log sigmoid(x) = -softplus(-x), without overflow for large |x| (as ./core).
      fn logSigmoid(x : f32) -> f32 {
        if (x >= 0.0) { return -log(1.0 + exp(-x)); }
        return x - log(1.0 + exp(x));
      }
      fn main(index : i32) {
        var peak = 0.0;
        for (var r = index; r < uniforms.rows; r += ${WORKGROUP_SIZE}) {
          let v = f32(mask[r]);
          if (v != 0.0) { peak += v * logSigmoid(stats[r * 4]); }
        }
        var kl = 0.0;
        for (var j = index; j < uniforms.m; j += ${WORKGROUP_SIZE}) {
          let q = meanProb[j];
          kl += q * log(max(q, ${FLOOR}) * f32(uniforms.m));
        }
        peakPart[index] = peak;
        klPart[index] = kl;
        let peakSum = reduce_peakPart(index);
        let klSum = reduce_klPart(index);
        if (index == 0) {
          var loss = 0.0;
          if (uniforms.peakWeight != 0.0) { loss += uniforms.peakWeight * (-peakSum / count[0]); }
          if (uniforms.balanceWeight != 0.0) { loss += uniforms.balanceWeight * klSum; }
          result[0] = loss;
        }
      }
    `;
  }
}

/**
 * dlogits[r, k] = s_r (bw p_rk (g_k - dot_r) - [k = argmax_r] pw (1 - sigmoid(max_r))),
 * s_r = dy v_r / C; exactly 0 where s_r is 0 (padding), as the cpu kernel.
 */
export class RoutingLossGradProgram extends FlatProgram implements WebGPUProgram {
  override variableNames = ['dy', 'logits', 'mask', 'meanProb', 'stats', 'count'];
  override shaderKey = 'collectivekvRoutingLossGrad';
  uniforms = 'total : i32, m : i32, peakWeight : f32, balanceWeight : f32,';

  constructor(size: number) {
    super(size);
  }

  getUserCode(): string {
    return `
      ${BALANCE_GRADIENT}
      fn main(index : i32) {
        if (index < uniforms.total) {
          let m = uniforms.m;
          let r = index / m;
          let k = index - r * m;
          let scale = dy[0] * f32(mask[r]) / count[0];
          var g = 0.0;
          if (scale != 0.0) {
            let best = stats[r * 4];
            if (uniforms.balanceWeight != 0.0) {
              let p = exp(logits[index] - best) / stats[r * 4 + 2];
              g = scale * uniforms.balanceWeight * p * (balanceGradient(meanProb[k], m) - stats[r * 4 + 3]);
            }
            if (uniforms.peakWeight != 0.0 && k == i32(stats[r * 4 + 1])) {
              g -= scale * uniforms.peakWeight * (1.0 - 1.0 / (1.0 + exp(-best)));
            }
          }
          result[index] = g;
        }
      }
    `;
  }
}

interface Flat { logits: tf.TensorInfo; mask: tf.TensorInfo; rows: number; m: number }

/** logits as [rows * m] and the mask as [rows] (views over the same buffers). */
function flatten(inputs: tf.NamedTensorInfoMap): Flat {
  const logits = input(OP, inputs, 'logits');
  const mask = input(OP, inputs, 'mask');
  const m = poolAxis(logits);
  const rows = mask.shape.reduce((a, b) => a * b, 1);
  return { logits: view(logits, [rows * m]), mask: view(mask, [rows]), rows, m };
}

/** Row statistics and the valid count; the caller disposes both. */
function rowStats(backend: WebGPUBackend, f: Flat, meanProb: tf.TensorInfo | null): { stats: tf.TensorInfo; count: tf.TensorInfo } {
  const statsInputs = meanProb == null ? [f.logits] : [f.logits, meanProb];
  const stats = backend.runWebGPUProgram(new RowStatsProgram(f.rows, meanProb != null), statsInputs, 'float32', ints(f.rows, f.m));
  const count = backend.runWebGPUProgram(new MaskCountProgram(), [f.mask], 'float32', ints(f.rows));
  return { stats, count };
}

function release(backend: WebGPUBackend, temps: tf.TensorInfo[]): void {
  for (const t of temps) backend.disposeData(t.dataId);
}

function weightUniforms(w: RoutingLossWeights): ProgramUniforms {
  return floats(w.peakWeight, w.balanceWeight);
}

/** Outputs: the scalar loss and meanProb [m] (saved for the gradient), as the cpu kernel. */
function routingLossWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: tf.NamedAttrMap }): tf.TensorInfo[] {
  const { backend } = args;
  const f = flatten(args.inputs);
  if (f.rows === 0) {
    // No rows: count 1, q = 0, loss 0 (as ./core); WebGPU cannot bind the empty logits anyway.
    return [backend.makeTensorInfo([], 'float32', new Float32Array(1)), backend.makeTensorInfo([f.m], 'float32', new Float32Array(f.m))];
  }
  const weights = lossWeights(args.attrs);
  const { stats, count } = rowStats(backend, f, null);
  // Without a balance term q is never used; zeros, as the cpu kernel leaves it.
  const meanProb = weights.balanceWeight === 0 ? backend.makeTensorInfo([f.m], 'float32', new Float32Array(f.m))
    : backend.runWebGPUProgram(new MeanProbProgram(f.m), [f.logits, f.mask, stats, count], 'float32', ints(f.rows, f.m));
  const loss = backend.runWebGPUProgram(new RoutingLossProgram(), [f.mask, stats, meanProb, count], 'float32',
    [...ints(f.rows, f.m), ...weightUniforms(weights)]);
  release(backend, [stats, count]);
  return [view(loss, []), meanProb];
}

/** Inputs dy (scalar), logits, mask, meanProb; output dlogits of logits' shape. */
function routingLossGradWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { backend } = args;
  const f = flatten(args.inputs);
  const shape = input(OP, args.inputs, 'logits').shape;
  if (f.rows === 0) return backend.makeTensorInfo(shape, 'float32', new Float32Array(0));
  const dy = view(input(OP, args.inputs, 'dy'), [1]);
  const meanProb = input(OP, args.inputs, 'meanProb');
  const { stats, count } = rowStats(backend, f, meanProb);
  const size = f.rows * f.m;
  const out = backend.runWebGPUProgram(new RoutingLossGradProgram(size), [dy, f.logits, f.mask, meanProb, stats, count], 'float32',
    [...ints(size, f.m), ...weightUniforms(lossWeights(args.attrs))]);
  release(backend, [stats, count]);
  return view(out, shape);
}

export const routingLossWebGPUConfig = webgpuKernelConfig(ROUTING_LOSS, routingLossWebGPU);
export const routingLossGradWebGPUConfig = webgpuKernelConfig(ROUTING_LOSS_GRAD, routingLossGradWebGPU);
