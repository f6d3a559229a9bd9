// The project's import graph and its two rules (docs/architecture.md): floors (a file never imports
// from a floor above its own) and no import circles. Used by test/architecture.test.ts and by
// `npm run lint:imports`.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** Floors, lowest first; a path belongs to the longest prefix listed. */
export const FLOORS: ReadonlyArray<{ prefix: string; floor: number }> = [
  { prefix: 'ops/', floor: 0 },
  { prefix: 'layers/', floor: 1 },
  { prefix: 'src/', floor: 2 },
  { prefix: 'src/zoo/', floor: 3 },
  { prefix: 'src/app/', floor: 4 },
  { prefix: 'examples/', floor: 5 },
  { prefix: 'scripts/', floor: 5 },
];

/** What the package name resolves to (examples import 'collectivekv' as users do). */
const PACKAGE_ENTRY = 'src/index.ts';

export function floorOf(file: string): number | undefined {
  let best: { prefix: string; floor: number } | undefined;
  for (const f of FLOORS) if (file.startsWith(f.prefix) && (best === undefined || f.prefix.length > best.prefix.length)) best = f;
  return best?.floor;
}

function sourceFiles(root: string, dir: string, out: string[]): void {
  const full = join(root, dir);
  if (!existsSync(full)) return;
  for (const name of readdirSync(full)) {
    const rel = join(dir, name);
    if (name === 'node_modules' || name === 'dist') continue;
    if (statSync(join(root, rel)).isDirectory()) sourceFiles(root, rel, out);
    else if (/\.(ts|mts|cts)$/.test(name) && !name.endsWith('.d.ts')) out.push(rel);
  }
}

function resolveImport(root: string, from: string, spec: string): string | undefined {
  if (spec === 'collectivekv') return PACKAGE_ENTRY;
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(root, dirname(from), spec);
  for (const candidate of [base, `${base}.ts`, join(base, 'index.ts'), base.replace(/\.js$/, '.ts')]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return relative(root, candidate);
  }
  return undefined;
}

export interface ImportGraph {
  files: string[];
  /** file -> files it imports (type-only imports included: they bind the floors too). */
  edges: Map<string, string[]>;
}

export function importGraph(root: string): ImportGraph {
  const files: string[] = [];
  for (const dir of ['ops', 'layers', 'src', 'examples', 'scripts']) sourceFiles(root, dir, files);
  const unique = [...new Set(files)].sort();
  const edges = new Map<string, string[]>();
  for (const file of unique) {
    const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
    const targets = info.importedFiles.map((i) => resolveImport(root, file, i.fileName)).filter((t): t is string => t !== undefined);
    edges.set(file, [...new Set(targets)]);
  }
  return { files: unique, edges };
}

/** Imports that go up a floor: "from -> to". */
export function upwardImports(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [from, targets] of graph.edges) {
    const f = floorOf(from);
    for (const to of targets) {
      const t = floorOf(to);
      if (f !== undefined && t !== undefined && t > f) out.push(`${from} -> ${to}`);
    }
  }
  return out;
}

/** Import circles (strongly connected components of more than one file, or a file importing itself). */
export function importCircles(graph: ImportGraph): string[][] {
  let index = 0;
  const stack: string[] = [];
  const onStack = new Set<string>();
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const circles: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.edges.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indices.get(w)!));
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.edges.get(v) ?? []).includes(v)) circles.push(component.sort());
    }
  };
  for (const file of graph.files) if (!indices.has(file)) visit(file);
  return circles;
}

if (process.argv[1]?.endsWith('importGraph.ts')) {
  const graph = importGraph(resolve(__dirname, '..'));
  const up = upwardImports(graph);
  const circles = importCircles(graph);
  for (const u of up) console.log(`upward import: ${u}`);
  for (const c of circles) console.log(`import circle: ${c.join(' <-> ')}`);
  console.log(`${graph.files.length} files: ${up.length} upward imports, ${circles.length} import circles`);
  process.exitCode = up.length + circles.length > 0 ? 1 : 0;
}
