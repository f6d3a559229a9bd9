// The zoo's next-item models behind one interface (what `collectivekv train|eval|bench quality`
// use): build by name, train, score, cache bytes, and save/load as tfjs model files plus a small
// JSON with the model options (tfjs's `save('file://DIR')` / `loadLayersModel('file://DIR/model.json')`).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { CollectiveKVAttention, MultiHeadAttention, SequenceBatch, trainingBatches, trainingExamples, type CacheValueFormat } from '../../internal';
import { Sasrec, buildSasrec, scoreNext, scoreNextCached } from './sasrec';
import { SasrecOptions } from './blocks';
import { SasrecLoss, hostStep, sasrecHost } from './sasrecTraining';
import { Bert4rec, Bert4recOptions, bert4recHost, bert4recScoreNext, buildBert4rec, clozeBatches } from './bert4rec';
import { Hstu, buildHstu, hstuHost, hstuScoreNext, hstuScoreNextCached } from './hstu';
import { LENGTH_BUCKETS, NextItemTrainable } from './nextItemTraining';
import { readJsonFile, registerFileIO } from '../fileIO';

export const ZOO_MODELS = ['sasrec', 'bert4rec', 'hstu'] as const;
export type ZooModelName = (typeof ZOO_MODELS)[number];

/** Options of every zoo model (BERT4Rec's masking options are ignored by the others). */
export type ZooModelOptions = Bert4recOptions;

export interface ZooModel extends NextItemTrainable<SequenceBatch> {
  name: ZooModelName;
  options: ZooModelOptions;
  /** Cached-decode scores, for the causal models (SASRec, HSTU); undefined for BERT4Rec. */
  scoreNextCached?: (ids: tf.Tensor2D) => tf.Tensor2D;
  /**
   * Stored bytes per cached token, summed over the attention layers, in `format` (default fp32, the
   * figure train and bench quality report; the cache itself stores fp16 unless told otherwise).
   */
  bytesPerToken(format?: CacheValueFormat): number;
  dispose(): void;
}

export function checkModelName(name: string): ZooModelName {
  if (!(ZOO_MODELS as readonly string[]).includes(name)) {
    throw new Error(`unknown model '${name}': expected one of ${ZOO_MODELS.join(', ')}`);
  }
  return name as ZooModelName;
}

/** Builds a zoo model by name; `loss` applies to the causal models' training (BERT4Rec's cloze loss is softmax). */
export function buildZooModel(name: ZooModelName, options: ZooModelOptions, loss: SasrecLoss = 'softmax'): ZooModel {
  if (name === 'sasrec') return wrapSasrec(buildSasrec(options as SasrecOptions), options, loss);
  if (name === 'hstu') return wrapHstu(buildHstu(options as SasrecOptions), options, loss);
  if (name === 'bert4rec') return wrapBert4rec(buildBert4rec(options), options);
  throw new Error(`unknown model '${String(name)}': expected one of ${ZOO_MODELS.join(', ')}`);
}

function causalBatches(maxLength: number) {
  return (train: readonly (readonly number[])[], batchSize: number, seed: number, epoch: number) =>
    trainingBatches(trainingExamples(train, maxLength), batchSize, seed, epoch, LENGTH_BUCKETS);
}

function common(model: tfl.LayersModel, maxLength: number) {
  return {
    model, maxLength,
    batchRows: (batch: SequenceBatch) => batch.batchSize,
    bytesPerToken: (format: CacheValueFormat = 'fp32') => attentionBytesPerToken(model, format),
    dispose: () => model.dispose(),
  };
}

function wrapSasrec(m: Sasrec, options: ZooModelOptions, loss: SasrecLoss): ZooModel {
  const host = sasrecHost(m);
  return { ...common(m.model, m.options.maxLength), name: 'sasrec', options,
    batches: causalBatches(m.options.maxLength),
    step: (optimizer, batch, seed) => hostStep(host, optimizer, batch, loss, seed),
    scoreNext: (ids) => scoreNext(m, ids), scoreNextCached: (ids) => scoreNextCached(m, ids) };
}

function wrapHstu(m: Hstu, options: ZooModelOptions, loss: SasrecLoss): ZooModel {
  const host = hstuHost(m);
  return { ...common(m.model, m.options.maxLength), name: 'hstu', options,
    batches: causalBatches(m.options.maxLength),
    step: (optimizer, batch, seed) => hostStep(host, optimizer, batch, loss, seed),
    scoreNext: (ids) => hstuScoreNext(m, ids), scoreNextCached: (ids) => hstuScoreNextCached(m, ids) };
}

function wrapBert4rec(m: Bert4rec, options: ZooModelOptions): ZooModel {
  const host = bert4recHost(m);
  // The last input slot holds the mask token, so a history's last maxLength - 1 items are read.
  return { ...common(m.model, m.options.maxLength), name: 'bert4rec', options, historyWindow: Math.max(1, m.options.maxLength - 1),
    batches: (train, batchSize, seed, epoch) => clozeBatches(m, train, batchSize, seed, epoch),
    step: (optimizer, batch, seed) => hostStep(host, optimizer, batch, 'softmax', seed),
    scoreNext: (ids) => bert4recScoreNext(m, ids) };
}

