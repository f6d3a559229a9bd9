// The generated quality table: one-arm files of a seed pair up, seeds group by configuration, mean
// +- sd and ratios per seed, the paired difference from the test ranks, and no claim where the
// baseline does not beat the Markov anchor.
import {
  QualityJson, commandsOf, groupRuns, headlineMarkdown, isQualityJson, qualityTableMarkdown, replaceBetweenMarkers, summarize, withinBudget,
} from '../../../src/app/report/qualityTable';

const metrics = (ndcg10: number) => ({ hr10: 2 * ndcg10, ndcg10, mrr10: ndcg10 / 2 });
const row = (unfiltered: number, window: number, bytes: number) => ({
  protocols: { unfiltered: metrics(unfiltered), window: metrics(window) }, bytesPerToken: bytes, epochs: 10, steps: 100, trainSeconds: 600,
});

function run(seed: number, arm: 'mha' | 'collectivekv' | 'both', ndcg: { mha: [number, number]; ckv: [number, number] }, ranks?: { mha: number[]; ckv: number[] }): QualityJson {
  const j: QualityJson = {
    model: 'sasrec', data: '../shared/datasets/amazon-beauty/Beauty.txt', format: 'lines', seed, training: 'recipe', protocol: 'window',
    options: { maxLength: 50, hiddenDim: 64, numBlocks: 2, numHeads: 1, dropout: 0.5, collective: { poolSize: 4096, userDim: 1, router: { kind: 'dense' } } },
    fit: { maxEpochs: 60, patience: 5, batchSize: 128, learningRate: 0.001 },
    anchors: { markov: { unfiltered: metrics(0.05), window: metrics(0.04) }, popularity: { unfiltered: metrics(0.005), window: metrics(0.005) } },
    testRanks: {},
  };
  if (arm !== 'collectivekv') { j.mha = row(...ndcg.mha, 1024); if (ranks) j.testRanks!.mha = { unfiltered: ranks.mha, window: ranks.mha }; }
  if (arm !== 'mha') { j.collectivekv = row(...ndcg.ckv, 24); if (ranks) j.testRanks!.collectivekv = { unfiltered: ranks.ckv, window: ranks.ckv }; }
  if (arm !== 'both') j.arm = arm;
  return j;
}

test('one-arm files pair by seed; means, sds, per-seed ratios and the paired difference', () => {
  const ndcg1 = { mha: [0.04, 0.06] as [number, number], ckv: [0.039, 0.057] as [number, number] };
  const ndcg2 = { mha: [0.042, 0.064] as [number, number], ckv: [0.041, 0.064] as [number, number] };
  const files = [
    { path: 'a/mha-s1.json', json: run(1, 'mha', ndcg1, { mha: [1, 2, 20], ckv: [1, 3, 20] }) },
    { path: 'a/ckv-s1.json', json: run(1, 'collectivekv', ndcg1, { mha: [1, 2, 20], ckv: [1, 3, 20] }) },
    { path: 'a/both-s2.json', json: run(2, 'both', ndcg2, { mha: [2, 2, 2], ckv: [2, 2, 2] }) },
    { path: 'a/mha-s3.json', json: run(3, 'mha', ndcg2) },
  ];
  expect(files.every((f) => isQualityJson(f.json))).toBe(true);
  expect(isQualityJson({ model: 'sasrec', mha: { ndcg10: 1 } })).toBe(false);
  const groups = groupRuns(files);
  expect(groups).toHaveLength(1);
  expect(groups[0].seeds.map((s) => s.seed)).toEqual([1, 2, 3]);
  const s = summarize(groups[0]);
  expect(s.complete.map((r) => r.seed)).toEqual([1, 2]);
  expect(s.ndcg.mha.window.mean).toBeCloseTo(0.062, 12);
  expect(s.ndcg.mha.window.sd).toBeCloseTo(Math.sqrt(((0.06 - 0.062) ** 2 + (0.064 - 0.062) ** 2) / 1), 12);
  expect(s.ratio.window.mean).toBeCloseTo((0.057 / 0.06 + 1) / 2, 12);
  // Seed 1: one user from rank 2 to 3 (1/log2(4) - 1/log2(3)) over 3 users; seed 2: no difference.
  const d1 = (1 / Math.log2(4) - 1 / Math.log2(3)) / 3;
  expect(s.paired.window.mean).toBeCloseTo(d1 / 2, 12);
  expect(s.beatsMarkov).toEqual({ unfiltered: false, window: true });
  const table = qualityTableMarkdown([s]);
  expect(table).toContain('| SASRec (recipe) | Beauty | 2 (+1 incomplete) |');
  expect(table).toContain('0.0620 ± 0.0028');
  const headline = headlineMarkdown([s]);
  expect(headline).toContain('| SASRec, Beauty, window-filtered | 0.0620 ± 0.0028 | 0.0605 ± 0.0049 | 97.5% ± 3.5 | 24 vs 1024 | 2 (3 planned) |');
  expect(commandsOf(groups[0])).toContain('--seed {1,2,3}');
  expect(commandsOf(groups[0])).toContain('--filter-window');
});

test('a recipe run without a step bound is not at equal budget; a bounded one and a baseline are', () => {
  const ndcg = { mha: [0.04, 0.06] as [number, number], ckv: [0.04, 0.06] as [number, number] };
  const unbounded = run(1, 'collectivekv', ndcg);
  expect(withinBudget(unbounded)).toBe(false);
  expect(withinBudget({ ...unbounded, switchByStep: 3150 })).toBe(true);
  expect(withinBudget(run(1, 'mha', ndcg))).toBe(true);
  expect(withinBudget({ ...unbounded, training: 'single-stage' })).toBe(true);
});

test('a baseline below the Markov anchor under every protocol gets no claim', () => {
  const s = summarize(groupRuns([{ path: 'x.json', json: run(1, 'both', { mha: [0.03, 0.03], ckv: [0.03, 0.03] }) }])[0]);
  expect(s.beatsMarkov).toEqual({ unfiltered: false, window: false });
  expect(headlineMarkdown([s])).toContain('(below Markov)');
  expect(headlineMarkdown([s])).toContain('no claim');
});

test('markers: the text between them is replaced; missing markers fail', () => {
  expect(replaceBetweenMarkers('a\n<!-- t:start -->\nold\n<!-- t:end -->\nb', 't', 'new')).toBe('a\n<!-- t:start -->\nnew\n<!-- t:end -->\nb');
  expect(() => replaceBetweenMarkers('nothing', 't', 'x')).toThrow(/markers <!-- t:start -->/);
});
