// The shape SIM, ETA and TWIN share (Pi et al., 2020; Chen et al., 2021; Chang et al., 2023): a
// retrieval stage picks the top-k of the long history for the candidate, an exact-search target
// attention runs over them, and a short-term target attention runs over the last 50 events; an
// MLP scores the concatenation. Subclasses supply only the retrieval.
import * as tf from '@tensorflow/tfjs-core';
import { CtrInputs, CtrModelBase, MlpHead, ResolvedCtrModelOptions, TargetAttention, gatherPerRow } from './common';
import { shortTermInterest } from './din';
import { TopK } from './retrieval';

export abstract class TwoStageModel extends CtrModelBase {
  protected readonly short: TargetAttention;
  protected readonly exact: TargetAttention;
  private readonly head: MlpHead;

  constructor(name: string, o: ResolvedCtrModelOptions) {
    super(name, o, o.longLength);
    const collective = o.attention === 'collectivekv';
    this.short = new TargetAttention(this.attentionLayer(collective, 'short_attention'));
    this.exact = new TargetAttention(this.attentionLayer(collective && o.collectiveExact, 'exact_attention'));
    this.head = new MlpHead(this.store, o.mlpUnits, `${name}_head`);
  }

  /** The top-k slots of the long history for each row's candidate (current weights, no gradient needed). */
  protected abstract retrieve(inputs: CtrInputs): TopK;

  override prepare(inputs: CtrInputs): void {
    tf.dispose(inputs.extra);
    const top = this.retrieve(inputs);
    inputs.extra = [top.indices, top.valid];
  }

  logits(inputs: CtrInputs, training: boolean): tf.Tensor1D {
    if (inputs.extra.length !== 2) throw new Error(`${this.name}: call prepare(inputs) before logits (the retrieval stage), received ${inputs.extra.length} retrieval tensors`);
    const [indices, valid] = inputs.extra;
    return tf.tidy(() => {
      const candidate = this.embeddings.item(inputs.candidates);
      const short = shortTermInterest(this, this.short, candidate, inputs, training);
      const picked = pickSlots(inputs, indices, valid);
      const long = this.exact.call(candidate, this.embeddings.events(picked), valid, training);
      return this.head.call(tf.concat([candidate, short, long, tf.mul(candidate, short), tf.mul(candidate, long)], 1));
    });
  }
}

/** The per-event tensors at the retrieved slots (mask = the retrieval's validity). Scope-owned. */
export function pickSlots(inputs: CtrInputs, indices: tf.Tensor, valid: tf.Tensor): CtrInputs {
  const pick = (t: tf.Tensor2D) => gatherPerRow(t, indices) as tf.Tensor2D;
  return {
    items: pick(inputs.items), positions: pick(inputs.positions), timeGaps: pick(inputs.timeGaps), ratings: pick(inputs.ratings),
    eventLabels: pick(inputs.eventLabels), mask: valid as tf.Tensor2D, candidates: inputs.candidates, extra: [],
  };
}
