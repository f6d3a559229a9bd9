// SIM (Pi et al., 2020) with the soft-search general search unit: top-k behaviours of the long
// history by inner product of item embeddings with the candidate, then exact target attention.
import * as tf from '@tensorflow/tfjs-core';
import { CtrInputs, CtrModelOptions, resolveCtrModelOptions } from './common';
import { TopK, softSearchTopK } from './retrieval';
import { TwoStageModel } from './twoStage';

export class Sim extends TwoStageModel {
  constructor(options: CtrModelOptions) {
    super('sim', resolveCtrModelOptions('Sim', options));
    this.buildLayers();
  }

  protected retrieve(inputs: CtrInputs): TopK {
    const [candidate, history] = tf.tidy(() => [this.embeddings.item(inputs.candidates), this.embeddings.item(inputs.items)]);
    try {
      return softSearchTopK(candidate, history, inputs.mask, this.options.topK);
    } finally {
      tf.dispose([candidate, history]);
    }
  }
}

export function buildSim(options: CtrModelOptions): Sim {
  return new Sim(options);
}
