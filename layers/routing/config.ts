// Router configs: the two kinds, their options and defaults, validation, and the mapping of the
// flat options of collectivekv 0.1 (router: 'dense', top-level peakWeight, gate, ...) to the nested
// form, so models saved by 0.1 load. What each router does and why the defaults: docs/routing.md.
import { ArgumentError } from '../../ops/util/validate';
import { productSubKeys } from '../../ops/index';
import { DEFAULT_BALANCE_TOKENS, checkNonNegative, checkNonNegativeInt, checkOneOf, describeValue } from '../common';

/** 'dense': the paper's router, one column per pool row. 'nearest-product': the nearest row of a product-quantized pool. */
export const ROUTER_KINDS = ['dense', 'nearest-product'] as const;
/** The router kind, one of ROUTER_KINDS (the reference lists the values). @useDeclaredType */
export type RouterKind = (typeof ROUTER_KINDS)[number];

/**
 * How the dense router's gate enters the training forward. 'scaled' (the paper's): rows are
 * gate * pool[index] in training, pool[index] at inference. 'straight-through': pool[index] in
 * both, and the gradient reaches the gate as if the rows had been multiplied by it.
 */
export const GATE_MODES = ['scaled', 'straight-through'] as const;
/** How the dense router's gate enters the training forward, one of GATE_MODES. @useDeclaredType */
export type GateMode = (typeof GATE_MODES)[number];

/** The paper's router: logits x R + b, top-1 row, a sigmoid gate, peak and balance losses. */
export interface DenseRouterConfig {
  kind: 'dense';
  /** Default 'scaled'. */
  gate?: GateMode;
  /** Weight of the peak loss -mean log sigmoid(max logit); 0 turns it off. Default 0.01. */
  peakWeight?: number;
  /** Weight of the balance loss KL(mean softmax || uniform); 0 turns it off. Default 1. */
  balanceWeight?: number;
  /**
   * Tokens per training call whose softmax the balance loss averages: a seeded sample when a call
   * has more (the peak loss and the gate still see every token); 0 = all. It bounds the dense
   * [tokens, poolSize] work of the balance term. Default 2048.
   */
  balanceTokens?: number;
}

/**
 * Nearest-row routing over a product-quantized pool (row i*s + j = concat(a[i], b[j]), s =
 * sqrt(poolSize)): each token takes the row nearest to a learned encoding enc(x) = x W + b,
 * trained as a VQ-VAE codebook (the forward reads the row, the gradient reaches enc(x) straight
 * through, a VQ loss pulls rows and encodings together). No gate, no peak or balance loss.
 */
export interface NearestProductRouterConfig {
  kind: 'nearest-product';
  /** Weight of the commitment term ||sg(row) - enc(x)||^2 (the row's own term has weight 1). Default 0.25 (VQ-VAE's). */
  commitmentWeight?: number;
  /** Weight of the whole VQ loss, which is relative to the encodings' mean squared norm. Default 1/64 (docs/routing.md). */
  quantizationWeight?: number;
  /** Tokens per training call the VQ loss averages over (a seeded sample when a call has more); 0 = all. Default 2048. */
  lossTokens?: number;
}

export type RouterConfig = DenseRouterConfig | NearestProductRouterConfig;
/** A router as the layers take it: a kind (its defaults) or a config. */
export type RouterSpec = RouterKind | RouterConfig;
/** A config with every option set: what the layers keep and serialize. */
export type ResolvedRouterConfig = Required<DenseRouterConfig> | Required<NearestProductRouterConfig>;

/** Default of the nearest-product router's quantizationWeight (small: see docs/routing.md). */
export const DEFAULT_QUANTIZATION_WEIGHT = 1 / 64;

const DENSE_DEFAULTS: Required<DenseRouterConfig> = {
  kind: 'dense', gate: 'scaled', peakWeight: 0.01, balanceWeight: 1, balanceTokens: DEFAULT_BALANCE_TOKENS,
};
const NEAREST_PRODUCT_DEFAULTS: Required<NearestProductRouterConfig> = {
  kind: 'nearest-product', commitmentWeight: 0.25, quantizationWeight: DEFAULT_QUANTIZATION_WEIGHT, lossTokens: DEFAULT_BALANCE_TOKENS,
};

