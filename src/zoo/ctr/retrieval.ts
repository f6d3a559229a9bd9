// The retrieval units of the long-sequence CTR models as pure tensor functions, so each can be
// checked against a brute-force reference: SIM's soft search, ETA's SimHash + Hamming top-k,
// SDIM's hash-collision aggregation, TWIN's target-attention scores. Only SDIM's aggregation is
// meant to carry gradients; the top-k selections return integer indices.
import * as tf from '@tensorflow/tfjs-core';
import { dim } from '../../internal';

/** Score given to padding slots so they rank after every real event. */
const MASKED = -1e30;

export interface TopK {
  /** int32 [B, k]: slot indices into the history, best first. */
  indices: tf.Tensor2D;
  /** float32 [B, k]: 1 where the picked slot is a real event (histories shorter than k pick padding). */
  valid: tf.Tensor2D;
}

function checkRank(fn: string, arg: string, t: tf.Tensor, rank: number): void {
  if (t.rank !== rank) throw new Error(`${fn}: ${arg} must have rank ${rank}, received shape [${t.shape.join(', ')}]`);
}

/** The k highest scores [B, T] of each row among valid slots (mask [B, T], 1 valid); k is capped at T. */
export function topKByScore(scores: tf.Tensor, mask: tf.Tensor, k: number): TopK {
  checkRank('topKByScore', 'scores', scores, 2);
  if (!Number.isInteger(k) || k < 1) throw new Error(`topKByScore: k must be a positive integer, received ${k}`);
  return tf.tidy(() => {
    const kk = Math.min(k, dim(scores, 1));
    const masked = tf.where(tf.greater(mask, 0), scores, tf.fill(scores.shape, MASKED));
    const { indices } = tf.topk(masked, kk, true);
    const b = dim(scores, 0);
    const t = dim(scores, 1);
    const flat = tf.add(indices, tf.mul(tf.reshape(tf.range(0, b, 1, 'int32'), [b, 1]), tf.scalar(t, 'int32')));
    const valid = tf.reshape(tf.gather(tf.reshape(mask, [b * t]), flat), [b, kk]);
    return { indices: indices as tf.Tensor2D, valid: tf.cast(valid, 'float32') as tf.Tensor2D };
  });
}

/** SIM's general search unit (soft search): top-k events by inner product of their embedding with the candidate's. */
export function softSearchTopK(candidate: tf.Tensor, history: tf.Tensor, mask: tf.Tensor, k: number): TopK {
  checkRank('softSearchTopK', 'candidate', candidate, 2);
  checkRank('softSearchTopK', 'history', history, 3);
  const scores = tf.tidy(() => tf.sum(tf.mul(history, tf.expandDims(candidate, 1)), -1));
  try {
    return topKByScore(scores, mask, k);
  } finally {
    scores.dispose();
  }
}

/** SimHash signatures: sign(x . planes) as +-1 floats; x [..., d], planes [d, bits] -> [..., bits]. */
export function simHash(x: tf.Tensor, planes: tf.Tensor): tf.Tensor {
  checkRank('simHash', 'planes', planes, 2);
  if (dim(x, -1) !== dim(planes, 0)) throw new Error(`simHash: x's last dimension must be planes' first (${dim(planes, 0)}), received ${dim(x, -1)}`);
  return tf.tidy(() => {
    const flat = tf.reshape(x, [-1, dim(x, -1)]) as tf.Tensor2D;
    const projected = tf.matMul(flat, planes as tf.Tensor2D);
    // sign(0) = 0 would match nothing; a zero projection counts as positive.
    const signs = tf.sub(tf.mul(tf.cast(tf.greaterEqual(projected, 0), 'float32'), 2), 1);
    return tf.reshape(signs, [...x.shape.slice(0, -1), dim(planes, 1)]);
  });
}

/** Hamming distances [B, T] between +-1 signatures candidate [B, bits] and history [B, T, bits]. */
export function hammingDistance(candidate: tf.Tensor, history: tf.Tensor): tf.Tensor {
  checkRank('hammingDistance', 'candidate', candidate, 2);
  checkRank('hammingDistance', 'history', history, 3);
  return tf.tidy(() => {
    const bits = dim(candidate, 1);
    const agree = tf.sum(tf.mul(history, tf.expandDims(candidate, 1)), -1);
    return tf.div(tf.sub(bits, agree), 2);
  });
}

