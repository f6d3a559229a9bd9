// IEEE 754 binary16 conversion by hand (no Float16Array in Node 20), round to nearest, ties to
// even, like hardware conversions, so a cache written here decodes identically anywhere.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Largest finite half is 65504; anything from 65520 up rounds to infinity. */
export const FP16_MAX = 65504;

/** float32 value -> binary16 bits. NaN stays NaN, overflow becomes +-Infinity. */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) return sign | subnormalHalf(mant | 0x800000, 14 - e);
  // Normal: keep 10 mantissa bits, round on the 13 dropped ones. A carry out of the mantissa
  // correctly bumps the exponent (and reaches 0x7c00 = infinity at the top).
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** Half subnormal (or zero) mantissa of `full * 2^-shift`, rounded to nearest even. */
function subnormalHalf(full: number, shift: number): number {
  if (shift > 24) return 0; // below half of the smallest subnormal (full < 2^24 <= half step)
  let h = full >>> shift;
  const rem = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (h & 1))) h++;
  return h; // h == 0x400 is the smallest normal: the encoding is still right
}

/** binary16 bits -> number (exactly representable as float32). */
export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
