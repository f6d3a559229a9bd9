import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileHistoryLog } from '../../../src/app/serve/fileHistoryLog';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ckv-history-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('FileHistoryLog', () => {
  it('round-trips across close and reopen, one JSON line per append', async () => {
    const path = join(dir, 'h.jsonl');
    const log = await FileHistoryLog.open(path);
    expect(log.recovered).toBeUndefined();
    expect(await log.read(['alice'])).toEqual([undefined]);
    expect(await log.append('alice', [3, 1])).toBe(2);
    expect(await log.append('bob', [7])).toBe(1);
    expect(await log.append('alice', [9])).toBe(3);
    expect(await log.append('alice', [])).toBe(3);
    expect(await log.read(['alice', 'bob', 'carol'])).toEqual([[3, 1, 9], [7], undefined]);
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe('{"u":"alice","e":[3,1]}\n{"u":"bob","e":[7]}\n{"u":"alice","e":[9]}\n');

    const again = await FileHistoryLog.open(path);
    expect(await again.read(['alice', 'bob'])).toEqual([[3, 1, 9], [7]]);
    expect(again.users().sort()).toEqual(['alice', 'bob']);
    expect(await again.append('bob', [2, 2])).toBe(3);
    await again.close();
    const third = await FileHistoryLog.open(path);
    expect(await third.read(['bob'])).toEqual([[7, 2, 2]]);
    await third.close();
  });

  it('read returns copies: changing them does not change the log', async () => {
    const log = await FileHistoryLog.open(join(dir, 'h.jsonl'));
    await log.append('u', [1, 2]);
    const [h] = await log.read(['u']);
    (h as number[]).push(99);
    expect(await log.read(['u'])).toEqual([[1, 2]]);
    await log.close();
  });

  it.each([
    ['no final newline', '{"u":"alice","e":[3'],
    ['a half-written record', '{"u":"alice","e":[3,4]'],
    ['zero bytes from a crash', '\0\0\0\0\0\0'],
    ['a complete line that is not a record', '{"u":"alice","e":[3,\0\0]}\n'],
  ])('truncates a torn last line (%s) and reports it', async (_name, tail) => {
    const path = join(dir, 'h.jsonl');
    const good = '{"u":"alice","e":[1,2]}\n{"u":"bob","e":[5]}\n';
    writeFileSync(path, good + tail);
    const reports: string[] = [];
    const log = await FileHistoryLog.open(path, { onRecover: (m) => reports.push(m) });
    expect(log.recovered).toEqual({ offset: good.length, droppedBytes: Buffer.byteLength(tail), message: expect.stringMatching(/torn last line/) });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatch(new RegExp(`truncated a torn last line \\(${Buffer.byteLength(tail)} bytes at offset ${good.length}`));
    expect(statSync(path).size).toBe(good.length);
    expect(await log.read(['alice', 'bob'])).toEqual([[1, 2], [5]]);
    // Appends continue on a clean line boundary.
    expect(await log.append('alice', [4])).toBe(3);
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe(`${good}{"u":"alice","e":[4]}\n`);
    const again = await FileHistoryLog.open(path);
    expect(again.recovered).toBeUndefined();
    expect(await again.read(['alice'])).toEqual([[1, 2, 4]]);
    await again.close();
  });

  it('refuses a file with a bad line before the last, naming the line', async () => {
    const path = join(dir, 'h.jsonl');
    writeFileSync(path, '{"u":"a","e":[1]}\nnot json\n{"u":"a","e":[2]}\n');
    await expect(FileHistoryLog.open(path)).rejects.toThrow(/h\.jsonl line 2 is not JSON; the log is corrupt/);
    writeFileSync(path, '{"u":"a","e":[0]}\n{"u":"a","e":[2]}\n');
    await expect(FileHistoryLog.open(path)).rejects.toThrow(/line 1 has no item id list 'e'/);
    writeFileSync(path, '{"e":[1]}\n{"u":"a","e":[2]}\n');
    await expect(FileHistoryLog.open(path)).rejects.toThrow(/line 1 has no user id 'u'/);
    // Nothing was truncated.
    expect(readFileSync(path, 'utf8')).toBe('{"e":[1]}\n{"u":"a","e":[2]}\n');
  });

  it('serializes concurrent appends: consecutive lengths in call order, all in the file', async () => {
    const path = join(dir, 'h.jsonl');
    const log = await FileHistoryLog.open(path);
    const lengths = await Promise.all(Array.from({ length: 40 }, (_, i) => log.append(i % 2 === 0 ? 'even' : 'odd', [i + 1, i + 1])));
    expect(lengths).toEqual(Array.from({ length: 40 }, (_, i) => 2 * (Math.floor(i / 2) + 1)));
    const [even, odd] = await log.read(['even', 'odd']);
    expect(even).toEqual(Array.from({ length: 20 }, (_, j) => [2 * j + 1, 2 * j + 1]).flat());
    expect(odd).toEqual(Array.from({ length: 20 }, (_, j) => [2 * j + 2, 2 * j + 2]).flat());
    await log.close();
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(41);
    const again = await FileHistoryLog.open(path);
    expect(await again.read(['even', 'odd'])).toEqual([even, odd]);
    await again.close();
  });

  it('close waits for the appends in flight; appends after close fail', async () => {
    const path = join(dir, 'h.jsonl');
    const log = await FileHistoryLog.open(path);
    const pending = [log.append('u', [1]), log.append('u', [2])];
    await log.close();
    await expect(Promise.all(pending)).resolves.toEqual([1, 2]);
    await expect(log.append('u', [3])).rejects.toThrow(/closed/);
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe('{"u":"u","e":[1]}\n{"u":"u","e":[2]}\n');
  });

  it('a failed write is rolled back and not counted: the next append lands on a clean line', async () => {
    const path = join(dir, 'h.jsonl');
    const log = await FileHistoryLog.open(path);
    await log.append('u', [1]);
    const handle = (log as unknown as { handle: { datasync(): Promise<void> } }).handle;
    const spy = jest.spyOn(handle, 'datasync').mockRejectedValueOnce(new Error('EIO: disk on fire'));
    await expect(log.append('u', [2])).rejects.toThrow(/FileHistoryLog\.append: cannot write .*h\.jsonl: EIO: disk on fire/);
    spy.mockRestore();
    expect(await log.read(['u'])).toEqual([[1]]);
    expect(await log.append('u', [3])).toBe(2);
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe('{"u":"u","e":[1]}\n{"u":"u","e":[3]}\n');
  });

  it('bad input errors name the argument, and write nothing', async () => {
    const path = join(dir, 'h.jsonl');
    const log = await FileHistoryLog.open(path);
    await expect(log.append('', [1])).rejects.toThrow(/FileHistoryLog\.append: argument 'userId' must be a string of 1\.\.1024 characters, received 0 characters/);
    await expect(log.append(42 as unknown as string, [1])).rejects.toThrow(/argument 'userId' .* received number/);
    await expect(log.append('x'.repeat(1025), [1])).rejects.toThrow(/argument 'userId' .* received 1025 characters/);
    await expect(log.append('u', 'abc' as unknown as number[])).rejects.toThrow(/argument 'events' must be an array of item ids, received a string/);
    await expect(log.append('u', [1, 2.5])).rejects.toThrow(/events\[1\] must be a positive integer item id, received 2\.5/);
    await expect(log.append('u', [0])).rejects.toThrow(/events\[0\] must be a positive integer item id, received 0/);
    await expect(log.append('u', [1, '2' as unknown as number])).rejects.toThrow(/events\[1\] .* received a string/);
    await expect(log.read('u' as unknown as string[])).rejects.toThrow(/argument 'userIds' must be an array/);
    await expect(FileHistoryLog.open('')).rejects.toThrow(/FileHistoryLog\.open: argument 'path' must be a non-empty file path, received an empty string/);
    await expect(FileHistoryLog.open(join(dir, 'missing-dir', 'h.jsonl'))).rejects.toThrow(/FileHistoryLog\.open: cannot create .*missing-dir/);
    // The good append after the bad ones still works, and nothing else reached the file.
    expect(await log.append('u', [5])).toBe(1);
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe('{"u":"u","e":[5]}\n');
  });

  it('keeps ids with any characters intact (JSON-escaped on disk)', async () => {
    const path = join(dir, 'h.jsonl');
    const log = await FileHistoryLog.open(path);
    const odd = 'line\nbreak "quoted" \u2028 ünï';
    await log.append(odd, [1]);
    await log.close();
    appendFileSync(path, '');
    const again = await FileHistoryLog.open(path);
    expect(await again.read([odd])).toEqual([[1]]);
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(2);
    await again.close();
  });
});
