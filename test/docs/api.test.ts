// docs/api.md, the one-page index of the public API, stays in sync with the entries: every name
// that src/index.ts, src/webgpu.ts and src/zoo/index.ts export is listed there, linked to its page
// in the generated reference (npm run docs:api), and nothing is listed that no entry exports.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import * as api from '../../src/index';

const ROOT = resolve(__dirname, '..', '..');
const ENTRIES = { collectivekv: 'src/index.ts', 'collectivekv/webgpu': 'src/webgpu.ts', 'collectivekv/zoo': 'src/zoo/index.ts' } as const;

/** The names an entry file exports by `export { ... }` / `export type { ... }` / declarations, split into values and types. */
function exportedNames(source: string): { values: string[]; types: string[]; exportStar: boolean } {
  const file = ts.createSourceFile('entry.ts', source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const values: string[] = [];
  const types: string[] = [];
  let exportStar = false;
  for (const st of file.statements) {
    if (ts.isExportDeclaration(st)) {
      if (st.exportClause == null || !ts.isNamedExports(st.exportClause)) {
        exportStar = true;
        continue;
      }
      for (const el of st.exportClause.elements) (st.isTypeOnly || el.isTypeOnly ? types : values).push(el.name.text);
    } else if (ts.canHaveModifiers(st) && ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) {
      const isType = ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st);
      const names = ts.isVariableStatement(st)
        ? st.declarationList.declarations.map((d) => d.name.getText(file))
        : [(st as ts.DeclarationStatement).name?.getText(file) ?? 'default'];
      (isType ? types : values).push(...names);
    }
  }
  return { values, types, exportStar };
}

/** The names docs/api.md indexes, as a list item or an inline link: [`name`](api/<kind>/<module>.<name>.html), with their targets. */
function indexedNames(markdown: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of markdown.matchAll(/\[`([A-Za-z_$][\w$]*)`\]\((api\/[^)\s]+)\)/g)) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  return out;
}

/** Listed names whose link is not the page TypeDoc writes for that name in that entry. */
function wrongTargets(indexed: Map<string, string[]>, entryOf: Map<string, string>): string[] {
  const bad: string[] = [];
  for (const [name, targets] of indexed) {
    const entry = entryOf.get(name);
    if (entry == null) continue;
    const slug = entry.replace(/\//g, '_');
    for (const t of targets) {
      if (!new RegExp(`^api/(classes|functions|variables|interfaces|types)/${slug.replace(/[.$]/g, '\\$&')}\\.${name.replace(/\$/g, '\\$')}\\.html$`).test(t)) {
        bad.push(`${name}: ${t} (expected api/<kind>/${slug}.${name}.html)`);
      }
    }
  }
  return bad;
}

describe('docs/api.md', () => {
  const markdown = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
  const indexed = indexedNames(markdown);
  const entries = Object.entries(ENTRIES).map(([entry, path]) => ({ entry, ...exportedNames(readFileSync(join(ROOT, path), 'utf8')) }));
  const entryOf = new Map<string, string>();
  for (const e of entries) for (const n of [...e.values, ...e.types]) if (!entryOf.has(n)) entryOf.set(n, e.entry);

  it('the entries are read completely: no `export *`, and the values read from src/index.ts are the ones it exports', () => {
    expect(entries.filter((e) => e.exportStar).map((e) => e.entry)).toEqual([]);
    expect([...entries[0].values].sort()).toEqual(Object.keys(api).sort());
  });

  it('lists every value src/index.ts exports', () => {
    const missing = Object.keys(api).filter((name) => !indexed.has(name));
    if (missing.length > 0) console.error(`Add to docs/api.md (one line each, in its area): ${missing.join(', ')}`);
    expect(missing).toEqual([]);
  });

  it('lists every type of src/index.ts and every value and type of collectivekv/webgpu and collectivekv/zoo', () => {
    const missing = entries.flatMap((e) => [...e.values, ...e.types].filter((n) => !indexed.has(n)).map((n) => `${e.entry}: ${n}`));
    expect(missing).toEqual([]);
  });

  it('lists nothing that no entry exports, each linked to its own page in the generated reference', () => {
    expect([...indexed.keys()].filter((n) => !entryOf.has(n))).toEqual([]);
    expect(wrongTargets(indexed, entryOf)).toEqual([]);
  });

  it('says how to build the reference', () => {
    expect(markdown).toContain('npm run docs:api');
  });

  it('the checks can fail: made-up text with a missing name, an unknown name and a wrong page is caught', () => {
    const md = '- [`alpha`](api/functions/collectivekv.alpha.html): one.\nTypes: [`Beta`](api/types/collectivekv_zoo.Beta.html), [`gamma`](api/functions/collectivekv.delta.html).';
    const found = indexedNames(md);
    expect([...found.keys()]).toEqual(['alpha', 'Beta', 'gamma']);
    const owners = new Map([['alpha', 'collectivekv'], ['Beta', 'collectivekv'], ['gamma', 'collectivekv']]);
    expect(wrongTargets(found, owners)).toEqual([
      'Beta: api/types/collectivekv_zoo.Beta.html (expected api/<kind>/collectivekv.Beta.html)',
      'gamma: api/functions/collectivekv.delta.html (expected api/<kind>/collectivekv.gamma.html)',
    ]);
    expect(exportedNames("export { a, b as c } from './x';\nexport type { T } from './x';\nexport const d = 1;\nexport interface I {}\nexport * from './y';"))
      .toEqual({ values: ['a', 'c', 'd'], types: ['T', 'I'], exportStar: true });
  });
});