/** Each option of a kind with its check (arg: the name errors give, value: the received value). */
const OPTION_CHECKS: { [K in RouterKind]: Record<string, (layer: string, arg: string, value: unknown) => unknown> } = {
  dense: {
    gate: (layer, arg, v) => checkOneOf(layer, arg, v, GATE_MODES),
    peakWeight: checkNonNegative, balanceWeight: checkNonNegative, balanceTokens: checkNonNegativeInt,
  },
  'nearest-product': { commitmentWeight: checkNonNegative, quantizationWeight: checkNonNegative, lossTokens: checkNonNegativeInt },
};

/**
 * The router `spec` (undefined: the dense router) with every option set, checked: a removed kind
 * fails with a RemovedOptionError, an unknown kind or option, or a bad value, with an ArgumentError
 * naming it (`router.peakWeight`).
 */
export function resolveRouterConfig(layer: string, spec: unknown, arg = 'router'): ResolvedRouterConfig {
  if (spec == null) return { ...DENSE_DEFAULTS };
  if (typeof spec === 'string') return { ...defaultsOf(layer, arg, spec) };
  if (typeof spec !== 'object' || Array.isArray(spec)) {
    throw new ArgumentError(layer, arg, `one of ${ROUTER_KINDS.map((k) => `'${k}'`).join(', ')} or a router config ({ kind: 'dense', ... })`,
      describeValue(spec));
  }
  const { kind, ...options } = spec as { kind?: unknown } & Record<string, unknown>;
  const defaults = defaultsOf(layer, `${arg}.kind`, kind);
  const checks = OPTION_CHECKS[defaults.kind];
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(options)) {
    if (value == null) continue; // unset: the default, as for every layer option
    const check = checks[key];
    if (check == null) {
      const other = ROUTER_KINDS.find((k) => k !== defaults.kind && OPTION_CHECKS[k][key] != null);
      throw new ArgumentError(layer, `${arg}.${key}`, `an option of the '${defaults.kind}' router: ${Object.keys(checks).join(', ')}`
        + (other != null ? ` ('${key}' belongs to the '${other}' router)` : ''), describeValue(value));
    }
    out[key] = check(layer, `${arg}.${key}`, value);
  }
  return out as ResolvedRouterConfig;
}

function defaultsOf(layer: string, arg: string, kind: unknown): ResolvedRouterConfig {
  if (typeof kind === 'string' && kind in REMOVED_ROUTERS) throw removedRouter(layer, kind);
  const k = checkOneOf(layer, arg, kind, ROUTER_KINDS);
  return k === 'dense' ? DENSE_DEFAULTS : NEAREST_PRODUCT_DEFAULTS;
}

/**
 * Throws unless `poolSize` suits the router: the nearest-product router's pool is the product of
 * two sub-pools of s rows, so poolSize must be s * s.
 */
export function checkRouterPoolSize(layer: string, config: ResolvedRouterConfig, poolSize: number): void {
  if (config.kind === 'nearest-product' && productSubKeys(poolSize) == null) {
    throw new ArgumentError(layer, 'poolSize', "a perfect square with router 'nearest-product' (e.g. 256, 1024, 4096)", String(poolSize));
  }
}

// ---------------------------------------------------------------- removed options

/** A saved model or config uses an option that no longer exists; the message says why it went. */
export class RemovedOptionError extends Error {
  constructor(readonly layer: string, readonly option: string, message: string) {
    super(`${layer}: ${message}`);
    this.name = 'RemovedOptionError';
  }
}

/** Options removed in 0.2, with why (measured: docs/routing.md) and what to do. */
const REMOVED_OPTIONS: Record<string, string> = {
  routingBiasRate: 'it gave no gain and trained 1.7x slower',
  routerDim: 'one run never justified the low-rank router',
};
const REMOVED_ROUTERS: Record<string, string> = {
  nearest: "'nearest-product' routes as well and faster",
  product: 'the trainable product-key router lost 0.033 AUC on SIM',
};

