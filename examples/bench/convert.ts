// Converted vs baseline vs trained-from-scratch CollectiveKV SASRec (issue 7's target: a converted
// model fine-tuned for at most 20% of the baseline's epochs reaches >= 97% of its NDCG@10).
import * as tf from '@tensorflow/tfjs-core';
import {
  LeaveOneOutSplit, SequenceBatch, Sequences, batchTensor, copyWeightsByName, leaveOneOut, readSequences, swapAttention,
  trainingBatches, trainingExamples, useFastEmbeddingGradients, LayerConversionReport,
} from 'collectivekv';
import { SasrecOptions, buildSasrec } from '../zoo/sasrec';
import { evaluateSasrec, fitSasrec } from '../zoo/sasrecTraining';

export interface BenchConvertOptions {
  /** Interaction file (e.g. ML-1M's ml-1m.txt pairs); or `data` given directly. */
  dataPath?: string;
  data?: Sequences;
  maxLength?: number;
  hiddenDim?: number;
  numBlocks?: number;
  /** Baseline (and from-scratch) epochs at most. */
  epochs?: number;
  /** Fine-tune epochs of the converted model, as a fraction of the baseline's epochs run. Default 0.2. */
  fineTuneFraction?: number;
  poolSize?: number;
  userDim?: number;
  /** Users in the conversion sample. Default 512. */
  sampleUsers?: number;
  timeBudgetSeconds?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface BenchConvertRow {
  model: 'baseline mha' | 'converted (no fine-tune)' | 'converted + fine-tune' | 'collectivekv from scratch';
  epochs: number;
  testNdcg10: number;
  testHr10: number;
  seconds: number;
}

export interface BenchConvertResult {
  rows: BenchConvertRow[];
  conversion: LayerConversionReport[];
  /** converted + fine-tune NDCG@10 / baseline NDCG@10. */
  convertedRatio: number;
}

export async function benchConvert(options: BenchConvertOptions): Promise<BenchConvertResult> {
  const o = { maxLength: 50, hiddenDim: 32, numBlocks: 2, epochs: 10, fineTuneFraction: 0.2, poolSize: 256, userDim: 1, sampleUsers: 512,
    timeBudgetSeconds: 0, seed: 1, log: () => undefined, ...options };
  useFastEmbeddingGradients();
  const data = o.data ?? (o.dataPath != null ? await readSequences(o.dataPath) : null);
  if (data == null) throw new Error('benchConvert: give dataPath or data');
  const split = leaveOneOut(data);
  const sasrecOptions: SasrecOptions = { numItems: data.numItems, maxLength: o.maxLength, hiddenDim: o.hiddenDim, numBlocks: o.numBlocks,
    dropout: 0.2, seed: o.seed };
  const collective = { poolSize: o.poolSize, userDim: o.userDim, userActivation: 'linear' };
  const rows: BenchConvertRow[] = [];
  const fit = { maxEpochs: o.epochs, patience: 3, seed: o.seed, timeBudgetSeconds: o.timeBudgetSeconds,
    onEpoch: (r: { epoch: number; loss: number; validationNdcg10: number; seconds: number }) =>
      o.log(`  epoch ${r.epoch}: loss ${r.loss.toFixed(4)}, val NDCG@10 ${r.validationNdcg10.toFixed(4)} (${r.seconds.toFixed(0)} s)`) };

  o.log('baseline mha');
  const base = buildSasrec({ ...sasrecOptions, attention: 'mha' });
  const baseFit = fitSasrec(base, split, fit);
  rows.push(testRow('baseline mha', base, split, baseFit.epochs, baseFit.trainSeconds));

  o.log('convert');
  const start = performance.now();
  const sample = sampleIds(split, o.sampleUsers, o.maxLength, o.seed);
  const { model, layers } = swapAttention(base.model, { sample, ...collective, seed: o.seed });
  sample.dispose();
  const converted = buildSasrec({ ...sasrecOptions, attention: 'collectivekv', collective });
  copyWeightsByName(model, converted.model);
  model.dispose();
  const convertSeconds = (performance.now() - start) / 1000;
  for (const l of layers) o.log(`  ${l.layer}: routing agreement K ${l.key?.routingAgreement?.toFixed(3)} V ${l.value?.routingAgreement?.toFixed(3)}`);
  rows.push(testRow('converted (no fine-tune)', converted, split, 0, convertSeconds));
  const tuneEpochs = Math.max(1, Math.floor(o.fineTuneFraction * baseFit.epochs));
  const tuneFit = fitSasrec(converted, split, { ...fit, maxEpochs: tuneEpochs, timeBudgetSeconds: 0 });
  rows.push(testRow('converted + fine-tune', converted, split, tuneFit.epochs, convertSeconds + tuneFit.trainSeconds));

  o.log('collectivekv from scratch');
  const scratch = buildSasrec({ ...sasrecOptions, attention: 'collectivekv', collective: { poolSize: o.poolSize, userDim: o.userDim } });
  const scratchFit = fitSasrec(scratch, split, fit);
  rows.push(testRow('collectivekv from scratch', scratch, split, scratchFit.epochs, scratchFit.trainSeconds));
  [base.model, converted.model, scratch.model].forEach((m) => m.dispose());
  return { rows, conversion: layers, convertedRatio: rows[2].testNdcg10 / rows[0].testNdcg10 };
}

function testRow(model: BenchConvertRow['model'], sasrec: ReturnType<typeof buildSasrec>, split: LeaveOneOutSplit, epochs: number, seconds: number): BenchConvertRow {
  const r = evaluateSasrec(sasrec, split.test, { ks: [10] });
  return { model, epochs, testNdcg10: r.ndcg[10], testHr10: r.hr[10], seconds };
}

/** Padded training prefixes of `users` seeded users: the conversion sample. */
function sampleIds(split: LeaveOneOutSplit, users: number, maxLength: number, seed: number): tf.Tensor2D {
  const examples = trainingExamples(split.train, maxLength);
  const batch = trainingBatches(examples, users, seed).next().value as SequenceBatch;
  return batchTensor(batch.inputs, batch.batchSize, batch.maxLength);
}

export function formatBenchConvert(r: BenchConvertResult): string {
  const lines = ['model                       epochs  NDCG@10  HR@10   seconds'];
  for (const row of r.rows) {
    lines.push(`${row.model.padEnd(28)}${String(row.epochs).padStart(6)}  ${row.testNdcg10.toFixed(4)}   ${row.testHr10.toFixed(4)}  ${row.seconds.toFixed(0).padStart(7)}`);
  }
  lines.push(`converted + fine-tune / baseline NDCG@10 = ${(100 * r.convertedRatio).toFixed(1)}%`);
  return lines.join('\n');
}
