// Gradients of both layers (inputs and weights) against central finite differences, in training
// mode with the gate active and the auxiliary losses in the objective. Routes are kept far from
// ties (see helpers.separatedTokens) so no finite-difference step flips an argmax.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, finiteDifferenceError, randomTensor } from '../util/backends';
import { CollectiveKVAttention, MultiHeadAttention } from '../../layers/index';
import type { AttentionLayerBase } from '../../layers/index';
import { permutationRouter, routeMargin, separatedTokens, setWeight, weightGradError } from './helpers';

const TOL = 2e-3;

/** A scalar that depends on every output entry with distinct weights. */
function objective(layer: AttentionLayerBase, inputs: tf.Tensor | tf.Tensor[], probe: tf.Tensor): tf.Scalar {
  const y = layer.apply(inputs, { training: true }) as tf.Tensor;
  const main = tf.sum(tf.mul(y, probe)) as tf.Scalar;
  return layer instanceof CollectiveKVAttention ? tf.add(main, layer.auxiliaryLoss()) : main;
}

/** The weights whose gradient misses finite differences by TOL or more, with their errors. */
function tooFar(layer: AttentionLayerBase, names: string[], loss: () => tf.Scalar): [string, number][] {
  const errors = names.map((w): [string, number] => [w, weightGradError(layer, w, loss)]);
  if (process.env.SHOW_GRAD_ERRORS) console.log(errors);
  return errors.filter(([, e]) => !(e < TOL));
}

/** CollectiveKV over 4-wide tokens with a 4-row pool and routers that are 4 * permutations. */
function makeCollective(attention: 'softmax' | 'hstu'): CollectiveKVAttention {
  const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 2, poolSize: 4, userDim: 1, attention, causal: true,
    router: { kind: 'dense', peakWeight: 0.5, balanceWeight: 0.5 } });
  const x = tf.zeros([1, 1, 4]);
  layer.apply(x);
  x.dispose();
  setWeight(layer, 'key_router', permutationRouter([2, 0, 3, 1]));
  setWeight(layer, 'value_router', permutationRouter([1, 3, 0, 2]));
  return layer;
}

describeEachBackend('layers gradients', () => {
  for (const attention of ['softmax', 'hstu'] as const) {
    test(`CollectiveKVAttention ${attention}: d/d input and d/d weights match finite differences`, () => {
      const layer = makeCollective(attention);
      const x = separatedTokens(2, 3, 11);
      const probe = randomTensor([2, 3, 4], 12);
      const mask = tf.tensor2d([[1, 1, 1], [1, 1, 0]]);
      // Routes are flip-free: margins of both routers exceed any logit change of a 1e-2 step.
      for (const side of ['key', 'value'] as const) {
        const r = layer.route(side, x);
        expect(routeMargin(r.logits)).toBeGreaterThan(1);
        // both pools see several rows, so the gather gradient is exercised on more than one row
        expect(new Set(Array.from(r.index.dataSync())).size).toBeGreaterThan(1);
        tf.dispose([r.index, r.gate, r.logits]);
      }
      expect(finiteDifferenceError((xi) => objective(layer, [xi, xi, mask], probe), x)).toBeLessThan(TOL);
      const loss = () => objective(layer, [x, x, mask], probe);
      const names = ['key_pool', 'value_pool', 'key_router', 'value_router_bias', 'key_user_kernel', 'value_user_bias',
        'query_kernel', 'output_kernel'];
      expect(tooFar(layer, names, loss)).toEqual([]);
      tf.dispose([x, probe, mask]);
      layer.dispose();
    });

    test(`MultiHeadAttention ${attention}: d/d inputs and d/d weights match finite differences`, () => {
      const layer = new MultiHeadAttention({ numHeads: 2, keyDim: 2, valueDim: 3, attention });
      const q = randomTensor([2, 2, 3], 13);
      const kv = randomTensor([2, 3, 4], 14);
      const probe = randomTensor([2, 2, 3], 15);
      const mask = tf.tensor2d([[1, 1, 1], [1, 0, 1]]);
      expect(finiteDifferenceError((qi) => objective(layer, [qi, kv, mask], probe), q)).toBeLessThan(TOL);
      expect(finiteDifferenceError((ki) => objective(layer, [q, ki, mask], probe), kv)).toBeLessThan(TOL);
      const loss = () => objective(layer, [q, kv, mask], probe);
      expect(tooFar(layer, ['query_kernel', 'key_kernel', 'value_bias', 'output_kernel'], loss)).toEqual([]);
      tf.dispose([q, kv, probe, mask]);
      layer.dispose();
    });
  }

  test('the router learns through the gate: its gradient is non-zero with the aux losses off', () => {
    const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 2, poolSize: 4, router: { kind: 'dense', peakWeight: 0, balanceWeight: 0 } });
    const x = separatedTokens(1, 3, 16);
    layer.apply(x);
    setWeight(layer, 'key_router', permutationRouter([0, 1, 2, 3]));
    const variable = layer.weights.find((w) => w.name.endsWith('/key_router'))!.read() as tf.Variable;
    const { value, grads } = tf.variableGrads(() => tf.sum(layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, [variable]);
    expect(tf.max(tf.abs(grads[variable.name])).dataSync()[0]).toBeGreaterThan(1e-4);
    tf.dispose([value, grads[variable.name], x]);
    layer.dispose();
  });
});
