// analyzeKV: the paper's K/V analysis on any model with MultiHeadAttention or
// CollectiveKVAttention layers (docs/design.md section 7).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { seededRandom } from '../data/random';
import { ArgumentError, dim } from '../../ops/util/validate';
import { CollectiveKVAttention } from '../../layers/CollectiveKVAttention';
import { AttentionLayer, attentionLayers, captureAttentionInputs, disposeSites, keysAndValues, sampleRows, validIndex, validRows } from './capture';
import { SpectrumAnalysis, SpectrumOptions, analyzeSpectrum } from './spectrum';

export interface AnalyzeKVOptions extends SpectrumOptions {
  /** Valid tokens per layer analyzed (sampled uniformly, seeded). Default 20000. */
  maxTokens?: number;
  /** Batch size of the forward pass over the sample. Default 64. */
  batchSize?: number;
  /** Only these layers (by name). Default: every attention layer. */
  layers?: string[];
}

/**
 * How a routed pool is used by the sample's valid tokens. A pool whose tokens crowd onto a few rows
 * acts like a much smaller pool; a mean gate well below 1 means the training forward (rows scaled
 * by the gate) and inference (unscaled rows) see different K/V.
 */
export interface PoolUsage {
  poolSize: number;
  tokens: number;
  /** Rows chosen by at least one token. */
  rowsUsed: number;
  /** Rows holding 90% of the tokens, fewest first. */
  rowsFor90: number;
  /** Share of the tokens on the most chosen row. */
  topRowShare: number;
  /** sigmoid of the winning logit: mean and 10th percentile. */
  meanGate: number;
  gateP10: number;
}

export interface LayerKVAnalysis {
  layer: string;
  className: 'MultiHeadAttention' | 'CollectiveKVAttention';
  keys: SpectrumAnalysis;
  values: SpectrumAnalysis;
  /** CollectiveKV layers: usage of each routed pool (a side left unshared has none). */
  poolUsage?: { key?: PoolUsage; value?: PoolUsage };
  /** max of the K and V suggestions: one userDim serves both sides of a layer. */
  suggestedUserDim: number;
  reasoning: string;
}

export interface KVAnalysis {
  /** Options as resolved (the JSON of the figures records how they were made). */
  options: Required<Omit<AnalyzeKVOptions, 'layers'>> & { layers: string[] };
  layers: LayerKVAnalysis[];
}

/**
 * Per attention layer and for K and V: the singular value spectrum of the stacked K/V of the
 * sample's valid tokens (tokens x width; raw by default, centered with `center: true`), energy
 * captured by the top r components, ranks for 90/95/99% energy, cross-user correlation
 * distributions of the principal and residual parts, and a suggested userDim with its reasoning.
 *
 * `inputs` are the model's inputs for a sample of users, one user per batch row (the rows define
 * "users" for the cross-user statistics). Padding is excluded through the mask each layer receives
 * (its third input); a layer without a mask counts every position. The model is not modified.
 */
export function analyzeKV(model: tfl.LayersModel, inputs: tf.Tensor | tf.Tensor[], options: AnalyzeKVOptions = {}): KVAnalysis {
  const resolved = resolveOptions(model, options);
  const layers = pickLayers(model, resolved.layers);
  const sites = captureAttentionInputs(model, inputs, layers, resolved.batchSize);
  try {
    return { options: resolved, layers: sites.map((s) => analyzeLayer(s.layer, s.kvSource, s.mask, resolved)) };
  } finally {
    disposeSites(sites);
  }
}

function resolveOptions(model: tfl.LayersModel, options: AnalyzeKVOptions): KVAnalysis['options'] {
  const o = {
    center: false, principalEnergy: 0.9, numPairs: 2000, seed: 1, userShareThreshold: 0.5, minComponentEnergy: 0.005,
    maxTokens: 20000, batchSize: 64, ...options, layers: options.layers ?? attentionLayers(model).map((l) => l.name),
  };
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 2) throw new ArgumentError('analyzeKV', 'options.maxTokens', 'an integer >= 2', String(o.maxTokens));
  return o;
}

function pickLayers(model: tfl.LayersModel, names: string[]): AttentionLayer[] {
  const all = attentionLayers(model);
  if (all.length === 0) {
    throw new ArgumentError('analyzeKV', 'model', 'a model with MultiHeadAttention or CollectiveKVAttention layers', 'none');
  }
  return names.map((name) => {
    const found = all.find((l) => l.name === name);
    if (found == null) throw new ArgumentError('analyzeKV', 'options.layers', `names of attention layers (${all.map((l) => l.name).join(', ')})`, JSON.stringify(name));
    return found;
  });
}

