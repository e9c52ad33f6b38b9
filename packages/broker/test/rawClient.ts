/** A bare Kafka-protocol TCP client for sending hand-made (and broken) frames, and the bytes to build them. */
import * as net from "node:net"
import * as zlib from "node:zlib"
import { crc32c } from "../src/internal/crc32c.js"

export interface RawConnection {
  /** Sends a request with header v1 and resolves with the response body (after the correlation id). */
  readonly request: (apiKey: number, version: number, body: Buffer) => Promise<Buffer>
  /** The frame of a request, not sent (`write` sends it, in parts if need be), and the response to it. */
  readonly prepare: (
    apiKey: number,
    version: number,
    body: Buffer
  ) => { readonly frame: Buffer; readonly response: Promise<Buffer> }
  /** Writes raw bytes. */
  readonly write: (bytes: Buffer) => void
  /** Resolves when the broker closes the connection. */
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
  readonly end: () => void
}

export const connect = (broker: string): Promise<RawConnection> =>
  new Promise((resolve, reject) => {
    const [host, port] = broker.split(":")
    const socket = net.connect(Number(port), host)
    let buffered = Buffer.alloc(0)
    let correlation = 1
    let closed = false
    const pending = new Map<number, (body: Buffer) => void>()
    const closedPromise = new Promise<void>((done) =>
      socket.on("close", () => {
        closed = true
        done()
      })
    )
    socket.on("error", () => {})
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk])
      while (buffered.length >= 4 && buffered.length >= 4 + buffered.readInt32BE(0)) {
        const size = buffered.readInt32BE(0)
        const frame = buffered.subarray(4, 4 + size)
        buffered = buffered.subarray(4 + size)
        const id = frame.readInt32BE(0)
        pending.get(id)?.(Buffer.from(frame.subarray(4)))
        pending.delete(id)
      }
    })
    const prepare = (apiKey: number, version: number, body: Buffer) => {
      const id = correlation++
      const clientId = Buffer.from("raw-test")
      const header = Buffer.alloc(10 + clientId.length)
      header.writeInt16BE(apiKey, 0)
      header.writeInt16BE(version, 2)
      header.writeInt32BE(id, 4)
      header.writeInt16BE(clientId.length, 8)
      clientId.copy(header, 10)
      const size = Buffer.alloc(4)
      size.writeInt32BE(header.length + body.length)
      const response = new Promise<Buffer>((done, fail) => {
        pending.set(id, done)
        closedPromise.then(() => fail(new Error("connection closed")))
      })
      return { frame: Buffer.concat([size, header, body]), response }
    }
    socket.once("connect", () =>
      resolve({
        request: (apiKey, version, body) => {
          const { frame, response } = prepare(apiKey, version, body)
          socket.write(frame)
          return response
        },
        prepare,
        write: (bytes) => socket.write(bytes),
        closed: closedPromise,
        isClosed: () => closed,
        end: () => socket.destroy()
      }))
    socket.once("error", reject)
  })

// ---------------------------------------------------------------------------------------------------------------
// Request bytes, written out by hand (independently of the broker's own codec)

export const body = (...parts: ReadonlyArray<Buffer>) => Buffer.concat(parts)
export const i8 = (v: number) => Buffer.from([v & 0xff])
export const i16 = (v: number) => {
  const b = Buffer.alloc(2)
  b.writeInt16BE(v)
  return b
}
export const i32 = (v: number) => {
  const b = Buffer.alloc(4)
  b.writeInt32BE(v)
  return b
}
export const i64 = (v: number | bigint) => {
  const b = Buffer.alloc(8)
  b.writeBigInt64BE(BigInt(v))
  return b
}
export const str = (s: string) => Buffer.concat([i16(Buffer.byteLength(s)), Buffer.from(s)])
export const bytes = (b: Buffer) => Buffer.concat([i32(b.length), b])

export const zigzag = (n: number): Buffer => {
  let v = (n << 1) ^ (n >> 31)
  const out: Array<number> = []
  while ((v & ~0x7f) !== 0) {
    out.push((v & 0x7f) | 0x80)
    v >>>= 7
  }
  out.push(v)
  return Buffer.from(out)
}

export interface BatchOptions {
  /** Flip a CRC bit. */
  readonly corrupt?: boolean
  /** Idempotent producer fields. @default -1 (none) */
  readonly producerId?: bigint
  readonly producerEpoch?: number
  readonly baseSequence?: number
}

