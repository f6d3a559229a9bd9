// Finding a model's attention layers and the tensors that reach them. A temporary functional
// model whose outputs are the attention layers' K/V sources (and masks) runs the sample once, in
// inference mode; each layer's own computeCache then gives its K/V exactly as the layer computes
// them for the cache.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { gatherRows } from '../../ops/index';
import { ArgumentError, dim } from '../../ops/util/validate';
import { CollectiveKVAttention } from '../../layers/CollectiveKVAttention';
import { MultiHeadAttention } from '../../layers/MultiHeadAttention';
import { CacheSide } from '../../layers/KVCacheBlock';
import { attentionInputRoles, kwargsMask } from '../../layers/attentionBase';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';

export type AttentionLayer = MultiHeadAttention | CollectiveKVAttention;

/** What reaches one attention layer on a sample (the caller owns the tensors: `disposeSites`). */
export interface AttentionSite {
  layer: AttentionLayer;
  /** [B, T, de] */
  kvSource: tf.Tensor;
  /** float32 [B, T], 1 valid; null when the layer gets no mask (all valid). */
  mask: tf.Tensor | null;
}

/** The model's MultiHeadAttention / CollectiveKVAttention layers, in model order (top level only). */
export function attentionLayers(model: tfl.LayersModel): AttentionLayer[] {
  return model.layers.filter((l): l is AttentionLayer => l instanceof MultiHeadAttention || l instanceof CollectiveKVAttention);
}

/**
 * Runs `inputs` through `model` up to each of `layers` (default: all attention layers) and returns
 * their K/V sources and masks. A layer applied several times is read at its first application.
 */
export function captureAttentionInputs(model: tfl.LayersModel, inputs: tf.Tensor | tf.Tensor[],
  layers: AttentionLayer[] = attentionLayers(model), batchSize = 64): AttentionSite[] {
  if (layers.length === 0) return [];
  const wiring = layers.map((layer) => siteTensors(layer));
  const wanted = uniqueTensors(wiring.flatMap((w) => (w.mask == null ? [w.kv] : [w.kv, w.mask])));
  const fed = Array.isArray(inputs) ? inputs : [inputs];
  if (fed.length !== model.inputs.length) {
    throw new ArgumentError('captureAttentionInputs', 'inputs', `${model.inputs.length} tensor(s) (the model's inputs)`, `${fed.length}`);
  }
  // Symbolic tensors that are model inputs are read from the fed tensors; the rest come from a probe model.
  const fromInputs = new Map(model.inputs.map((s, i) => [s.id, fed[i]]));
  const computed = wanted.filter((s) => !fromInputs.has(s.id));
  const values = new Map<number, tf.Tensor>();
  if (computed.length > 0) {
    const probe = tfl.model({ inputs: model.inputs, outputs: computed });
    // predict runs in inference mode (dropout off) and batches the sample.
    const out = probe.predict(fed.length === 1 ? fed[0] : fed, { batchSize });
    const list = Array.isArray(out) ? out : [out];
    computed.forEach((s, i) => values.set(s.id, list[i]));
  }
  fromInputs.forEach((t, id) => values.set(id, tf.clone(t)));
  const sites = layers.map((layer, i) => {
    const w = wiring[i];
    const kvSource = tf.clone(values.get(w.kv.id) as tf.Tensor);
    const mask = w.mask == null ? null : tf.tidy(() => tf.cast(values.get((w.mask as tfl.SymbolicTensor).id) as tf.Tensor, 'float32'));
    return { layer, kvSource, mask };
  });
  tf.dispose([...values.values()]);
  return sites;
}

/**
 * What reaches each of `layers` while `run` executes, for models with a custom forward (no
 * LayersModel graph to probe): every call's K/V source and mask, concatenated along the batch in
 * call order. Each layer's `call` is wrapped for the duration of `run` and restored after, even when
 * it throws. A layer that `run` never calls is an error, as is one whose calls disagree on the
 * source's length or width.
 */
export function recordAttentionInputs(layers: AttentionLayer[], run: () => void): AttentionSite[] {
  const calls = layers.map(() => [] as { kvSource: tf.Tensor; mask: tf.Tensor | null }[]);
  // An own `call` a caller set before (another wrapper) is put back as it was; otherwise the
  // wrapper, an own property over the prototype's method, is removed.
  const ownCalls = layers.map((layer) => Object.getOwnPropertyDescriptor(layer, 'call'));
  layers.forEach((layer, i) => {
    const original = layer.call;
    layer.call = function recorded(this: AttentionLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
      const roles = attentionInputRoles(Array.isArray(inputs) ? inputs : [inputs], (t) => t.rank);
      // As the layer reads it: the mask input, else the one tfjs's executor passes in kwargs.
      const mask = roles.mask ?? kwargsMask(kwargs ?? {});
      calls[i].push({ kvSource: tf.keep(tf.clone(roles.source)), mask: mask == null ? null : tf.keep(tf.cast(mask, 'float32')) });
      return original.call(this, inputs, kwargs);
    };
  });
  try {
    run();
    return layers.map((layer, i) => joinCalls(layer, calls[i]));
  } finally {
    layers.forEach((layer, i) => {
      const own = ownCalls[i];
      if (own == null) Reflect.deleteProperty(layer, 'call');
      else Object.defineProperty(layer, 'call', own);
    });
    calls.forEach((list) => tf.dispose(list.flatMap((c) => (c.mask == null ? [c.kvSource] : [c.kvSource, c.mask]))));
  }
}

