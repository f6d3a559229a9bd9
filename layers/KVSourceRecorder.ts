// Records the K/V source rows an attention layer sees in inference calls: the data the recipe's
// switch clusters into the pool (docs/recipe.md), gathered by running the caller's own sample
// through the model, so it works for any model, functional or hand-written.
import * as tf from '@tensorflow/tfjs-core';

/** The recorded rows: `count` rows of `width` floats, row-major. */
export interface RecordedKVSources {
  rows: Float32Array;
  count: number;
  width: number;
}

export class KVSourceRecorder {
  private readonly chunks: Float32Array[] = [];
  private count = 0;
  private width = 0;

  constructor(private readonly maxRows: number) {}

  /** Adds the valid tokens of source [B, T, de] (mask [B, T], 1 valid, or null: all valid) until maxRows are held. */
  add(source: tf.Tensor, mask: tf.Tensor | null): void {
    if (this.count >= this.maxRows) return;
    const width = source.shape[source.rank - 1];
    this.width = width;
    const values = source.dataSync() as Float32Array;
    const valid = mask == null ? null : mask.dataSync();
    const tokens = values.length / width;
    const out = new Float32Array(Math.min(tokens, this.maxRows - this.count) * width);
    let n = 0;
    for (let t = 0; t < tokens && this.count + n < this.maxRows; t++) {
      if (valid != null && !(valid[t] > 0)) continue;
      out.set(values.subarray(t * width, (t + 1) * width), n * width);
      n += 1;
    }
    this.chunks.push(out.subarray(0, n * width));
    this.count += n;
  }

  result(): RecordedKVSources {
    const rows = new Float32Array(this.count * this.width);
    let offset = 0;
    for (const chunk of this.chunks) {
      rows.set(chunk, offset);
      offset += chunk.length;
    }
    return { rows, count: this.count, width: this.width };
  }
}
