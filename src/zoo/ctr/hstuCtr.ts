// HSTU-CTR (Zhai et al., 2024, the paper's HSTU setting): HSTU blocks (pointwise SiLU attention,
// `attention: 'hstu'`, causal, a relative position bias over the token slots) over a history where each event is an item token followed by its
// label token; the candidate is a final item token, and a click probability is read at every item
// position. With `attention: 'collectivekv'` every layer is swapped.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { dim, gatherRows } from '../../internal';
import { LayerNorm, PointwiseDense } from '../sequential/blocks';
import { AttentionLayer, CtrInputs, CtrModelBase, CtrModelOptions, MlpHead, resolveCtrModelOptions } from './common';

export interface HstuCtrOptions extends CtrModelOptions {
  /** HSTU blocks. Default 2. */
  numBlocks?: number;
}

interface HstuBlock {
  norm: LayerNorm;
  gate: PointwiseDense;
  attention: AttentionLayer;
  attendedNorm: LayerNorm;
  out: PointwiseDense;
}

/**
 * History = the last `shortLength` events (2 tokens each, so 2 * shortLength + 1 tokens): HSTU's
 * self-attention is quadratic in the tokens, so the long history of the retrieval models is not used.
 */
export class HstuCtr extends CtrModelBase {
  readonly numBlocks: number;
  private readonly labelTokens: tf.Variable;
  private readonly blocks: HstuBlock[] = [];
  private readonly finalNorm: LayerNorm;
  private readonly head: MlpHead;

  constructor(options: HstuCtrOptions) {
    const o = resolveCtrModelOptions('HstuCtr', options);
    super('hstu-ctr', o, o.shortLength);
    this.numBlocks = options.numBlocks ?? 2;
    if (!Number.isInteger(this.numBlocks) || this.numBlocks < 1) throw new Error(`HstuCtr: numBlocks must be a positive integer, received ${this.numBlocks}`);
    const d = o.embeddingDim;
    this.labelTokens = this.store.normal([2, d], 0.05);
    const kernel = () => tfl.initializers.glorotUniform({ seed: this.store.nextSeed() });
    for (let b = 0; b < this.numBlocks; b++) {
      this.blocks.push({
        norm: this.store.layer(new LayerNorm({ width: d, name: `hstu${b}_norm` })),
        gate: this.store.layer(new PointwiseDense({ units: d, kernelInitializer: kernel(), name: `hstu${b}_gate` })),
        attention: this.attentionLayer(o.attention === 'collectivekv', `hstu${b}_attention`,
          { causal: true, attention: 'hstu', relativePositions: 2 * o.shortLength + 1 }),
        attendedNorm: this.store.layer(new LayerNorm({ width: d, name: `hstu${b}_attended_norm` })),
        out: this.store.layer(new PointwiseDense({ units: d, kernelInitializer: kernel(), name: `hstu${b}_out` })),
      });
    }
    this.finalNorm = this.store.layer(new LayerNorm({ width: d, name: 'hstu_final_norm' }));
    this.head = new MlpHead(this.store, o.mlpUnits, 'hstu_head');
    this.buildLayers();
  }

  /** Click logits [B] of the candidate (the last item token). */
  logits(inputs: CtrInputs, training: boolean): tf.Tensor1D {
    return tf.tidy(() => {
      const hidden = this.encode(inputs, training);
      const [b, t, d] = [dim(hidden, 0), dim(hidden, 1), dim(hidden, 2)];
      return this.head.call(tf.reshape(tf.slice(hidden, [0, t - 1, 0], [b, 1, d]), [b, d]));
    });
  }

  /** Click logits [B, L + 1] at every item token: the L history events (padding included), then the candidate. */
  itemPositionLogits(inputs: CtrInputs): tf.Tensor2D {
    return tf.tidy(() => {
      const hidden = this.encode(inputs, false);
      const [b, t, d] = [dim(hidden, 0), dim(hidden, 1), dim(hidden, 2)];
      const L = (t - 1) / 2;
      const history = tf.slice(tf.reshape(tf.slice(hidden, [0, 0, 0], [b, 2 * L, d]), [b, L, 2, d]), [0, 0, 0, 0], [b, L, 1, d]);
      const items = tf.concat([tf.reshape(history, [b, L, d]), tf.slice(hidden, [0, t - 1, 0], [b, 1, d])], 1);
      return tf.reshape(this.head.call(tf.reshape(items, [b * (L + 1), d])), [b, L + 1]) as tf.Tensor2D;
    });
  }

  /** Hidden states [B, 2L + 1, d] of the token sequence (item, label)*, candidate. */
  private encode(inputs: CtrInputs, training: boolean): tf.Tensor3D {
    return tf.tidy(() => {
      const { tokens, mask } = this.tokens(inputs);
      let x: tf.Tensor = tokens;
      for (const block of this.blocks) {
        const h = block.norm.apply(x) as tf.Tensor;
        const z = block.gate.apply(h) as tf.Tensor;
        const u = tf.mul(z, tf.sigmoid(z)); // SiLU gate, as in HSTU
        const a = block.attention.apply([h, h, mask], { training }) as tf.Tensor;
        x = tf.add(x, block.out.apply(tf.mul(block.attendedNorm.apply(a) as tf.Tensor, u)) as tf.Tensor);
      }
      return this.finalNorm.apply(x) as tf.Tensor3D;
    });
  }

  /** Interleaves item tokens (item + event features) with label tokens, then appends the candidate. */
  private tokens(inputs: CtrInputs): { tokens: tf.Tensor3D; mask: tf.Tensor2D } {
    const [b, L] = [dim(inputs.items, 0), dim(inputs.items, 1)];
    const d = this.options.embeddingDim;
    const items = this.embeddings.events(inputs);
    const labels = gatherRows(this.labelTokens, inputs.eventLabels);
    const pairs = tf.reshape(tf.stack([items, labels], 2), [b, 2 * L, d]);
    const candidate = tf.reshape(this.embeddings.item(inputs.candidates), [b, 1, d]);
    const pairMask = tf.reshape(tf.stack([inputs.mask, inputs.mask], 2), [b, 2 * L]);
    return {
      tokens: tf.concat([pairs, candidate], 1) as tf.Tensor3D,
      mask: tf.concat([pairMask, tf.ones([b, 1])], 1) as tf.Tensor2D,
    };
  }
}

export function buildHstuCtr(options: HstuCtrOptions): HstuCtr {
  return new HstuCtr(options);
}
