// CollectiveKVAttention's command-line options, declared once for every command that takes them
// (`train`, `eval`, `bench quality`, `bench convert`, `bench ctr`): the flag, the option it sets and
// the check of its value. A command picks the flags it takes; what it builds from them (a model's
// collective options, a router config through routerFromFlatOptions) stays with the command.
import { GATE_MODES, ROUTER_KINDS, type GateMode, type RouterKind } from '../../internal';
import { FlagGroup } from './flagGroup';
import { integerAtLeast, nonNegativeNumber, optionalOneOf, positiveInt, positiveNumber } from './flags';

const SHARES = ['k', 'v', 'kv'] as const;

/** The parsed values, each undefined when its flag is absent. */
export interface CollectiveFlagValues {
  poolSize?: number;
  userDim?: number;
  share?: (typeof SHARES)[number];
  router?: RouterKind;
  gate?: GateMode;
  balanceTokens?: number;
  commitmentWeight?: number;
  quantizationWeight?: number;
  poolStddev?: number;
}

export type CollectiveFlag = 'pool-size' | 'user-dim' | 'share' | 'router' | 'gate' | 'balance-tokens' | 'commitment-weight' | 'quantization-weight' | 'pool-stddev';

/** The CollectiveKV flags: each flag, the option it sets and the check of its value. */
export const COLLECTIVE = new FlagGroup<CollectiveFlag, CollectiveFlagValues>({
  'pool-size': { key: 'poolSize', parse: positiveInt },
  'user-dim': { key: 'userDim', parse: positiveInt },
  share: { key: 'share', parse: (flag, value) => optionalOneOf(flag, value, SHARES) },
  router: { key: 'router', parse: (flag, value) => optionalOneOf(flag, value, ROUTER_KINDS) },
  gate: { key: 'gate', parse: (flag, value) => optionalOneOf(flag, value, GATE_MODES) },
  'balance-tokens': { key: 'balanceTokens', parse: (flag, value) => integerAtLeast(flag, value, 0) },
  'commitment-weight': { key: 'commitmentWeight', parse: nonNegativeNumber },
  'quantization-weight': { key: 'quantizationWeight', parse: nonNegativeNumber },
  'pool-stddev': { key: 'poolStddev', parse: positiveNumber },
});

/** Every CollectiveKV flag (without the leading --). */
export const COLLECTIVE_FLAGS = COLLECTIVE.flags;

/** node:util parseArgs options for `flags` (all take a value). */
export function collectiveFlagOptions(flags: readonly CollectiveFlag[]): Record<string, { type: 'string' }> {
  return COLLECTIVE.options(flags);
}

/** The values of `flags` in parseArgs's `values`, checked (a UsageError names the flag and what it received). */
export function parseCollectiveFlags(values: Record<string, unknown>, flags: readonly CollectiveFlag[]): CollectiveFlagValues {
  return COLLECTIVE.parse(values, flags);
}
