// Reads the real data sets beside the checkout, when this machine has them, and checks the
// statistics their READMEs publish. They may not be redistributed, so CI machines usually have
// none: the suite then skips with a message instead of failing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readInteractions } from '../../src/internal';
import { recordSkip } from '../util/skip';

const ROOT = process.env.COLLECTIVEKV_DATASETS ?? path.resolve(__dirname, '../../../shared/datasets');
const present = fs.existsSync(ROOT);
if (!present) recordSkip('real data set readers', `no data sets at ${ROOT} (set COLLECTIVEKV_DATASETS to a folder holding ml-1m/, amazon-beauty/, ml-100k/)`);
const describeIfData = present ? describe : describe.skip;

function lengths(sequences: number[][]): { min: number; max: number } {
  let min = Infinity;
  let max = 0;
  for (const s of sequences) { min = Math.min(min, s.length); max = Math.max(max, s.length); }
  return { min, max };
}

describeIfData('real data sets (statistics from their READMEs)', () => {
  it('ML-1M ml-1m.txt: 6040 users, 3416 items, 999,611 interactions, lengths 18..2277, ids kept', async () => {
    const log = await readInteractions(path.join(ROOT, 'ml-1m/ml-1m.txt'));
    expect(log.stats.format).toBe('pairs');
    expect(log.sequences).toHaveLength(6040);
    expect(log.numItems).toBe(3416);
    expect(log.stats.interactions).toBe(999611);
    expect(lengths(log.sequences)).toEqual({ min: 18, max: 2277 });
    // Ids already run 1..N, so natural order keeps them.
    expect(log.items.toOriginal(3416)).toBe('3416');
    expect(log.users.toOriginal(6039)).toBe('6040');
  });

  it('Amazon Beauty: 22363 users, 12101 items, 198,502 interactions, already a 5-core', async () => {
    const log = await readInteractions(path.join(ROOT, 'amazon-beauty/Beauty.txt'),
      { minUserInteractions: 5, minItemInteractions: 5, iterativeFilter: true });
    expect(log.stats.format).toBe('lines');
    expect(log.sequences).toHaveLength(22363);
    expect(log.numItems).toBe(12101);
    expect(log.stats.interactions).toBe(198502);
    expect(log.stats).toMatchObject({ removedUsers: 0, removedItems: 0, filterRounds: 1 });
  });

  it('ML-100K: u.data and the RecBole .inter, sorted stably by time, equal the derived ml-100k.txt', async () => {
    const reference = await readInteractions(path.join(ROOT, 'ml-100k/ml-100k.txt'));
    const raw = await readInteractions(path.join(ROOT, 'ml-100k/grouplens/u.data'));
    const recbole = await readInteractions(path.join(ROOT, 'ml-100k/recbole/ml-100k.inter'));
    expect(reference.sequences).toHaveLength(943);
    expect(reference.numItems).toBe(1682);
    expect(reference.stats.interactions).toBe(100000);
    expect(raw.stats.format).toBe('movielens');
    expect(recbole.stats.format).toBe('recbole');
    expect(raw.sequences).toEqual(reference.sequences);
    expect(recbole.sequences).toEqual(reference.sequences);
    expect(raw.ratings?.[0]).toHaveLength(reference.sequences[0].length);
  });
});
