import { CategoricalSampler, Random, randomDirichlet, randomInt, sampleIndex, seededRandom, shuffleInPlace } from './random';

/** Interaction sequences: per user, 1-based item ids in time order (0 is reserved for padding). */
export interface Sequences {
  sequences: number[][];
  /** Item ids run 1..numItems. */
  numItems: number;
}

export interface SyntheticOptions {
  numUsers?: number;
  numItems?: number;
  /** Sequence length per user, uniform in [minLength, maxLength]. */
  minLength?: number;
  maxLength?: number;
  /** Latent topics; every item has one, every user a taste over them. */
  numTopics?: number;
  seed?: number;
  /** Item popularity ~ 1 / rank^zipfExponent (0: uniform). */
  zipfExponent?: number;
  /** Symmetric Dirichlet concentration of user tastes: small = few topics per user. */
  tasteConcentration?: number;
  /** Probability that the next item stays in the current topic (session-like runs). */
  stickiness?: number;
  /** Probability that the next item is the successor of the previous one in its topic's chain (sequels, next episode). */
  sequelProbability?: number;
  /** Probability of an item drawn from global popularity, ignoring taste (noise). */
  noise?: number;
  /** How far a user's taste moves from its start to a second taste by the end of the sequence, in [0, 1]. */
  drift?: number;
}

export type ResolvedSyntheticOptions = Required<SyntheticOptions>;

/** Defaults sized so that the demo trains two SASRec models in about a minute each on wasm. */
export const SYNTHETIC_DEFAULTS: ResolvedSyntheticOptions = {
  numUsers: 2000,
  numItems: 500,
  minLength: 10,
  maxLength: 40,
  numTopics: 20,
  seed: 2026,
  zipfExponent: 0.8,
  tasteConcentration: 0.2,
  stickiness: 0.7,
  sequelProbability: 0.3,
  noise: 0.05,
  drift: 0.5,
};

/** The generator's hidden structure, returned for tests and for inspecting a data set. */
export interface SyntheticWorld {
  /** topicOfItem[id] for id in 1..numItems (index 0 unused, -1). */
  topicOfItem: Int32Array;
  /** popularity[id]: the Zipf weight (index 0 unused, 0). */
  popularity: Float64Array;
}

/**
 * A seeded next-item data set with collaborative and sequential structure: items belong to topics
 * and have Zipf popularity; each user has a sparse taste over topics that drifts toward a second
 * taste along the sequence; consecutive items tend to stay in a topic and to follow the topic's
 * item chain. A model that learns tastes and transitions beats popularity by a wide margin.
 * Users never repeat an item, like most public next-item sets after deduplication.
 */
export function generateSynthetic(options: SyntheticOptions = {}): Sequences & { world: SyntheticWorld } {
  const o = resolveSyntheticOptions(options);
  const rand = seededRandom(o.seed);
  const world = makeWorld(o, rand);
  const topics = makeTopicSamplers(o, world, rand);
  const global = new CategoricalSampler(world.popularity);
  const sequences: number[][] = [];
  for (let u = 0; u < o.numUsers; u++) {
    const length = o.minLength + randomInt(rand, o.maxLength - o.minLength + 1);
    sequences.push(userSequence(o, rand, length, world, topics, global));
  }
  return { sequences, numItems: o.numItems, world };
}

