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

  it('layer-swap trains the mha and the collectivekv model alike', async () => {
    const results = await layerSwap({ seqLen: 8, width: 8, batch: 4, steps: 2 });
    expect(results.map((r) => r.attention)).toEqual(['mha', 'collectivekv']);
    for (const r of results) {
      expect(r.params).toBeGreaterThan(0);
      expect(r.losses).toHaveLength(2);
      for (const loss of r.losses) expect(Number.isFinite(loss)).toBe(true);
    }
  });

  it('cache-api decodes from the cache as the full forward does, from a much smaller collectivekv block', async () => {
    const [mha, ckv] = await cacheApi({ historyLength: 6, width: 16, newEvents: 2 });
    expect(mha.attention).toBe('mha');
    expect(ckv.attention).toBe('collectivekv');
    expect(mha.maxAbsDiff).toBeLessThan(1e-4);
    expect(ckv.maxAbsDiff).toBeLessThan(1e-4);
    expect(ckv.bytesPerToken * 10).toBeLessThan(mha.bytesPerToken);
  });
});