/**
 * Bytes per cached token of a model's attention layers in `format` (default fp32; the cache stores
 * fp16 by default), read from real cache blocks of a one-token probe (the figure depends on the
 * layer configuration only).
 */
export function attentionBytesPerToken(model: tfl.LayersModel, format: CacheValueFormat = 'fp32'): number {
  let bytes = 0;
  for (const layer of model.layers) {
    if (!(layer instanceof MultiHeadAttention || layer instanceof CollectiveKVAttention)) continue;
    const width = (layer.input as tfl.SymbolicTensor[])[0].shape[2] as number;
    const probe = tf.zeros([1, 1, width]);
    const block = layer.computeCache(probe);
    bytes += block.bytesPerToken(format);
    block.dispose();
    probe.dispose();
  }
  return bytes;
}

// ---------------------------------------------------------------- files

/** DIR/options.json: which model and its options, next to tfjs's model.json + weights. */
export interface ZooModelFile {
  format: 'collectivekv-zoo/1';
  model: ZooModelName;
  options: ZooModelOptions;
  loss: SasrecLoss;
  /** How the saved weights were trained (absent in files written before it was recorded). */
  training?: { epochs: number; steps: number; trainSeconds: number };
}

/** Writes DIR/model.json, DIR/weights.bin (tfjs's save to file://DIR) and DIR/options.json. */
export async function saveZooModel(m: ZooModel, dir: string, loss: SasrecLoss = 'softmax', training?: ZooModelFile['training']): Promise<void> {
  registerFileIO();
  await m.model.save(`file://${dir}`);
  const fs = await import('node:fs');
  const file: ZooModelFile = { format: 'collectivekv-zoo/1', model: m.name, options: withCurrentPhase(m), loss, ...(training ? { training } : {}) };
  fs.writeFileSync(`${dir}/options.json`, `${JSON.stringify(file, null, 2)}\n`);
}

/** The options with the attention layers' phase now (the recipe switches them during training), so a reload rebuilds that phase. */
function withCurrentPhase(m: ZooModel): ZooModelOptions {
  const phases = new Set(m.model.layers.filter((l): l is CollectiveKVAttention => l instanceof CollectiveKVAttention).map((l) => l.kvPhase));
  if (phases.size !== 1 || m.options.collective == null) return m.options;
  const [kvPhase] = phases;
  const { kvPhase: _started, ...collective } = m.options.collective;
  return { ...m.options, collective: kvPhase === 'full' ? { ...collective, kvPhase } : collective };
}

/** DIR/options.json, checked. */
export function readZooModelFile(dir: string): ZooModelFile {
  const file = readJsonFile<ZooModelFile>(`${dir}/options.json`, 'the model options written by `collectivekv train --out`');
  if (file.format !== 'collectivekv-zoo/1') {
    throw new Error(`${dir}/options.json: expected format 'collectivekv-zoo/1', received ${JSON.stringify(file.format)}`);
  }
  checkModelName(file.model);
  return file;
}

/**
 * Loads a directory written by saveZooModel: rebuilds the model from options.json (so training,
 * cached decode and the wrappers work) and copies the weights of tfjs's loadLayersModel into it.
 */
export async function loadZooModel(dir: string): Promise<ZooModel> {
  const file = readZooModelFile(dir);
  const m = buildZooModel(file.model, file.options, file.loss);
  try {
    await loadWeightsInto(dir, m.model, file.model);
  } catch (e) {
    m.dispose();
    throw e;
  }
  return m;
}

/** DIR's SASRec as the zoo's Sasrec (its parts, not only the LayersModel), and its options file. */
export async function loadSasrec(dir: string): Promise<{ sasrec: Sasrec; file: ZooModelFile }> {
  const file = readZooModelFile(dir);
  if (file.model !== 'sasrec') throw new Error(`${dir}/options.json: expected a sasrec model, received ${file.model}`);
  const sasrec = buildSasrec(file.options as SasrecOptions);
  try {
    await loadWeightsInto(dir, sasrec.model, file.model);
  } catch (e) {
    sasrec.model.dispose();
    throw e;
  }
  return { sasrec, file };
}

/** Copies the weights of DIR/model.json into `model`, which must have the same architecture. */
async function loadWeightsInto(dir: string, model: tfl.LayersModel, name: string): Promise<void> {
  registerFileIO();
  const loaded = await tfl.loadLayersModel(`file://${dir}/model.json`);
  try {
    const weights = loaded.getWeights();
    if (weights.length !== model.weights.length) {
      throw new Error(`${dir}/model.json: ${weights.length} weights, a ${name} with these options has ${model.weights.length}`);
    }
    model.setWeights(weights);
  } finally {
    loaded.dispose();
  }
}