/**
 * ETA's retrieval: the k events whose signatures are closest in Hamming distance to the
 * candidate's. Equal distances (integers, so frequent) prefer the more recent event.
 */
export function hammingTopK(candidate: tf.Tensor, history: tf.Tensor, mask: tf.Tensor, k: number): TopK {
  const scores = tf.tidy(() => {
    const t = dim(history, 1);
    // A recency term below 0.5 orders ties without ever crossing a distance step.
    const recency = tf.div(tf.range(0, t, 1, 'float32'), 2 * t);
    return tf.add(tf.neg(hammingDistance(candidate, history)), recency);
  });
  try {
    return topKByScore(scores, mask, k);
  } finally {
    scores.dispose();
  }
}

/**
 * SDIM's bucket collisions: with `numHashes` hash functions of `bitsPerHash` SimHash bits each,
 * event t collides with the candidate under hash h when all of h's bits agree. Signatures
 * candidate [B, m*tau], history [B, T, m*tau] (+-1); returns float 0/1 [B, m, T] (padding 0).
 */
export function sdimCollisions(candidate: tf.Tensor, history: tf.Tensor, mask: tf.Tensor, numHashes: number, bitsPerHash: number): tf.Tensor3D {
  checkRank('sdimCollisions', 'candidate', candidate, 2);
  checkRank('sdimCollisions', 'history', history, 3);
  const width = numHashes * bitsPerHash;
  if (dim(candidate, 1) !== width || dim(history, 2) !== width) {
    throw new Error(`sdimCollisions: signatures must have numHashes * bitsPerHash = ${width} bits, received ${dim(candidate, 1)} and ${dim(history, 2)}`);
  }
  return tf.tidy(() => {
    const [b, t] = [dim(history, 0), dim(history, 1)];
    const agree = tf.mul(history, tf.expandDims(candidate, 1));
    const perHash = tf.sum(tf.reshape(agree, [b, t, numHashes, bitsPerHash]), -1);
    const collide = tf.mul(tf.cast(tf.equal(perHash, bitsPerHash), 'float32'), tf.expandDims(mask, -1));
    return tf.transpose(collide, [0, 2, 1]) as tf.Tensor3D;
  });
}

/**
 * SDIM's aggregation (no softmax over the history): per hash function, the sum of the colliding
 * events' values, L2-normalized; then the mean over hash functions. collisions [B, m, T],
 * values [B, T, d] -> [B, d]. A hash with no collision contributes zeros. Differentiable in `values`.
 */
export function sdimAggregate(collisions: tf.Tensor, values: tf.Tensor): tf.Tensor2D {
  checkRank('sdimAggregate', 'collisions', collisions, 3);
  checkRank('sdimAggregate', 'values', values, 3);
  return tf.tidy(() => {
    const sums = tf.matMul(collisions as tf.Tensor3D, values as tf.Tensor3D);
    const norms = tf.sqrt(tf.add(tf.sum(tf.square(sums), -1, true), 1e-12));
    return tf.mean(tf.div(sums, norms), 1) as tf.Tensor2D;
  });
}

/**
 * Target-attention scores as the exact stage computes them, averaged over heads: projected query
 * [B, H*dk], projected keys [B, T, H*dk] -> [B, T] = mean_h q_h . k_h / sqrt(dk). TWIN retrieves
 * with exactly these scores (same projections as the exact stage), so retrieval and attention agree.
 */
export function targetAttentionScores(query: tf.Tensor, keys: tf.Tensor, numHeads: number): tf.Tensor2D {
  checkRank('targetAttentionScores', 'query', query, 2);
  checkRank('targetAttentionScores', 'keys', keys, 3);
  const width = dim(query, 1);
  if (width % numHeads !== 0) throw new Error(`targetAttentionScores: numHeads must divide the query width ${width}, received ${numHeads}`);
  const dk = width / numHeads;
  return tf.tidy(() => tf.div(tf.sum(tf.mul(keys, tf.expandDims(query, 1)), -1), numHeads * Math.sqrt(dk)) as tf.Tensor2D);
}
