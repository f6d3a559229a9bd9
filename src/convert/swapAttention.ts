// swapAttention: a trained model with MultiHeadAttention -> the same model with
// CollectiveKVAttention, initialized from the trained model's own K/V (docs/design.md section 6).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { seededRandom } from '../data/random';
import { ArgumentError, dim } from '../../ops/util/validate';
import { CollectiveKVAttention, ShareMode } from '../../layers/CollectiveKVAttention';
import { MultiHeadAttention } from '../../layers/MultiHeadAttention';
import { GateMode, routerFromFlatOptions } from '../../layers/routing/index';
import { captureAttentionInputs, disposeSites, keysAndValues, sampleRows, validIndex } from '../analysis/capture';
import { quantile } from '../analysis/spectrum';
import { KMeansResult, kmeans } from './kmeans';

export interface SwapAttentionOptions {
  /** Inputs of the model for a sample of users (the k-means data); one user per batch row. */
  sample: tf.Tensor | tf.Tensor[];
  /** Pool rows (k of the k-means). Default 1024; the sample needs at least this many valid tokens. */
  poolSize?: number;
  /**
   * User-specific width; up to the full K/V width (then the pool is empty and outputs are
   * unchanged). One number for every layer, or per layer name (e.g. analyzeKV's suggestions;
   * unnamed layers get 1). Default 1.
   */
  userDim?: number | Record<string, number>;
  share?: ShareMode;
  /**
   * The converted layers' router. 'dense' (default): a router that reproduces the nearest-centroid
   * assignment. 'nearest-product': nearest-row routing over a product-quantized pool with the
   * centroids of each half (sqrt(poolSize) centroids on the first ceil(dg / 2) columns, as many on
   * the rest) as its sub-pools and the trained projection as its encoder, so fine-tuning goes on as
   * a VQ codebook. See CollectiveKVAttentionArgs.router.
   */
  router?: SwapRouterKind;
  /** The converted layers' router options (see RouterConfig); the ones of the other router are ignored. Default: the router's. */
  gate?: GateMode;
  commitmentWeight?: number;
  quantizationWeight?: number;
  peakWeight?: number;
  balanceWeight?: number;
  /**
   * Activation of the user part. Default 'linear' (not the layer's 'swish'): the user projection
   * is initialized with the trained K/V columns, and only a linear user part reproduces them.
   */
  userActivation?: string;
  /** Seed of the token sampling and k-means++. Default 1. */
  seed?: number;
  /** Valid tokens per layer fed to k-means (uniform sample). Default max(8192, 8 * poolSize). */
  maxTokens?: number;
  /** Lloyd iterations at most. Default 25. */
  kmeansIterations?: number;
  /**
   * The router's logits are shifted (same constant for every row, so the argmax is unchanged) so
   * that 95% of the sample's winning logits are >= this: the training gate sigmoid(logit) starts
   * near 1 and the training forward matches inference. Default 3 (gate >= 0.95).
   */
  gateLogit?: number;
  /** Forward batch size over the sample. Default 64. */
  batchSize?: number;
  /** Name of the new model. Default `${model.name}_collectivekv`. */
  name?: string;
}

/** Routers swapAttention converts to (both of them). */
const SWAP_ROUTER_KINDS = ['dense', 'nearest-product'] as const;
export type SwapRouterKind = typeof SWAP_ROUTER_KINDS[number];

export interface SideConversionReport {
  /** Tokens clustered. */
  tokens: number;
  /** Width of the pool rows (K/V width - userDim). */
  poolWidth: number;
  iterations: number;
  reseeded: number;
  minClusterSize: number;
  maxClusterSize: number;
  /** k-means inertia / total squared norm of the centered collective parts (0 = exact). */
  relativeInertia: number;
  /** Fraction of sampled tokens whose new router picks their nearest centroid (null when the pool is empty). */
  routingAgreement: number | null;
  /** The constant added to every router logit (see gateLogit); 0 for the nearest routers, which have none. */
  logitShift: number;
}

export interface LayerConversionReport {
  layer: string;
  userDim: number;
  key: SideConversionReport | null;
  value: SideConversionReport | null;
}

