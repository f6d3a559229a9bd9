// SDIM (Cao et al., 2022): hash-based sampling of the long history. Behaviours whose SimHash
// bucket collides with the candidate's (per hash function) are summed, L2-normalized and averaged
// over hash functions: no softmax, no top-k, the whole history contributes. Combined with the
// short-term target attention; only that attention is an attention layer (and so swapped).
import * as tf from '@tensorflow/tfjs-core';
import { CtrInputs, CtrModelBase, CtrModelOptions, MlpHead, TargetAttention, resolveCtrModelOptions } from './common';
import { shortTermInterest } from './din';
import { sdimAggregate, sdimCollisions, simHash } from './retrieval';

export interface SdimOptions extends CtrModelOptions {
  /** Hash functions (m). Default 32. */
  numHashes?: number;
  /** SimHash bits per hash function (tau). Default 3. */
  bitsPerHash?: number;
}

export class Sdim extends CtrModelBase {
  readonly numHashes: number;
  readonly bitsPerHash: number;
  private readonly planes: tf.Variable;
  private readonly short: TargetAttention;
  private readonly head: MlpHead;

  constructor(options: SdimOptions) {
    const o = resolveCtrModelOptions('Sdim', options);
    super('sdim', o, o.longLength);
    this.numHashes = options.numHashes ?? 32;
    this.bitsPerHash = options.bitsPerHash ?? 3;
    for (const [name, v] of [['numHashes', this.numHashes], ['bitsPerHash', this.bitsPerHash]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`Sdim: ${name} must be a positive integer, received ${v}`);
    }
    this.planes = this.store.constant([o.embeddingDim, this.numHashes * this.bitsPerHash]);
    this.short = new TargetAttention(this.attentionLayer(o.attention === 'collectivekv', 'short_attention'));
    this.head = new MlpHead(this.store, o.mlpUnits, 'sdim_head');
    this.buildLayers();
  }

  /** The collisions [B, m, L] of the candidate with every history event (hashes of item embeddings). */
  override prepare(inputs: CtrInputs): void {
    tf.dispose(inputs.extra);
    inputs.extra = [tf.tidy(() => sdimCollisions(simHash(this.embeddings.item(inputs.candidates), this.planes),
      simHash(this.embeddings.item(inputs.items), this.planes), inputs.mask, this.numHashes, this.bitsPerHash))];
  }

  logits(inputs: CtrInputs, training: boolean): tf.Tensor1D {
    if (inputs.extra.length !== 1) throw new Error(`sdim: call prepare(inputs) before logits, received ${inputs.extra.length} retrieval tensors`);
    return tf.tidy(() => {
      const candidate = this.embeddings.item(inputs.candidates);
      const short = shortTermInterest(this, this.short, candidate, inputs, training);
      const long = sdimAggregate(inputs.extra[0], this.embeddings.events(inputs));
      return this.head.call(tf.concat([candidate, short, long, tf.mul(candidate, short), tf.mul(candidate, long)], 1));
    });
  }
}

export function buildSdim(options: SdimOptions): Sdim {
  return new Sdim(options);
}
