import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic } from 'collectivekv/internal';
import { buildSasrec } from '../../../src/zoo/sequential/sasrec';
import { runAnalyzeCommand } from '../../../src/app/cli/analyze';
import { loadModelFromDir, saveModelToDir } from '../../../src/app/cli/modelFiles';
import { useBackend } from '../../util/backends';

const dir = mkdtempSync(join(tmpdir(), 'ckv-analyze-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(() => useBackend('cpu'));

test('analyze --model DIR --data PATH --json FILE: summary table, suggestions, figures JSON', async () => {
  const data = generateSynthetic({ numUsers: 80, numItems: 50, minLength: 5, maxLength: 12, seed: 4 });
  const pairs = data.sequences.flatMap((seq, u) => seq.map((item) => `${u + 1} ${item}`)).join('\n');
  writeFileSync(join(dir, 'data.txt'), `${pairs}\n`);
  const sasrec = buildSasrec({ numItems: data.numItems, maxLength: 10, hiddenDim: 16, numBlocks: 2, numHeads: 2, seed: 1 });
  await saveModelToDir(sasrec.model, join(dir, 'model'));
  // The saved model loads back with the same weights.
  const loaded = await loadModelFromDir(join(dir, 'model'));
  expect(loaded.getWeights().length).toBe(sasrec.model.getWeights().length);
  loaded.dispose();
  const lines: string[] = [];
  const code = await runAnalyzeCommand(['--model', join(dir, 'model'), '--data', join(dir, 'data.txt'), '--json', join(dir, 'out.json'),
    '--backend', 'cpu', '--users', '40'], (l) => lines.push(l));
  expect(code).toBe(0);
  const text = lines.join('\n');
  expect(text).toMatch(/sampled 40 users/);
  expect(text).toMatch(/layer\s+side\s+tokens\s+width\s+r90/);
  expect(text).toMatch(/block1_attention: suggested userDim [1248]/);
  const json = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8'));
  expect(json.layers).toHaveLength(2);
  expect(json.layers[0].keys.singularValues).toHaveLength(16);
  expect(json.layers[0].values.crossUser.residual.histogram).toHaveLength(20);
  sasrec.model.dispose();
});

test('analyze: usage errors exit 2 and name the flag', async () => {
  const spy = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  expect(await runAnalyzeCommand(['--data', 'x'])).toBe(2);
  expect(spy.mock.calls[0][0]).toMatch(/--model DIR is required/);
  expect(await runAnalyzeCommand(['--model', 'm', '--data', 'x', '--users', '0'])).toBe(2);
  expect(spy.mock.calls[1][0]).toMatch(/--users must be a positive integer, received '0'/);
  spy.mockRestore();
  await expect(runAnalyzeCommand(['--model', join(dir, 'nope'), '--data', 'x', '--backend', 'cpu'], () => undefined))
    .rejects.toThrow(/--model: expected a directory with a tfjs model.json/);
});