export interface SwapAttentionResult {
  model: tfl.LayersModel;
  layers: LayerConversionReport[];
}

/** The router options, flat (see routerFromFlatOptions). */
const ROUTER_OPTIONS = ['gate', 'peakWeight', 'balanceWeight', 'commitmentWeight', 'quantizationWeight'] as const;
type PassedThrough = 'share' | typeof ROUTER_OPTIONS[number];
type Resolved = Required<Omit<SwapAttentionOptions, 'sample' | PassedThrough | 'name' | 'userDim'>>
  & Pick<SwapAttentionOptions, PassedThrough> & { name: string; userDim: (layer: string) => number };
/** What the per-layer initialization reads. */
export type LayerInit = Pick<Resolved, 'poolSize' | 'router' | 'seed' | 'kmeansIterations' | 'gateLogit' | 'maxTokens'>;

/**
 * Returns a new model in which every MultiHeadAttention is a CollectiveKVAttention with the same
 * arguments plus the pool options; the original model is left untouched.
 *
 * - Rebuilt from `model.getConfig()` with the class swapped (functional and sequential models of
 *   registered layers); every other layer's weights are copied by layer name.
 * - Query and output projections (and a relative position bias) are copied; a side left unshared (`share: 'k' | 'v'`) keeps its
 *   full projection.
 * - Per shared side, with d the K/V width and dg = d - userDim: the trained K (or V) of the
 *   sample's valid tokens is computed with the layer's own projection; its first dg columns are
 *   clustered by k-means (k = poolSize, k-means++ seeded, empty clusters re-seeded) and the
 *   centroids become the pool; the user projection is the trained kernel's (and bias's) last
 *   userDim columns, so with a linear userActivation the user part equals the trained K's tail.
 * - The router reproduces nearest-centroid assignment exactly: with kc(x) = x Wc + bc the trained
 *   collective projection, argmin_j ||kc(x) - c_j||^2 = argmax_j (2 kc(x).c_j - ||c_j||^2), which is
 *   linear in x: router = 2 Wc C^T, router_bias_j = 2 bc.c_j - ||c_j||^2 (+ a shift common to all
 *   rows, see gateLogit). Without biases (useBias false) the -||c_j||^2 term is lost and the
 *   agreement drops; the report measures it on the sample either way.
 *
 * With userDim = d the pool has width 0 and K/V are exactly the trained projections: the outputs
 * equal the original's (the sanity case). Fine-tuning is the caller's; pass `balanceWeight: 0` for
 * it (the balance loss pulls the k-means routing toward equal row use; docs/routing.md). The result is an ordinary
 * LayersModel (compile + fit includes the routing losses through addLoss; in a custom loop add
 * `tf.addN(model.calculateLosses())` to the loss inside `optimizer.minimize`), or copy its weights
 * into a model of your own builder with `copyWeightsByName`.
 */
export function swapAttention(model: tfl.LayersModel, options: SwapAttentionOptions): SwapAttentionResult {
  const o = resolve(model, options);
  const targets = model.layers.filter((l): l is MultiHeadAttention => l instanceof MultiHeadAttention);
  if (targets.length === 0) {
    throw new ArgumentError('swapAttention', 'model', 'a model with at least one MultiHeadAttention layer', 'none');
  }
  const converted = rebuild(model, targets, o, options);
  copyWeightsByName(model, converted, new Set(targets.map((t) => t.name)));
  const sites = captureAttentionInputs(model, options.sample, targets, o.batchSize);
  try {
    const layers = sites.map((site) => initializeLayer(site.layer as MultiHeadAttention,
      converted.getLayer(site.layer.name) as CollectiveKVAttention, site.kvSource, site.mask, o));
    return { model: converted, layers };
  } catch (e) {
    converted.dispose();
    throw e;
  } finally {
    disposeSites(sites);
  }
}

