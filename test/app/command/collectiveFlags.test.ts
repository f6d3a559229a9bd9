import { COLLECTIVE_FLAGS, collectiveFlagOptions, parseCollectiveFlags } from '../../../src/app/command/collectiveFlags';
import { UsageError } from '../../../src/app/command/flags';
import { parseBenchCtrArgs } from '../../../src/app/bench/ctr';

describe('CollectiveKV flags, declared once', () => {
  it('gives parseArgs one string option per flag asked for', () => {
    expect(collectiveFlagOptions(['pool-size', 'gate'])).toEqual({ 'pool-size': { type: 'string' }, gate: { type: 'string' } });
    expect(Object.keys(collectiveFlagOptions(COLLECTIVE_FLAGS))).toEqual([...COLLECTIVE_FLAGS]);
  });

  it('parses the flags asked for into the layer option names, leaving absent ones out', () => {
    const values = { 'pool-size': '64', 'user-dim': '2', share: 'k', router: 'nearest-product', gate: 'straight-through', 'balance-tokens': '0',
      'commitment-weight': '0.5', 'quantization-weight': '2', 'pool-stddev': '0.1' };
    expect(parseCollectiveFlags(values, COLLECTIVE_FLAGS)).toEqual({ poolSize: 64, userDim: 2, share: 'k', router: 'nearest-product',
      gate: 'straight-through', balanceTokens: 0, commitmentWeight: 0.5, quantizationWeight: 2, poolStddev: 0.1 });
    expect(parseCollectiveFlags(values, ['pool-size'])).toEqual({ poolSize: 64 });
    expect(parseCollectiveFlags({}, COLLECTIVE_FLAGS)).toEqual({});
  });

  it('refuses a bad value with a UsageError naming the flag, the same in every command', () => {
    expect(() => parseCollectiveFlags({ 'pool-size': '0' }, ['pool-size'])).toThrow(UsageError);
    expect(() => parseCollectiveFlags({ 'pool-size': '0' }, ['pool-size'])).toThrow("--pool-size must be a positive integer, received '0'");
    expect(() => parseBenchCtrArgs(['--model', 'sim', '--pool-size', '0'])).toThrow("--pool-size must be a positive integer, received '0'");
    expect(() => parseCollectiveFlags({ router: 'hash' }, ['router'])).toThrow("--router must be one of dense, nearest-product, received 'hash'");
  });
});
