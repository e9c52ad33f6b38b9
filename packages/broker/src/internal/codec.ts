/**
 * Kafka primitive types over Buffers (big-endian ints, int16-length strings, int32-length bytes, int32-count
 * arrays, zigzag varints). Non-flexible protocol versions only.
 */

/** A read past the end of a request: the frame is truncated or malformed. */
export class TruncatedError extends Error {
  constructor(readonly at: number, readonly need: number, readonly size: number) {
    super(`Truncated request: needed ${need} bytes at ${at}, frame has ${size}`)
  }
}

export class Reader {
  offset = 0
  constructor(readonly buf: Buffer) {}

  private need(n: number) {
    if (this.offset + n > this.buf.length) throw new TruncatedError(this.offset, n, this.buf.length)
  }
  get remaining() {
    return this.buf.length - this.offset
  }
  int8(): number {
    this.need(1)
    return this.buf.readInt8(this.offset++)
  }
  bool(): boolean {
    return this.int8() !== 0
  }
  int16(): number {
    this.need(2)
    const v = this.buf.readInt16BE(this.offset)
    this.offset += 2
    return v
  }
  int32(): number {
    this.need(4)
    const v = this.buf.readInt32BE(this.offset)
    this.offset += 4
    return v
  }
  int64(): bigint {
    this.need(8)
    const v = this.buf.readBigInt64BE(this.offset)
    this.offset += 8
    return v
  }
  /** An int64 that fits a JS number (offsets, timestamps). */
  int64n(): number {
    return Number(this.int64())
  }
  string(): string {
    const n = this.int16()
    if (n < 0) throw new TruncatedError(this.offset, n, this.buf.length)
    this.need(n)
    const s = this.buf.toString("utf8", this.offset, this.offset + n)
    this.offset += n
    return s
  }
  nullableString(): string | null {
    const n = this.int16()
    if (n < 0) return null
    this.need(n)
    const s = this.buf.toString("utf8", this.offset, this.offset + n)
    this.offset += n
    return s
  }
  bytes(): Buffer | null {
    const n = this.int32()
    if (n < 0) return null
    this.need(n)
    const b = this.buf.subarray(this.offset, this.offset + n)
    this.offset += n
    return b
  }
  array<A>(item: (r: Reader) => A): Array<A> {
    const n = this.int32()
    if (n < 0) return []
    if (n > this.remaining) throw new TruncatedError(this.offset, n, this.buf.length)
    const out = new Array<A>(n)
    for (let i = 0; i < n; i++) out[i] = item(this)
    return out
  }
  nullableArray<A>(item: (r: Reader) => A): Array<A> | null {
    const n = this.int32()
    if (n < 0) return null
    if (n > this.remaining) throw new TruncatedError(this.offset, n, this.buf.length)
    const out = new Array<A>(n)
    for (let i = 0; i < n; i++) out[i] = item(this)
    return out
  }
  varint(): number {
    let shift = 0
    let result = 0
    for (;;) {
      this.need(1)
      const b = this.buf[this.offset++]
      result |= (b & 0x7f) << shift
      if ((b & 0x80) === 0) break
      shift += 7
      if (shift > 28) throw new TruncatedError(this.offset, 1, this.buf.length)
    }
    return (result >>> 1) ^ -(result & 1)
  }
  varlong(): bigint {
    let shift = 0n
    let result = 0n
    for (;;) {
      this.need(1)
      const b = BigInt(this.buf[this.offset++])
      result |= (b & 0x7fn) << shift
      if ((b & 0x80n) === 0n) break
      shift += 7n
      if (shift > 63n) throw new TruncatedError(this.offset, 1, this.buf.length)
    }
    return (result >> 1n) ^ -(result & 1n)
  }
  /** Skips `n` bytes, checking they exist. */
  skip(n: number) {
    this.need(n)
    this.offset += n
  }
}

export class Writer {
  private buf: Buffer
  offset = 0
  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size)
  }
  private ensure(n: number) {
    if (this.offset + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.offset + n) size *= 2
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, 0, this.offset)
    this.buf = next
  }
  int8(v: number) {
    this.ensure(1)
    this.buf.writeInt8(v, this.offset++)
    return this
  }
  bool(v: boolean) {
    return this.int8(v ? 1 : 0)
  }
  int16(v: number) {
    this.ensure(2)
    this.buf.writeInt16BE(v, this.offset)
    this.offset += 2
    return this
  }
  int32(v: number) {
    this.ensure(4)
    this.buf.writeInt32BE(v, this.offset)
    this.offset += 4
    return this
  }
  int64(v: number | bigint) {
    this.ensure(8)
    this.buf.writeBigInt64BE(BigInt(v), this.offset)
    this.offset += 8
    return this
  }
  string(v: string) {
    const n = Buffer.byteLength(v)
    this.ensure(2 + n)
    this.buf.writeInt16BE(n, this.offset)
    this.buf.write(v, this.offset + 2, "utf8")
    this.offset += 2 + n
    return this
  }
  nullableString(v: string | null | undefined) {
    if (v === null || v === undefined) return this.int16(-1)
    return this.string(v)
  }
  bytes(v: Buffer | Uint8Array | null | undefined) {
    if (v === null || v === undefined) return this.int32(-1)
    this.ensure(4 + v.length)
    this.buf.writeInt32BE(v.length, this.offset)
    this.buf.set(v, this.offset + 4)
    this.offset += 4 + v.length
    return this
  }
  /** Writes int32 length then each chunk, without concatenating them first. */
  bytesChunks(chunks: ReadonlyArray<Buffer>, total: number) {
    this.ensure(4 + total)
    this.buf.writeInt32BE(total, this.offset)
    this.offset += 4
    for (const c of chunks) {
      this.buf.set(c, this.offset)
      this.offset += c.length
    }
    return this
  }
  array<A>(items: ReadonlyArray<A> | null, item: (w: Writer, a: A) => void) {
    if (items === null) return this.int32(-1)
    this.int32(items.length)
    for (const a of items) item(this, a)
    return this
  }
  raw(b: Buffer) {
    this.ensure(b.length)
    this.buf.set(b, this.offset)
    this.offset += b.length
    return this
  }
  /** The written bytes (a view, valid until the next write). */
  result(): Buffer {
    return this.buf.subarray(0, this.offset)
  }
}
