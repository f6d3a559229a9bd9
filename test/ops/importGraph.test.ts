// Static rules for ops/ (and the entries that wire it), read from the sources with TypeScript's
// parser, so a change that breaks one fails here with the file named:
//  - no import circle among ops/ files;
//  - side-effect imports (`import './x'`) only in ops/register/* and the package entries: kernels and
//    gradients are registered there, never as a side effect of importing an op;
//  - every custom kernel name is written once, in ops/kernelNames.ts; everyone else imports it;
//  - tfjs internals are read only in ops/util/tfjsInternals.ts (ops/ and layers/);
//  - the main entry's module graph never reaches the webgpu kernels or loads the webgpu backend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.join(__dirname, '..', '..');

interface ImportRef {
  specifier: string;
  /** Resolved repository-relative path of a relative import ('' for packages). */
  target: string;
  typeOnly: boolean;
  sideEffectOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(rel));
    else if (rel.endsWith('.ts') && !rel.endsWith('.d.ts')) out.push(rel);
  }
  return out.sort();
}

function resolve(from: string, specifier: string): string {
  if (!specifier.startsWith('.')) return '';
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  for (const candidate of [`${base}.ts`, `${base}/index.ts`, base]) {
    if (fs.existsSync(path.join(ROOT, candidate)) && fs.statSync(path.join(ROOT, candidate)).isFile()) return candidate;
  }
  throw new Error(`${from}: cannot resolve '${specifier}'`);
}

const parsed = new Map<string, ts.SourceFile>();

function parse(file: string): ts.SourceFile {
  let sf = parsed.get(file);
  if (sf == null) {
    sf = ts.createSourceFile(file, fs.readFileSync(path.join(ROOT, file), 'utf8'), ts.ScriptTarget.ES2020, true);
    parsed.set(file, sf);
  }
  return sf;
}

/** Static imports and re-exports of a file, and dynamic import('...') calls (never type-only). */
function importsOf(file: string): ImportRef[] {
  const refs: ImportRef[] = [];
  const add = (specifier: string, typeOnly: boolean, sideEffectOnly: boolean) =>
    refs.push({ specifier, target: resolve(file, specifier), typeOnly, sideEffectOnly });
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const allNamedTypeOnly = named != null && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      const typeOnly = clause != null && (clause.isTypeOnly || (clause.name == null && allNamedTypeOnly));
      add(node.moduleSpecifier.text, typeOnly, clause == null);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier != null && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier.text, node.isTypeOnly, false);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg != null && ts.isStringLiteral(arg)) add(arg.text, false, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(parse(file));
  return refs;
}

/** Every elementary import circle among `files` (runtime imports only), each as a list of files. */
function circles(files: string[]): string[][] {
  const inSet = new Set(files);
  const edges = new Map(files.map((f) => [f, importsOf(f).filter((r) => !r.typeOnly && inSet.has(r.target)).map((r) => r.target)]));
  const found = new Map<string, string[]>();
  const stack: string[] = [];
  const walk = (file: string, start: string): void => {
    stack.push(file);
    for (const next of edges.get(file) ?? []) {
      if (next === start) {
        // Record each circle once, rotated to start at its smallest file.
        const min = stack.indexOf([...stack].sort()[0]);
        const key = [...stack.slice(min), ...stack.slice(0, min)];
        found.set(key.join(' -> '), key);
      } else if (next > start && !stack.includes(next)) {
        walk(next, start);
      }
    }
    stack.pop();
  };
  for (const f of files) walk(f, f);
  return [...found.values()];
}

/** Source text without comments and with string/template contents kept (kernel names are strings). */
function codeOf(file: string): string {
  const sf = parse(file);
  const scanner = ts.createScanner(ts.ScriptTarget.ES2020, false, ts.LanguageVariant.Standard, sf.text);
  let out = '';
  for (let kind = scanner.scan(); kind !== ts.SyntaxKind.EndOfFileToken; kind = scanner.scan()) {
    if (kind === ts.SyntaxKind.SingleLineCommentTrivia || kind === ts.SyntaxKind.MultiLineCommentTrivia) continue;
    out += scanner.getTokenText();
  }
  return out;
}

const OPS = sourceFiles('ops');