/** Options of convertAttentionLayer (the pool size, router and userDim are the target layer's). */
export interface ConvertAttentionLayerOptions {
  /** Seed of the token sampling and k-means++. Default 1. */
  seed?: number;
  /** Valid tokens fed to k-means (uniform sample). Default max(8192, 8 * poolSize). */
  maxTokens?: number;
  /** Lloyd iterations at most. Default 25. */
  kmeansIterations?: number;
  /** See SwapAttentionOptions.gateLogit. Default 3. */
  gateLogit?: number;
}

/**
 * swapAttention's per-layer step, for models swapAttention cannot rebuild (a custom forward, such
 * as the CTR zoo's): initializes the built CollectiveKVAttention `target` from the trained
 * MultiHeadAttention `trained` and what reached `trained` on a sample (see recordAttentionInputs).
 * The pool size, router ('dense' or 'nearest-product') and userDim are the target's;
 * give the target a linear userActivation (its user part then reproduces the trained K/V's last
 * userDim columns). Everything else about the result is as in swapAttention.
 */
export function convertAttentionLayer(trained: MultiHeadAttention, target: CollectiveKVAttention,
  site: { kvSource: tf.Tensor; mask: tf.Tensor | null }, options: ConvertAttentionLayerOptions = {}): LayerConversionReport {
  const fn = 'convertAttentionLayer';
  if (!(trained instanceof MultiHeadAttention)) throw new ArgumentError(fn, 'trained', 'a MultiHeadAttention', className(trained));
  if (!(target instanceof CollectiveKVAttention)) throw new ArgumentError(fn, 'target', 'a CollectiveKVAttention', className(target));
  if (!trained.built || !target.built) throw new ArgumentError(fn, trained.built ? 'target' : 'trained', 'a built layer (called once)', 'an unbuilt layer');
  for (const key of ['numHeads', 'keyDim', 'valueDim', 'useBias'] as const) {
    if (trained[key] !== target[key]) throw new ArgumentError(fn, `target.${key}`, `${trained[key]} (the trained layer's)`, String(target[key]));
  }
  const router = target.router.kind;
  const o: LayerInit = {
    poolSize: target.poolSize, router, seed: options.seed ?? LAYER_DEFAULTS.seed, kmeansIterations: options.kmeansIterations ?? LAYER_DEFAULTS.kmeansIterations,
    gateLogit: options.gateLogit ?? LAYER_DEFAULTS.gateLogit, maxTokens: options.maxTokens ?? defaultMaxTokens(target.poolSize),
  };
  requirePositiveIntegers(fn, { maxTokens: o.maxTokens, kmeansIterations: o.kmeansIterations });
  return initializeLayer(trained, target, site.kvSource, site.mask, o);
}

/** Per-layer defaults shared by swapAttention and convertAttentionLayer. */
const LAYER_DEFAULTS = { seed: 1, kmeansIterations: 25, gateLogit: 3 };

/** Enough tokens per centroid for a big pool: with 8192 tokens, a 4096-row pool would fit 2 each. */
function defaultMaxTokens(poolSize: number): number {
  return Math.max(8192, 8 * poolSize);
}

function isSwapRouterKind(kind: string): kind is SwapRouterKind {
  return (SWAP_ROUTER_KINDS as readonly string[]).includes(kind);
}

function requirePositiveIntegers(fn: string, sizes: Record<string, number>): void {
  for (const [key, value] of Object.entries(sizes)) {
    if (!Number.isInteger(value) || value < 1) throw new ArgumentError(fn, `options.${key}`, 'a positive integer', String(value));
  }
}

function className(value: unknown): string {
  return value instanceof tfl.layers.Layer ? value.getClassName() : String(value);
}

