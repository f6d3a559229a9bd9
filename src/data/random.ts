/**
 * Seeded pseudo-random numbers for the data tools, so that a seed fixes a data set, a split and a
 * batch order on every platform (Math.random cannot be seeded).
 */
export type Random = () => number;

// Bound once: a per-draw `Math.imul` is a global lookup, slow under jest's vm context.
const { imul } = Math;

/** mulberry32: small, fast, and good enough for sampling (not for cryptography). */
export function seededRandom(seed: number): Random {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The seed of one epoch's draws from one stream: batch order (stream 0) and, e.g., cloze masking
 * (another stream) must not replay the same numbers, or the mask would follow the batch order.
 */
export function epochSeed(seed: number, epoch: number, stream = 0): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b) ^ Math.imul(stream, 0xc2b2ae35)) >>> 0;
}

/** Uniform integer in [0, n). */
export function randomInt(rand: Random, n: number): number {
  return Math.min(n - 1, Math.floor(rand() * n));
}

/** Standard normal (Box-Muller). */
export function randomNormal(rand: Random): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** Gamma(shape, 1) by Marsaglia-Tsang; shapes below 1 use the boost Gamma(a+1) * U^(1/a). */
export function randomGamma(rand: Random, shape: number): number {
  if (shape < 1) return randomGamma(rand, shape + 1) * Math.pow(Math.max(rand(), 1e-12), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = randomNormal(rand);
    const v = Math.pow(1 + c * x, 3);
    if (v <= 0) continue;
    const u = rand();
    if (Math.log(Math.max(u, 1e-300)) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** A point on the simplex from a symmetric Dirichlet(alpha); small alpha gives peaked vectors. */
export function randomDirichlet(rand: Random, size: number, alpha: number): Float64Array {
  const out = new Float64Array(size);
  let sum = 0;
  for (let i = 0; i < size; i++) {
    out[i] = randomGamma(rand, alpha) + 1e-12;
    sum += out[i];
  }
  for (let i = 0; i < size; i++) out[i] /= sum;
  return out;
}

/** Fisher-Yates shuffle in place; returns its argument. */
export function shuffleInPlace<T>(items: T[], rand: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(rand, i + 1);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}

/**
 * Samples indices proportionally to fixed non-negative weights in O(log n) per draw (binary search
 * over the cumulative sums), which is what the generator needs for per-topic popularity.
 */
export class CategoricalSampler {
  private readonly cumulative: Float64Array;

  constructor(weights: ArrayLike<number>) {
    this.cumulative = new Float64Array(weights.length);
    let sum = 0;
    for (let i = 0; i < weights.length; i++) {
      if (!(weights[i] >= 0)) throw new Error(`CategoricalSampler: weight ${i} must be >= 0, received ${weights[i]}`);
      sum += weights[i];
      this.cumulative[i] = sum;
    }
    if (!(sum > 0)) throw new Error('CategoricalSampler: weights must have a positive sum');
  }

  sample(rand: Random): number {
    const c = this.cumulative;
    const target = rand() * c[c.length - 1];
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (c[mid] > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/** One draw from unnormalized weights (linear scan: for short vectors that change every draw). */
export function sampleIndex(rand: Random, weights: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < weights.length; i++) sum += weights[i];
  let target = rand() * sum;
  for (let i = 0; i < weights.length; i++) {
    target -= weights[i];
    if (target < 0) return i;
  }
  return weights.length - 1;
}
