// Times the fused CollectiveKVAttention kernel against the composite reference (gather + concat +
// standard attention) on the active (or a chosen) backend, after warm-up.
import * as tf from '@tensorflow/tfjs-core';
import { collectiveAttention, collectiveAttentionComposite, CompressedKV, KVPools } from '../../internal';

export interface CollectiveAttentionBenchOptions {
  /** Backend to switch to (must already be registered, e.g. by importing it); default: the active one. */
  backend?: string;
  batch?: number;
  tq?: number;
  tk?: number;
  /** Total model width H*dk. */
  width?: number;
  numHeads?: number;
  userDim?: number;
  poolSize?: number;
  attention?: 'softmax' | 'hstu';
  causal?: boolean;
  warmup?: number;
  iterations?: number;
  seed?: number;
}

export interface CollectiveAttentionBenchResult {
  backend: string;
  /** Median wall time of one call, milliseconds. */
  fusedMs: number;
  compositeMs: number;
  /** compositeMs / fusedMs. */
  speedup: number;
  /** Max |fused - composite| over the output. */
  maxAbsError: number;
}

export async function benchCollectiveAttention(options: CollectiveAttentionBenchOptions = {}): Promise<CollectiveAttentionBenchResult> {
  if (options.backend != null && tf.getBackend() !== options.backend) {
    if (!(await tf.setBackend(options.backend))) throw new Error(`backend ${options.backend} failed to initialize`);
  }
  await tf.ready();
  const o = { batch: 64, tq: 1, tk: 1000, width: 256, numHeads: 8, userDim: 1, poolSize: 1024, attention: 'softmax' as const,
    causal: false, warmup: 3, iterations: 10, seed: 1, ...options };
  const { query, cache, pools } = makeInputs(o);
  const run = { numHeads: o.numHeads, attention: o.attention, causal: o.causal };
  try {
    const fused = () => collectiveAttention(query, cache, pools, run);
    const composite = () => collectiveAttentionComposite(query, cache, pools, run);
    const maxAbsError = compare(fused, composite);
    const fusedMs = await timeIt(fused, o.warmup, o.iterations);
    const compositeMs = await timeIt(composite, o.warmup, o.iterations);
    return { backend: tf.getBackend(), fusedMs, compositeMs, speedup: compositeMs / fusedMs, maxAbsError };
  } finally {
    tf.dispose([query, cache.indexK, cache.indexV, cache.userK, cache.userV, pools.poolK, pools.poolV]);
  }
}

function makeInputs(o: { batch: number; tq: number; tk: number; width: number; userDim: number; poolSize: number; seed: number }) {
  const random = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
  const index = (seed: number) => tf.randomUniform([o.batch, o.tk], 0, o.poolSize, 'int32', seed);
  const query = random([o.batch, o.tq, o.width], o.seed);
  const cache: CompressedKV = { indexK: index(o.seed + 1), indexV: index(o.seed + 2), userK: random([o.batch, o.tk, o.userDim], o.seed + 3),
    userV: random([o.batch, o.tk, o.userDim], o.seed + 4) };
  const pools: KVPools = { poolK: random([o.poolSize, o.width - o.userDim], o.seed + 5),
    poolV: random([o.poolSize, o.width - o.userDim], o.seed + 6) };
  return { query, cache, pools };
}

function compare(a: () => tf.Tensor, b: () => tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a(), b()))).dataSync()[0]);
}

/** Median of `iterations` timed calls; each call includes reading the result back (dataSync). */
async function timeIt(f: () => tf.Tensor, warmup: number, iterations: number): Promise<number> {
  const once = () => {
    const start = performance.now();
    const out = f();
    out.dataSync();
    out.dispose();
    return performance.now() - start;
  };
  for (let i = 0; i < warmup; i++) once();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) times.push(once());
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)];
}