function resolve(model: tfl.LayersModel, options: SwapAttentionOptions): Resolved {
  if (options == null || options.sample == null) {
    throw new ArgumentError('swapAttention', 'options.sample', 'the model inputs of a data sample', String(options?.sample));
  }
  if (options.router != null && !isSwapRouterKind(options.router)) {
    throw new ArgumentError('swapAttention', 'options.router', `one of ${SWAP_ROUTER_KINDS.join(', ')}`, String(options.router));
  }
  const o = {
    poolSize: 1024, userActivation: 'linear', ...LAYER_DEFAULTS, router: 'dense' as SwapRouterKind,
    batchSize: 64, ...options, name: options.name ?? `${model.name}_collectivekv`,
  };
  const maxTokens = options.maxTokens ?? defaultMaxTokens(o.poolSize);
  requirePositiveIntegers('swapAttention', { poolSize: o.poolSize, maxTokens, kmeansIterations: o.kmeansIterations, batchSize: o.batchSize });
  const du = options.userDim ?? 1;
  const userDim = typeof du === 'number' ? () => du : (layer: string) => du[layer] ?? 1;
  return { ...o, maxTokens, userDim };
}

// ---------------------------------------------------------------- rebuilding

/** The model rebuilt from its config with the MultiHeadAttention entries swapped; fresh weights. */
function rebuild(model: tfl.LayersModel, targets: MultiHeadAttention[], o: Resolved, options: SwapAttentionOptions): tfl.LayersModel {
  const config = JSON.parse(JSON.stringify(model.getConfig())) as { name?: string; layers: LayerEntry[] };
  const names = new Set(targets.map((t) => t.name));
  const flat = Object.fromEntries(ROUTER_OPTIONS.map((key) => [key, options[key]]));
  const extra: Record<string, unknown> = { poolSize: o.poolSize, userActivation: o.userActivation,
    router: routerFromFlatOptions({ ...flat, router: o.router }, 'swapAttention') };
  if (options.share != null) extra.share = options.share;
  for (const entry of config.layers) {
    const name = entry.config.name as string;
    if (!names.has(name)) continue;
    entry.className = entry.className.replace(/MultiHeadAttention$/, CollectiveKVAttention.className);
    entry.config = { ...entry.config, ...extra, userDim: o.userDim(name), kvPhase: 'pooled' };
  }
  config.name = o.name;
  const className = model.getClassName();
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (entry == null) throw new ArgumentError('swapAttention', 'model', 'a registered model class (LayersModel or Sequential)', className);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config as unknown as tf.serialization.ConfigDict) as unknown as tfl.LayersModel;
}

interface LayerEntry {
  className: string;
  config: Record<string, unknown>;
}

/**
 * Copies the weights of every layer of `from` into the layer of the same name in `to` (same
 * class and shapes), except the names in `skip`. Layers of `to` missing in `from` keep theirs.
 */
export function copyWeightsByName(from: tfl.LayersModel, to: tfl.LayersModel, skip: ReadonlySet<string> = new Set()): void {
  for (const target of to.layers) {
    if (skip.has(target.name) || target.weights.length === 0) continue;
    const source = from.layers.find((l) => l.name === target.name);
    if (source == null) continue;
    const values = source.getWeights();
    if (values.length !== target.weights.length) {
      throw new ArgumentError('copyWeightsByName', 'to', `layer '${target.name}' with ${values.length} weights (as in 'from')`,
        `${target.weights.length} weights`);
    }
    target.setWeights(values);
  }
}

// ---------------------------------------------------------------- per-layer initialization

function initializeLayer(old: MultiHeadAttention, next: CollectiveKVAttention, kvSource: tf.Tensor, mask: tf.Tensor | null,
  o: LayerInit): LayerConversionReport {
  const byName = weightsByName(old);
  for (const name of ['query_kernel', 'query_bias', 'output_kernel', 'output_bias', 'relative_position_bias']) copyWeight(next, name, byName.get(name));
  const { k, v } = keysAndValues(old, kvSource, mask);
  try {
    const valid = validIndex(mask == null ? null : mask.dataSync(), dim(kvSource, 0) * dim(kvSource, 1));
    const pick = sampleRows(valid, o.maxTokens, seededRandom(o.seed));
    const side = (s: 'key' | 'value', values: tf.Tensor) => (next.isShared(s)
      ? initializePooledSide(next, s, byName, values, kvSource, pick, o)
      : (copyWeight(next, `${s}_kernel`, byName.get(`${s}_kernel`)), copyWeight(next, `${s}_bias`, byName.get(`${s}_bias`)), null));
    return { layer: old.name, userDim: next.userDim, key: side('key', k), value: side('value', v) };
  } finally {
    tf.dispose([k, v]);
  }
}

