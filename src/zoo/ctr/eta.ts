// ETA (Chen et al., 2021): SimHash (LSH) signatures of the item embeddings; the top-k behaviours
// by Hamming distance to the candidate's signature go to the exact target attention. The random
// hyperplanes are fixed (seeded), so a behaviour's signature is computable once per item.
import * as tf from '@tensorflow/tfjs-core';
import { CtrInputs, CtrModelOptions, resolveCtrModelOptions } from './common';
import { TopK, hammingTopK, simHash } from './retrieval';
import { TwoStageModel } from './twoStage';

export interface EtaOptions extends CtrModelOptions {
  /** SimHash bits per signature. Default 64. */
  hashBits?: number;
}

export class Eta extends TwoStageModel {
  readonly hashBits: number;
  private readonly planes: tf.Variable;

  constructor(options: EtaOptions) {
    super('eta', resolveCtrModelOptions('Eta', options));
    this.hashBits = options.hashBits ?? 64;
    if (!Number.isInteger(this.hashBits) || this.hashBits < 1) throw new Error(`Eta: hashBits must be a positive integer, received ${this.hashBits}`);
    this.planes = this.store.constant([this.options.embeddingDim, this.hashBits]);
    this.buildLayers();
  }

  protected retrieve(inputs: CtrInputs): TopK {
    const [candidate, history] = tf.tidy(() => [
      simHash(this.embeddings.item(inputs.candidates), this.planes), simHash(this.embeddings.item(inputs.items), this.planes)]);
    try {
      return hammingTopK(candidate, history, inputs.mask, this.options.topK);
    } finally {
      tf.dispose([candidate, history]);
    }
  }
}

export function buildEta(options: EtaOptions): Eta {
  return new Eta(options);
}
