// The floor rule and no import circles, checked on every test run (docs/architecture.md).
import { resolve } from 'node:path';
import { importCircles, importGraph, upwardImports } from '../scripts/importGraph';

describe('architecture', () => {
  const graph = importGraph(resolve(__dirname, '..'));

  it('reads the whole tree', () => {
    expect(graph.files.length).toBeGreaterThan(100);
    expect(graph.files.some((f) => f.startsWith('ops/'))).toBe(true);
  });

  it('no file imports from a floor above its own (ops <- layers <- src <- zoo <- app <- examples)', () => {
    expect(upwardImports(graph)).toEqual([]);
  });

  it('has no import circles', () => {
    expect(importCircles(graph).map((c) => c.join(' <-> '))).toEqual([]);
  });

  it('the checks can fail: an upward import and a circle are found in a made-up graph', () => {
    const made = { files: ['ops/a.ts', 'layers/b.ts', 'src/c.ts'], edges: new Map([['ops/a.ts', ['layers/b.ts']], ['layers/b.ts', ['ops/a.ts']], ['src/c.ts', []]]) };
    expect(upwardImports(made)).toEqual(['ops/a.ts -> layers/b.ts']);
    expect(importCircles(made)).toEqual([['layers/b.ts', 'ops/a.ts']]);
  });
});
