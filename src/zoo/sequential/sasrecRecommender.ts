// SASRec as a CacheableRecommender: what CacheEngine drives to prefill, extend and score users
// from their stored caches. Uses only sasrec.ts's exported pieces and the public API.
//
// Positions. sasrec.ts's full forward places a sequence at the END of the window (left padding),
// so every item's slot shifts when an event arrives and no cache could be extended. The cache
// path instead gives event i of a user slot i (sasrec.ts's own `prefill` embeds from slot 0), so
// appending event T is computing slot T, and prefill, append and recompute all agree exactly.
// A history at most `maxLength` long fits; the engine slides the window beyond that.
//
// The last hidden state. The next-item score needs the hidden state of the LAST position, whose
// query at every layer is not in the cache (only K/V are). We re-derive it with one decode pass:
// embed the last item at its slot, and per block attend from it over the cached block (which
// already holds the last token's own K/V), then the block's tail. That needs the last item id, so
// each entry carries an "item lane": one extra codec layer whose K side is a pooled index over
// numItems + 1 rows holding the item id of every token (2 bytes up to 65535 items) and whose V side
// is a 1-row pool (1 byte, always 0: every codec layer has two sides). It is part of the entry,
// written by the same atomic append, covered by the same CRCs, and counted in every bytes-per-user
// figure (3 bytes per token here). It also lets the engine slide the window without the caller's
// history (historyOf).

import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  DEFAULT_CACHE_DTYPE, checkCacheDtype, concatBlocks, fromBlocks, fromBlocksBatch, fromBlocksBatchAsync, layoutOf, modelFingerprint,
  recordBytesFor, toBlocks, type CacheDtype, type CacheableRecommender, type KVCacheBlock, type LayerLayout, type UserCache, type UserCacheLayer,
} from '../../internal';
import { disposeCache, itemTable, prefill as sasrecPrefill, type Sasrec, type SasrecParts } from './sasrec';

/** Most elements (tokens x stored widths) one tensor batch may hold; larger batches run in chunks. */
const DEFAULT_CHUNK_ELEMENTS = 16 * 2 ** 20;

export interface SasrecRecommenderOptions {
  /** Element budget per chunk of users (bounds the memory of one decode/prefill pass). */
  chunkElements?: number;
}

/** What the constructor derives by reading the model (SasrecRecommender.create derives it asynchronously). */
export interface SasrecRecommenderDerived {
  fingerprint: string;
  layouts: readonly LayerLayout[];
}

export class SasrecRecommender implements CacheableRecommender {
  readonly fingerprint: string;
  readonly layouts: readonly LayerLayout[];
  readonly numItems: number;
  readonly maxLength: number;
  private readonly chunkElements: number;

  /**
   * Reads the weights (fingerprint) and runs a probe prefill (layouts) synchronously, unless
   * `derived` supplies both. On webgpu use `SasrecRecommender.create` instead: tfjs-backend-webgpu's
   * synchronous readback is unreliable there (zeros and a lost device on SwiftShader).
   */
  constructor(readonly sasrec: Sasrec, options: SasrecRecommenderOptions = {}, derived?: SasrecRecommenderDerived) {
    this.numItems = sasrec.options.numItems;
    this.maxLength = sasrec.options.maxLength;
    this.chunkElements = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
    this.fingerprint = derived?.fingerprint ?? sasrecFingerprint(sasrec);
    this.layouts = derived?.layouts ?? layoutOf(this.prefill([[1]])[0]);
  }

  /** The constructor with asynchronous tensor reads only (for webgpu; see the constructor). */
  static async create(sasrec: Sasrec, options: SasrecRecommenderOptions = {}): Promise<SasrecRecommender> {
    const fingerprint = await sasrecFingerprintAsync(sasrec);
    const layouts = layoutOf((await prefillRowsAsync(sasrec, [[1]]))[0]);
    return new SasrecRecommender(sasrec, options, { fingerprint, layouts });
  }

  /** Bytes of one token's cache over all attention blocks (fp32), without the item lane. */
  get attentionBytesPerToken(): number {
    return this.attentionBytesIn('fp32');
  }

  /** Bytes of one token's cache over all attention blocks in `dtype` (default fp16, the cache's), without the item lane. */
  attentionBytesIn(dtype: CacheDtype = DEFAULT_CACHE_DTYPE): number {
    return recordBytesFor(this.layouts.slice(0, -1), checkCacheDtype(dtype, 'SasrecRecommender.attentionBytesIn: dtype'));
  }