function weightsByName(layer: tfl.layers.Layer): Map<string, tf.Tensor> {
  const values = layer.getWeights();
  return new Map(layer.weights.map((w, i) => [shortName(w), values[i]]));
}

function shortName(w: tfl.LayerVariable): string {
  const parts = w.originalName.split('/');
  return parts[parts.length - 1];
}

function copyWeight(layer: tfl.layers.Layer, name: string, value: tf.Tensor | undefined): void {
  const target = layer.weights.find((w) => shortName(w) === name);
  if (target == null && value == null) return; // both without this bias
  if (target == null || value == null) {
    throw new ArgumentError('swapAttention', 'model', `weight '${name}' on both sides of layer '${layer.name}'`, 'it on one side only');
  }
  target.write(value);
}

/** k-means pool, centroid router and copied user projection of one shared side. */
function initializePooledSide(next: CollectiveKVAttention, s: 'key' | 'value', old: Map<string, tf.Tensor>, values: tf.Tensor,
  kvSource: tf.Tensor, pick: Int32Array, o: LayerInit): SideConversionReport {
  const width = dim(values, 2);
  const du = next.userDim;
  const dg = width - du;
  const kernel = old.get(`${s}_kernel`) as tf.Tensor;
  const bias = old.get(`${s}_bias`) ?? null;
  const [de] = kernel.shape;
  // User projection: the trained projection's last userDim columns.
  tf.tidy(() => {
    copyWeight(next, `${s}_user_kernel`, tf.slice(kernel, [0, dg], [de, du]));
    if (bias != null) copyWeight(next, `${s}_user_bias`, tf.slice(bias, [dg], [du]));
  });
  if (dg === 0) return { tokens: pick.length, poolWidth: 0, ...EMPTY_POOL };
  if (pick.length < o.poolSize) {
    throw new ArgumentError('swapAttention', 'options.sample', `at least poolSize = ${o.poolSize} valid tokens`, `${pick.length}`);
  }
  const points = collectiveRows(values, pick, dg);
  const collective = { kernel: tf.slice(kernel, [0, 0], [de, dg]), bias: bias == null ? null : tf.slice(bias, [0], [dg]) };
  try {
    // The warm-up projection is the trained one's collective columns: the converted layer's 'full' phase is the original.
    if (next.warmupWeights) {
      copyWeight(next, `${s}_warmup_kernel`, collective.kernel);
      if (collective.bias != null) copyWeight(next, `${s}_warmup_bias`, collective.bias);
    }
    return initializeCollectivePart(next, s, collective, points, kvSource, pick, o);
  } finally {
    collective.kernel.dispose();
    collective.bias?.dispose();
  }
}

/** The report of a side whose pool has width 0: nothing to cluster or route. */
export const EMPTY_POOL = { iterations: 0, reseeded: 0, minClusterSize: 0, maxClusterSize: 0, relativeInertia: 0, routingAgreement: null, logitShift: 0 };

/**
 * The pool and router of a shared side from the collective projection kc(x) = x W + b (W
 * [de, dg], the columns the pool replaces) and kc of the sampled tokens (`points`, float64 rows
 * of width dg; kvSource [B, T, de] with the tokens `pick` of its flattened rows): k-means
 * centroids, and a router that picks each token's nearest one. Shared by the conversion of a
 * trained MultiHeadAttention and the recipe's switch (switchToPool).
 */
