// The design card's blocks compose: a target-attention block of one's own, built from query and
// output projections (tfjs dense layers), a GlobalKVPool and a UserKVProjector per side and the
// attention op, gives CollectiveKVAttention's outputs and routing losses on the same weights, for
// both routers, at inference and in training. And CollectiveKVAttention is built from those blocks:
// side(s) returns them, their weights named under the layer.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';
import { dotProductAttention } from '../../ops/index';
import { CollectiveKVAttention, GlobalKVPool, RouterSpec, UserKVProjector } from '../../layers/index';
import { weightBySuffix } from './helpers';

const [HEADS, KEY_DIM, USER_DIM, POOL, QUERY_WIDTH, EVENT_WIDTH] = [2, 3, 1, 9, 5, 4];

/** DIN-style target attention from the blocks: the candidate [B, 1, dq] attends over the events [B, T, de]. */
class MyTargetAttention {
  readonly query = tfl.layers.dense({ units: HEADS * KEY_DIM });
  readonly output = tfl.layers.dense({ units: QUERY_WIDTH });
  readonly pools: Record<'key' | 'value', GlobalKVPool>;
  readonly users: Record<'key' | 'value', UserKVProjector>;

  constructor(router: RouterSpec) {
    const pool = () => new GlobalKVPool({ units: HEADS * KEY_DIM - USER_DIM, poolSize: POOL, router });
    const user = () => new UserKVProjector({ units: USER_DIM });
    this.pools = { key: pool(), value: pool() };
    this.users = { key: user(), value: user() };
  }

  /** Output [B, 1, dq] and the routing loss of a training call. */
  forward(candidate: tf.Tensor, events: tf.Tensor, mask: tf.Tensor, training: boolean): { y: tf.Tensor; loss: tf.Scalar } {
    const side = (s: 'key' | 'value') => tf.concat([
      this.pools[s].apply(events, { training, mask }) as tf.Tensor, this.users[s].apply(events) as tf.Tensor], -1);
    const attended = dotProductAttention(this.query.apply(candidate) as tf.Tensor, side('key'), side('value'), { numHeads: HEADS, mask });
    const loss = tf.add(this.pools.key.auxiliaryLoss(), this.pools.value.auxiliaryLoss()) as tf.Scalar;
    return { y: this.output.apply(attended) as tf.Tensor, loss };
  }

  layers(): tfl.layers.Layer[] {
    return [this.query, this.output, this.pools.key, this.pools.value, this.users.key, this.users.value];
  }
}

/** Writes the CollectiveKVAttention's weights into the blocks (by name: key_pool -> the key pool's pool, ...). */
function copyWeights(from: CollectiveKVAttention, to: MyTargetAttention): void {
  const copy = (layer: tfl.layers.Layer, names: string[]) => layer.setWeights(names.map((n) => weightBySuffix(from, n).read()));
  copy(to.query, ['query_kernel', 'query_bias']);
  copy(to.output, ['output_kernel', 'output_bias']);
  for (const s of ['key', 'value'] as const) {
    copy(to.pools[s], to.pools[s].weights.map((w) => `${s}_${w.name.split('/').pop()?.replace(/_\d+$/, '')}`));
    copy(to.users[s], [`${s}_user_kernel`, `${s}_user_bias`]);
  }
}

describeEachBackend('composing the blocks', () => {
  const routers: Array<[string, RouterSpec]> = [
    ['dense', { kind: 'dense', peakWeight: 0.3, balanceWeight: 0.7 }],
    ['dense, straight-through gate', { kind: 'dense', gate: 'straight-through' }],
    ['nearest-product', { kind: 'nearest-product', quantizationWeight: 0.5 }],
  ];
  test.each(routers)('a target attention of GlobalKVPool + UserKVProjector equals CollectiveKVAttention (%s router)', (_, router) => {
    const candidate = randomTensor([3, 1, QUERY_WIDTH], 1, 1);
    const events = randomTensor([3, 6, EVENT_WIDTH], 2, 1);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]]);
    const layer = new CollectiveKVAttention({ numHeads: HEADS, keyDim: KEY_DIM, userDim: USER_DIM, poolSize: POOL, router, poolSeed: 1 });
    // One training call first: the nearest-product pools start from the data (then both sides copy them, flag included).
    tf.tidy(() => { layer.apply([candidate, events, mask], { training: true }); layer.auxiliaryLoss(); });
    const mine = new MyTargetAttention(router);
    tf.tidy(() => { mine.forward(candidate, events, mask, false); }); // builds the blocks
    copyWeights(layer, mine);
    for (const training of [false, true]) {
      tf.tidy(() => {
        const want = layer.apply([candidate, events, mask], { training }) as tf.Tensor;
        const wantLoss = layer.auxiliaryLoss();
        const got = mine.forward(candidate, events, mask, training);
        expect(maxAbsDiff(got.y, want)).toBeLessThan(1e-5);
        expect(Math.abs(got.loss.dataSync()[0] - wantLoss.dataSync()[0])).toBeLessThan(1e-5);
        if (training) expect(wantLoss.dataSync()[0]).toBeGreaterThan(0);
      });
    }
    tf.dispose([candidate, events, mask]);
    layer.dispose();
    mine.layers().forEach((l) => l.dispose());
  });

  test("CollectiveKVAttention's sides are its blocks: side() returns them, their weights named under the layer, listed by it", () => {
    const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 3, userDim: 2, poolSize: 9, share: 'k', name: 'att' });
    const x = randomTensor([2, 4, 5], 3, 1);
    const input = tfl.input({ shape: [4, 5] });
    const model = tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor });
    tf.tidy(() => { model.predict(x); });
    const { pool, user } = layer.side('key');
    expect(pool).toBeInstanceOf(GlobalKVPool);
    expect(user).toBeInstanceOf(UserKVProjector);
    expect(pool.weights.map((w) => w.originalName)).toEqual(['att/key_pool', 'att/key_router', 'att/key_router_bias']);
    expect(user.weights.map((w) => w.originalName)).toEqual(['att/key_user_kernel', 'att/key_user_bias']);
    expect(layer.weights.map((w) => w.originalName)).toEqual(['att/query_kernel', 'att/query_bias', 'att/key_pool', 'att/key_router',
      'att/key_router_bias', 'att/key_user_kernel', 'att/key_user_bias', 'att/key_warmup_kernel', 'att/key_warmup_bias', 'att/value_kernel', 'att/value_bias', 'att/output_kernel', 'att/output_bias']);
    expect(model.trainableWeights).toHaveLength(13);
    expect(() => layer.side('value')).toThrow(/'side' must be a shared side \(share is 'k'\), received "value"/);
    // Freezing the layer freezes its blocks' weights too; model.fit would then leave them alone.
    layer.trainable = false;
    expect(layer.trainableWeights).toHaveLength(0);
    expect(layer.nonTrainableWeights).toHaveLength(13);
    expect(model.trainableWeights).toHaveLength(0);
    layer.trainable = true;
    expect(model.trainableWeights).toHaveLength(13);
    const before = tf.memory().numTensors;
    model.dispose();
    expect(tf.memory().numTensors).toBe(before - 13); // every weight, the blocks' included
    x.dispose();
  });
});