  /** Bytes of one token's item lane (the item id plus the lane's 1-byte V side). */
  get laneBytesPerToken(): number {
    const lane = this.layouts[this.layouts.length - 1];
    return sideBytes(lane.keys) + sideBytes(lane.values);
  }

  prefill(histories: readonly (readonly number[])[]): UserCache[] {
    const out: UserCache[] = [];
    for (const chunk of this.chunks(histories.map((h) => h.length), 0, true)) {
      out.push(...this.prefillChunk(chunk.map((i) => histories[i])));
    }
    return out;
  }

  /** prefill with asynchronous tensor reads (for webgpu). */
  async prefillAsync(histories: readonly (readonly number[])[]): Promise<UserCache[]> {
    const out: UserCache[] = [];
    for (const chunk of this.chunks(histories.map((h) => h.length), 0, true)) {
      out.push(...await prefillRowsAsync(this.sasrec, chunk.map((i) => histories[i])));
    }
    return out;
  }

  private prefillChunk(histories: readonly (readonly number[])[]): UserCache[] {
    const ids = rightPadded(histories, this.maxLength);
    const cache = sasrecPrefill(this.sasrec, ids);
    try {
      const caches = fromBlocksBatch(cache.blocks);
      return caches.map((c, row) => withLane(c, histories[row], this.numItems));
    } finally {
      disposeCache(cache);
      ids.dispose();
    }
  }

  extend(cache: UserCache, events: readonly number[]): UserCache {
    if (cache.length + events.length > this.maxLength) {
      throw new RangeError(`SasrecRecommender.extend: ${cache.length} cached + ${events.length} new tokens exceed the window of ${this.maxLength}`);
    }
    const blocks = toBlocks([attentionPart(cache)]);
    const steps: KVCacheBlock[] = [];
    try {
      tf.tidy(() => {
        const ids = tf.tensor2d(Int32Array.from(events), [1, events.length], 'int32');
        let x = tf.add(apply(this.parts.itemEmbedding, ids), this.parts.positions.slots(cache.length, events.length));
        const ones = tf.ones([1, events.length]);
        this.parts.blocks.forEach((block, b) => {
          const step = block.attention.computeCache(x, ones);
          step.tensors().forEach((t) => tf.keep(t));
          steps.push(step);
          const grown = concatBlocks(blocks[b], step);
          const q = apply(block.queryNorm, x);
          x = blockTail(block, q, block.attention.attendCached(q, grown, { causal: true }));
          grown.dispose();
        });
      });
      return withLane(fromBlocks(steps, 0), events, this.numItems);
    } finally {
      steps.forEach((s) => s.dispose());
      blocks.forEach((b) => b.dispose());
    }
  }

  scoreFromCache(caches: readonly UserCache[], candidates: Int32Array): Float32Array {
    const out = new Float32Array(caches.length * candidates.length);
    let row = 0;
    for (const chunk of this.chunks(caches.map((c) => c.length), this.storedWidth())) {
      out.set(readSync(this.scoreCacheChunk(chunk.map((i) => caches[i]), candidates)), row * candidates.length);
      row += chunk.length;
    }
    return out;
  }

  /** scoreFromCache with asynchronous tensor reads (for webgpu). */
  async scoreFromCacheAsync(caches: readonly UserCache[], candidates: Int32Array): Promise<Float32Array> {
    const out = new Float32Array(caches.length * candidates.length);
    let row = 0;
    for (const chunk of this.chunks(caches.map((c) => c.length), this.storedWidth())) {
      out.set(await readAsync(this.scoreCacheChunk(chunk.map((i) => caches[i]), candidates)), row * candidates.length);
      row += chunk.length;
    }
    return out;
  }

  recompute(histories: readonly (readonly number[])[], candidates: Int32Array): Float32Array {
    const out = new Float32Array(histories.length * candidates.length);
    let row = 0;
    // The prefill's attention holds [users, heads, T, T] scores: chunk by T^2.
    for (const chunk of this.chunks(histories.map((h) => h.length), 0, true)) {
      out.set(readSync(this.recomputeChunk(chunk.map((i) => histories[i]), candidates)), row * candidates.length);
      row += chunk.length;
    }
    return out;
  }

