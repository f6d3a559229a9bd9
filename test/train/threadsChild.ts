// Child process of threads.test.ts (one wasm backend per process): starts the wasm backend on
// argv[2] threads, runs one small training step and prints one JSON line. It never calls
// process.exit: the parent checks that the process ends by itself (no worker holds it open).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
// tfjs-core's gradients (tfjs-layers registers them all, as the package's users get them).
import '@tensorflow/tfjs-layers';
import { useWasmThreads } from '../../src/train/threads';

/** Deterministic values in [-scale, scale): the same in every process, no RNG involved. */
function values(size: number, salt: number, scale: number): Float32Array {
  return Float32Array.from({ length: size }, (_, i) => scale * Math.sin(i * 0.7311 + salt * 1.37));
}

async function main(): Promise<void> {
  const n = Number(process.argv[2]);
  const threads = await useWasmThreads(n);
  await tf.setBackend('wasm');
  const [rows, inputs, hidden, classes] = [256, 128, 128, 10];
  const x = tf.tensor2d(values(rows * inputs, 1, 1), [rows, inputs]);
  const labels = tf.oneHot(tf.tensor1d(Int32Array.from({ length: rows }, (_, i) => (i * 7) % classes), 'int32'), classes);
  const w1 = tf.variable(tf.tensor2d(values(inputs * hidden, 2, 0.1), [inputs, hidden]), true, 'w1');
  const b1 = tf.variable(tf.zeros([hidden]), true, 'b1');
  const w2 = tf.variable(tf.tensor2d(values(hidden * classes, 3, 0.1), [hidden, classes]), true, 'w2');
  const b2 = tf.variable(tf.zeros([classes]), true, 'b2');
  const optimizer = tf.train.sgd(0.5);
  const before = tf.memory().numTensors;

  // A two-layer classifier: matMul (XNNPACK, threaded) + relu + softmax cross-entropy, its gradients, one SGD step.
  const { value, grads } = tf.variableGrads(() => {
    const h = tf.relu(tf.add(tf.matMul(x, w1), b1));
    return tf.losses.softmaxCrossEntropy(labels, tf.add(tf.matMul(h, w2), b2)) as tf.Scalar;
  });
  const loss = (await value.data())[0];
  const gradients: Record<string, number[]> = {};
  for (const [name, g] of Object.entries(grads)) gradients[name] = Array.from(await g.data());
  optimizer.applyGradients(grads);
  const after = tf.tidy(() => tf.losses.softmaxCrossEntropy(labels, tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2)));
  const lossAfter = (await after.data())[0];
  // Element-wise only: no kernel here splits a sum, so threads must not change a bit.
  const elementwise = tf.tidy(() => tf.add(tf.tanh(tf.mul(x, 1.7)), tf.exp(tf.neg(tf.abs(x)))));
  const elementwiseValues = Array.from(await elementwise.data());
  tf.dispose([value, after, elementwise, ...Object.values(grads)]);
  const leaked = tf.memory().numTensors - before;

  const again = await useWasmThreads(n);
  const other = await useWasmThreads(n === 1 ? 2 : 1).then(() => 'no error', (e: Error) => e.message);
  tf.dispose([x, labels, w1, b1, w2, b2]);
  optimizer.dispose();
  process.stdout.write(`${JSON.stringify({ threads, again, other, loss, lossAfter, gradients, elementwise: elementwiseValues, leaked })}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exitCode = 1;
});
