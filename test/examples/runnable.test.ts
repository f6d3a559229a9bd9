// The small examples a user copies (examples/*.ts) run, stay small, and import only the package and tfjs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main as layerSwap } from '../../examples/layer-swap';
import { main as cacheApi } from '../../examples/cache-api';

const EXAMPLES = ['layer-swap.ts', 'cache-api.ts'];

describe('runnable examples', () => {
  it.each(EXAMPLES)('%s is under 80 lines and imports only collectivekv, tfjs and node built-ins', (file) => {
    const text = readFileSync(join(__dirname, '../../examples', file), 'utf8');
    expect(text.split('\n').length).toBeLessThan(80);
    const specs = [...text.matchAll(/^import\s+(?:[^'"]*from\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]);
    expect(specs.length).toBeGreaterThan(0);
    for (const spec of specs) expect(spec).toMatch(/^(collectivekv|@tensorflow\/tfjs-[a-z-]+|node:.+)$/);
  });

  it('layer-swap: a user model outside the zoo reaches the baseline\'s accuracy by the recipe, at a fraction of the cache', async () => {
    // The data's next item is a fixed successor 90% of the time: a model that learned it scores ~0.9.
    const [mha, ckv] = await layerSwap({ users: 300, items: 30 });
    expect(mha.attention).toBe('mha');
    expect(ckv.attention).toBe('collectivekv');
    expect(mha.accuracy).toBeGreaterThan(0.8);
    // A generous margin: this checks that the recipe works at all, not its quality figure.
    expect(ckv.accuracy).toBeGreaterThan(0.95 * mha.accuracy);
    expect(ckv.bytesPerToken * 10).toBeLessThan(mha.bytesPerToken);
  }, 120_000);

  it('cache-api decodes from the cache as the full forward does, from a much smaller collectivekv block', async () => {
    const [mha, ckv] = await cacheApi({ historyLength: 6, width: 16, newEvents: 2 });
    expect(mha.attention).toBe('mha');
    expect(ckv.attention).toBe('collectivekv');
    expect(mha.maxAbsDiff).toBeLessThan(1e-4);
    expect(ckv.maxAbsDiff).toBeLessThan(1e-4);
    expect(ckv.bytesPerToken * 10).toBeLessThan(mha.bytesPerToken);
  });
});