describe('ops/ import graph', () => {
  it('has no import circle', () => {
    expect(circles(OPS).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('has side-effect imports only in ops/register (kernels and gradients register only there)', () => {
    const offenders = OPS.filter((f) => !f.startsWith('ops/register/'))
      .flatMap((f) => importsOf(f).filter((r) => r.sideEffectOnly).map((r) => `${f}: import '${r.specifier}'`));
    expect(offenders).toEqual([]);
  });

  it('has no op index importing its own kernel files', () => {
    const offenders = OPS.filter((f) => /^ops\/[^/]+\/index\.ts$/.test(f))
      .flatMap((f) => importsOf(f).filter((r) => path.posix.dirname(r.target) === path.posix.dirname(f)
        && /\/(cpu|wasm|webgpu|kernel)\.ts$/.test(r.target)).map((r) => `${f} imports ${r.target}`));
    expect(offenders).toEqual([]);
  });

  it('writes every custom kernel name once, in ops/kernelNames.ts', () => {
    const literal = /(['"`])CollectiveKV\w*\1/g;
    const outside = OPS.filter((f) => f !== 'ops/kernelNames.ts').flatMap((f) => (codeOf(f).match(literal) ?? []).map((m) => `${f}: ${m}`));
    expect(outside).toEqual([]);
    const inside = codeOf('ops/kernelNames.ts').match(literal) ?? [];
    expect(new Set(inside).size).toBe(inside.length);
  });

  it('reads tfjs internals only in ops/util/tfjsInternals.ts (ops/ and layers/)', () => {
    const internals: Array<[string, RegExp]> = [
      ['engine state', /engine\(\)[^;]*\.state\b|\.state\??\.(activeTape|activeScope|gradientDepth|scopeStack)\b/],
      ['Engine.isTapeOn', /\.isTapeOn\b/],
      ['MathBackendCPU.data', /\.data\.get\(/],
      ['WebGPUBackend.tensorMap', /\.tensorMap\b/],
      ['BackendWasm.dataIdNextNumber', /\bdataIdNextNumber\b/],
      ['the wasm module', /\.wasm\.(cwrap|tfjs)\b/],
    ];
    const files = [...OPS, ...sourceFiles('layers')].filter((f) => f !== 'ops/util/tfjsInternals.ts');
    const offenders = files.flatMap((f) => {
      const code = codeOf(f);
      return internals.filter(([, re]) => re.test(code)).map(([what]) => `${f}: ${what}`);
    });
    expect(offenders).toEqual([]);
  });
});

describe('package entries', () => {
  /** Files the entry's runtime imports reach (relative imports only). */
  function reach(entry: string): { files: Set<string>; packages: Set<string> } {
    const files = new Set<string>();
    const packages = new Set<string>();
    const queue = [entry];
    while (queue.length > 0) {
      const file = queue.pop() as string;
      if (files.has(file)) continue;
      files.add(file);
      for (const ref of importsOf(file)) {
        if (ref.typeOnly) continue;
        if (ref.target === '') packages.add(ref.specifier);
        else queue.push(ref.target);
      }
    }
    return { files, packages };
  }

  it('main entry: registers cpu, wasm and gradients, and reaches no webgpu kernel nor the webgpu backend', () => {
    const { files, packages } = reach('src/index.ts');
    for (const f of ['ops/register/cpu.ts', 'ops/register/wasm.ts', 'ops/register/gradients.ts']) expect(files).toContain(f);
    expect([...files].filter((f) => /webgpu/i.test(path.posix.basename(f)))).toEqual([]);
    expect([...packages].filter((p) => p.includes('tfjs-backend-webgpu'))).toEqual([]);
  });

  it('webgpu entry: registers the webgpu kernels without loading the webgpu backend', () => {
    const { files, packages } = reach('src/webgpu.ts');
    expect(files).toContain('ops/register/webgpu.ts');
    expect([...packages].filter((p) => p.includes('tfjs-backend-webgpu'))).toEqual([]);
    expect([...files].filter((f) => f.startsWith('ops/register/') && f !== 'ops/register/webgpu.ts')).toEqual([]);
  });

  it('package.json and rollup wire both entries', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    expect(pkg.exports['./webgpu']).toEqual({
      types: './dist/webgpu.d.ts', import: './dist/esm/src/webgpu.js', require: './dist/webgpu.cjs',
    });
    const rollup = fs.readFileSync(path.join(ROOT, 'rollup.config.mjs'), 'utf8');
    expect(rollup).toContain("'src/webgpu.ts'");
  });
});
