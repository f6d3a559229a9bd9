// `collectivekv train` and `eval` for the zoo's next-item models (what they share with
// `bench quality` and `bench convert`: src/app/command/nextItem.ts).
import * as tf from '@tensorflow/tfjs-core';
import { useFastEmbeddingGradients } from '../../internal';
import { ZooModel, ZooModelFile, buildZooModel, loadZooModel, readZooModelFile, saveZooModel } from '../../zoo/sequential/nextItem';
import { fitNextItem } from '../../zoo/sequential/nextItemTraining';
import type { SasrecLoss } from '../../zoo/sequential/sasrecTraining';
import {
  NextItemArgs, UsageError, f4, filterNote, fitOptions, fitSummary, loadSplit, lossKind, modelName, modelOptions, requireModelDir,
  testMetrics, writeJson,
} from '../command/nextItem';

export type { NextItemArgs } from '../command/nextItem';
export { UsageError } from '../command/flags';

function attentionKind(value: string | undefined): 'mha' | 'collectivekv' {
  const a = value ?? 'mha';
  if (a !== 'mha' && a !== 'collectivekv') throw new UsageError(`unknown attention '${a}': expected mha or collectivekv`);
  return a;
}


// ---------------------------------------------------------------- train / eval

export async function trainCommand(a: NextItemArgs): Promise<number> {
  if (a.arm != null || a.switchByStep != null) throw new UsageError(`${a.arm != null ? '--arm' : '--switch-by-step'} applies to bench quality only`);
  if (a.training != null && attentionKind(a.attention) === 'mha') throw new UsageError('--training applies to --attention collectivekv only');
  // A new model's names are checked before the (slow) data read.
  const fresh = a.modelDir == null ? { name: modelName(a.model), attention: attentionKind(a.attention), loss: lossKind(a.loss) } : null;
  const split = await loadSplit(a.data, a.format);
  useFastEmbeddingGradients();
  const { m, loss, before } = fresh != null
    ? { m: buildZooModel(fresh.name, modelOptions(a, split.numItems, fresh.attention), fresh.loss), loss: fresh.loss, before: null }
    : await continuedModel(a, split.numItems);
  const name = m.name;
  const attention = m.options.attention ?? 'mha';
  a.log(`${a.data}: ${split.train.length} users, ${split.numItems} items; training ${name} (${attention}) on ${tf.getBackend()}`
    + (before != null ? `, continuing ${a.modelDir} (${before.epochs} epochs, ${before.steps} steps so far; the optimizer starts afresh)` : ''));
  try {
    const fit = fitNextItem(m, split, { ...fitOptions(a, `${name}/${attention}`), timeBudgetSeconds: (a.maxMinutes ?? 0) * 60,
      maxSteps: a.maxSteps ?? 0 });
    const test = testMetrics(m, split.test, a.filterHistory);
    const training = { epochs: (before?.epochs ?? 0) + fit.epochs, steps: (before?.steps ?? 0) + (fit.steps ?? 0),
      trainSeconds: (before?.trainSeconds ?? 0) + fit.trainSeconds };
    const summary = { model: name, attention, data: a.data, format: a.format, loss, options: m.options, test, bytesPerToken: m.bytesPerToken(), ...fitSummary(fit),
      ...(before != null ? { continuedFrom: a.modelDir, total: training } : {}) };
    a.log(`${name} (${attention}): test HR@10 ${f4(test.hr10)}, NDCG@10 ${f4(test.ndcg10)}, MRR@10 ${f4(test.mrr10)}${filterNote(test)}; ` +
      `${fit.epochs} epochs (best ${fit.bestEpoch}, stopped by ${fit.stoppedBy}), ${fit.trainSeconds.toFixed(0)} s; ${summary.bytesPerToken} cache bytes/token`
      + (before != null ? `; ${training.epochs} epochs, ${training.steps} steps, ${training.trainSeconds.toFixed(0)} s in all` : ''));
    if (a.out != null) {
      await saveZooModel(m, a.out, loss, training);
      a.log(`saved the model to ${a.out} (model.json, weights.bin, options.json)`);
    }
    writeJson(a.json, summary, a.log);
    return 0;
  } finally {
    m.dispose();
  }
}

/**
 * `train --model-dir DIR`: the saved model and its options; flags that would change the model are
 * refused rather than silently ignored.
 */
async function continuedModel(a: NextItemArgs, numItems: number): Promise<{ m: ZooModel; loss: SasrecLoss; before: ZooModelFile['training'] | null }> {
  const dir = a.modelDir as string;
  requireModelDir(dir);
  const fixed = { model: a.model, attention: a.attention, 'max-length': a.maxLength, 'hidden-dim': a.hiddenDim, blocks: a.blocks, heads: a.heads,
    dropout: a.dropout, 'pool-size': a.poolSize, 'user-dim': a.userDim, gate: a.gate, router: a.router, loss: a.loss };
  const given = Object.entries(fixed).filter(([, v]) => v != null).map(([k]) => `--${k}`);
  if (given.length > 0) throw new UsageError(`train --model-dir continues the saved model as it is; drop ${given.join(', ')}`);
  const file = readZooModelFile(dir);
  if (file.options.numItems !== numItems) {
    throw new UsageError(`--model-dir: the saved model scores ${file.options.numItems} items, ${a.data} has ${numItems} (train and continue on the same data)`);
  }
  return { m: await loadZooModel(dir), loss: file.loss, before: file.training ?? null };
}

export async function evalCommand(a: NextItemArgs): Promise<number> {
  const dir = a.modelDir ?? a.out;
  if (dir == null) throw new UsageError('eval needs --model-dir DIR (a directory written by `collectivekv train --out DIR`)');
  if (a.maxSteps != null) throw new UsageError('--max-steps applies to train only');
  if (a.arm != null || a.training != null || a.switchByStep != null) {
    throw new UsageError(`${a.arm != null ? '--arm' : a.training != null ? '--training' : '--switch-by-step'} applies to training commands, not eval`);
  }
  requireModelDir(dir);
  const split = await loadSplit(a.data, a.format);
  const m = await loadZooModel(dir);
  try {
    if (a.model != null && modelName(a.model) !== m.name) throw new UsageError(`--model ${a.model} does not match the saved model (${m.name}) in ${dir}`);
    if ((m.options.numItems ?? 0) < split.numItems) {
      throw new UsageError(`--data ${a.data}: ${split.numItems} items, but the model in ${dir} was trained for ${m.options.numItems}`);
    }
    const test = testMetrics(m, split.test, a.filterHistory);
    const out = { model: m.name, attention: m.options.attention ?? 'mha', modelDir: dir, data: a.data, format: a.format, test, bytesPerToken: m.bytesPerToken() };
    a.log(`${m.name} (${out.attention}) from ${dir}: test HR@10 ${f4(test.hr10)}, NDCG@10 ${f4(test.ndcg10)}, MRR@10 ${f4(test.mrr10)} over ${test.users} users${filterNote(test)}`);
    writeJson(a.json, out, a.log);
    return 0;
  } finally {
    m.dispose();
  }
}
