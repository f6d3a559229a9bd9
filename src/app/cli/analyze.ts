// `collectivekv analyze --model DIR --data PATH [--json FILE]`: the paper's K/V analysis of a
// trained model on a sample of users from an interaction file (docs/design.md section 7).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { KVAnalysis, analyzeKV, formatKVAnalysis, formatPoolUsage, padLeft, readSequences, seededRandom, shuffleInPlace } from '../../internal';
// Registers the zoo's custom layers so that its saved models load.
import '../../zoo/sequential/sasrec';
import { loadModelFromDir } from './modelFiles';
import { positiveInt } from '../command/flags';

export const ANALYZE_USAGE = `Usage: collectivekv analyze --model DIR --data PATH [options]

Runs a sample of users through the model and analyzes each attention layer's K and V: singular
value spectrum, energy in the top components, ranks for 90/95/99% energy, cross-user correlation
of the principal and residual parts, and a suggested userDim.

  --model DIR      tfjs LayersModel directory (model.json + weights); one input: item ids [batch, length]
  --data PATH      interaction file (SASRec pairs, lines, MovieLens ratings.dat, RecBole .inter);
                   item ids must be those the model was trained with (same file and reader)
  --users N        users sampled (default 512)
  --max-tokens N   tokens per layer in the SVD (default 20000)
  --center         subtract the mean K/V before the SVD (default: plain SVD, as the paper)
  --seed N         sampling seed (default 1)
  --json FILE      write the figures' data (spectra, energy curves, correlation histograms) as JSON
  --backend NAME   wasm (default) or cpu
  -h, --help       show this help
`;

interface AnalyzeArgs {
  model: string;
  data: string;
  users: number;
  maxTokens: number;
  center: boolean;
  seed: number;
  json?: string;
  backend: string;
}

/** Runs `analyze` with argv (the arguments after 'analyze'); returns the exit code (2: bad usage). */
export async function runAnalyzeCommand(argv: string[], log: (line: string) => void = console.log): Promise<number> {
  let args: AnalyzeArgs | null;
  try {
    args = parse(argv);
  } catch (e) {
    console.error(`collectivekv analyze: ${(e as Error).message}\n\n${ANALYZE_USAGE}`);
    return 2;
  }
  if (args == null) {
    log(ANALYZE_USAGE);
    return 0;
  }
  if (!(await tf.setBackend(args.backend))) throw new Error(`backend ${args.backend} failed to initialize`);
  await tf.ready();
  const analysis = await analyzeFiles(args, log);
  log(`\n${formatKVAnalysis(analysis)}\n`);
  const usage = formatPoolUsage(analysis);
  if (usage.length > 0) log(`${usage.join('\n')}\n`);
  for (const l of analysis.layers) log(`${l.layer}: suggested userDim ${l.suggestedUserDim}\n  ${l.reasoning.replace(/\n/g, '\n  ')}`);
  if (args.json != null) {
    writeFileSync(args.json, `${JSON.stringify(analysis, null, 2)}\n`);
    log(`\nwrote ${args.json}`);
  }
  return 0;
}

async function analyzeFiles(args: AnalyzeArgs, log: (line: string) => void): Promise<KVAnalysis> {
  const model = await loadModelFromDir(args.model);
  try {
    const shape = model.inputs.length === 1 ? model.inputs[0].shape : null;
    const length = shape?.length === 2 ? shape[1] : null;
    if (length == null) {
      throw new Error(`--model: expected a model with one input of item ids [batch, length], received inputs ${JSON.stringify(model.inputs.map((i) => i.shape))}`);
    }
    const data = await readSequences(args.data);
    const users = shuffleInPlace(data.sequences.map((_, i) => i).filter((i) => data.sequences[i].length > 0), seededRandom(args.seed))
      .slice(0, args.users);
    log(`model ${args.model}: ${model.layers.length} layers, input length ${length}; data ${args.data}: ${data.sequences.length} users, ${data.numItems} items; sampled ${users.length} users`);
    const rows = new Int32Array(users.length * length);
    users.forEach((u, i) => padLeft(data.sequences[u], length, rows, i * length));
    const ids = tf.tensor2d(rows, [users.length, length], 'int32');
    try {
      return analyzeKV(model, ids, { maxTokens: args.maxTokens, center: args.center, seed: args.seed });
    } finally {
      ids.dispose();
    }
  } finally {
    model.dispose();
  }
}

function parse(argv: string[]): AnalyzeArgs | null {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      model: { type: 'string' }, data: { type: 'string' }, users: { type: 'string' }, 'max-tokens': { type: 'string' },
      center: { type: 'boolean' }, seed: { type: 'string' }, json: { type: 'string' }, backend: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (positionals.length > 0) throw new Error(`unexpected argument '${positionals[0]}'`);
  if (values.model == null) throw new Error('--model DIR is required');
  if (values.data == null) throw new Error('--data PATH is required');
  const backend = values.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') throw new Error(`--backend must be wasm or cpu, received '${backend}'`);
  return {
    model: values.model, data: values.data, json: values.json, center: values.center ?? false, backend,
    users: positiveInt('--users', values.users) ?? 512, maxTokens: positiveInt('--max-tokens', values['max-tokens']) ?? 20000,
    seed: positiveInt('--seed', values.seed) ?? 1,
  };
}

