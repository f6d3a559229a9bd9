// Regenerates the multi-seed quality table in results/README.md and the headline in README.md from
// every `bench quality --json` file under results/ (the format with anchors and both protocols).
//   npm run results
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  commandsOf, groupRuns, headlineMarkdown, isQualityJson, qualityTableMarkdown, replaceBetweenMarkers, summarize, withinBudget,
} from '../src/app/report/qualityTable';

const root = join(__dirname, '..');

function jsonFiles(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return jsonFiles(path);
    return name.endsWith('.json') ? [path] : [];
  });
}

const files = jsonFiles(join(root, 'results')).flatMap((path) => {
  const json: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (!isQualityJson(json)) return [];
  if (!withinBudget(json)) {
    console.log(`left out (recipe run without a step bound, not at equal budget): ${relative(root, path)}`);
    return [];
  }
  return [{ path: relative(join(root, 'results'), path), json }];
});
const summaries = groupRuns(files).map(summarize);
const details = summaries.map((s) => [
  `- **${s.group.key}**: ${commandsOf(s.group)}`,
  `  files: ${s.group.seeds.flatMap((r) => r.files).map((f) => `[${f}](${f})`).join(', ')}`,
].join('\n')).join('\n');
const body = [
  summaries.length === 0 ? '_No multi-seed run has landed yet._' : qualityTableMarkdown(summaries),
  '',
  'Protocol: leave-one-out (last item test, the one before validation), full ranking over the catalog; "unfiltered" keeps',
  'history items in the ranking, "window" removes the ones in the model\'s input window. Ratio: collectivekv / mha per seed',
  '(mean ± sd); paired diff: per-user NDCG@10 difference, mean over seeds ± its standard error. Markov: the first-order',
  'transition anchor under the same protocol (docs/design.md section 8).',
  '',
  details,
].join('\n');
const resultsPath = join(root, 'results', 'README.md');
writeFileSync(resultsPath, replaceBetweenMarkers(readFileSync(resultsPath, 'utf8'), 'quality', body));
const readmePath = join(root, 'README.md');
const headline = summaries.length === 0 ? '_Multi-seed runs in progress: [results/README.md](results/README.md)._'
  : `${headlineMarkdown(summaries)}\n\nEvery run, the protocols and the commands: [results/README.md](results/README.md).`;
writeFileSync(readmePath, replaceBetweenMarkers(readFileSync(readmePath, 'utf8'), 'headline', headline));
console.log(`${files.length} run files, ${summaries.length} configurations`);
