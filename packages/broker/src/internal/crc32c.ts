/**
 * CRC-32C (Castagnoli), as RecordBatch v2 uses. Table-driven, slicing-by-8. Written here because the packages that
 * provide it on npm either need a native build (sse4_crc32) or are unmaintained; the algorithm is short.
 */
const POLY = 0x82f63b78

const tables: Array<Int32Array> = (() => {
  const t = Array.from({ length: 8 }, () => new Int32Array(256))
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
    t[0][i] = c
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >>> 8) ^ t[0][t[s - 1][i] & 0xff]
  }
  return t
})()

export const crc32c = (buf: Uint8Array, start = 0, end = buf.length): number => {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = tables
  let crc = -1
  let i = start
  for (; i + 8 <= end; i += 8) {
    const a = crc ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24))
    crc = t7[a & 0xff] ^ t6[(a >>> 8) & 0xff] ^ t5[(a >>> 16) & 0xff] ^ t4[a >>> 24] ^
      t3[buf[i + 4]] ^ t2[buf[i + 5]] ^ t1[buf[i + 6]] ^ t0[buf[i + 7]]
  }
  for (; i < end; i++) crc = t0[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}
