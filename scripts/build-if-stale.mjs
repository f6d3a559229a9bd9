// `node scripts/build-if-stale.mjs [--check] [--root DIR]`: runs `npm run build` only when a source
// is newer than the oldest build output (or an output is missing), so `npm start` does not spend
// ~40 s rebuilding an unchanged tree. Sources: ops/ layers/ src/ examples/ and the build's own
// config files; outputs: the entry files rollup.config.mjs names (read from the config itself, so
// a new entry is covered). --check only says which, exiting 0 (up to date) or 1 (stale).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SOURCE_DIRS = ['ops', 'layers', 'src', 'examples'];
const SOURCE_FILES = ['rollup.config.mjs', 'package.json', 'tsconfig.json'];

/** Every file under `dir` (none if it does not exist), skipping dot folders and node_modules. */
function filesUnder(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name.startsWith('.') || e.name === 'node_modules') return [];
    const path = join(dir, e.name);
    return e.isDirectory() ? filesUnder(path) : [path];
  });
}

const noExt = (p) => p.slice(0, p.length - extname(p).length);

/** The entry files one rollup output writes; null when they cannot be named ([hash] or a function). */
function entryFiles(root, input, output) {
  if (output.file) return [resolve(root, output.file)];
  if (!output.dir) return null;
  const pattern = output.entryFileNames ?? '[name].js';
  if (typeof pattern !== 'string' || pattern.includes('[hash]')) return null;
  const names = typeof input === 'string' ? [noExt(basename(input))]
    : Array.isArray(input) ? input.map((i) => (output.preserveModules
      ? noExt(relative(resolve(root, output.preserveModulesRoot ?? '.'), resolve(root, i))).split('\\').join('/')
      : noExt(basename(i))))
      : Object.keys(input);
  return names.map((name) => resolve(root, output.dir, pattern.replaceAll('[name]', name)));
}

/** The outputs rollup.config.mjs under `root` declares. */
export async function buildOutputs(root) {
  const config = (await import(pathToFileURL(join(root, 'rollup.config.mjs')).href)).default;
  const out = [];
  for (const c of Array.isArray(config) ? config : [config]) {
    for (const o of Array.isArray(c.output) ? c.output : [c.output]) {
      const files = entryFiles(root, c.input, o ?? {});
      if (files == null) throw new Error(`build-if-stale: cannot name the entry files of output ${JSON.stringify(o)}; extend scripts/build-if-stale.mjs`);
      out.push(...files);
    }
  }
  return out;
}

/** { stale, reason }: stale when an output is missing or a source is newer than the oldest output. */
export async function staleness(root) {
  const outputs = await buildOutputs(root);
  const missing = outputs.find((f) => !existsSync(f));
  if (missing) return { stale: true, reason: `${relative(root, missing)} is missing` };
  const oldest = outputs.map((f) => ({ f, t: statSync(f).mtimeMs })).reduce((a, b) => (b.t < a.t ? b : a));
  const sources = [...SOURCE_DIRS.flatMap((d) => filesUnder(join(root, d))), ...SOURCE_FILES.map((f) => join(root, f)).filter(existsSync)];
  const newer = sources.map((f) => ({ f, t: statSync(f).mtimeMs })).filter((s) => s.t > oldest.t).sort((a, b) => b.t - a.t);
  if (newer.length > 0) {
    return { stale: true, reason: `${relative(root, newer[0].f)}${newer.length > 1 ? ` and ${newer.length - 1} more` : ''} changed since ${relative(root, oldest.f)} was built` };
  }
  return { stale: false, reason: `no source changed since ${relative(root, oldest.f)} was built` };
}

async function main(argv) {
  const check = argv.includes('--check');
  const at = argv.indexOf('--root');
  const root = at >= 0 ? resolve(argv[at + 1] ?? '.') : resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const unknown = argv.filter((a, i) => a !== '--check' && a !== '--root' && !(at >= 0 && i === at + 1));
  if (unknown.length > 0) {
    console.error(`build-if-stale: unknown argument '${unknown[0]}' (usage: node scripts/build-if-stale.mjs [--check] [--root DIR])`);
    return 2;
  }
  const { stale, reason } = await staleness(root);
  if (!stale) {
    console.log(`dist is up to date (${reason})`);
    return 0;
  }
  console.log(`dist is stale: ${reason}${check ? '' : '; building'}`);
  if (check) return 1;
  // npm sets npm_execpath when it runs this script; use the same npm.
  const npm = process.env.npm_execpath;
  const r = npm ? spawnSync(process.execPath, [npm, 'run', 'build', '--silent'], { cwd: root, stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  return r.status ?? 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
