// Route B prototype: data-parallel SASRec step over worker_threads, gradients summed through a SharedArrayBuffer.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { SequenceBatch, batchTensor, trainingBatches, trainingExamples, useFastEmbeddingGradients } from 'collectivekv';
import { buildSasrec, forward } from '../src/zoo/sequential/sasrec';

const B = Number(process.env.B ?? 128), L = Number(process.env.L ?? 200), D = 64, ITEMS = 3416;

function syntheticBatch(batch: number, length: number, numItems: number): SequenceBatch {
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const train = Array.from({ length: batch }, () => Array.from({ length: length + 1 }, () => 1 + (next() % numItems)));
  return trainingBatches(trainingExamples(train, length), batch, 0).next().value as SequenceBatch;
}

async function setup(rows: [number, number]) {
  await tf.setBackend('wasm'); useFastEmbeddingGradients();
  const sasrec = buildSasrec({ numItems: ITEMS, maxLength: L, hiddenDim: D, numBlocks: 2, numHeads: 2, dropout: 0, attention: 'mha', seed: 1 });
  const optimizer = tf.train.adam(1e-3);
  const batch = syntheticBatch(B, L, ITEMS);
  const [r0, r1] = rows; const n = r1 - r0;
  const slice = (a: Int32Array) => a.slice(r0 * L, r1 * L);
  const ids = batchTensor(slice(batch.inputs), n, L), targets = batchTensor(slice(batch.targets), n, L);
  const negAll = Int32Array.from(batch.targets, (_, i) => 1 + ((i * 7919) % ITEMS));
  const negatives = tf.tensor2d(slice(negAll), [n, L], 'int32');
  const totalValid = batch.targets.reduce((s, t) => s + (t !== 0 ? 1 : 0), 0);
  const variables = sasrec.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const lossFn = () => {
    const hidden = forward(sasrec.parts, ids, { training: true });
    const table = sasrec.parts.itemEmbedding.getWeights()[0];
    const score = (it: tf.Tensor) => tf.sum(tf.mul(hidden, tf.gather(table, it)), -1);
    const per = tf.add(tf.softplus(tf.neg(score(targets))), tf.softplus(score(negatives)));
    const valid = tf.cast(tf.notEqual(targets, 0), 'float32');
    return tf.div(tf.sum(tf.mul(per, valid)), totalValid) as tf.Scalar;
  };
  return { sasrec, optimizer, variables, lossFn };
}

if (isMainThread && (process.argv[2] === 'single' || process.argv[2] === 'threads2')) {
  (async () => {
    if (process.argv[2] === 'threads2') await (await import('../src/train/threads')).useWasmThreads(2);
    const s = await setup([0, B]);
    if (process.send) {
      process.on('message', async () => { const t0 = performance.now(); const total = s.optimizer.minimize(s.lossFn, true, s.variables) as tf.Scalar;
        const loss = (await total.data())[0]; total.dispose(); process.send!({ ms: performance.now() - t0, loss }); });
      process.send({ ready: true }); return;
    }
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      const total = s.optimizer.minimize(s.lossFn, true, s.variables) as tf.Scalar;
      const loss = (await total.data())[0]; total.dispose();
      times.push(performance.now() - t0); if (i < 2) console.log('single loss', loss);
    }
    console.log('single ms', times.map((t) => t.toFixed(0)).join(' '));
  })();
} else if (isMainThread) {
  (async () => {
    const W = Number(process.env.W ?? 2); await tf.setBackend('wasm');
    // size the SAB: count params
    const probe = buildSasrec({ numItems: ITEMS, maxLength: L, hiddenDim: D, numBlocks: 2, numHeads: 2, dropout: 0, attention: 'mha', seed: 1 });
    const P = probe.model.trainableWeights.reduce((s, w) => s + w.shape.reduce((a, b) => a * (b as number), 1), 0);
    probe.model.dispose();
    const sab = new SharedArrayBuffer(4 * W * P + 64);
    const workers = Array.from({ length: W }, (_, k) => new Worker(`require('tsx/cjs'); require(${JSON.stringify(__filename)});`, { eval: true, workerData: { k, W, P, sab, rows: [k * B / W, (k + 1) * B / W] } }));
    const ready = workers.map((w) => new Promise((r) => w.once('message', r)));
    await Promise.all(ready);
    if (process.send) {
      let step = 0;
      process.on('message', async () => { step++; const t0 = performance.now();
        const done = workers.map((w) => new Promise<{ loss: number }>((r) => w.once('message', r)));
        workers.forEach((w) => w.postMessage({ step })); const res = await Promise.all(done);
        process.send!({ ms: performance.now() - t0, loss: res.reduce((a, r) => a + r.loss, 0) }); });
      process.on('disconnect', () => workers.forEach((w) => w.terminate()));
      process.send({ ready: true }); return;
    }
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      const done = workers.map((w) => new Promise<{ loss: number }>((r) => w.once('message', r)));
      workers.forEach((w) => w.postMessage({ step: i + 1 }));
      const res = await Promise.all(done);
      times.push(performance.now() - t0);
      if (i < 2) console.log('dp loss', res[0].loss + res[1].loss, res.map((r) => r.loss));
    }
    console.log(`dp(${W}) ms`, times.map((t) => t.toFixed(0)).join(' '), 'P', P, 'load', os.loadavg()[0].toFixed(2));
    workers.forEach((w) => w.terminate());
  })();
} else {
  (async () => {
    const { k, W, P, sab, rows } = workerData as { k: number; W: number; P: number; sab: SharedArrayBuffer; rows: [number, number] };
    const s = await setup(rows);
    const slots = new Float32Array(sab, 64, W * P);
    const ctl = new Int32Array(sab, 0, 16);
    parentPort!.postMessage('ready');
    parentPort!.on('message', async ({ step }: { step: number }) => {
      const { value, grads } = tf.variableGrads(s.lossFn, s.variables);
      const loss = (await value.data())[0];
      let off = k * P;
      for (const v of s.variables) { const g = await grads[v.name].data() as Float32Array; slots.set(g, off); off += g.length; }
      tf.dispose([value, ...Object.values(grads)]);
      // barrier
      Atomics.add(ctl, 0, 1); Atomics.notify(ctl, 0);
      while (Atomics.load(ctl, 0) < W * step) Atomics.wait(ctl, 0, Atomics.load(ctl, 0), 10);
      // sum in fixed order, apply
      const named: tf.NamedTensorMap = {};
      off = 0;
      for (const v of s.variables) {
        const size = v.size; const sum = new Float32Array(size);
        for (let j = 0; j < W; j++) { const sl = slots.subarray(j * P + off, j * P + off + size); for (let t = 0; t < size; t++) sum[t] += sl[t]; }
        named[v.name] = tf.tensor(sum, v.shape); off += size;
      }
      s.optimizer.applyGradients(named);
      tf.dispose(Object.values(named));
      // second barrier so no worker overwrites its slot before others have read it
      Atomics.add(ctl, 1, 1); Atomics.notify(ctl, 1);
      while (Atomics.load(ctl, 1) < W * step) Atomics.wait(ctl, 1, Atomics.load(ctl, 1), 10);
      parentPort!.postMessage({ loss });
    });
  })();
}
