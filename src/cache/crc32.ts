// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), table driven, as used by zlib and PNG.
// It detects every single-bit and every burst error up to 32 bits, so every single flipped byte
// of a cache is caught deterministically.

const TABLE: Uint32Array = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/**
 * CRC-32 of `bytes[start, end)`, as an unsigned 32-bit number. `previous` continues a CRC:
 * crc32(b, 0, b.length, crc32(a)) is the CRC of a followed by b.
 */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length, previous = 0): number {
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
