// The wasm backend on 1 thread against N threads (useWasmThreads), in Node:
//   npx tsx scripts/bench-threads.ts [--threads 2] [--rounds 9] [--batch 128] [--length 200] [--dim 64] [--attention mha|collectivekv]
// One wasm backend per process, so the parent starts one child per thread count and asks them in
// turn (alternating which goes first) for one timed run of each workload; it prints the medians and
// their ratio (and the best runs'), with the load average before and after: on a shared machine a
// busy core takes the second thread's gain (and more: pthreadpool waits on a descheduled thread), so rerun when it is idle.
// Workloads: a [1024,1024] x [1024,1024] matMul, and one SASRec training step (forward, backward and
// Adam of the zoo's SASRec, SASRec's BCE loss with one sampled negative), each ended by `await data()`.
import { ChildProcess, fork } from 'node:child_process';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { SequenceBatch, batchTensor, trainingBatches, trainingExamples, useFastEmbeddingGradients, useWasmThreads } from 'collectivekv';
import { buildSasrec, forward } from '../src/zoo/sequential/sasrec';
import { maskedMean, sumLosses } from '../src/zoo/sequential/sasrecTraining';

interface Options {
  threads: number;
  rounds: number;
  warmup: number;
  batch: number;
  length: number;
  dim: number;
  blocks: number;
  heads: number;
  items: number;
  attention: 'mha' | 'collectivekv';
  matmul: number;
}

const WORKLOADS = ['matmul', 'sasrec'] as const;
type Workload = (typeof WORKLOADS)[number];

function parseOptions(argv: string[]): Options {
  const o: Options = { threads: 2, rounds: 9, warmup: 2, batch: 128, length: 200, dim: 64, blocks: 2, heads: 2, items: 3416,
    attention: 'mha', matmul: 1024 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (key === 'child') { i++; continue; }
    if (!(key in o)) throw new Error(`bench-threads: unknown option ${argv[i]}`);
    const value = argv[++i];
    if (key === 'attention') {
      if (value !== 'mha' && value !== 'collectivekv') throw new Error(`bench-threads: --attention must be mha or collectivekv, got ${value}`);
      o.attention = value;
    } else {
      const v = Number(value);
      const least = key === 'warmup' ? 0 : 1;
      if (!Number.isInteger(v) || v < least) throw new Error(`bench-threads: --${key} must be an integer >= ${least}, got ${value}`);
      (o as unknown as Record<string, number>)[key] = v;
    }
  }
  return o;
}

// ---------------------------------------------------------------- child: one backend, timed on request

interface Request { workload: Workload }
interface Reply { workload: Workload; ms: number; loss?: number }

async function child(threads: number, o: Options): Promise<void> {
  const actual = await useWasmThreads(threads);
  await tf.setBackend('wasm');
  useFastEmbeddingGradients();
  const a = tf.randomNormal([o.matmul, o.matmul], 0, 1, 'float32', 1);
  const b = tf.randomNormal([o.matmul, o.matmul], 0, 1, 'float32', 2);
  const sasrec = buildSasrec({ numItems: o.items, maxLength: o.length, hiddenDim: o.dim, numBlocks: o.blocks, numHeads: o.heads,
    dropout: 0.2, attention: o.attention, collective: { poolSize: 1024, userDim: 1 }, seed: 1 });
  const optimizer = tf.train.adam(1e-3);
  const batch = syntheticBatch(o.batch, o.length, o.items);
  const ids = batchTensor(batch.inputs, batch.batchSize, batch.maxLength);
  const targets = batchTensor(batch.targets, batch.batchSize, batch.maxLength);
  const negatives = tf.tensor2d(Int32Array.from(batch.targets, (_, i) => 1 + ((i * 7919) % o.items)), [batch.batchSize, batch.maxLength], 'int32');
  const variables = sasrec.model.trainableWeights.map((w) => w.read() as tf.Variable);

  const run = async (workload: Workload): Promise<Reply> => {
    const start = performance.now();
    if (workload === 'matmul') {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
      return { workload, ms: performance.now() - start };
    }
    const total = optimizer.minimize(() => {
      const hidden = forward(sasrec.parts, ids, { training: true });
      const table = sasrec.parts.itemEmbedding.getWeights()[0];
      const score = (items: tf.Tensor) => tf.sum(tf.mul(hidden, tf.gather(table, items)), -1);
      const perPosition = tf.add(tf.softplus(tf.neg(score(targets))), tf.softplus(score(negatives)));
      return tf.add(maskedMean(perPosition, targets), sumLosses(sasrec.model.calculateLosses())) as tf.Scalar;
    }, true, variables) as tf.Scalar;
    const loss = (await total.data())[0];
    total.dispose();
    return { workload, ms: performance.now() - start, loss };
  };

  process.on('message', (m: Request) => {
    run(m.workload).then((r) => process.send?.(r), (e) => {
      console.error(`child (${threads} threads): ${(e as Error).stack}`);
      process.exit(1);
    });
  });
  process.send?.({ ready: true, threads: actual, tensors: tf.memory().numTensors });
}

