// The baseline: ordinary multi-head attention with a full KV cache (docs/design.md section 3).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { dotProductAttention } from '../ops/index';
import { AttentionLayerBase, MultiHeadAttentionArgs, ProjectedKV } from './attentionBase';
import { CacheSide, KVCacheBlock } from './KVCacheBlock';
import { PACKAGE, dense } from './common';

export type { MultiHeadAttentionArgs, AttendCachedOptions, AttentionCallOptions } from './attentionBase';

/**
 * Multi-head attention, Keras 3's MultiHeadAttention (its arguments and call options: docs/keras.md).
 * Inputs: x (self-attention), [query, kvSource], [query, kvSource, mask] (mask [B, Tk], 1 valid),
 * [query, value, key], or query with { value, key, attentionMask, ... }. Output width = the
 * query's last dimension unless outputShape is given. A separate key may differ in width.
 * Weights: query_kernel, query_bias, key_kernel, key_bias, value_kernel, value_bias,
 * output_kernel, output_bias (biases only with useBias). The cache holds full K and V.
 */
export class MultiHeadAttention extends AttentionLayerBase {
  static className = 'MultiHeadAttention';
  private keyKernel: tfl.LayerVariable | null = null;
  private keyBias: tfl.LayerVariable | null = null;
  private valueKernel: tfl.LayerVariable | null = null;
  private valueBias: tfl.LayerVariable | null = null;

  constructor(args: MultiHeadAttentionArgs) {
    super(args, MultiHeadAttention.className);
  }

  protected override buildKeyValue(sourceDim: number): void {
    this.keyKernel = this.addKernel('key_kernel', [this.keySourceDim, this.numHeads * this.keyDim]);
    this.keyBias = this.addBias('key_bias', this.numHeads * this.keyDim);
    this.valueKernel = this.addKernel('value_kernel', [sourceDim, this.numHeads * this.valueDim]);
    this.valueBias = this.addBias('value_bias', this.numHeads * this.valueDim);
  }

  protected override supportsSeparateKey(): boolean {
    return true;
  }

  protected override sourceWeightColumns(): Array<[string, number]> {
    return [['key_kernel', this.numHeads * this.keyDim], ['value_kernel', this.numHeads * this.valueDim]];
  }

  protected override projectKeyValue(source: tf.Tensor, _mask: tf.Tensor | null, _training: boolean, key?: tf.Tensor): ProjectedKV {
    if (key == null) return { ...this.keysAndValues(source), aux: null };
    return {
      k: dense(key, this.w(this.keyKernel), this.b(this.keyBias)),
      v: dense(source, this.w(this.valueKernel), this.b(this.valueBias)),
      aux: null,
    };
  }

  protected override encodeCache(source: tf.Tensor): { keys: CacheSide; values: CacheSide } {
    const { k, v } = this.keysAndValues(source);
    return { keys: { kind: 'full', values: k }, values: { kind: 'full', values: v } };
  }

  protected override checkBlock(block: KVCacheBlock): void {
    this.checkSide(block.keys, 'keys', 'full', this.numHeads * this.keyDim);
    this.checkSide(block.values, 'values', 'full', this.numHeads * this.valueDim);
  }

  protected override attendBlock(q: tf.Tensor, block: KVCacheBlock, causal: boolean, scoreBias: tf.Tensor | undefined): tf.Tensor {
    return dotProductAttention(q, block.k as tf.Tensor, block.v as tf.Tensor,
      { numHeads: this.numHeads, attention: this.attention, causal, mask: block.mask, scoreBias });
  }

  private keysAndValues(source: tf.Tensor): { k: tf.Tensor; v: tf.Tensor } {
    return {
      k: dense(source, this.w(this.keyKernel), this.b(this.keyBias)),
      v: dense(source, this.w(this.valueKernel), this.b(this.valueBias)),
    };
  }
}

tf.serialization.registerClass(MultiHeadAttention, PACKAGE);
