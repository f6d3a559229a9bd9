// The engine's value formats at the model level: scores from fp16 and int8 caches against scores
// from an fp32 cache of the same SASRec (CollectiveKV and full KV), over entries written whole and
// grown by appends. docs/cache.md quotes the figures of a trained model (scripts/cache-format-error.ts).
import { useBackend } from '../util/backends';
import { CacheEngine, MemoryStore, generateSynthetic, readHeader, type CacheDtype } from 'collectivekv/internal';
import { buildSasrec, type Sasrec } from '../../src/zoo/sequential/sasrec';
import { SasrecRecommender } from '../../src/zoo/sequential/sasrecRecommender';

const data = generateSynthetic({ numUsers: 10, numItems: 60, numTopics: 6, minLength: 14, maxLength: 20, seed: 7 });
const histories = data.sequences;
const tiny = { numItems: data.numItems, maxLength: 24, hiddenDim: 16, numBlocks: 2, numHeads: 2, dropout: 0, seed: 3,
  collective: { poolSize: 32, userDim: 1 } };
const candidates = Array.from({ length: data.numItems }, (_, i) => i + 1);

/** max |a - b| over max |b|: the error of a score relative to the scale of the scores. */
function relativeError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** Scores of every user from caches in `dtype`: half written whole, half grown by three appends. */
async function scoresIn(rec: SasrecRecommender, dtype: CacheDtype | undefined): Promise<{ scores: Float32Array; engine: CacheEngine; store: MemoryStore }> {
  const store = new MemoryStore();
  const engine = new CacheEngine(rec, store, dtype === undefined ? {} : { dtype });
  for (let u = 0; u < histories.length; u++) {
    const h = histories[u];
    if (u % 2 === 0) {
      await engine.prefill(`u${u}`, h);
    } else {
      await engine.prefill(`u${u}`, h.slice(0, 6));
      for (const [a, b] of [[6, 7], [7, 11], [11, h.length]]) await engine.append(`u${u}`, h.slice(a, b));
    }
  }
  const result = await engine.score(histories.map((_, u) => `u${u}`), candidates);
  expect(result.sources.every((s) => s === 'cache')).toBe(true);
  return { scores: result.scores, engine, store };
}

beforeAll(() => useBackend('cpu'));

describe.each(['collectivekv', 'mha'] as const)('scores from fp16 and int8 caches against fp32 (%s)', (attention) => {
  let sasrec: Sasrec;
  let rec: SasrecRecommender;
  beforeAll(() => {
    sasrec = buildSasrec({ ...tiny, attention });
    rec = new SasrecRecommender(sasrec);
  });
  afterAll(() => sasrec.model.dispose());

  it('fp16, the default, is within 1e-3 relative of fp32; int8 within its measured bound', async () => {
    const fp32 = await scoresIn(rec, 'fp32');
    const byDefault = await scoresIn(rec, undefined);
    const fp16 = await scoresIn(rec, 'fp16');
    const int8 = await scoresIn(rec, 'int8');
    expect(byDefault.engine.dtype).toBe('fp16');
    expect(readHeader((await byDefault.store.get('u:u0'))!).dtype).toBe('fp16');
    expect(readHeader((await int8.store.get('u:u1'))!)).toMatchObject({ dtype: 'int8', chunks: 4 });
    expect(byDefault.scores).toEqual(fp16.scores);
    const e16 = relativeError(fp16.scores, fp32.scores);
    const e8 = relativeError(int8.scores, fp32.scores);
    // Each format really quantizes (the comparisons could fail), and stays within its bound.
    expect(e16).toBeGreaterThan(0);
    expect(e16).toBeLessThan(1e-3);
    expect(e8).toBeGreaterThan(e16);
    expect(e8).toBeLessThan(INT8_BOUND[attention]);
    // The same model recomputed (no cache) agrees with the fp32 cache to float rounding.
    expect(relativeError(rec.recompute(histories, Int32Array.from(candidates)), fp32.scores)).toBeLessThan(1e-5);
  });

  it('bytesPerToken per format: the record of one token over the model\'s layout', () => {
    const store = new MemoryStore();
    const per = (dtype: CacheDtype) => new CacheEngine(rec, store, { dtype }).bytesPerToken;
    // 2 blocks; lane: item id (1 B, 61 items) + a 1-row V index (1 B).
    const values = attention === 'collectivekv' ? 2 * 2 * 1 : 2 * 2 * 16;
    const indices = (attention === 'collectivekv' ? 2 * 2 * 1 : 0) + 2;
    expect(per('fp32')).toBe(indices + 4 * values);
    expect(per('fp16')).toBe(indices + 2 * values);
    expect(per('int8')).toBe(indices + values);
    expect(new CacheEngine(rec, store).bytesPerToken).toBe(per('fp16'));
    expect(rec.attentionBytesIn()).toBe(rec.attentionBytesIn('fp16'));
    expect(rec.attentionBytesIn('fp32')).toBe(rec.attentionBytesPerToken);
  });
});

/** About 4x what these untrained models measure (docs/cache.md, "Errors of the formats"). */
const INT8_BOUND = { collectivekv: 2e-3, mha: 1.5e-2 };

it('CacheEngine refuses a format it does not know, naming the option', () => {
  const sasrec = buildSasrec({ ...tiny, attention: 'collectivekv' });
  try {
    const rec = new SasrecRecommender(sasrec);
    expect(() => new CacheEngine(rec, new MemoryStore(), { dtype: 'bf16' as CacheDtype })).toThrow(
      /CacheEngine: options\.dtype must be one of fp16, fp32, int8, received "bf16"/);
    expect(() => rec.attentionBytesIn('f16' as CacheDtype)).toThrow(/SasrecRecommender\.attentionBytesIn: dtype must be one of fp16, fp32, int8, received "f16"/);
  } finally {
    sasrec.model.dispose();
  }
});