/** Full-length random sequences (every position valid), as examples/bench/ops.ts's step uses. */
function syntheticBatch(batch: number, length: number, numItems: number): SequenceBatch {
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const train = Array.from({ length: batch }, () => Array.from({ length: length + 1 }, () => 1 + (next() % numItems)));
  return trainingBatches(trainingExamples(train, length), batch, 0).next().value as SequenceBatch;
}

// ---------------------------------------------------------------- parent: alternate, report medians

function startChild(threads: number, argv: string[]): Promise<{ proc: ChildProcess; threads: number }> {
  const proc = fork(process.argv[1], ['--child', String(threads), ...argv], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    proc.once('message', (m: { ready: boolean; threads: number }) => resolve({ proc, threads: m.threads }));
    proc.once('exit', (code) => reject(new Error(`child for ${threads} thread(s) exited with ${code} before it was ready`)));
  });
}

function ask(proc: ChildProcess, workload: Workload): Promise<Reply> {
  return new Promise((resolve) => {
    proc.once('message', (r: Reply) => resolve(r));
    proc.send({ workload } satisfies Request);
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function parent(o: Options, argv: string[]): Promise<void> {
  console.log(`bench-threads: ${os.cpus().length} logical cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}`);
  console.log(`  matMul [${o.matmul},${o.matmul}]x[${o.matmul},${o.matmul}]; SASRec step B=${o.batch} L=${o.length} d=${o.dim} `
    + `blocks=${o.blocks} heads=${o.heads} items=${o.items} attention=${o.attention}; ${o.warmup} warm-up + ${o.rounds} rounds`);
  const loadBefore = load();
  const one = await startChild(1, argv);
  const many = await startChild(o.threads, argv);
  console.log(`  children ready: ${one.threads} and ${many.threads} XNNPACK thread(s); load average ${loadBefore} -> ${load()}`);
  const times: Record<Workload, [number[], number[]]> = { matmul: [[], []], sasrec: [[], []] };
  const losses: [number[], number[]] = [[], []];
  try {
    for (const workload of WORKLOADS) {
      for (let r = 0; r < o.warmup + o.rounds; r++) {
        const order = r % 2 === 0 ? [0, 1] : [1, 0];
        for (const k of order) {
          const reply = await ask(k === 0 ? one.proc : many.proc, workload);
          if (r >= o.warmup) times[workload][k].push(reply.ms);
          if (reply.loss != null) losses[k].push(reply.loss);
        }
      }
      const [t1, tn] = times[workload].map(median);
      const [m1, mn] = times[workload].map((t) => Math.min(...t));
      console.log(`  ${workload.padEnd(7)} median: 1 thread ${t1.toFixed(1).padStart(8)} ms | ${many.threads} threads ${tn.toFixed(1).padStart(8)} ms `
        + `| ratio ${(t1 / tn).toFixed(2)}x;  best: ${m1.toFixed(1)} | ${mn.toFixed(1)} ms, ratio ${(m1 / mn).toFixed(2)}x`);
      console.log(`          runs 1: ${times[workload][0].map((t) => t.toFixed(0)).join(' ')}; `
        + `${many.threads}: ${times[workload][1].map((t) => t.toFixed(0)).join(' ')}`);
    }
  } finally {
    one.proc.kill();
    many.proc.kill();
  }
  if (losses[0].length > 0) console.log(`  first step losses: 1 thread ${losses[0][0]}, ${many.threads} threads ${losses[1][0]}`);
  console.log(`  load average after: ${load()} (1, 5, 15 min)`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = parseOptions(argv);
  const c = argv.indexOf('--child');
  if (c >= 0) await child(Number(argv[c + 1]), o);
  else await parent(o, argv);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
