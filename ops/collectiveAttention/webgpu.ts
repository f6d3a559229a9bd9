// WebGPU kernel for collectiveAttention: attention straight from the compressed cache. One
// workgroup per (batch, query, head); keys and values are read from the pool rows and user parts
// where they lie, full K/V are never written.
import * as tf from '@tensorflow/tfjs-core';
import { COLLECTIVE_ATTENTION } from '../kernelNames';
import {
  checkIndicesIfOnCpu, dispatchFor, flatDispatch, FlatProgram, input, nonEmpty, ProgramUniforms, releaseAll, view, WebGPUBackend, webgpuKernelConfig, WebGPUProgram, WORKGROUP_SIZE,
} from '../util/webgpu';
const OP = 'collectiveAttention';

/**
 * Packs (indexK, indexV, valid) per key into one int32 buffer [B*Tk*3]. Why: WebGPU's baseline
 * allows 8 storage buffers per shader stage, and the attention would otherwise bind 9 (output,
 * query, indexK, userK, indexV, userV, poolK, poolV, mask). This costs one tiny pass over B*Tk keys
 * and keeps a single attention shader for masked and unmasked calls.
 */
export class PackKeySlotsProgram extends FlatProgram implements WebGPUProgram {
  uniforms = 'keys : i32,';
  private readonly hasMask: boolean;

