// The zoo's entry (`collectivekv/zoo`) is a deliberate list: this test fails on any change to it, so
// adding or removing a name is a decision (and a CHANGELOG line), not a side effect.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zoo from '../../src/zoo/index';
import * as nextItem from '../../src/zoo/sequential/nextItem';
import * as ctrCommon from '../../src/zoo/ctr/common';

const ZOO_VALUES = [
  // next-item models and their one interface
  'ZOO_MODELS', 'attentionBytesPerToken', 'buildZooModel', 'loadZooModel', 'readZooModelFile', 'saveZooModel',
  'buildSasrec', 'decodeStep', 'disposeCache', 'prefill', 'scoreNext', 'scoreNextCached',
  'bert4recScoreNext', 'buildBert4rec',
  'buildHstu', 'disposeHstuCache', 'hstuDecodeStep', 'hstuPrefill', 'hstuScoreNext', 'hstuScoreNextCached',
  // next-item training, evaluation, conversion, serving
  'SASREC_LOSSES', 'evaluateNextItem', 'evaluateSasrec', 'fitNextItem', 'fitSasrec', 'trainStep',
  'convertTrainedModel', 'convertZooModel', 'SasrecRecommender',
  // CTR models
  'Din', 'Eta', 'HstuCtr', 'Sdim', 'Sim', 'Twin', 'buildDin', 'buildEta', 'buildHstuCtr', 'buildSdim', 'buildSim', 'buildTwin',
  'ctrCacheBytesPerToken',
  // CTR samples, training, evaluation, conversion
  'convertCtrModel', 'ctrSamples', 'evaluateCtr', 'fitCtr', 'predictCtr', 'withSyntheticEventFeatures',
];

describe('zoo entry (collectivekv/zoo)', () => {
  it('exports exactly the listed values', () => {
    expect(Object.keys(zoo).sort()).toEqual([...ZOO_VALUES].sort());
  });

  it('has a builder for every model named in the issue, and one copy of each value', () => {
    for (const name of ['buildSasrec', 'buildBert4rec', 'buildHstu', 'buildSim', 'buildEta', 'buildSdim', 'buildTwin', 'buildHstuCtr', 'buildDin']) {
      expect(typeof (zoo as Record<string, unknown>)[name]).toBe('function');
    }
    expect(zoo.buildZooModel).toBe(nextItem.buildZooModel);
    expect(zoo.ctrCacheBytesPerToken).toBe(ctrCommon.cacheBytesPerToken);
    expect([...zoo.ZOO_MODELS]).toEqual(['sasrec', 'bert4rec', 'hstu']);
  });

  it('is wired as a package entry: exports map, side effects, rollup inputs', () => {
    const root = path.join(__dirname, '..', '..');
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown>; sideEffects: string[] };
    expect(pkg.exports['./zoo']).toEqual({ types: './dist/zoo.d.ts', import: './dist/esm/src/zoo/index.js', require: './dist/zoo.cjs' });
    // The modules that register layer classes on import must be kept by bundlers.
    for (const file of ['./dist/esm/src/zoo/sequential/blocks.js', './dist/esm/src/zoo/sequential/hstu.js', './dist/zoo.cjs']) expect(pkg.sideEffects).toContain(file);
    const rollup = fs.readFileSync(path.join(root, 'rollup.config.mjs'), 'utf8');
    expect(rollup).toContain("'src/zoo/index.ts'");
  });
});
