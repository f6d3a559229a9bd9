import { CtrEventLog, CtrSample, ctrBatch } from 'collectivekv/internal';
import { CtrModel, disposeInputs, toInputs } from '../../../src/zoo/ctr/common';

/** The model's click logits (inference) of `samples`, as one batch. */
export function logitsOf(model: CtrModel, data: CtrEventLog, samples: readonly CtrSample[]): Float32Array {
  const inputs = toInputs(ctrBatch(data, samples, { historyLength: model.historyLength }));
  model.prepare(inputs);
  const out = model.logits(inputs, false);
  const values = out.dataSync() as Float32Array;
  out.dispose();
  disposeInputs(inputs);
  return values;
}