export function resolveSyntheticOptions(options: SyntheticOptions): ResolvedSyntheticOptions {
  const o = { ...SYNTHETIC_DEFAULTS, ...stripUndefined(options) };
  const positiveInts: (keyof SyntheticOptions)[] = ['numUsers', 'numItems', 'minLength', 'maxLength', 'numTopics'];
  for (const key of positiveInts) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new Error(`generateSynthetic: ${key} must be a positive integer, received ${o[key]}`);
  }
  if (o.minLength > o.maxLength) throw new Error(`generateSynthetic: minLength ${o.minLength} exceeds maxLength ${o.maxLength}`);
  if (o.maxLength > o.numItems) {
    throw new Error(`generateSynthetic: maxLength ${o.maxLength} exceeds numItems ${o.numItems} (users never repeat an item)`);
  }
  if (o.numTopics > o.numItems) throw new Error(`generateSynthetic: numTopics ${o.numTopics} exceeds numItems ${o.numItems}`);
  for (const key of ['stickiness', 'sequelProbability', 'noise', 'drift'] as const) {
    if (!(o[key] >= 0 && o[key] <= 1)) throw new Error(`generateSynthetic: ${key} must be in [0, 1], received ${o[key]}`);
  }
  if (!(o.tasteConcentration > 0)) throw new Error(`generateSynthetic: tasteConcentration must be > 0, received ${o.tasteConcentration}`);
  if (!(o.zipfExponent >= 0)) throw new Error(`generateSynthetic: zipfExponent must be >= 0, received ${o.zipfExponent}`);
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Topics round-robin over a shuffled item order (balanced sizes); popularity by a random Zipf rank. */
function makeWorld(o: ResolvedSyntheticOptions, rand: Random): SyntheticWorld {
  const ids = shuffleInPlace(Array.from({ length: o.numItems }, (_, i) => i + 1), rand);
  const topicOfItem = new Int32Array(o.numItems + 1).fill(-1);
  ids.forEach((id, i) => { topicOfItem[id] = i % o.numTopics; });
  const ranks = shuffleInPlace(Array.from({ length: o.numItems }, (_, i) => i + 1), rand);
  const popularity = new Float64Array(o.numItems + 1);
  ranks.forEach((rank, i) => { popularity[i + 1] = 1 / Math.pow(rank, o.zipfExponent); });
  return { topicOfItem, popularity };
}

interface TopicSampler {
  items: number[];
  sampler: CategoricalSampler;
  /** Chain successor of an item inside its topic (the "sequel"). */
  next: Map<number, number>;
}

function makeTopicSamplers(o: ResolvedSyntheticOptions, world: SyntheticWorld, rand: Random): TopicSampler[] {
  const members: number[][] = Array.from({ length: o.numTopics }, () => []);
  for (let id = 1; id <= o.numItems; id++) members[world.topicOfItem[id]].push(id);
  return members.map((items) => {
    const chain = shuffleInPlace(items.slice(), rand);
    const next = new Map<number, number>();
    chain.forEach((id, i) => next.set(id, chain[(i + 1) % chain.length]));
    return { items, sampler: new CategoricalSampler(items.map((id) => world.popularity[id])), next };
  });
}

function userSequence(o: ResolvedSyntheticOptions, rand: Random, length: number, world: SyntheticWorld, topics: TopicSampler[],
  global: CategoricalSampler): number[] {
  const start = randomDirichlet(rand, o.numTopics, o.tasteConcentration);
  const end = randomDirichlet(rand, o.numTopics, o.tasteConcentration);
  const seen = new Set<number>();
  const out: number[] = [];
  let topic = sampleIndex(rand, start);
  for (let step = 0; step < length; step++) {
    const taste = blend(start, end, o.drift * (length > 1 ? step / (length - 1) : 0));
    if (step > 0 && rand() >= o.stickiness) topic = sampleIndex(rand, taste);
    const item = nextItem(o, rand, topic, out[out.length - 1], seen, topics, global);
    seen.add(item);
    out.push(item);
  }
  return out;
}

function blend(a: Float64Array, b: Float64Array, t: number): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (1 - t) * a[i] + t * b[i];
  return out;
}

/** Noise, else the sequel of the previous item when it is in this topic, else a popular topic item; never a seen one. */
function nextItem(o: ResolvedSyntheticOptions, rand: Random, topic: number, previous: number | undefined, seen: Set<number>,
  topics: TopicSampler[], global: CategoricalSampler): number {
  const t = topics[topic];
  if (rand() < o.noise) return unseen(() => global.sample(rand), seen, rand, o.numItems);
  if (previous !== undefined && t.next.has(previous) && rand() < o.sequelProbability) {
    const sequel = t.next.get(previous) as number;
    if (!seen.has(sequel)) return sequel;
  }
  return unseen(() => t.items[t.sampler.sample(rand)], seen, rand, o.numItems);
}

/**
 * Redraws until an unseen item comes up; after a few misses (a small topic the user has exhausted)
 * falls back to a uniformly random unseen item so generation always terminates.
 */
function unseen(draw: () => number, seen: Set<number>, rand: Random, numItems: number): number {
  for (let attempt = 0; attempt < 20; attempt++) {
    // The global sampler indexes popularity[0..numItems], where id 0 has weight 0 and is never drawn.
    const id = draw();
    if (id >= 1 && !seen.has(id)) return id;
  }
  for (;;) {
    const id = 1 + randomInt(rand, numItems);
    if (!seen.has(id)) return id;
  }
}