export function initializeCollectivePart(next: CollectiveKVAttention, s: 'key' | 'value', collective: { kernel: tf.Tensor; bias: tf.Tensor | null },
  points: Float64Array, kvSource: tf.Tensor, pick: Int32Array, o: LayerInit): SideConversionReport {
  const dg = dim(collective.kernel, 1);
  const report = { tokens: pick.length, poolWidth: dg };
  if (o.router === 'nearest-product') return { ...report, ...initializeNearestSide(next, s, collective.kernel, collective.bias, points, pick, kvSource, o) };
  const km = kmeans(points, pick.length, dg, o.poolSize, { seed: o.seed, maxIterations: o.kmeansIterations });
  const shift = routerShift(points, pick.length, dg, km.centroids, km.assignment, o.gateLogit);
  writeRouter(next, s, collective.kernel, collective.bias, km.centroids, dg, o.poolSize, shift);
  return {
    ...report, iterations: km.iterations, reseeded: km.reseeded, minClusterSize: Math.min(...km.sizes), maxClusterSize: Math.max(...km.sizes),
    relativeInertia: km.inertia / centeredEnergy(points, pick.length, dg),
    routingAgreement: agreement(next, s, kvSource, pick, km.assignment), logitShift: shift,
  };
}

/**
 * Nearest-product routing from the trained side: the encoder is the trained projection's first dg
 * columns, the sub-pools the k-means centroids of each half of the tokens' first dg columns (the
 * nearest product row is the nearest centroid of each half), and the pool is marked set, so the
 * first training call does not set it from data again.
 */
function initializeNearestSide(next: CollectiveKVAttention, s: 'key' | 'value', kernel: tf.Tensor, bias: tf.Tensor | null,
  points: Float64Array, pick: Int32Array, kvSource: tf.Tensor, o: LayerInit): Omit<SideConversionReport, 'tokens' | 'poolWidth'> {
  const n = pick.length;
  const dg = points.length / n;
  const options = { seed: o.seed, maxIterations: o.kmeansIterations };
  tf.tidy(() => {
    copyWeight(next, `${s}_encoder_kernel`, tf.slice(kernel, [0, 0], [dim(kernel, 0), dg]));
    if (next.useBias) copyWeight(next, `${s}_encoder_bias`, bias == null ? tf.zeros([dg]) : tf.slice(bias, [0], [dg]));
    copyWeight(next, `${s}_pool_ready`, tf.ones([1]));
  });
  const rows = Math.round(Math.sqrt(o.poolSize));
  const widthA = Math.ceil(dg / 2);
  const half = (start: number, width: number) => kmeans(columns(points, n, dg, start, width), n, width, rows, options);
  const [a, b] = [half(0, widthA), half(widthA, dg - widthA)];
  writeRows(next, `${s}_pool_a`, a.centroids, rows);
  writeRows(next, `${s}_pool_b`, b.centroids, rows);
  const assignment = a.assignment.map((i, t) => i * rows + b.assignment[t]);
  const fits: KMeansResult[] = [a, b];
  const sizes = new Int32Array(o.poolSize);
  assignment.forEach((row) => { sizes[row]++; });
  return {
    iterations: Math.max(...fits.map((f) => f.iterations)), reseeded: fits.reduce((t, f) => t + f.reseeded, 0),
    minClusterSize: Math.min(...sizes), maxClusterSize: Math.max(...sizes),
    // Squared distances add over columns, so the halves' inertias add up to the product pool's.
    relativeInertia: fits.reduce((t, f) => t + f.inertia, 0) / centeredEnergy(points, n, dg),
    routingAgreement: agreement(next, s, kvSource, pick, assignment), logitShift: 0,
  };
}

/** Writes float64 row-major values as the [rows, size / rows] weight `name` (the written tensor is freed: write keeps its own reference). */
function writeRows(layer: tfl.layers.Layer, name: string, values: Float64Array, rows: number): void {
  tf.tidy(() => copyWeight(layer, name, tf.tensor2d(Float32Array.from(values), [rows, values.length / rows])));
}

/** Columns [start, start + width) of n float64 rows of width d. */
function columns(points: Float64Array, n: number, d: number, start: number, width: number): Float64Array {
  const out = new Float64Array(n * width);
  for (let i = 0; i < n; i++) out.set(points.subarray(i * d + start, i * d + start + width), i * width);
  return out;
}

/** The first dg columns of the picked tokens of values [B, T, width], as float64 rows. */
function collectiveRows(values: tf.Tensor, pick: Int32Array, dg: number): Float64Array {
  const width = dim(values, 2);
  const flat = values.dataSync();
  const out = new Float64Array(pick.length * dg);
  pick.forEach((row, i) => { for (let c = 0; c < dg; c++) out[i * dg + c] = flat[row * width + c]; });
  return out;
}

