/**
 * Writes a transaction marker (a control batch, as a transactional producer's commit leaves behind) straight to the
 * dev broker over the wire: kafkajs cannot write one, and consumers never deliver it, which is what the inline
 * consumer must cope with at the end of a partition.
 */
import * as Effect from "effect/Effect"
import * as net from "node:net"

/** CRC-32C (Castagnoli), bit by bit: a record batch's checksum, for this one test batch. */
const crc32c = (bytes: Uint8Array): number => {
  let crc = 0xffffffff
  for (const byte of bytes) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1
  }
  return (crc ^ 0xffffffff) >>> 0
}

const i16 = (v: number) => {
  const b = Buffer.alloc(2)
  b.writeInt16BE(v)
  return b
}
const i32 = (v: number) => {
  const b = Buffer.alloc(4)
  b.writeInt32BE(v)
  return b
}
const i64 = (v: bigint) => {
  const b = Buffer.alloc(8)
  b.writeBigInt64BE(v)
  return b
}
const str = (s: string) => Buffer.concat([i16(Buffer.byteLength(s)), Buffer.from(s)])

/** A RecordBatch v2 with the transactional and control flags and one COMMIT marker record. */
const commitMarker = () => {
  // key: version 0, type 1 (COMMIT); value: version 0, coordinator epoch 0; small lengths are zigzag varints (2n)
  const record = Buffer.concat([
    Buffer.from([0, 0, 0]), // attributes, timestamp delta, offset delta
    Buffer.from([8]),
    i16(0),
    i16(1),
    Buffer.from([12]),
    i16(0),
    i32(0),
    Buffer.from([0]) // no headers
  ])
  const now = BigInt(Date.now())
  const afterCrc = Buffer.concat([
    i16(0x30), // transactional | control
    i32(0), // last offset delta
    i64(now),
    i64(now),
    i64(4242n), // producer id
    i16(0), // producer epoch
    i32(-1), // base sequence: no idempotence checks
    i32(1),
    Buffer.from([record.length * 2]),
    record
  ])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32c(afterCrc))
  const afterLength = Buffer.concat([i32(0), Buffer.from([2]), crc, afterCrc])
  return Buffer.concat([i64(0n), i32(afterLength.length), afterLength])
}

/** Appends a COMMIT marker to `topic[partition]` (Produce v3, acks 1); fails unless the broker answers error 0. */
export const appendCommitMarker = (broker: string, topic: string, partition: number) =>
  Effect.async<void, Error>((resume) => {
    const [host, port] = broker.split(":")
    const socket = net.connect(Number(port), host)
    const records = commitMarker()
    const body = Buffer.concat([
      i16(-1), // no transactional id
      i16(1), // acks
      i32(5000),
      i32(1),
      str(topic),
      i32(1),
      i32(partition),
      i32(records.length),
      records
    ])
    const clientId = Buffer.from("control-record-test")
    const header = Buffer.concat([i16(0), i16(3), i32(1), i16(clientId.length), clientId])
    let received = Buffer.alloc(0)
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("data", (chunk) => {
      received = Buffer.concat([received, chunk])
      if (received.length < 4 || received.length < 4 + received.readInt32BE(0)) return
      // size, correlation id, [topic name, [partition, error code, ...]]
      const at = 4 + 4 + 4 + 2 + received.readInt16BE(12) + 4 + 4
      const error = received.readInt16BE(at)
      socket.destroy()
      resume(error === 0 ? Effect.void : Effect.fail(new Error(`produce of the marker failed with error ${error}`)))
    })
    socket.once("connect", () => socket.write(Buffer.concat([i32(header.length + body.length), header, body])))
    return Effect.sync(() => socket.destroy())
  })
