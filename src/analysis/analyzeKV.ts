// analyzeKV: the paper's K/V analysis on any model with MultiHeadAttention or
// CollectiveKVAttention layers (DESIGN.md section 4, analysis/).
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

export interface LayerKVAnalysis {
  layer: string;
  className: 'MultiHeadAttention' | 'CollectiveKVAttention';
  keys: SpectrumAnalysis;
  values: SpectrumAnalysis;
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
    return {
      layer: layer.name,
      className: layer instanceof CollectiveKVAttention ? 'CollectiveKVAttention' : 'MultiHeadAttention',
      keys, values, suggestedUserDim,
      reasoning: `K: ${keys.reasoning}\nV: ${values.reasoning}\nLayer: userDim ${suggestedUserDim} (the larger of K's and V's).`,
    };
  } finally {
    tf.dispose([k, v]);
  }
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