/** A RecordBatch v2 with one record (null key, value `value`), CRC-32C computed unless `corrupt`. */
export const recordBatch = (value: Buffer, options: BatchOptions = {}) => {
  const record = Buffer.concat([
    i8(0), // attributes
    Buffer.from([0]), // timestamp delta (varint 0)
    Buffer.from([0]), // offset delta
    Buffer.from([1]), // key length -1 (zigzag)
    zigzag(value.length),
    value,
    Buffer.from([0]) // headers count
  ])
  const records = Buffer.concat([zigzag(record.length), record])
  const afterCrc = Buffer.concat([
    i16(0), // attributes
    i32(0), // last offset delta
    i64(Date.now()),
    i64(Date.now()),
    i64(options.producerId ?? -1n),
    i16(options.producerEpoch ?? -1),
    i32(options.baseSequence ?? -1),
    i32(1), // records count
    records
  ])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(options.corrupt === true ? (crc32c(afterCrc) ^ 1) >>> 0 : crc32c(afterCrc))
  const afterLength = Buffer.concat([i32(0), i8(2), crc, afterCrc])
  return Buffer.concat([i64(0), i32(afterLength.length), afterLength])
}

/** One record of `recordBatchOf`: its value and its timestamp relative to the batch's first timestamp. */
export interface TimedRecord {
  readonly value: string
  readonly timestampDelta: number
}

/** Compression codecs by their attribute bits. */
export const Compression = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const

/**
 * A RecordBatch v2 of `records` (null keys, offset deltas 0, 1, ...), the first timestamp `firstTimestamp`, the max
 * timestamp the largest of them. With `gzip` the records are compressed; any other codec is only written in the
 * attributes, the records stay as they are (the broker never decompresses them, clients cannot read them).
 */
export const recordBatchOf = (
  records: ReadonlyArray<TimedRecord>,
  options: { readonly firstTimestamp: number; readonly compression?: number }
) => {
  const encoded = Buffer.concat(records.map((r, i) => {
    const value = Buffer.from(r.value)
    const record = Buffer.concat([
      i8(0),
      zigzag(r.timestampDelta),
      zigzag(i),
      Buffer.from([1]), // key length -1
      zigzag(value.length),
      value,
      Buffer.from([0])
    ])
    return Buffer.concat([zigzag(record.length), record])
  }))
  const compression = options.compression ?? Compression.none
  const payload = compression === Compression.gzip ? zlib.gzipSync(encoded) : encoded
  const maxTimestamp = options.firstTimestamp + Math.max(...records.map((r) => r.timestampDelta))
  const afterCrc = Buffer.concat([
    i16(compression),
    i32(records.length - 1),
    i64(options.firstTimestamp),
    i64(maxTimestamp),
    i64(-1n),
    i16(-1),
    i32(-1),
    i32(records.length),
    payload
  ])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32c(afterCrc))
  const afterLength = Buffer.concat([i32(0), i8(2), crc, afterCrc])
  return Buffer.concat([i64(0), i32(afterLength.length), afterLength])
}

/** Produce v3 (acks 1) of `records` to partition 0 of `topic`. */
export const produceV3 = (topic: string, records: Buffer) =>
  body(i16(-1), i16(1), i32(5000), i32(1), str(topic), i32(1), i32(0), bytes(records))

/** Error code and base offset of the single partition in a Produce v3 response. */
export const produceResult = (response: Buffer) => {
  const nameLength = response.readInt16BE(4)
  const at = 4 + 2 + nameLength + 4 + 4
  return { error: response.readInt16BE(at), baseOffset: Number(response.readBigInt64BE(at + 2)) }
}

/** Reads responses field by field. */
export const reader = (buf: Buffer) => {
  let at = 0
  const r = {
    int16: () => {
      const v = buf.readInt16BE(at)
      at += 2
      return v
    },
    int32: () => {
      const v = buf.readInt32BE(at)
      at += 4
      return v
    },
    int64: () => {
      const v = buf.readBigInt64BE(at)
      at += 8
      return v
    },
    string: () => {
      const n = r.int16()
      const s = buf.toString("utf8", at, at + Math.max(0, n))
      at += Math.max(0, n)
      return s
    },
    bytes: () => {
      const n = r.int32()
      const b = buf.subarray(at, at + Math.max(0, n))
      at += Math.max(0, n)
      return b
    }
  }
  return r
}
