import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DataFormatError, detectFormat, parseInteractions, readInteractions, readSequences, toSequences, ReadOptions,
} from '../../src/internal';

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckv-readers-')); });
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

/** Writes a fixture file (string as UTF-8, or raw bytes) and returns its path. */
function fixture(name: string, content: string | Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

async function read(name: string, content: string | Buffer, options?: ReadOptions) {
  return readInteractions(fixture(name, content), options);
}

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<DataFormatError> {
  try {
    await p;
  } catch (e) {
    return e as DataFormatError;
  }
  throw new Error('expected a rejection');
}

describe('pairs format (SASRec)', () => {
  it('groups by user in file order and renumbers ids densely, keeping the maps', async () => {
    const log = await read('pairs.txt', '1 10\n1 20\n2 10\n2 30\n1 40\n');
    expect(log.stats.format).toBe('pairs');
    // Natural order: items 10, 20, 30, 40 -> 1..4; user 1's late line joins its sequence.
    expect(log.sequences).toEqual([[1, 2, 4], [1, 3]]);
    expect(log.numItems).toBe(4);
    expect(log.timestamps).toBeUndefined();
    expect(log.ratings).toBeUndefined();
    expect(log.stats).toMatchObject({ lines: 5, blankLines: 0, rawInteractions: 5, interactions: 5, skipped: 0 });
  });

  it('translates ids both ways', async () => {
    const log = await read('pairs-map.txt', '7 300\n7 100\n3 200\n');
    expect(log.users.toOriginal(0)).toBe('3');
    expect(log.users.toDense('7')).toBe(1);
    expect(log.items.toDense(300)).toBe(3);
    expect(log.items.toDense('0100')).toBe(1); // integer ids: leading zeros name the same id
    expect(log.items.toDense('999')).toBeUndefined();
    log.sequences.forEach((seq, u) => seq.forEach((item) => {
      expect(log.items.toDense(log.items.toOriginal(item))).toBe(item);
      expect(log.users.toDense(log.users.toOriginal(u))).toBe(u);
    }));
    expect(() => log.items.toOriginal(0)).toThrow('dense id must be an integer in 1..3, received 0');
  });

  it("keeps already dense 1..N ids with idOrder 'natural', and numbers by appearance with 'first-seen'", async () => {
    const text = '2 3\n2 1\n1 2\n1 3\n';
    expect(parseInteractions(text, { format: 'pairs' }).sequences).toEqual([[2, 3], [3, 1]]);
    const seen = parseInteractions(text, { format: 'pairs', idOrder: 'first-seen' });
    expect(seen.sequences).toEqual([[1, 2], [3, 1]]);
    expect(seen.users.originals).toEqual(['2', '1']);
    expect(seen.items.originals).toEqual(['3', '1', '2']);
  });

  it('handles CRLF, a UTF-8 BOM, blank lines and trailing whitespace', async () => {
    const log = await read('crlf.txt', '\uFEFF1 10\r\n1 20  \t\r\n\r\n   \r\n2 10\r\n');
    expect(log.sequences).toEqual([[1, 2], [1]]);
    expect(log.users.originals).toEqual(['1', '2']);
    expect(log.stats).toMatchObject({ lines: 5, blankLines: 2, interactions: 3 });
  });
});

describe('lines format (one user per line)', () => {
  it('reads `user item1 item2 ...`', async () => {
    const log = await read('Beauty-like.txt', '1 5 6 7\n2 6\n3 7 5\n');
    expect(log.stats.format).toBe('lines');
    expect(log.sequences).toEqual([[1, 2, 3], [2], [3, 1]]);
  });

  it('reads items-only lines, the user being the line position (blank lines do not count)', async () => {
    const log = await read('items-only.txt', '50 60 70\n\n60\n', { format: 'lines', firstTokenIsUser: false });
    expect(log.users.originals).toEqual(['1', '2']);
    expect(log.sequences).toEqual([[1, 2, 3], [2]]);
  });
});

describe('movielens format', () => {
  it('sorts each user by timestamp, keeping file order for ties, with ratings and timestamps alongside', async () => {
    const text = '1::10::5::300\n1::30::4::100\n1::20::3::100\n2::10::1::50\n1::40::2::100\n';
    const log = await read('ratings.dat', text);
    expect(log.stats.format).toBe('movielens');
    expect(log.stats.sortedByTime).toBe(true);
    const original = log.sequences.map((seq) => seq.map((i) => log.items.toOriginal(i)));
    // Items 30, 20 and 40 share timestamp 100: file order, not id order.
    expect(original).toEqual([['30', '20', '40', '10'], ['10']]);
    expect(log.timestamps).toEqual([[100, 100, 100, 300], [50]]);
    expect(log.ratings).toEqual([[4, 3, 2, 5], [1]]);
  });

  it('keeps file order with sortByTime: false', async () => {
    const log = parseInteractions('1::10::5::300\n1::30::4::100\n', { format: 'movielens', sortByTime: false });
    expect(log.timestamps).toEqual([[300, 100]]);
    expect(log.stats.sortedByTime).toBe(false);
  });

  it('reads tab-separated u.data (ML-100K), detected from its content', async () => {
    const log = await read('data.tsv', '196\t242\t3\t881250949\n196\t302\t4\t881250000\n186\t302\t3\t891717742\n');
    expect(log.stats.format).toBe('movielens');
    expect(log.users.originals).toEqual(['186', '196']);
    expect(log.sequences.map((seq) => seq.map((i) => log.items.toOriginal(i)))).toEqual([['302'], ['302', '242']]);
    expect(log.ratings).toEqual([[3], [4, 3]]);
  });

  it('rejects a non-numeric rating with the field named', () => {
    expect(() => parseInteractions('1::2::five::100\n', { format: 'movielens', name: 'r.dat' }))
      .toThrow('r.dat:1: malformed movielens line "1::2::five::100": expected rating field: a decimal number');
  });
});

describe('recbole .inter format', () => {
  it('finds columns by name in any order, reads unicode token ids and sorts by timestamp', async () => {
    const text = [
      'timestamp:float\tuser_id:token\tlabel:float\titem_id:token\trating:float',
      '20\tユーザー\t1\tcafé\t4.5',
      '10\tユーザー\t0\t🎬 film\t3',
      '15\tuser-2\t1\tcafé\t5',
    ].join('\n');
    const log = await read('x.inter', text);
    expect(log.stats.format).toBe('recbole');
    expect(log.users.originals).toEqual(['user-2', 'ユーザー']);
    const original = log.sequences.map((seq) => seq.map((i) => log.items.toOriginal(i)));
    expect(original).toEqual([['café'], ['🎬 film', 'café']]);
    expect(log.timestamps).toEqual([[15], [10, 20]]);
    expect(log.ratings).toEqual([[5], [3, 4.5]]);
    expect(log.items.toDense('café')).toBe(log.sequences[0][0]);
  });

  it('is detected from its header under any name, and works without rating and timestamp columns', async () => {
    const log = await read('inter.tsv', 'user_id:token\titem_id:token\nu1\ti2\nu1\ti1\n');
    expect(log.stats.format).toBe('recbole');
    expect(log.sequences).toEqual([[2, 1]]);
    expect(log.timestamps).toBeUndefined();
    expect(log.ratings).toBeUndefined();
  });

  it('takes other column names, and explains a header without them', async () => {
    const text = 'uid:token\tiid:token\tts:float\na\tx\t2\na\ty\t1\n';
    const log = parseInteractions(text, { format: 'recbole', recboleFields: { user: 'uid', item: 'iid', timestamp: 'ts' } });
    expect(log.sequences).toEqual([[2, 1]]);
    expect(() => parseInteractions(text, { format: 'recbole', name: 'a.inter', lenient: true }))
      .toThrow('a.inter:1: malformed recbole line "uid:token\\tiid:token\\tts:float": expected a tab-separated header with columns "user_id:token" and "item_id:token", found columns [uid, iid, ts]');
  });

  it('does not shift columns when the first field is empty', () => {
    expect(() => parseInteractions('user_id:token\titem_id:token\trating:float\n\t5\t3\n', { format: 'recbole', name: 'e.inter' }))
      .toThrow('e.inter:2: malformed recbole line "\\t5\\t3": expected user_id field: a non-empty id');
  });
});

describe('malformed lines', () => {
  const text = '1 10\n1 12abc\n2 10\n2 10 20\n3 x\n';

  it('throw by default, naming the file, the 1-based line, its content and what was expected', async () => {
    const file = fixture('bad.txt', text);
    const e = await rejection(readInteractions(file, { format: 'pairs' }));
    expect(e).toBeInstanceOf(DataFormatError);
    expect(e.message).toBe(`${file}:2: malformed pairs line "1 12abc": expected item field: a non-negative integer id (pass ids: 'token' for string ids) (pass lenient: true to skip and count malformed lines)`);
    expect(e.file).toBe(file);
    expect(e.line).toBe(2);
    expect(e.content).toBe('1 12abc');
  });

  it('are skipped and counted when lenient, with the first examples, and never become a wrong id', async () => {
    const log = await read('bad2.txt', text, { format: 'pairs', lenient: true, maxSkippedExamples: 2 });
    expect(log.stats.skipped).toBe(3);
    expect(log.stats.skippedExamples).toEqual([
      { line: 2, content: '1 12abc', reason: "item field: a non-negative integer id (pass ids: 'token' for string ids)" },
      { line: 4, content: '2 10 20', reason: '2 whitespace-separated fields "user item", found 3' },
    ]);
    expect(log.items.originals).toEqual(['10']); // no item 12
    expect(log.sequences).toEqual([[1], [1]]);
  });

  it("'12abc' is an id of its own with ids: 'token'", () => {
    const log = parseInteractions('1 12abc\n1 12\n', { format: 'pairs', ids: 'token' });
    expect(log.items.originals).toEqual(['12', '12abc']);
    expect(log.sequences).toEqual([[2, 1]]);
  });

  it('refuses integer ids beyond 2^53 (two would collapse into one number)', () => {
    expect(() => parseInteractions('1 9007199254740993\n', { format: 'pairs' })).toThrow('expected item field: a non-negative integer id');
    expect(parseInteractions('1 9007199254740991\n', { format: 'pairs' }).items.originals).toEqual(['9007199254740991']);
  });

  it('truncates long lines in messages', () => {
    const long = `1 ${'9'.repeat(20)}x${' 5'.repeat(300)}`;
    let message = '';
    try { parseInteractions(long, { format: 'lines' }); } catch (e) { message = (e as Error).message; }
    expect(message).toContain('…"');
    expect(message.length).toBeLessThan(400);
  });

  it('reject bytes that are not UTF-8 instead of merging them into one replacement character', async () => {
    const bytes = Buffer.concat([Buffer.from('1 a\n1 '), Buffer.from([0xff, 0xfe]), Buffer.from('\n')]);
    const e = await rejection(read('latin.txt', bytes, { format: 'pairs', ids: 'token' }));
    expect(e.message).toContain(':2: malformed pairs line');
    expect(e.message).toContain('expected valid UTF-8 text');
  });
});

describe('format detection', () => {
  it('uses the name and the first lines', () => {
    expect(detectFormat('a/b/ml.inter', [])).toBe('recbole');
    expect(detectFormat('x.txt', ['user_id:token\titem_id:token'])).toBe('recbole');
    expect(detectFormat('x.txt', ['1::2::5::978300760'])).toBe('movielens');
    expect(detectFormat('u.data', ['1 2 3 4'])).toBe('movielens');
    expect(detectFormat('x.txt', ['\uFEFF1 2', '', '1 3'])).toBe('pairs');
    expect(detectFormat('x.txt', ['1 2 3', '2 4'])).toBe('lines');
  });

  it('says when it cannot tell, and how to choose', async () => {
    expect(() => detectFormat('one.txt', ['5', '6'])).toThrow("one.txt: cannot tell the file format: its first line \"5\" matches no format");
    expect(() => detectFormat('one.txt', ['5'])).toThrow("pass format: 'pairs' | 'lines' | 'movielens' | 'recbole'");
    const e = await rejection(read('empty.txt', ''));
    expect(e.message).toContain('cannot tell the file format: the file has no data lines');
  });

  it('rejects an unknown format and a missing file', async () => {
    const e = await rejection(read('f.txt', '1 2\n', { format: 'csv' as never }));
    expect(e.message).toContain("unknown format 'csv'");
    const missing = await rejection(readInteractions(path.join(dir, 'nope.txt')));
    expect(missing.message).toContain('readInteractions: cannot read');
    expect(missing.message).toContain('nope.txt');
  });
});

describe('empty input', () => {
  it('gives no users with an explicit whitespace format, and asks for the header of a RecBole file', async () => {
    const log = await read('empty-pairs.txt', '', { format: 'pairs' });
    expect(log.sequences).toEqual([]);
    expect(log.numItems).toBe(0);
    expect(() => parseInteractions('\n\n', { format: 'recbole', name: 'e.inter' })).toThrow('e.inter: empty recbole file: expected a header line');
  });
});

describe('minimum-interaction filter', () => {
  // Items: a 4, b 4, c 1; user 3 has one event. One round drops c and user 3, which leaves user 2
  // with one event; only the iterative filter (k-core) drops user 2 too.
  const text = '1 a\n1 b\n2 a\n2 c\n3 b\n4 a\n4 b\n5 a\n5 b\n';
  const base: ReadOptions = { format: 'pairs', ids: 'token', minUserInteractions: 2, minItemInteractions: 2 };

  it('is off by default', () => {
    const log = parseInteractions(text, { format: 'pairs', ids: 'token' });
    expect(log.sequences).toHaveLength(5);
    expect(log.stats).toMatchObject({ removedUsers: 0, removedItems: 0, filterRounds: 0, interactions: 9 });
  });

  it('runs one round by default', () => {
    const log = parseInteractions(text, base);
    expect(log.users.originals).toEqual(['1', '2', '4', '5']);
    expect(log.sequences.map((s) => s.length)).toEqual([2, 1, 2, 2]);
    expect(log.stats).toMatchObject({ removedUsers: 1, removedItems: 1, filterRounds: 1, interactions: 7, rawInteractions: 9 });
  });

  it('reaches the k-core when iterative', () => {
    const log = parseInteractions(text, { ...base, iterativeFilter: true });
    expect(log.users.originals).toEqual(['1', '4', '5']);
    expect(log.items.originals).toEqual(['a', 'b']);
    expect(log.sequences).toEqual([[1, 2], [1, 2], [1, 2]]);
    expect(log.stats).toMatchObject({ removedUsers: 2, removedItems: 1, filterRounds: 3 });
  });

  it('rejects a negative minimum', () => {
    expect(() => parseInteractions(text, { ...base, minUserInteractions: -1 })).toThrow('minUserInteractions must be a non-negative integer, received -1');
  });
});

describe('streaming', () => {
  it('reads a multi-chunk file with multibyte ids split across chunk boundaries like the in-memory parser', async () => {
    const lines: string[] = [];
    for (let u = 0; u < 4000; u++) {
      for (let t = 0; t < 5; t++) lines.push(`ユーザー${u}\tアイテム${(u * 7 + t * 13) % 997}🎬`);
    }
    const text = `user_id:token\titem_id:token\n${lines.join('\r\n')}\r\n`;
    expect(Buffer.byteLength(text)).toBeGreaterThan(4 * 64 * 1024);
    const streamed = await read('big.inter', text);
    const inMemory = parseInteractions(text, { name: 'big.inter' });
    expect(streamed.stats.interactions).toBe(20000);
    expect(streamed.sequences).toEqual(inMemory.sequences);
    expect(streamed.items.originals).toEqual(inMemory.items.originals);
    expect(streamed.numItems).toBe(997);
  });

  it('readSequences and toSequences give the plain Sequences shape', async () => {
    const file = fixture('plain.txt', '1 5\n1 6\n');
    expect(await readSequences(file)).toEqual({ sequences: [[1, 2]], numItems: 2 });
    expect(toSequences(await readInteractions(file))).toEqual({ sequences: [[1, 2]], numItems: 2 });
  });
});
