// The model zoo, `collectivekv/zoo`: a deliberate list (test/zoo/api.test.ts holds it). The
// next-item models SASRec, BERT4Rec and HSTU, the CTR models DIN, SIM, ETA, SDIM, TWIN and
// HSTU-CTR, each with MultiHeadAttention or CollectiveKVAttention, and what trains, evaluates,
// converts, saves and serves them. Node only (saving and loading read and write files).
// Importing it registers the zoo's own layer classes (for tf.loadLayersModel) and, through the
// library it imports, everything the main entry registers.
/**
 * The model zoo: SASRec, BERT4Rec, HSTU and the CTR models with MultiHeadAttention or CollectiveKVAttention.
 * @module collectivekv/zoo
 */

// Next-item models behind one interface: build by name, train, score, save and load.
export { ZOO_MODELS, buildZooModel, loadZooModel, readZooModelFile, saveZooModel, attentionBytesPerToken } from './sequential/nextItem';
export type { ZooModel, ZooModelFile, ZooModelName, ZooModelOptions } from './sequential/nextItem';

// The models themselves: builders, scoring and cached decode.
export { buildSasrec, decodeStep, disposeCache, prefill, scoreNext, scoreNextCached } from './sequential/sasrec';
export type { Sasrec, SasrecCache } from './sequential/sasrec';
export { buildBert4rec, bert4recScoreNext } from './sequential/bert4rec';
export type { Bert4rec, Bert4recOptions, ResolvedBert4recOptions } from './sequential/bert4rec';
export { buildHstu, disposeHstuCache, hstuDecodeStep, hstuPrefill, hstuScoreNext, hstuScoreNextCached } from './sequential/hstu';
export type { Hstu, HstuCache, HstuOptions } from './sequential/hstu';
export type { CollectiveOptions, ResolvedSasrecOptions, SasrecOptions } from './sequential/blocks';

// Next-item training and evaluation (full ranking, the library's trainLoop).
export { fitNextItem, evaluateNextItem } from './sequential/nextItemTraining';
export type { EpochReport, EvaluateOptions, FitResult, NextItemFitOptions, NextItemTrainable, TrainStepResult } from './sequential/nextItemTraining';
export { SASREC_LOSSES, evaluateSasrec, fitSasrec, trainStep } from './sequential/sasrecTraining';
export type { FitOptions, SasrecLoss } from './sequential/sasrecTraining';

// Conversion of a trained mha model (new models train by the recipe: fitNextItem, docs/recipe.md).
export { convertTrainedModel, convertZooModel } from './sequential/conversion';
export type { ConversionOptions } from './sequential/conversion';

// Serving SASRec from a cache store (a CacheEngine's recommender).
export { SasrecRecommender } from './sequential/sasrecRecommender';
export type { SasrecRecommenderDerived, SasrecRecommenderOptions } from './sequential/sasrecRecommender';

// CTR models: the swap is `attention: 'mha' | 'collectivekv'`; nothing else changes.
export { Din, buildDin } from './ctr/din';
export { Sim, buildSim } from './ctr/sim';
export { Eta, buildEta } from './ctr/eta';
export type { EtaOptions } from './ctr/eta';
export { Sdim, buildSdim } from './ctr/sdim';
export type { SdimOptions } from './ctr/sdim';
export { Twin, buildTwin } from './ctr/twin';
export { HstuCtr, buildHstuCtr } from './ctr/hstuCtr';
export type { HstuCtrOptions } from './ctr/hstuCtr';
export { cacheBytesPerToken as ctrCacheBytesPerToken } from './ctr/common';
export type { CtrAttention, CtrInputs, CtrModel, CtrModelOptions, ResolvedCtrModelOptions } from './ctr/common';

// CTR samples, training, evaluation and conversion.
export { ctrSamples, withSyntheticEventFeatures } from '../internal';
export type { CtrEventLog, CtrLabelRule, CtrMetrics, CtrSample, CtrSampleOptions, CtrSplit } from '../internal';
export { evaluateCtr, fitCtr, predictCtr } from './ctr/training';
export type { CtrEpochReport, CtrFitOptions, CtrFitResult } from './ctr/training';
export { convertCtrModel } from './ctr/conversion';
export type { CtrConversionOptions } from './ctr/conversion';
