// Converters between the layers' KVCacheBlock tensors (one per attention layer, a batch of users)
// and the codec's plain UserCache (one user, all layers). Kept apart from the codec so the codec
// never needs tfjs.

import * as tf from '@tensorflow/tfjs-core';
import { CacheSide, KVCacheBlock } from '../../layers/KVCacheBlock';
import { layoutOf } from './codec';
import type { UserCache, UserCacheLayer, UserCacheSide } from './types';

/** Host copy of one side of a block, read once for all batch rows. */
type HostSide =
  | { kind: 'full'; width: number; values: Float32Array }
  | { kind: 'pooled'; poolSize: number; userDim: number; index: Int32Array; user: Float32Array };

interface HostBlock {
  keys: HostSide;
  values: HostSide;
  mask: Float32Array;
}

function shapeOf(t: tf.Tensor): number[] {
  return t.shape as number[];
}

function readSide(side: CacheSide): HostSide {
  if (side.kind === 'full') {
    return { kind: 'full', width: shapeOf(side.values)[2], values: Float32Array.from(side.values.dataSync()) };
  }
  return {
    kind: 'pooled',
    poolSize: side.poolSize,
    userDim: shapeOf(side.user)[2],
    index: Int32Array.from(side.index.dataSync()),
    user: Float32Array.from(side.user.dataSync()),
  };
}

function checkBlocks(blocks: readonly KVCacheBlock[], fn: string): [number, number] {
  if (!Array.isArray(blocks) || blocks.length < 1) {
    throw new RangeError(`${fn}: argument 'blocks' must be a non-empty array of KVCacheBlock (one per attention layer), received ${Array.isArray(blocks) ? 'an empty array' : typeof blocks}`);
  }
  const [b, t] = shapeOf(blocks[0].mask);
  blocks.forEach((block, i) => {
    const [bi, ti] = shapeOf(block.mask);
    if (bi !== b || ti !== t) {
      throw new RangeError(`${fn}: blocks[${i}].mask must have shape [${b}, ${t}] like blocks[0], received [${bi}, ${ti}]`);
    }
  });
  return [b, t];
}

/** Positions of row `row` whose mask is set; every layer must mask the same tokens. */
function validPositions(host: readonly HostBlock[], row: number, length: number, fn: string): number[] {
  const positions: number[] = [];
  for (let t = 0; t < length; t++) {
    const valid = host[0].mask[row * length + t] > 0.5;
    for (let l = 1; l < host.length; l++) {
      if ((host[l].mask[row * length + t] > 0.5) !== valid) {
        throw new RangeError(`${fn}: blocks[${l}].mask differs from blocks[0].mask at row ${row}, position ${t}; all layers must cache the same tokens`);
      }
    }
    if (valid) positions.push(t);
  }
  return positions;
}

function userSide(side: HostSide, row: number, length: number, positions: readonly number[]): UserCacheSide {
  const n = positions.length;
  if (side.kind === 'full') {
    const values = new Float32Array(n * side.width);
    positions.forEach((t, i) => values.set(side.values.subarray((row * length + t) * side.width, (row * length + t + 1) * side.width), i * side.width));
    return { kind: 'full', width: side.width, values };
  }
  const index = new Int32Array(n);
  const user = new Float32Array(n * side.userDim);
  positions.forEach((t, i) => {
    index[i] = side.index[row * length + t];
    user.set(side.user.subarray((row * length + t) * side.userDim, (row * length + t + 1) * side.userDim), i * side.userDim);
  });
  return { kind: 'pooled', poolSize: side.poolSize, userDim: side.userDim, index, user };
}

function readHost(blocks: readonly KVCacheBlock[]): HostBlock[] {
  return blocks.map((b) => ({ keys: readSide(b.keys), values: readSide(b.values), mask: Float32Array.from(b.mask.dataSync()) }));
}

async function readSideAsync(side: CacheSide): Promise<HostSide> {
  if (side.kind === 'full') {
    return { kind: 'full', width: shapeOf(side.values)[2], values: Float32Array.from(await side.values.data()) };
  }
  const [index, user] = await Promise.all([side.index.data(), side.user.data()]);
  return { kind: 'pooled', poolSize: side.poolSize, userDim: shapeOf(side.user)[2], index: Int32Array.from(index), user: Float32Array.from(user) };
}

function readHostAsync(blocks: readonly KVCacheBlock[]): Promise<HostBlock[]> {
  return Promise.all(blocks.map(async (b) => {
    const [keys, values, mask] = await Promise.all([readSideAsync(b.keys), readSideAsync(b.values), b.mask.data()]);
    return { keys, values, mask: Float32Array.from(mask) };
  }));
}

function userFromHost(host: readonly HostBlock[], row: number, length: number, fn: string): UserCache {
  const positions = validPositions(host, row, length, fn);
  const layers: UserCacheLayer[] = host.map((h) => ({
    keys: userSide(h.keys, row, length, positions),
    values: userSide(h.values, row, length, positions),
  }));
  return { length: positions.length, layers };
}

/**
 * One user's cache (batch row `batchRow`) from the blocks of all attention layers, in layer order.
 * Padding tokens (mask 0) are dropped: attention ignores them, and the stored cache then holds
 * exactly the user's events. Reads the tensors synchronously (use fromBlocksBatch for many rows).
 */