function analyzeLayer(layer: AttentionLayer, kvSource: tf.Tensor, mask: tf.Tensor | null, o: KVAnalysis['options']): LayerKVAnalysis {
  const { k, v } = keysAndValues(layer, kvSource, mask);
  try {
    const valid = validIndex(mask == null ? null : mask.dataSync(), dim(kvSource, 0) * dim(kvSource, 1));
    // One token sample for both sides, so K and V figures describe the same tokens.
    const pick = sampleRows(valid, o.maxTokens, seededRandom(o.seed));
    const side = (t: tf.Tensor) => {
      const rows = validRows(t, mask, pick);
      return analyzeSpectrum({ rows: pick.length, cols: rows.width, data: rows.data }, rows.users, o);
    };
    const keys = side(k);
    const values = side(v);
    const suggestedUserDim = Math.max(keys.suggestedUserDim, values.suggestedUserDim);
    const usage = layer instanceof CollectiveKVAttention ? collectiveUsage(layer, kvSource, valid) : null;
    return {
      layer: layer.name,
      className: layer instanceof CollectiveKVAttention ? 'CollectiveKVAttention' : 'MultiHeadAttention',
      keys, values, ...(usage == null ? {} : { poolUsage: usage }), suggestedUserDim,
      reasoning: `K: ${keys.reasoning}\nV: ${values.reasoning}\nLayer: userDim ${suggestedUserDim} (the larger of K's and V's).`,
    };
  } finally {
    tf.dispose([k, v]);
  }
}

function collectiveUsage(layer: CollectiveKVAttention, kvSource: tf.Tensor, valid: Int32Array): LayerKVAnalysis['poolUsage'] {
  const out: NonNullable<LayerKVAnalysis['poolUsage']> = {};
  const [batch, time] = [dim(kvSource, 0), dim(kvSource, 1)];
  // A few users at a time: the logits of every token at once would be [tokens, poolSize].
  const usersPerChunk = Math.max(1, Math.floor(ROUTING_CHUNK / (time * layer.poolSize)));
  for (const side of ['key', 'value'] as const) {
    if (!layer.isShared(side)) continue;
    const index = new Int32Array(batch * time);
    const gate = new Float32Array(batch * time);
    for (let b0 = 0; b0 < batch; b0 += usersPerChunk) {
      const rows = Math.min(usersPerChunk, batch - b0);
      const part = tf.slice(kvSource, [b0, 0, 0], [rows, time, -1]);
      const routing = layer.route(side, part);
      index.set(routing.index.dataSync() as Int32Array, b0 * time);
      gate.set(routing.gate.dataSync() as Float32Array, b0 * time);
      tf.dispose([part, routing.index, routing.gate, routing.logits]);
    }
    out[side] = poolUsage(index, gate, valid, layer.poolSize);
  }
  return out;
}

/** Router logits per routing chunk (~64 MB of float32). */
const ROUTING_CHUNK = 1 << 24;

/** Usage figures of one pool from the chosen rows and gates of the tokens at `valid`. */
export function poolUsage(index: ArrayLike<number>, gate: ArrayLike<number>, valid: ArrayLike<number>, poolSize: number): PoolUsage {
  const counts = new Int32Array(poolSize);
  const gates = Float64Array.from(valid, (t) => gate[t]).sort();
  for (let i = 0; i < valid.length; i++) counts[index[valid[i]]]++;
  const sorted = Array.from(counts).sort((a, b) => b - a);
  const tokens = valid.length;
  let rowsFor90 = 0;
  for (let covered = 0; rowsFor90 < poolSize && covered < 0.9 * tokens; rowsFor90++) covered += sorted[rowsFor90];
  return {
    poolSize, tokens, rowsUsed: sorted.filter((c) => c > 0).length, rowsFor90, topRowShare: tokens ? sorted[0] / tokens : NaN,
    meanGate: tokens ? gates.reduce((a, g) => a + g, 0) / tokens : NaN, gateP10: tokens ? gates[Math.floor(0.1 * (tokens - 1))] : NaN,
  };
}

/** Lines on each CollectiveKV layer's pool usage (none for a model without one). */
export function formatPoolUsage(analysis: KVAnalysis): string[] {
  const lines: string[] = [];
  for (const l of analysis.layers) {
    for (const [side, u] of Object.entries(l.poolUsage ?? {})) {
      lines.push(`${l.layer} ${side} pool: ${u.rowsUsed} of ${u.poolSize} rows used, ${u.rowsFor90} hold 90% of ${u.tokens} tokens `
        + `(top row ${(100 * u.topRowShare).toFixed(1)}%); gate mean ${u.meanGate.toFixed(3)}, p10 ${u.gateP10.toFixed(3)}`);
    }
  }
  return lines;
}

/** A fixed-width text table of the per-layer figures (the `analyze` command's summary). */
export function formatKVAnalysis(analysis: KVAnalysis): string {
  const header = ['layer', 'side', 'tokens', 'width', 'r90', 'r95', 'r99', 'E(principal)', 'corr principal q50 [q05,q95]', 'corr residual q50 [q05,q95]', 'user dirs', 'userDim'];
  const rows: string[][] = [];
  const f = (x: number) => x.toFixed(2);
  for (const l of analysis.layers) {
    for (const [side, a] of [['K', l.keys], ['V', l.values]] as const) {
      const c = a.crossUser;
      rows.push([l.layer, side, String(a.tokens), String(a.width), String(a.rank90), String(a.rank95), String(a.rank99),
        `${(100 * a.principalEnergy).toFixed(1)}%`,
        `${f(c.principal.quantiles.q50)} [${f(c.principal.quantiles.q05)},${f(c.principal.quantiles.q95)}]`,
        `${f(c.residual.quantiles.q50)} [${f(c.residual.quantiles.q05)},${f(c.residual.quantiles.q95)}]`,
        String(a.userComponents.length), side === 'K' ? String(l.suggestedUserDim) : '']);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
