/** @jest-environment ./test/util/webgpuEnvironment.js */
import * as tf from '@tensorflow/tfjs-core';
import { COLLECTIVE_ATTENTION, collectiveAttention, collectiveAttentionComposite } from '../../ops/collectiveAttention/index';
import { describeWebGPU, leakAcrossRepeats, maxAbs, randomFloats, randomInts, runOn, seeded } from '../util/webgpu';

type MaskKind = 'none' | 'float32' | 'int32' | 'bool';

interface Case {
  name: string;
  b: number; tq: number; tk: number; h: number; dk: number; dv: number; duK: number; duV: number; pool: number;
  mask: MaskKind; causal: boolean; attention: 'softmax' | 'hstu'; scale?: number;
  /** Batch rows whose keys are all padding: their outputs must be exactly zero. */
  allMaskedBatch?: number;
}

/** Plain arrays for a case, so each backend builds its own tensors from the same numbers. */
function caseData(c: Case) {
  const seed = c.b * 7 + c.tk * 13 + c.pool;
  const keys = c.b * c.tk;
  const rand = seeded(seed + 99);
  const mask = Float32Array.from({ length: keys }, (_, i) =>
    (c.allMaskedBatch != null && Math.floor(i / c.tk) === c.allMaskedBatch) ? 0 : (rand() < 0.75 ? 1 : 0));
  return {
    query: randomFloats(c.b * c.tq * c.h * c.dk, seed + 1),
    indexK: randomInts(keys, c.pool, seed + 2), indexV: randomInts(keys, c.pool, seed + 3),
    userK: randomFloats(keys * c.duK, seed + 4), userV: randomFloats(keys * c.duV, seed + 5),
    poolK: randomFloats(c.pool * (c.h * c.dk - c.duK), seed + 6), poolV: randomFloats(c.pool * (c.h * c.dv - c.duV), seed + 7),
    mask,
  };
}

function maskTensor(c: Case, mask: Float32Array): tf.Tensor | undefined {
  if (c.mask === 'none') return undefined;
  if (c.mask === 'float32') return tf.tensor(mask, [c.b, c.tk]);
  return tf.tensor(Int32Array.from(mask), [c.b, c.tk], c.mask);
}

function attend(c: Case, run: typeof collectiveAttention): () => tf.Tensor {
  const d = caseData(c);
  return () => {
    const cache = {
      indexK: tf.tensor(d.indexK, [c.b, c.tk], 'int32'), indexV: tf.tensor(d.indexV, [c.b, c.tk], 'int32'),
      userK: tf.tensor(d.userK, [c.b, c.tk, c.duK]), userV: tf.tensor(d.userV, [c.b, c.tk, c.duV]), mask: maskTensor(c, d.mask),
    };
    const pools = { poolK: tf.tensor(d.poolK, [c.pool, c.h * c.dk - c.duK]), poolV: tf.tensor(d.poolV, [c.pool, c.h * c.dv - c.duV]) };
    const options = { numHeads: c.h, attention: c.attention, causal: c.causal, scale: c.scale };
    return run(tf.tensor(d.query, [c.b, c.tq, c.h * c.dk]), cache, pools, options);
  };
}