  /** recompute with asynchronous tensor reads (for webgpu). */
  async recomputeAsync(histories: readonly (readonly number[])[], candidates: Int32Array): Promise<Float32Array> {
    const out = new Float32Array(histories.length * candidates.length);
    let row = 0;
    for (const chunk of this.chunks(histories.map((h) => h.length), 0, true)) {
      out.set(await readAsync(this.recomputeChunk(chunk.map((i) => histories[i]), candidates)), row * candidates.length);
      row += chunk.length;
    }
    return out;
  }

  historyOf(cache: UserCache): number[] {
    const lane = cache.layers[cache.layers.length - 1].keys;
    if (lane.kind !== 'pooled') throw new RangeError('SasrecRecommender.historyOf: the cache has no item lane');
    return Array.from(lane.index);
  }

  // ---------------------------------------------------------------- decode

  private get parts(): SasrecParts {
    return this.sasrec.parts;
  }

  /** Scores [part.length, candidates] of users' caches, as a tensor the caller reads and disposes. */
  private scoreCacheChunk(part: readonly UserCache[], candidates: Int32Array): tf.Tensor2D {
    const blocks = toBlocks(part.map(attentionPart), { pad: 'left' });
    try {
      const lastItems = Int32Array.from(part, lastItemOf);
      const lengths = Int32Array.from(part, (c) => c.length);
      return this.decodeScores(blocks, lastItems, lengths, candidates);
    } finally {
      blocks.forEach((b) => b.dispose());
    }
  }

  /** Scores [part.length, candidates] from a prefill of the histories, as a tensor the caller reads and disposes. */
  private recomputeChunk(part: readonly (readonly number[])[], candidates: Int32Array): tf.Tensor2D {
    const ids = rightPadded(part, this.maxLength);
    const cache = sasrecPrefill(this.sasrec, ids);
    try {
      const lastItems = Int32Array.from(part, (h) => h[h.length - 1]);
      const lengths = Int32Array.from(part, (h) => h.length);
      return this.decodeScores(cache.blocks, lastItems, lengths, candidates);
    } finally {
      disposeCache(cache);
      ids.dispose();
    }
  }

  /**
   * One decode pass of each user's last item (slot length - 1) over its cached blocks, then dot
   * products with the candidates' embeddings. The blocks already hold the last token's K/V, and
   * with causal offsets the query is their last position, so it sees exactly the user's tokens.
   */
  private decodeScores(blocks: readonly KVCacheBlock[], lastItems: Int32Array, lengths: Int32Array, candidates: Int32Array): tf.Tensor2D {
    return tf.tidy(() => {
      const b = lastItems.length;
      const ids = tf.tensor2d(lastItems, [b, 1], 'int32');
      const slots = tf.tensor1d(lengths.map((n) => n - 1), 'int32');
      const positions = tf.reshape(tf.gather(this.parts.positions.slots(0, this.maxLength), slots), [b, 1, -1]);
      let x = tf.add(apply(this.parts.itemEmbedding, ids), positions);
      this.parts.blocks.forEach((block, i) => {
        const q = apply(block.queryNorm, x);
        x = blockTail(block, q, block.attention.attendCached(q, blocks[i], { causal: true }));
      });
      const hidden = tf.reshape(apply(this.parts.finalNorm, x), [b, -1]) as tf.Tensor2D;
      const table = tf.gather(itemTable(this.sasrec), tf.tensor1d(candidates, 'int32')) as tf.Tensor2D;
      return tf.matMul(hidden, tf.transpose(table));
    });
  }

  /** Floats/indices per stored token (for the chunk budget of cache decodes). */
  private storedWidth(): number {
    return this.layouts.reduce((s, l) => s + l.keys.width + l.values.width + 2, 0);
  }

  /**
   * Groups of row indices whose padded batch stays within the element budget: `width` elements
   * per token, or (quadratic) one attention matrix of T x T per head.
   */
  private chunks(lengths: readonly number[], width: number, quadratic = false): number[][] {
    const heads = this.sasrec.options.numHeads;
    const out: number[][] = [];
    let current: number[] = [];
    let longest = 0;
    lengths.forEach((len, i) => {
      const t = Math.max(longest, len);
      const cost = (current.length + 1) * (quadratic ? heads * t * t : t * width);
      if (current.length > 0 && cost > this.chunkElements) {
        out.push(current);
        current = [];
        longest = 0;
      }
      current.push(i);
      longest = Math.max(longest, len);
    });
    if (current.length > 0) out.push(current);
    return out;
  }
}