function removedRouter(layer: string, kind: string): RemovedOptionError {
  return new RemovedOptionError(layer, 'router', `router '${kind}' was removed in 0.2 (${REMOVED_ROUTERS[kind]}, see docs/routing.md); `
    + "retrain with router 'dense' or 'nearest-product'");
}

// ---------------------------------------------------------------- the flat form of 0.1

/** The router options of collectivekv 0.1, flat beside `router` (still what CLIs and 0.1's saved configs give). */
export interface FlatRouterOptions {
  router?: RouterKind;
  gate?: GateMode;
  peakWeight?: number;
  balanceWeight?: number;
  /** The dense router's balanceTokens; the nearest-product router's lossTokens (0.1 used one option for both). */
  balanceTokens?: number;
  commitmentWeight?: number;
  quantizationWeight?: number;
}

const FLAT_KEYS = ['gate', 'peakWeight', 'balanceWeight', 'balanceTokens', 'commitmentWeight', 'quantizationWeight'] as const;

/**
 * The router config (every option set) of flat options. Options 0.1 ignored for the kind
 * (peakWeight and balanceWeight with nearest-product; commitmentWeight and quantizationWeight with
 * dense) are dropped; a gate with nearest-product, which 0.1 refused, is refused.
 */
export function routerFromFlatOptions(flat: FlatRouterOptions, layer = 'router options'): ResolvedRouterConfig {
  if (typeof flat.router === 'string' && flat.router in REMOVED_ROUTERS) throw removedRouter(layer, flat.router);
  const kind = checkOneOf(layer, 'router', flat.router ?? 'dense', ROUTER_KINDS);
  if (kind === 'nearest-product') {
    if (flat.gate != null) {
      throw new ArgumentError(layer, 'gate', "unset with router 'nearest-product' (it routes by distance, without a gate)", describeValue(flat.gate));
    }
    return resolveRouterConfig(layer, { kind, commitmentWeight: flat.commitmentWeight, quantizationWeight: flat.quantizationWeight,
      lossTokens: flat.balanceTokens }, 'router');
  }
  return resolveRouterConfig(layer, { kind, gate: flat.gate, peakWeight: flat.peakWeight, balanceWeight: flat.balanceWeight,
    balanceTokens: flat.balanceTokens }, 'router');
}

/**
 * A layer's arguments with 0.1's flat router options folded into `router` (unchanged when there
 * are none). A removed option or router kind throws a RemovedOptionError; a flat option beside a
 * router config object is refused (it belongs inside it). Not an object: returned as is (the
 * layer's own check reports it).
 */
export function upgradeRouterArgs<T>(layer: string, args: T): T {
  if (args == null || typeof args !== 'object' || Array.isArray(args)) return args;
  const a = args as Record<string, unknown>;
  for (const [option, why] of Object.entries(REMOVED_OPTIONS)) {
    if (a[option] !== undefined) {
      throw new RemovedOptionError(layer, option, `option '${option}' was removed in 0.2 (${why}, see docs/routing.md); retrain without it`);
    }
  }
  if (typeof a.router === 'string' && a.router in REMOVED_ROUTERS) throw removedRouter(layer, a.router);
  const flat = FLAT_KEYS.filter((key) => a[key] !== undefined);
  if (flat.length === 0) return args;
  if (a.router != null && typeof a.router === 'object') {
    const kind = (a.router as { kind?: unknown }).kind;
    throw new ArgumentError(layer, flat[0], `inside the router config (router: { kind: ${describeValue(kind)}, ${flat[0]}: ... })`, describeValue(a[flat[0]]));
  }
  const rest = Object.fromEntries(Object.entries(a).filter(([key]) => !(FLAT_KEYS as readonly string[]).includes(key)));
  return { ...rest, router: routerFromFlatOptions(a as FlatRouterOptions, layer) } as T;
}