function centeredEnergy(points: Float64Array, n: number, d: number): number {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) mean[c] += points[i * d + c] / n;
  let s = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) s += (points[i * d + c] - mean[c]) ** 2;
  return Math.max(s, 1e-300);
}

/**
 * Shift so that the 5% quantile of the winning logits (||k||^2 - ||k - c_nearest||^2 before the
 * shift) lands at gateLogit.
 */
function routerShift(points: Float64Array, n: number, d: number, centroids: Float64Array, nearest: Int32Array, gateLogit: number): number {
  // max_j (2 k.c_j - ||c_j||^2) = ||k||^2 - min_j ||k - c_j||^2: the nearest centroid's term.
  const winning: number[] = [];
  for (let i = 0; i < n; i++) {
    let norm = 0;
    let distance = 0;
    for (let c = 0; c < d; c++) {
      const x = points[i * d + c];
      norm += x * x;
      distance += (x - centroids[nearest[i] * d + c]) ** 2;
    }
    winning.push(norm - distance);
  }
  return gateLogit - quantile(winning.sort((a, b) => a - b), 0.05);
}

/** router = 2 Wc C^T; router_bias_j = 2 bc.c_j - ||c_j||^2 + shift. */
function writeRouter(next: CollectiveKVAttention, s: 'key' | 'value', kernel: tf.Tensor, bias: tf.Tensor | null,
  centroids: Float64Array, dg: number, k: number, shift: number): void {
  tf.tidy(() => {
    const c = tf.tensor2d(Float32Array.from(centroids), [k, dg]);
    const wc = tf.slice(kernel, [0, 0], [dim(kernel, 0), dg]) as tf.Tensor2D;
    copyWeight(next, `${s}_pool`, c);
    copyWeight(next, `${s}_router`, tf.mul(2, tf.matMul(wc, c, false, true)));
    if (next.useBias) {
      const bc = bias == null ? new Float32Array(dg) : bias.dataSync().subarray(0, dg);
      copyWeight(next, `${s}_router_bias`, tf.tensor1d(routerBias(bc, centroids, dg, k, shift)));
    }
  });
}

/** router_bias_j = 2 bc.c_j - ||c_j||^2 + shift, in float64 (k x dg is small). */
function routerBias(bc: ArrayLike<number>, centroids: Float64Array, dg: number, k: number, shift: number): Float32Array {
  const out = new Float32Array(k);
  for (let j = 0; j < k; j++) {
    let dot = 0;
    let norm = 0;
    for (let i = 0; i < dg; i++) {
      const c = centroids[j * dg + i];
      dot += bc[i] * c;
      norm += c * c;
    }
    out[j] = 2 * dot - norm + shift;
  }
  return out;
}

/**
 * Share of picked tokens routed by the new layer to their nearest centroid. Routed in chunks of
 * picked tokens: all of a big sample's logits at once ([tokens, poolSize]) overflow the wasm heap.
 */
function agreement(next: CollectiveKVAttention, s: 'key' | 'value', kvSource: tf.Tensor, pick: Int32Array, nearest: Int32Array): number {
  const de = dim(kvSource, 2);
  const chunk = Math.max(1, Math.floor(AGREEMENT_CHUNK / next.poolSize));
  let same = 0;
  for (let start = 0; start < pick.length; start += chunk) {
    const rows = pick.subarray(start, start + chunk);
    const chosen = tf.tidy(() => {
      const tokens = tf.gather(tf.reshape(kvSource, [-1, de]), tf.tensor1d(rows, 'int32'));
      return next.route(s, tf.reshape(tokens, [1, rows.length, de])).index;
    });
    const index = chosen.dataSync();
    chosen.dispose();
    rows.forEach((_, i) => { if (index[i] === nearest[start + i]) same++; });
  }
  return pick.length ? same / pick.length : 1;
}

/** Router logits per agreement chunk (~32 MB of float32). */
const AGREEMENT_CHUNK = 1 << 23;
