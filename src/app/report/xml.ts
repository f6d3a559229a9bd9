// XML escaping and a minimal well-formedness check (no parser dependency in the project): balanced,
// properly nested tags, quoted unique attributes, known entities, one root element. Enough to prove
// the report's SVG files parse; the report runs it on every chart it writes.

export interface XmlElementInfo {
  /** Root element name. */
  root: string;
  /** Count of elements by name. */
  counts: Record<string, number>;
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const NAME = /^[A-Za-z_:][-A-Za-z0-9_.:]*$/;
const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/y;

/** Throws an Error naming the offset and the problem when `xml` is not well formed. */
export function checkWellFormed(xml: string): XmlElementInfo {
  const stack: string[] = [];
  const counts: Record<string, number> = {};
  let root: string | null = null;
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`not well-formed XML at offset ${i}: ${why}`);
  };
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    checkText(xml.slice(i, lt < 0 ? xml.length : lt), stack.length > 0, (why) => fail(why), i);
    if (lt < 0) break;
    i = lt;
    if (xml.startsWith('<?', i)) i = skipTo(xml, i, '?>', fail);
    else if (xml.startsWith('<!--', i)) i = skipTo(xml, i, '-->', fail);
    else if (xml.startsWith('<!', i)) fail('DOCTYPE/CDATA not supported');
    else if (xml.startsWith('</', i)) {
      const end = xml.indexOf('>', i);
      if (end < 0) fail('unterminated end tag');
      const name = xml.slice(i + 2, end).trim();
      if (stack.pop() !== name) fail(`unexpected </${name}>`);
      i = end + 1;
    } else {
      const { name, end, selfClosing } = readStartTag(xml, i, fail);
      if (stack.length === 0) {
        if (root != null) fail('more than one root element');
        root = name;
      }
      counts[name] = (counts[name] ?? 0) + 1;
      if (!selfClosing) stack.push(name);
      i = end;
    }
  }
  if (stack.length > 0) fail(`unclosed <${stack[stack.length - 1]}>`);
  if (root == null) fail('no root element');
  return { root: root as string, counts };
}

function skipTo(xml: string, i: number, close: string, fail: (why: string) => never): number {
  const end = xml.indexOf(close, i);
  if (end < 0) fail(`missing ${close}`);
  return end + close.length;
}

function checkText(text: string, inside: boolean, fail: (why: string) => never, offset: number): void {
  if (!inside && text.trim() !== '') fail(`text outside the root element near ${offset}`);
  for (let j = text.indexOf('&'); j >= 0; j = text.indexOf('&', j + 1)) {
    ENTITY.lastIndex = j;
    if (!ENTITY.test(text)) fail(`bad entity near '${text.slice(j, j + 10)}'`);
  }
}

function readStartTag(xml: string, start: number, fail: (why: string) => never): { name: string; end: number; selfClosing: boolean } {
  const m = /^<([^\s/>]+)/.exec(xml.slice(start, start + 200));
  if (m == null || !NAME.test(m[1])) fail('bad element name');
  const name = (m as RegExpExecArray)[1];
  let i = start + 1 + name.length;
  const seen = new Set<string>();
  const attr = /\s+([^\s=/>]+)\s*=\s*("([^"<]*)"|'([^'<]*)')/y;
  for (;;) {
    attr.lastIndex = i;
    const a = attr.exec(xml);
    if (a == null) break;
    if (!NAME.test(a[1])) fail(`bad attribute name '${a[1]}'`);
    if (seen.has(a[1])) fail(`duplicate attribute '${a[1]}'`);
    seen.add(a[1]);
    checkText(a[3] ?? a[4] ?? '', true, fail, i);
    i = attr.lastIndex;
  }
  const close = /\s*(\/?)>/y;
  close.lastIndex = i;
  const c = close.exec(xml);
  if (c == null) fail(`malformed start tag <${name}>`);
  return { name, end: close.lastIndex, selfClosing: (c as RegExpExecArray)[1] === '/' };
}