const base = { mask: 'float32' as MaskKind, causal: false, attention: 'softmax' as const };
const CASES: Case[] = [
  { ...base, name: 'all sizes 1', b: 1, tq: 1, tk: 1, h: 1, dk: 4, dv: 4, duK: 1, duV: 1, pool: 1, mask: 'none' },
  { ...base, name: 'Tk 65, pool 255, causal softmax', b: 2, tq: 3, tk: 65, h: 2, dk: 8, dv: 6, duK: 1, duV: 2, pool: 255, causal: true },
  { ...base, name: 'Tk 65, pool 255, causal hstu', b: 2, tq: 3, tk: 65, h: 2, dk: 8, dv: 6, duK: 1, duV: 2, pool: 255, causal: true, attention: 'hstu' },
  { ...base, name: 'no user part, pool 256, hstu, no mask', b: 1, tq: 5, tk: 130, h: 4, dk: 4, dv: 4, duK: 0, duV: 0, pool: 256, mask: 'none', causal: true, attention: 'hstu' },
  { ...base, name: 'dv 70 (2 columns per invocation), pool 257, int32 mask, scale 0.3', b: 3, tq: 2, tk: 64, h: 1, dk: 70, dv: 70, duK: 3, duV: 3, pool: 257, mask: 'int32', scale: 0.3 },
  { ...base, name: 'Tq > Tk causal (early queries see nothing), pool 4096, bool mask', b: 2, tq: 4, tk: 3, h: 2, dk: 2, dv: 2, duK: 1, duV: 1, pool: 4096, mask: 'bool', causal: true },
  { ...base, name: 'heads straddle pool and user columns, all-masked batch row, softmax', b: 3, tq: 2, tk: 20, h: 2, dk: 4, dv: 3, duK: 6, duV: 4, pool: 9, allMaskedBatch: 1 },
  { ...base, name: 'heads straddle pool and user columns, all-masked batch row, hstu', b: 3, tq: 2, tk: 20, h: 2, dk: 4, dv: 3, duK: 6, duV: 4, pool: 9, allMaskedBatch: 1, attention: 'hstu' },
  { ...base, name: 'decode over a long history, pool 4096', b: 2, tq: 1, tk: 1000, h: 2, dk: 32, dv: 32, duK: 1, duV: 1, pool: 4096 },
];

describeWebGPU('collectiveAttention', () => {
  it('runs its own webgpu kernel', () => {
    expect(tf.getBackend()).toBe('webgpu');
    expect(tf.getKernel(COLLECTIVE_ATTENTION, 'webgpu')).toBeDefined();
  });

  it.each(CASES.map((c) => [c.name, c] as const))('matches the cpu kernel and the composite reference: %s', async (_name, c) => {
    const reference = await runOn('cpu', attend(c, collectiveAttentionComposite));
    const cpu = await runOn('cpu', attend(c, collectiveAttention));
    const gpu = await runOn('webgpu', attend(c, collectiveAttention));
    expect(gpu.shapes).toEqual(reference.shapes);
    expect(maxAbs(gpu.values[0], reference.values[0])).toBeLessThan(1e-4);
    expect(maxAbs(gpu.values[0], cpu.values[0])).toBeLessThan(1e-4);
    if (c.allMaskedBatch != null) {
      const rowSize = c.tq * c.h * c.dv;
      const row = gpu.values[0].subarray(c.allMaskedBatch * rowSize, (c.allMaskedBatch + 1) * rowSize);
      expect(Array.from(row).every((v) => v === 0)).toBe(true);
    }
  });

  it('rejects out-of-range cache indices whose values are still on the CPU', () => {
    const c = CASES[1];
    const d = caseData(c);
    d.indexV[5] = c.pool;
    expect(() => tf.tidy(() => {
      const cache = {
        indexK: tf.tensor(d.indexK, [c.b, c.tk], 'int32'), indexV: tf.tensor(d.indexV, [c.b, c.tk], 'int32'),
        userK: tf.tensor(d.userK, [c.b, c.tk, c.duK]), userV: tf.tensor(d.userV, [c.b, c.tk, c.duV]),
      };
      const pools = { poolK: tf.tensor(d.poolK, [c.pool, c.h * c.dk - c.duK]), poolV: tf.tensor(d.poolV, [c.pool, c.h * c.dv - c.duV]) };
      return collectiveAttention(tf.tensor(d.query, [c.b, c.tq, c.h * c.dk]), cache, pools, { numHeads: c.h });
    })).toThrow(/indexV.*indices in \[0, 255\)/);
  });

  it('does not leak tensors or GPU buffers (masked and unmasked)', async () => {
    for (const c of [CASES[1], CASES[3]]) {
      const make = attend(c, collectiveAttention);
      const growth = await leakAcrossRepeats(async () => {
        const out = tf.tidy(make);
        await out.data();
        out.dispose();
      });
      expect(growth).toEqual({ tensors: 0, buffers: 0 });
    }
  });
});