// ---------------------------------------------------------------- helpers

/** Reads and disposes a float32 tensor (synchronously). */
function readSync(t: tf.Tensor): Float32Array {
  try {
    return t.dataSync() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Reads and disposes a float32 tensor (asynchronously). */
async function readAsync(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** prefill of one chunk with asynchronous reads (SasrecRecommender.prefillAsync and create). */
async function prefillRowsAsync(sasrec: Sasrec, histories: readonly (readonly number[])[]): Promise<UserCache[]> {
  const ids = rightPadded(histories, sasrec.options.maxLength);
  const cache = sasrecPrefill(sasrec, ids);
  try {
    const caches = await fromBlocksBatchAsync(cache.blocks);
    return caches.map((c, row) => withLane(c, histories[row], sasrec.options.numItems));
  } finally {
    disposeCache(cache);
    ids.dispose();
  }
}

type AnyLayer = tfl.layers.Layer;

function apply(layer: AnyLayer, x: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return layer.apply(x) as tf.Tensor;
}

/** A block after its attention (inference: the dropouts are identities): as sasrec.ts's forward. */
function blockTail(block: SasrecParts['blocks'][number], q: tf.Tensor, attended: tf.Tensor): tf.Tensor {
  const h = apply(block.norm1, apply(block.residual1, [q, attended]));
  const f = apply(block.ffnOut, apply(block.ffnIn, h));
  return apply(block.residual2, [h, f]);
}

/** Histories as ids [B, Tmax], event i at column i (right padding with 0). */
function rightPadded(histories: readonly (readonly number[])[], maxLength: number): tf.Tensor2D {
  const t = Math.max(1, ...histories.map((h) => h.length));
  if (t > maxLength) throw new RangeError(`SasrecRecommender: a history of ${t} items exceeds the window of ${maxLength}`);
  const flat = new Int32Array(histories.length * t);
  histories.forEach((h, row) => flat.set(h, row * t));
  return tf.tensor2d(flat, [histories.length, t], 'int32');
}

/** The item lane for `items`: K index = item id, V index = 0 (see the header comment). */
function laneLayer(items: readonly number[], numItems: number): UserCacheLayer {
  return {
    keys: { kind: 'pooled', poolSize: numItems + 1, userDim: 0, index: Int32Array.from(items), user: new Float32Array(0) },
    values: { kind: 'pooled', poolSize: 1, userDim: 0, index: new Int32Array(items.length), user: new Float32Array(0) },
  };
}

function withLane(cache: UserCache, items: readonly number[], numItems: number): UserCache {
  if (cache.length !== items.length) {
    throw new Error(`SasrecRecommender: cached ${cache.length} tokens for ${items.length} items (an item id 0 in the history?)`);
  }
  return { length: cache.length, layers: [...cache.layers, laneLayer(items, numItems)] };
}

function attentionPart(cache: UserCache): UserCache {
  return { length: cache.length, layers: cache.layers.slice(0, -1) };
}

function lastItemOf(cache: UserCache): number {
  const lane = cache.layers[cache.layers.length - 1].keys;
  if (lane.kind !== 'pooled' || cache.length < 1) throw new RangeError('SasrecRecommender: a cache without items or item lane');
  return lane.index[cache.length - 1];
}

function sideBytes(side: LayerLayout['keys']): number {
  return side.indexBytes + side.width * 4;
}

/**
 * Fingerprint over the configuration and EVERY weight (not only the pools): a retrained or
 * fine-tuned model, CollectiveKV or full-KV, never reads caches of its predecessor. Hashing ~1M
 * floats takes a few ms, once per engine.
 */
export function sasrecFingerprint(sasrec: Sasrec): string {
  return fingerprintOf(sasrec, sasrec.model.getWeights().map((w) => Float32Array.from(w.dataSync())));
}

/** sasrecFingerprint with asynchronous weight reads (for webgpu). */
export async function sasrecFingerprintAsync(sasrec: Sasrec): Promise<string> {
  return fingerprintOf(sasrec, await Promise.all(sasrec.model.getWeights().map(async (w) => Float32Array.from(await w.data()))));
}

function fingerprintOf(sasrec: Sasrec, weights: Float32Array[]): string {
  const { seed: _seed, ...config } = sasrec.options;
  void _seed;
  return modelFingerprint({ model: 'sasrec', ...config, weightNames: sasrec.model.weights.map((w) => w.shape.join('x')) }, weights);
}
