// The fused routing loss over plain arrays: the one routine the cpu kernel runs on its typed arrays
// and the wasm kernel on views of the wasm heap. No tfjs here, and no full-size temporaries: each
// row's softmax lives in one scratch row of m numbers.
//
// Loss of one routed pool (C = max(sum_i v_i, 1), v_i the row's mask weight, M_i = max_j z_ij):
//   peak    = -(1/C) sum_i v_i log sigmoid(M_i)
//   q_j     = (1/C) sum_i v_i softmax(z_i)_j                        (meanProb)
//   balance = sum_j q_j log(max(q_j, 1e-30) m)                      (KL(q || uniform(m)))
//   loss    = peakWeight * peak + balanceWeight * balance           (a weight of 0 skips its term)
//
// Gradient (p_ij = softmax(z_i)_j):
//   d balance / d q_j = g_j = log(q_j m) + 1 where q_j >= 1e-30, else log(1e-30 m)
//     (the clamp's branch: tf.maximum passes the gradient to q only where q >= the floor)
//   d q_j / d z_ik    = (v_i / C) p_ij (delta_jk - p_ik)                 (softmax Jacobian)
//   => d balance / d z_ik = (v_i / C) p_ik (g_k - sum_j p_ij g_j)
//   d peak / d z_ik   = -(v_i / C) (1 - sigmoid(M_i)) at k = the row's first maximum, else 0
//     (d/dM log sigmoid(M) = 1 - sigmoid(M); ties go to the first maximum, as routeTop1)

export interface RoutingLossWeights {
  peakWeight: number;
  balanceWeight: number;
}

// Math's functions bound once: under jest's vm context each `Math.exp` in a hot loop is a global
// lookup through the context, which made this file's loops 13x slower there.
const { exp, log, log1p } = Math;

/** The clamp of q in log(q m), as float32 (what tf.maximum(q, 1e-30) compares against). */
const FLOOR = Math.fround(1e-30);

/** log sigmoid(x) = -softplus(-x), without overflow for large |x|. */
export function logSigmoid(x: number): number {
  return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

/** max(sum of the mask weights, 1): a batch of pure padding divides by 1 and contributes 0. */
export function validCount(mask: ArrayLike<number>): number {
  let count = 0;
  for (let r = 0; r < mask.length; r++) count += mask[r];
  return Math.max(count, 1);
}

/** Index of the first maximum of row [base, base + m). */
function rowArgMax(logits: Float32Array, base: number, m: number): number {
  let best = 0;
  let max = logits[base];
  for (let j = 1; j < m; j++) {
    const v = logits[base + j];
    if (v > max) { max = v; best = j; }
  }
  return best;
}

/** scratch[j] = exp(z_j - max) for one row; returns their sum (the softmax denominator). */
function rowExp(logits: Float32Array, base: number, m: number, max: number, scratch: Float64Array): number {
  let sum = 0;
  for (let j = 0; j < m; j++) {
    const e = exp(logits[base + j] - max);
    scratch[j] = e;
    sum += e;
  }
  return sum;
}

/**
 * Forward pass, one sweep over the rows: returns the weighted loss and writes meanProb (q, [m]),
 * which the backward pass needs and which is too small to be worth recomputing. Rows of mask
 * weight 0 are skipped entirely. logits: rows x m, row-major; mask: one weight per row.
 */
export function routingLossForward(logits: Float32Array, m: number, mask: ArrayLike<number>, w: RoutingLossWeights,
  meanProb: Float32Array): number {
  const rows = mask.length;
  const acc = new Float64Array(m);
  const scratch = new Float64Array(m);
  let weightSum = 0;
  let peakSum = 0;
  for (let r = 0, base = 0; r < rows; r++, base += m) {
    const v = mask[r];
    if (v === 0) continue;
    weightSum += v;
    const max = logits[base + rowArgMax(logits, base, m)];
    if (w.peakWeight !== 0) peakSum += v * logSigmoid(max);
    if (w.balanceWeight !== 0) {
      const scale = v / rowExp(logits, base, m, max, scratch);
      for (let j = 0; j < m; j++) acc[j] += scratch[j] * scale;
    }
  }
  const count = Math.max(weightSum, 1);
  let kl = 0;
  for (let j = 0; j < m; j++) {
    const q = acc[j] / count;
    meanProb[j] = q;
    kl += q * log(Math.max(q, FLOOR) * m);
  }
  let loss = 0;
  if (w.peakWeight !== 0) loss += w.peakWeight * (-peakSum / count);
  if (w.balanceWeight !== 0) loss += w.balanceWeight * kl;
  return loss;
}

/** g_j = d balance / d q_j, including the clamp's branch (see the header). */
export function balanceGradient(meanProb: Float32Array, m: number): Float64Array {
  const g = new Float64Array(m);
  for (let j = 0; j < m; j++) {
    const q = meanProb[j];
    g[j] = q >= FLOOR ? log(q * m) + 1 : log(FLOOR * m);
  }
  return g;
}

/**
 * Backward pass: writes every entry of dlogits (rows x m; wasm outputs start uninitialized),
 * recomputing each row's softmax on the fly. dy: the upstream gradient of the scalar loss.
 */
export function routingLossBackward(dy: number, logits: Float32Array, m: number, mask: ArrayLike<number>,
  meanProb: Float32Array, w: RoutingLossWeights, dlogits: Float32Array): void {
  const rows = mask.length;
  const count = validCount(mask);
  const g = w.balanceWeight !== 0 ? balanceGradient(meanProb, m) : null;
  const scratch = new Float64Array(m);
  for (let r = 0, base = 0; r < rows; r++, base += m) {
    const scale = dy * mask[r] / count;
    if (scale === 0) {
      dlogits.fill(0, base, base + m);
      continue;
    }
    const best = rowArgMax(logits, base, m);
    const max = logits[base + best];
    if (g != null) balanceRowGradient(logits, base, m, max, g, scale * w.balanceWeight, scratch, dlogits);
    else dlogits.fill(0, base, base + m);
    if (w.peakWeight !== 0) dlogits[base + best] -= scale * w.peakWeight * (1 - 1 / (1 + exp(-max)));
  }
}

/** dlogits[base + k] = scale * p_k (g_k - sum_j p_j g_j) for one row. */
function balanceRowGradient(logits: Float32Array, base: number, m: number, max: number, g: Float64Array, scale: number,
  scratch: Float64Array, dlogits: Float32Array): void {
  const inv = 1 / rowExp(logits, base, m, max, scratch);
  let dot = 0;
  for (let j = 0; j < m; j++) dot += scratch[j] * g[j];
  dot *= inv;
  for (let k = 0; k < m; k++) dlogits[base + k] = scale * scratch[k] * inv * (g[k] - dot);
}