function joinCalls(layer: AttentionLayer, calls: { kvSource: tf.Tensor; mask: tf.Tensor | null }[]): AttentionSite {
  if (calls.length === 0) throw new ArgumentError('recordAttentionInputs', 'run', `a forward that calls layer '${layer.name}'`, 'no call');
  const [t, de] = [dim(calls[0].kvSource, 1), dim(calls[0].kvSource, 2)];
  const odd = calls.find((c) => dim(c.kvSource, 1) !== t || dim(c.kvSource, 2) !== de);
  if (odd != null) {
    throw new ArgumentError('recordAttentionInputs', 'run', `calls of layer '${layer.name}' with one source shape [*, ${t}, ${de}]`,
      `[${odd.kvSource.shape.join(', ')}]`);
  }
  const anyMask = calls.some((c) => c.mask != null);
  const kvSource = tf.concat(calls.map((c) => c.kvSource), 0);
  // A call without a mask had every token valid.
  const mask = anyMask ? tf.tidy(() => tf.concat(calls.map((c) => c.mask ?? tf.ones([dim(c.kvSource, 0), t])), 0)) : null;
  return { layer, kvSource, mask };
}

export function disposeSites(sites: AttentionSite[]): void {
  for (const s of sites) tf.dispose(s.mask == null ? [s.kvSource] : [s.kvSource, s.mask]);
}

/** The symbolic K/V source and mask of a layer's first application (the forms of attentionInputRoles). */
function siteTensors(layer: AttentionLayer): { kv: tfl.SymbolicTensor; mask: tfl.SymbolicTensor | null } {
  const node = layer.inboundNodes[0];
  if (node == null) {
    throw new ArgumentError('captureAttentionInputs', 'model', `a model in which layer '${layer.name}' is connected`, 'an unconnected layer');
  }
  const { source, mask } = attentionInputRoles(node.inputTensors, (t) => t.rank);
  return { kv: source, mask };
}

function uniqueTensors(list: tfl.SymbolicTensor[]): tfl.SymbolicTensor[] {
  const seen = new Set<number>();
  return list.filter((s) => (seen.has(s.id) ? false : (seen.add(s.id), true)));
}

/**
 * Full K and V [B, T, width] of a layer for kvSource, through its own computeCache: the
 * MultiHeadAttention projections, or for CollectiveKVAttention concat(pool[index], user part)
 * (the inference form, no gate). The caller owns the result.
 */
export function keysAndValues(layer: AttentionLayer, kvSource: tf.Tensor, mask: tf.Tensor | null): { k: tf.Tensor; v: tf.Tensor } {
  const block = layer.computeCache(kvSource, mask ?? undefined);
  try {
    return tf.tidy(() => ({ k: fullSide(layer, 'key', block.keys), v: fullSide(layer, 'value', block.values) }));
  } finally {
    block.dispose();
  }
}

function fullSide(layer: AttentionLayer, side: 'key' | 'value', cached: CacheSide): tf.Tensor {
  if (cached.kind === 'full') return tf.clone(cached.values);
  const pool = (layer as CollectiveKVAttention).poolTable(side);
  return gatherRows(pool, cached.index, undefined, cached.user);
}

/**
 * The valid tokens of a [B, T, width] tensor as a float64 row matrix plus each row's user (batch
 * row), at most `maxTokens` of them chosen uniformly at random by `rand` (order kept).
 */
export function validRows(values: tf.Tensor, mask: tf.Tensor | null, pick: Int32Array | null): { data: Float64Array; users: Int32Array; width: number } {
  const [b, t, w] = [dim(values, 0), dim(values, 1), dim(values, 2)];
  const flat = values.dataSync();
  const valid = mask == null ? null : mask.dataSync();
  const rows = pick ?? validIndex(valid, b * t);
  const data = new Float64Array(rows.length * w);
  const users = new Int32Array(rows.length);
  rows.forEach((row, i) => {
    for (let c = 0; c < w; c++) data[i * w + c] = flat[row * w + c];
    users[i] = Math.floor(row / t);
  });
  return { data, users, width: w };
}

/** Flat (b * T + t) indices of the valid tokens. */
export function validIndex(valid: ArrayLike<number> | null, count: number): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (valid == null || valid[i] !== 0) out.push(i);
  return Int32Array.from(out);
}

/** Up to `max` of `rows`, uniformly without replacement (seeded), in their original order. */
export function sampleRows(rows: Int32Array, max: number, rand: () => number): Int32Array {
  if (rows.length <= max) return rows;
  const idx = Array.from(rows);
  for (let i = 0; i < max; i++) {
    const j = i + Math.floor(rand() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return Int32Array.from(idx.slice(0, max).sort((a, b) => a - b));
}