  constructor(keys: number, hasMask: boolean) {
    super();
    this.hasMask = hasMask;
    this.variableNames = hasMask ? ['indexK', 'indexV', 'keyMask'] : ['indexK', 'indexV'];
    this.outputShape = [keys * 3];
    this.dispatch = flatDispatch(keys);
    this.shaderKey = `collectivekvPackKeySlots_${hasMask ? 'mask' : 'nomask'}`;
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.keys) {
          result[3 * index] = indexK[index];
          result[3 * index + 1] = indexV[index];
          result[3 * index + 2] = ${this.hasMask ? 'select(0, 1, f32(keyMask[index]) != 0.0)' : '1'};
        }
      }
    `;
  }
}

/** What the shader text depends on (everything else travels as uniforms, so pipelines are reused). */
export interface AttentionVariant {
  hstu: boolean;
  causal: boolean;
  /** ceil(dv / WORKGROUP_SIZE): value columns each invocation accumulates in registers. */
  colsPerThread: number;
}

/** Scalar uniforms, in the order of `uniforms` below. */
export interface AttentionDims {
  numGroups: number; tq: number; tk: number; numHeads: number; dk: number; dv: number;
  dgK: number; dgV: number; duK: number; duV: number; poolRowsK: number; poolRowsV: number; scale: number;
}

const INT_UNIFORMS = ['numGroups', 'tq', 'tk', 'numHeads', 'dk', 'dv', 'dgK', 'dgV', 'duK', 'duV', 'poolRowsK', 'poolRowsV'] as const;

/**
 * Semantics are those of dotProductAttention on K = concat(poolK[indexK], userK), V likewise, heads
 * split after the concat: a key is valid when mask != 0 and (causal) i <= t + Tk - Tq; softmax runs
 * over valid keys only; hstu weights are SiLU(score) / (number of valid keys); a query with no
 * valid key outputs zeros. A pool index outside the pool reads a zero pool part (as gatherRows).
 *
 * Phase 1: each invocation walks keys tid, tid+64, ... keeping an online (max, sum of exp) pair and
 * a valid count; a tree reduction in workgroup memory merges the pairs (softmax needs the row max
 * and normalizer before any weight is final). Phase 2: keys in tiles of 64, one score per
 * invocation into workgroup memory, then every invocation adds weight * value for the value
 * columns it owns (d = tid + k*64), in registers. Scores are computed twice rather than stored,
 * because Tk is unbounded and workgroup memory is 16 KiB.
 */
export class CollectiveAttentionProgram extends FlatProgram implements WebGPUProgram {
  uniforms = `${INT_UNIFORMS.map((n) => `${n} : i32,`).join(' ')} scale : f32,`;
  private readonly variant: AttentionVariant;

  constructor(outSize: number, numGroups: number, variant: AttentionVariant) {
    super();
    this.variant = variant;
    this.variableNames = ['query', 'slots', 'userK', 'userV', 'poolK', 'poolV'];
    this.outputShape = [outSize];
    this.dispatch = dispatchFor(numGroups);
    this.shaderKey = `collectivekvAttention_${variant.hstu ? 'hstu' : 'softmax'}_${variant.causal ? 'causal' : 'full'}_` +
      `${variant.colsPerThread}`;
  }

  /** Packs the uniforms in declaration order (one entry per scalar, see scatterAddRows). */
  static uniformData(dims: AttentionDims): ProgramUniforms {
    const ints: ProgramUniforms = INT_UNIFORMS.map((n) => ({ type: 'int32', data: [dims[n]] }));
    return [...ints, { type: 'float32', data: [dims.scale] }];
  }

  getUserCode(): string {
    const { hstu, causal, colsPerThread } = this.variant;
    const wg = WORKGROUP_SIZE;
    const weight = hstu ? 's / (1.0 + exp(-s)) / count' : 'exp(s - rowMax) / rowSum';
    return `
      var<workgroup> redMax : array<f32, ${wg}>;
      var<workgroup> redSum : array<f32, ${wg}>;
      var<workgroup> redCount : array<f32, ${wg}>;
      var<workgroup> tileWeight : array<f32, ${wg}>;
      var<workgroup> tileRow : array<i32, ${wg}>;

      fn isValid(b : i32, t : i32, i : i32) -> bool {
        var ok = slots[3 * (b * uniforms.tk + i) + 2] != 0;
        ${causal ? 'ok = ok && i <= t + uniforms.tk - uniforms.tq;' : ''}
        return ok;
      }

      // Scaled q . k_i over head h's key columns: pool part, then user part (a head may straddle both).
      fn score(b : i32, t : i32, h : i32, i : i32) -> f32 {
        let dk = uniforms.dk;
        let qBase = (b * uniforms.tq + t) * uniforms.numHeads * dk;
        let c0 = h * dk;
        let c1 = c0 + dk;
        let bi = b * uniforms.tk + i;
        var s = 0.0;
        let r = slots[3 * bi];
        if (r >= 0 && r < uniforms.poolRowsK) {
          let poolEnd = min(c1, uniforms.dgK);
          for (var c = c0; c < poolEnd; c++) {
            s += query[qBase + c] * poolK[r * uniforms.dgK + c];
          }
        }
        for (var c = max(c0, uniforms.dgK); c < c1; c++) {
          s += query[qBase + c] * userK[bi * uniforms.duK + c - uniforms.dgK];
        }
        return s * uniforms.scale;
      }

      // Column j of value i (its pool row r already read): pool part or user part.
      fn valueAt(b : i32, i : i32, r : i32, j : i32) -> f32 {
        if (j < uniforms.dgV) {
          if (r >= 0 && r < uniforms.poolRowsV) {
            return poolV[r * uniforms.dgV + j];
          }
          return 0.0;
        }
        return userV[(b * uniforms.tk + i) * uniforms.duV + j - uniforms.dgV];
      }

      fn main(index : i32) {
        let tid = index % ${wg};
        let rawGroup = index / ${wg};
        // Padding workgroups of a folded dispatch compute group numGroups-1 again and write nothing.
        let live = rawGroup < uniforms.numGroups;
        let g = min(rawGroup, uniforms.numGroups - 1);
        let h = g % uniforms.numHeads;
        let bt = g / uniforms.numHeads;
        let t = bt % uniforms.tq;
        let b = bt / uniforms.tq;
        let tk = uniforms.tk;

        // Phase 1: valid count, and for softmax the row max and sum of exp (online per invocation).
        var m = -3.402823e+38;
        var l = 0.0;
        var n = 0.0;
        for (var i = tid; i < tk; i += ${wg}) {
          if (isValid(b, t, i)) {
            n += 1.0;
            ${hstu ? '' : `let s = score(b, t, h, i);
            let mNew = max(m, s);
            l = l * exp(m - mNew) + exp(s - mNew);
            m = mNew;`}
          }
        }
        redMax[tid] = m;
        redSum[tid] = l;
        redCount[tid] = n;
        workgroupBarrier();
        for (var stride = ${wg / 2}; stride > 0; stride = stride / 2) {
          if (tid < stride) {
            let m1 = redMax[tid];
            let m2 = redMax[tid + stride];
            let mNew = max(m1, m2);
            redSum[tid] = redSum[tid] * exp(m1 - mNew) + redSum[tid + stride] * exp(m2 - mNew);
            redMax[tid] = mNew;
            redCount[tid] = redCount[tid] + redCount[tid + stride];
          }
          workgroupBarrier();
        }
        let rowMax = redMax[0];
        let rowSum = redSum[0];
        let count = redCount[0];

        // Phase 2: weights of a tile of keys into workgroup memory, then weight * value per owned column.
        var acc : array<f32, ${colsPerThread}>;
        for (var base = 0; base < tk; base += ${wg}) {
          let i = base + tid;
          var w = 0.0;
          var r = -1;
          if (i < tk) {
            r = slots[3 * (b * tk + i) + 1];
            if (count > 0.0 && isValid(b, t, i)) {
              let s = score(b, t, h, i);
              w = ${weight};
            }
          }
          tileWeight[tid] = w;
          tileRow[tid] = r;
          workgroupBarrier();
          let tileLen = min(${wg}, tk - base);
          for (var k = 0; k < tileLen; k++) {
            let wk = tileWeight[k];
            if (wk != 0.0) {
              let rk = tileRow[k];
              for (var q = 0; q < ${colsPerThread}; q++) {
                let d = tid + q * ${wg};
                if (d < uniforms.dv) {
                  acc[q] += wk * valueAt(b, base + k, rk, h * uniforms.dv + d);
                }
              }
            }
          }
          workgroupBarrier();
        }
        if (live) {
          let outBase = g * uniforms.dv;
          for (var q = 0; q < ${colsPerThread}; q++) {
            let d = tid + q * ${wg};
            if (d < uniforms.dv) {
              result[outBase + d] = acc[q];
            }
          }
        }
      }
    `;
  }
}

/** Reads the problem's sizes from the inputs and attrs (the op validated them). */
function attentionDims(inputs: Record<string, tf.TensorInfo>, attrs: tf.NamedAttrMap): AttentionDims {
  const { query, indexK, userK, userV, poolK, poolV } = inputs;
  const numHeads = attrs.numHeads as number;
  const [batch, tk] = indexK.shape;
  const tq = query.shape[1];
  const dk = query.shape[2] / numHeads;
  const duK = userK.shape[2];
  const duV = userV.shape[2];
  const dgV = poolV.shape[1];
  const scale = attrs.scale as number | undefined;
  return {
    numGroups: batch * tq * numHeads, tq, tk, numHeads, dk, dv: (dgV + duV) / numHeads, dgK: poolK.shape[1], dgV, duK, duV,
    poolRowsK: poolK.shape[0], poolRowsV: poolV.shape[0],
    // The op passes -1 for "default"; like the cpu kernel, any negative scale means 1/sqrt(dk).
    scale: scale == null || scale < 0 ? 1 / Math.sqrt(dk) : scale,
  };
}

function collectiveAttentionWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { backend, attrs } = args;
  const names = ['query', 'indexK', 'userK', 'indexV', 'userV', 'poolK', 'poolV'];
  const inputs: Record<string, tf.TensorInfo> = {};
  for (const name of names) inputs[name] = input(OP, args.inputs, name);
  const mask = args.inputs.mask;
  const dims = attentionDims(inputs, attrs);
  checkIndicesIfOnCpu(backend, OP, 'cache.indexK', inputs.indexK, dims.poolRowsK);
  checkIndicesIfOnCpu(backend, OP, 'cache.indexV', inputs.indexV, dims.poolRowsV);
  const [batch, tq] = [inputs.query.shape[0], inputs.query.shape[1]];
  const outShape = [batch, tq, dims.numHeads * dims.dv];
  const outSize = batch * tq * dims.numHeads * dims.dv;
  if (outSize === 0) return backend.makeTensorInfo(outShape, 'float32', new Float32Array(0));
  const variant: AttentionVariant = {
    hstu: attrs.attention === 'hstu', causal: attrs.causal === true,
    colsPerThread: Math.max(1, Math.ceil(dims.dv / WORKGROUP_SIZE)),
  };
  const keys = batch * dims.tk;
  const temps: tf.TensorInfo[] = [];
  // Flat views (shaders index by hand); empty ones (zero-width user part, empty history) get a
  // one-element stand-in because WebGPU cannot bind an empty buffer. The shader never reads it.
  const flat = (t: tf.TensorInfo) => nonEmpty(backend, view(t, [t.shape.reduce((a, b) => a * b, 1)]), temps);
  let slots: tf.TensorInfo;
  if (keys === 0) {
    slots = backend.makeTensorInfo([3], 'int32', new Int32Array(3));
    temps.push(slots);
  } else {
    const packInputs = [inputs.indexK, inputs.indexV, ...(mask != null ? [mask] : [])].map(flat);
    slots = backend.runWebGPUProgram(new PackKeySlotsProgram(keys, mask != null), packInputs, 'int32',
      [{ type: 'int32', data: [keys] }]);
    temps.push(slots);
  }
  const bound = [flat(inputs.query), slots, ...['userK', 'userV', 'poolK', 'poolV'].map((n) => flat(inputs[n]))];
  const program = new CollectiveAttentionProgram(outSize, dims.numGroups, variant);
  const out = backend.runWebGPUProgram(program, bound, 'float32', CollectiveAttentionProgram.uniformData(dims));
  releaseAll(backend, temps);
  return view(out, outShape);
}

export const collectiveAttentionWebGPUConfig = webgpuKernelConfig(COLLECTIVE_ATTENTION, collectiveAttentionWebGPU);
