// DIN-style target attention (Zhou et al., 2018) on collectivekv's attention layers: the candidate
// item is the query, the most recent behaviours (item + per-event features) are keys/values, then
// an MLP. It is the short-term block every long-sequence model here reuses.
import * as tf from '@tensorflow/tfjs-core';
import {
  CtrInputs, CtrModelBase, CtrModelOptions, MlpHead, TargetAttention, lastSlots, resolveCtrModelOptions,
} from './common';

export class Din extends CtrModelBase {
  private readonly short: TargetAttention;
  private readonly head: MlpHead;

  constructor(options: CtrModelOptions) {
    const o = resolveCtrModelOptions('Din', options);
    super('din', o, o.shortLength);
    this.short = new TargetAttention(this.attentionLayer(o.attention === 'collectivekv', 'short_attention'));
    this.head = new MlpHead(this.store, o.mlpUnits, 'din_head');
    this.buildLayers();
  }

  logits(inputs: CtrInputs, training: boolean): tf.Tensor1D {
    return tf.tidy(() => {
      const candidate = this.embeddings.item(inputs.candidates);
      const interest = shortTermInterest(this, this.short, candidate, inputs, training);
      return this.head.call(tf.concat([candidate, interest, tf.mul(candidate, interest)], 1));
    });
  }
}

/** Target attention of `candidate` [B, de] over the last shortLength events of `inputs`; [B, de]. */
export function shortTermInterest(model: CtrModelBase, block: TargetAttention, candidate: tf.Tensor, inputs: CtrInputs, training: boolean): tf.Tensor2D {
  return tf.tidy(() => {
    const recent = lastSlots(inputs, model.options.shortLength);
    return block.call(candidate, model.embeddings.events(recent), recent.mask, training);
  });
}

export function buildDin(options: CtrModelOptions): Din {
  return new Din(options);
}
