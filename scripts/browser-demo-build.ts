// Builds the browser demo into examples/browser/dist (or --out DIR): trains the demo SASRec once
// (cached under tmp/browser-demo-weights/<hash of the training code and options>), bundles the page
// with rollup (examples/browser/rollup.config.mjs) and copies the static files and tfjs's .wasm files.
//   npm run demo:browser:build [-- --out DIR]
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(__dirname, '..');
const WEIGHTS_CACHE = path.join(ROOT, 'tmp/browser-demo-weights');
/** What the weights depend on: a change to any of these retrains. */
const TRAINING_INPUTS = ['examples/browser/train.ts', 'examples/browser/model.ts', 'src/zoo/sequential/blocks.ts', 'src/zoo/sequential/sasrec.ts',
  'src/zoo/sequential/sasrecTraining.ts', 'src/zoo/sequential/nextItemTraining.ts', 'src/data/synthetic.ts'];
const STATIC_FILES = ['index.html', 'style.css'];
const WASM_DIR = path.join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');

export function trainingKey(): string {
  const hash = createHash('sha256');
  for (const file of TRAINING_INPUTS) hash.update(file).update(fs.readFileSync(path.join(ROOT, file)));
  return hash.digest('hex').slice(0, 16);
}

/** model.json + weights.bin in `dir`, from the cache or trained now. */
async function ensureWeights(dir: string, log: (s: string) => void): Promise<void> {
  const key = trainingKey();
  const cached = path.join(WEIGHTS_CACHE, key);
  if (!fs.existsSync(path.join(cached, 'weights.bin'))) {
    log(`training the demo model (key ${key}) on the cpu backend...`);
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-cpu');
    // The cpu backend's "install tfjs-node" banner: that package cannot serve the page's training here.
    tf.env().set('IS_TEST', true);
    await tf.setBackend('cpu');
    const { trainDemo } = await import('../examples/browser/train');
    const trained = trainDemo(key, { log });
    const q = trained.manifest.quality;
    log(`trained ${q.epochs} epochs in ${q.seconds.toFixed(0)} s: test HR@10 ${q.hr10.toFixed(3)}, NDCG@10 ${q.ndcg10.toFixed(3)}`);
    const tmp = `${cached}.tmp-${process.pid}`;
    fs.mkdirSync(tmp, { recursive: true });
    fs.writeFileSync(path.join(tmp, 'model.json'), JSON.stringify(trained.manifest));
    fs.writeFileSync(path.join(tmp, 'weights.bin'), new Uint8Array(trained.weights.buffer, trained.weights.byteOffset, trained.weights.byteLength));
    // Rename last, so an interrupted run never leaves a half-written cache entry.
    fs.rmSync(cached, { recursive: true, force: true });
    fs.renameSync(tmp, cached);
  } else {
    log(`using cached weights ${path.relative(ROOT, cached)}`);
  }
  for (const f of ['model.json', 'weights.bin']) fs.copyFileSync(path.join(cached, f), path.join(dir, f));
}

async function bundle(outDir: string): Promise<void> {
  const { rollup } = await import('rollup');
  const configUrl = pathToFileURL(path.join(ROOT, 'examples/browser/rollup.config.mjs')).href;
  const { demoConfig } = (await import(configUrl)) as { demoConfig: (file: string) => import('rollup').RollupOptions & { output: import('rollup').OutputOptions } };
  const config = demoConfig(path.join(outDir, 'app.js'));
  const build = await rollup(config);
  try {
    await build.write(config.output);
  } finally {
    await build.close();
  }
}

export async function buildDemo(outDir = path.join(ROOT, 'examples/browser/dist'), log: (s: string) => void = console.log): Promise<string> {
  fs.mkdirSync(outDir, { recursive: true });
  await ensureWeights(outDir, log);
  log('bundling the page with rollup...');
  await bundle(outDir);
  for (const f of STATIC_FILES) fs.copyFileSync(path.join(ROOT, 'examples/browser', f), path.join(outDir, f));
  for (const f of fs.readdirSync(WASM_DIR).filter((n) => n.endsWith('.wasm'))) fs.copyFileSync(path.join(WASM_DIR, f), path.join(outDir, f));
  log(`built ${path.relative(process.cwd(), outDir) || '.'}`);
  return outDir;
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (require.main === module) {
  const out = argValue('--out');
  buildDemo(out == null ? undefined : path.resolve(out)).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