export function fromBlocks(blocks: readonly KVCacheBlock[], batchRow: number): UserCache {
  const [b, t] = checkBlocks(blocks, 'fromBlocks');
  if (!Number.isInteger(batchRow) || batchRow < 0 || batchRow >= b) {
    throw new RangeError(`fromBlocks: argument 'batchRow' must be an integer in [0, ${b}), received ${batchRow}`);
  }
  return userFromHost(readHost(blocks), batchRow, t, 'fromBlocks');
}

/** Every batch row's cache, reading each tensor once. */
export function fromBlocksBatch(blocks: readonly KVCacheBlock[]): UserCache[] {
  const [b, t] = checkBlocks(blocks, 'fromBlocksBatch');
  const host = readHost(blocks);
  return Array.from({ length: b }, (_, row) => userFromHost(host, row, t, 'fromBlocksBatch'));
}

/**
 * fromBlocks with asynchronous reads (`tensor.data()`). Use it on webgpu: tfjs-backend-webgpu's
 * synchronous readback is unreliable there (on SwiftShader it returns zeros and loses the device).
 * The blocks must stay alive until the promise settles.
 */
export async function fromBlocksAsync(blocks: readonly KVCacheBlock[], batchRow: number): Promise<UserCache> {
  const [b, t] = checkBlocks(blocks, 'fromBlocksAsync');
  if (!Number.isInteger(batchRow) || batchRow < 0 || batchRow >= b) {
    throw new RangeError(`fromBlocksAsync: argument 'batchRow' must be an integer in [0, ${b}), received ${batchRow}`);
  }
  return userFromHost(await readHostAsync(blocks), batchRow, t, 'fromBlocksAsync');
}

/** fromBlocksBatch with asynchronous reads (see fromBlocksAsync). */
export async function fromBlocksBatchAsync(blocks: readonly KVCacheBlock[]): Promise<UserCache[]> {
  const [b, t] = checkBlocks(blocks, 'fromBlocksBatchAsync');
  const host = await readHostAsync(blocks);
  return Array.from({ length: b }, (_, row) => userFromHost(host, row, t, 'fromBlocksBatchAsync'));
}

export interface ToBlocksOptions {
  /**
   * Where shorter users get their padding (mask 0): 'left' (default) keeps every user's latest
   * event at the last position, as left-padded sequential recommenders expect; or 'right'.
   */
  pad?: 'left' | 'right';
  /** Pad to at least this many positions (default: the longest user). */
  length?: number;
}

/** Blocks (one per layer, batch = caches.length) from users' caches of the same layout. */
export function toBlocks(caches: readonly UserCache[], options: ToBlocksOptions = {}): KVCacheBlock[] {
  if (!Array.isArray(caches) || caches.length < 1) {
    throw new RangeError(`toBlocks: argument 'caches' must be a non-empty array of UserCache, received ${Array.isArray(caches) ? 'an empty array' : typeof caches}`);
  }
  const pad = options.pad ?? 'left';
  if (pad !== 'left' && pad !== 'right') throw new RangeError(`toBlocks: options.pad must be 'left' or 'right', received ${String(pad)}`);
  checkSameLayout(caches);
  const length = Math.max(options.length ?? 0, ...caches.map((c) => c.length));
  const offsets = caches.map((c) => (pad === 'left' ? length - c.length : 0));
  const mask = new Float32Array(caches.length * length);
  caches.forEach((c, b) => mask.fill(1, b * length + offsets[b], b * length + offsets[b] + c.length));
  return caches[0].layers.map((_: UserCacheLayer, l: number): KVCacheBlock => {
    const side = (which: 'keys' | 'values'): CacheSide => blockSide(caches.map((c) => c.layers[l][which]), offsets, length);
    return new KVCacheBlock(side('keys'), side('values'), tf.tensor2d(mask, [caches.length, length], 'float32'));
  });
}

function checkSameLayout(caches: readonly UserCache[]): void {
  const describe = (c: UserCache, i: number) => JSON.stringify(layoutOf(c, `caches[${i}]`).map((l) => [l.keys, l.values]));
  const first = describe(caches[0], 0);
  caches.forEach((c, i) => {
    const mine = describe(c, i);
    if (mine !== first) throw new RangeError(`toBlocks: caches[${i}] must have the layout of caches[0] ${first}, received ${mine}`);
  });
}

/** One side for the whole batch: each user's rows copied at its offset, zeros elsewhere. */
function blockSide(sides: readonly UserCacheSide[], offsets: readonly number[], length: number): CacheSide {
  const batch = sides.length;
  const first = sides[0];
  if (first.kind === 'full') {
    const values = new Float32Array(batch * length * first.width);
    sides.forEach((s, b) => values.set((s as typeof first).values, (b * length + offsets[b]) * first.width));
    return { kind: 'full', values: tf.tensor3d(values, [batch, length, first.width], 'float32') };
  }
  const index = new Int32Array(batch * length);
  const user = new Float32Array(batch * length * first.userDim);
  sides.forEach((s, b) => {
    const p = s as typeof first;
    index.set(p.index, b * length + offsets[b]);
    user.set(p.user, (b * length + offsets[b]) * first.userDim);
  });
  return {
    kind: 'pooled',
    poolSize: first.poolSize,
    index: tf.tensor2d(index, [batch, length], 'int32'),
    user: tf.tensor3d(user, [batch, length, first.userDim], 'float32'),
  };
}
