// The XML escaping and well-formedness check the report runs on every chart it writes.
import { checkWellFormed, escapeXml } from '../../../src/app/report/xml';

describe('escapeXml', () => {
  test('escapes the five special characters, and the result parses as element text and attribute', () => {
    const text = `a < b & "c" > 'd'`;
    expect(escapeXml(text)).toBe('a &lt; b &amp; &quot;c&quot; &gt; &apos;d&apos;');
    expect(checkWellFormed(`<svg a="${escapeXml(text)}"><text>${escapeXml(text)}</text></svg>`).counts).toEqual({ svg: 1, text: 1 });
  });
});

describe('checkWellFormed', () => {
  test.each([
    ['unclosed element', '<svg><g></svg>'],
    ['crossed nesting', '<svg><g><text></g></text></svg>'],
    ['raw ampersand', '<svg><text>a & b</text></svg>'],
    ['unquoted attribute', '<svg width=3></svg>'],
    ['duplicate attribute', '<svg a="1" a="2"></svg>'],
    ['two roots', '<svg></svg><svg></svg>'],
    ['text outside the root', 'x<svg></svg>'],
    ['raw < in an attribute', '<svg a="<"></svg>'],
  ])('rejects %s', (_why, xml) => {
    expect(() => checkWellFormed(xml)).toThrow(/not well-formed/);
  });

  test('accepts a declaration, comments, entities and self-closing tags', () => {
    const info = checkWellFormed('<?xml version="1.0"?>\n<!-- c --><svg a=\'1\'><rect/><text>&lt;&#65;&#x42;&gt;</text></svg>\n');
    expect(info).toEqual({ root: 'svg', counts: { svg: 1, rect: 1, text: 1 } });
  });
});
