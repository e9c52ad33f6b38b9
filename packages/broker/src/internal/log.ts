/**
 * Topic and partition storage: RecordBatch v2 blobs kept as received (only baseOffset rewritten), in memory and,
 * with a data directory, in append-only files per partition plus JSON for topics and committed offsets.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { Reader } from "./codec.js"
import { crc32c } from "./crc32c.js"

export interface StoredBatch {
  readonly baseOffset: number
  readonly lastOffset: number
  readonly maxTimestamp: number
  readonly data: Buffer
}

/** Producer-id state per partition, for idempotent producers (sequence checks, duplicate detection). */
interface ProducerState {
  epoch: number
  lastSequence: number
  /** The last few batches: first sequence → base offset, to answer duplicates with the original offset. */
  recent: Array<{ readonly firstSequence: number; readonly lastSequence: number; readonly baseOffset: number }>
}

/**
 * Append handles of partition files, opened on first write and at most `max` open at once (the least recently
 * written is closed first), so the number of partitions does not bound the file descriptors the broker holds.
 */
export class LogFiles {
  /** file → descriptor, least recently written first */
  private readonly handles = new Map<string, number>()

  constructor(private readonly max: number) {}

  /**
   * Appends `data` to `file`, which holds `size` bytes before it. A failed write is undone (the file cut back to
   * `size`, its handle closed) and thrown, so a later append starts where the last whole batch ended.
   */
  append(file: string, size: number, data: Buffer) {
    let fd = this.handles.get(file)
    if (fd === undefined) {
      if (this.handles.size >= this.max) this.close(this.handles.keys().next().value!)
      fd = fs.openSync(file, "a")
    } else {
      this.handles.delete(file)
    }
    this.handles.set(file, fd)
    try {
      for (let at = 0; at < data.length;) at += fs.writeSync(fd, data, at, data.length - at)
    } catch (error) {
      try {
        fs.ftruncateSync(fd, size)
      } finally {
        this.close(file)
      }
      throw error
    }
  }

  /** Closes the handle of `file`, if one is open. */
  close(file: string) {
    const fd = this.handles.get(file)
    if (fd === undefined) return
    this.handles.delete(file)
    fs.closeSync(fd)
  }

  /** How many handles are open. */
  get size() {
    return this.handles.size
  }

  closeAll() {
    for (const file of [...this.handles.keys()]) this.close(file)
  }
}

/** The partition files of a data directory: their append handles, and where to report what loading repaired. */
export interface Disk {
  readonly files: LogFiles
  readonly warn: (message: string) => void
}

/** Bytes of a RecordBatch v2 up to its first record: the smallest batch there is. */
const batchHeaderBytes = 61

/**
 * What is wrong with the batch at `at` of a log file whose batches so far end before `nextOffset`: torn (a crash
 * mid-write), not a batch, a failed CRC-32C, an offset going back; `undefined` for a sound batch.
 */
const unsoundBatch = (buf: Buffer, at: number, nextOffset: number): string | undefined => {
  const left = buf.length - at
  if (left < batchHeaderBytes) return `is torn (${left} bytes, less than a batch header)`
  const size = 12 + buf.readInt32BE(at + 8)
  if (size < batchHeaderBytes || buf.readInt8(at + 16) !== 2) return "is not a RecordBatch v2"
  if (size > left) return `is torn (${left} of its ${size} bytes)`
  if (crc32c(buf, at + 21, at + size) !== buf.readUInt32BE(at + 17)) return "fails its CRC-32C check"
  const baseOffset = Number(buf.readBigInt64BE(at))
  if (baseOffset < nextOffset || buf.readInt32BE(at + 23) < 0) {
    return `has offsets (from ${baseOffset}) that do not follow the batches before it (up to ${nextOffset - 1})`
  }
  return undefined
}

/** A record's offset and timestamp. */
export interface RecordTime {
  readonly offset: number
  readonly timestamp: number
}

/** Compression codecs, the low three bits of a batch's attributes. */
export const Codec = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const

/** The codec of a stored batch. */
export const codecOf = (batch: Buffer): number => batch.readInt16BE(21) & 0x07

/** Decompressed records of one batch larger than this are not read for ListOffsets (its base offset answers). */
const maxInflatedBytes = 64 * 1024 * 1024

/**
 * The first record of a batch at or after `timestamp` and `logStartOffset`, as Kafka finds it (it iterates the
 * batch's records, decompressing them):
 * - LogAppendTime batches: every record has the batch's max timestamp, so the first record;
 * - uncompressed and gzip batches: each record's timestamp (first timestamp + its delta), exactly;
 * - snappy, lz4 and zstd batches (no decoder in Node 20 without a dependency) and records that cannot be read:
 *   the batch's first offset, with its first timestamp when that is at or after `timestamp` (the first record's,
 *   as producers write it), else its max timestamp (a record of the batch, at or after `timestamp`). A consumer seeking there
 *   re-reads the batch's older records; it never skips a newer one.
 */
const firstRecordFrom = (batch: Buffer, timestamp: number, logStartOffset: number): RecordTime | undefined => {
  const baseOffset = Number(batch.readBigInt64BE(0))
  const firstTimestamp = Number(batch.readBigInt64BE(27))
  const maxTimestamp = Number(batch.readBigInt64BE(35))
  const opaque = (): RecordTime => ({
    offset: Math.max(baseOffset, logStartOffset),
    timestamp: firstTimestamp >= timestamp ? firstTimestamp : maxTimestamp
  })
  if ((batch.readInt16BE(21) & 0x08) !== 0) {
    return { offset: Math.max(baseOffset, logStartOffset), timestamp: maxTimestamp }
  }
  const codec = codecOf(batch)
  if (codec !== Codec.none && codec !== Codec.gzip) return opaque()
  try {
    const records = codec === Codec.none
      ? batch.subarray(batchHeaderBytes)
      : zlib.gunzipSync(batch.subarray(batchHeaderBytes), { maxOutputLength: maxInflatedBytes })
    const r = new Reader(records)
    for (let i = batch.readInt32BE(57); i > 0; i--) {
      const length = r.varint()
      if (length < 0) return opaque()
      const end = r.offset + length
      r.int8() // attributes
      const recordTimestamp = firstTimestamp + Number(r.varlong())
      const offset = baseOffset + r.varint()
      if (recordTimestamp >= timestamp && offset >= logStartOffset) return { offset, timestamp: recordTimestamp }
      if (end < r.offset) return opaque()
      r.skip(end - r.offset)
    }
    return undefined
  } catch {
    // records that cannot be decompressed or read
    return opaque()
  }
}

export class PartitionLog {
  readonly batches: Array<StoredBatch> = []
  logStartOffset = 0
  nextOffset = 0
  readonly producers = new Map<bigint, ProducerState>()
  /** Bytes in the file: the stored batches, one after the other. */
  private size = 0

  /** With a file, `disk` holds its append handle (none until the first append). */
  constructor(readonly file: string | undefined, private readonly disk: Disk | undefined) {
    if (file !== undefined && fs.existsSync(file)) this.load(file)
  }

  /**
   * Reads the batches of the file up to the first unsound one, and cuts the file there: what follows a torn or
   * corrupt batch cannot be framed, and appends must start right after the last sound batch.
   */
  private load(file: string) {
    const buf = fs.readFileSync(file)
    let at = 0
    let unsound: string | undefined
    while (at < buf.length) {
      unsound = unsoundBatch(buf, at, this.nextOffset)
      if (unsound !== undefined) break
      const size = 12 + buf.readInt32BE(at + 8)
      const data = Buffer.from(buf.subarray(at, at + size))
      const baseOffset = Number(data.readBigInt64BE(0))
      const lastOffset = baseOffset + data.readInt32BE(23)
      this.batches.push({ baseOffset, lastOffset, maxTimestamp: Number(data.readBigInt64BE(35)), data })
      this.nextOffset = lastOffset + 1
      at += size
    }
    if (unsound !== undefined) {
      fs.truncateSync(file, at)
      this.disk?.warn(
        `${file}: the batch at byte ${at} ${unsound}; the log is cut there (${
          buf.length - at
        } bytes dropped) and continues at offset ${this.nextOffset}`
      )
    }
    this.size = at
    if (this.batches.length > 0) this.logStartOffset = this.batches[0].baseOffset
  }

  /**
   * Appends one batch (already CRC-checked). Returns its base offset, or for a duplicate from an idempotent producer
   * the offset it was first written at; `"OutOfOrder"` when a sequence is skipped. Throws when the file cannot be
   * written; the log is then as it was.
   */
  append(batch: Buffer): number | "OutOfOrder" {
    const producerId = batch.readBigInt64BE(43)
    const producerEpoch = batch.readInt16BE(51)
    const baseSequence = batch.readInt32BE(53)
    const lastOffsetDelta = batch.readInt32BE(23)
    if (producerId >= 0n && baseSequence >= 0) {
      const state = this.producers.get(producerId)
      const lastSequence = baseSequence + lastOffsetDelta
      if (state !== undefined && state.epoch === producerEpoch) {
        const dup = state.recent.find((r) => r.firstSequence === baseSequence && r.lastSequence === lastSequence)
        if (dup !== undefined) return dup.baseOffset
        if (baseSequence !== state.lastSequence + 1) return "OutOfOrder"
      } else if (state === undefined && baseSequence !== 0 && this.batches.length > 0) {
        // unknown producer writing mid-sequence: accept (state may predate a restart)
      }
      const baseOffset = this.write(batch)
      const next = state !== undefined && state.epoch === producerEpoch
        ? state
        : { epoch: producerEpoch, lastSequence: -1, recent: [] }
      next.lastSequence = lastSequence
      next.recent.push({ firstSequence: baseSequence, lastSequence, baseOffset })
      if (next.recent.length > 5) next.recent.shift()
      this.producers.set(producerId, next)
      return baseOffset
    }
    return this.write(batch)
  }

  /** Writes the batch to the file first, then to memory: a failed write changes nothing. */
  private write(batch: Buffer): number {
    const baseOffset = this.nextOffset
    const data = Buffer.from(batch)
    data.writeBigInt64BE(BigInt(baseOffset), 0)
    if (this.file !== undefined && this.disk !== undefined) {
      this.disk.files.append(this.file, this.size, data)
      this.size += data.length
    }
    const lastOffset = baseOffset + data.readInt32BE(23)
    this.batches.push({ baseOffset, lastOffset, maxTimestamp: Number(data.readBigInt64BE(35)), data })
    this.nextOffset = lastOffset + 1
    return baseOffset
  }

  /** Index of the first batch holding an offset ≥ `offset`. */
  private indexFor(offset: number): number {
    let lo = 0
    let hi = this.batches.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.batches[mid].lastOffset < offset) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Whole batches from `offset`, at least one, up to `maxBytes`. */
  read(offset: number, maxBytes: number): { readonly chunks: Array<Buffer>; readonly size: number } {
    const chunks: Array<Buffer> = []
    let size = 0
    for (let i = this.indexFor(offset); i < this.batches.length; i++) {
      const data = this.batches[i].data
      if (chunks.length > 0 && size + data.length > maxBytes) break
      chunks.push(data)
      size += data.length
    }
    return { chunks, size }
  }

  /**
   * ListOffsets by time: the first record (in offset order) whose timestamp is ≥ `timestamp`, with that timestamp;
   * `undefined` when every record is older. Batches whose max timestamp is older are skipped unread; in the others
   * the records are read, gzip decompressed (see `firstRecordFrom` for the codecs Node cannot decompress).
   */
  offsetForTimestamp(timestamp: number): RecordTime | undefined {
    for (const b of this.batches) {
      if (b.maxTimestamp < timestamp) continue
      const found = firstRecordFrom(b.data, timestamp, this.logStartOffset)
      if (found !== undefined) return found
    }
    return undefined
  }

  close() {
    if (this.file !== undefined) this.disk?.files.close(this.file)
  }
}

export class Topic {
  readonly partitions: Array<PartitionLog> = []
  constructor(
    readonly name: string,
    count: number,
    private readonly dir: string | undefined,
    private readonly disk: Disk | undefined
  ) {
    this.grow(count)
  }
  grow(count: number) {
    for (let p = this.partitions.length; p < count; p++) {
      this.partitions.push(
        new PartitionLog(
          this.dir === undefined ? undefined : path.join(this.dir, `${encodeURIComponent(this.name)}-${p}.log`),
          this.disk
        )
      )
    }
  }
  close() {
    for (const p of this.partitions) p.close()
  }
}

/** How many partitions the broker holds, per topic and in all. */
export interface PartitionLimits {
  readonly maxPartitionsPerTopic: number
  readonly maxPartitions: number
}

/** Where to keep data and how much of it. */
export interface StorageOptions extends PartitionLimits {
  /** Memory only without it. */
  readonly dataDir: string | undefined
  /** Partition files open for appending at once. */
  readonly maxOpenFiles: number
  /** Reports what loading repaired (a torn or corrupt batch cut off). */
  readonly warn: (message: string) => void
}

export interface CommittedOffset {
  readonly offset: number
  readonly metadata: string | null
}

/** Topics and committed offsets, persisted under `dataDir` when given. */
export class Storage {
  readonly topics = new Map<string, Topic>()
  /** group → "topic\u0000partition" → offset */
  readonly offsets = new Map<string, Map<string, CommittedOffset>>()
  readonly dataDir: string | undefined
  private readonly logDir: string | undefined
  private readonly disk: Disk | undefined
  private offsetsDirty = false

  /** Reads the data directory, if any; throws when it cannot be read or holds what the limits do not allow. */
  constructor(options: StorageOptions) {
    const dataDir = this.dataDir = options.dataDir
    if (dataDir !== undefined) {
      this.logDir = path.join(dataDir, "logs")
      this.disk = { files: new LogFiles(options.maxOpenFiles), warn: options.warn }
      fs.mkdirSync(this.logDir, { recursive: true })
      const topicsFile = path.join(dataDir, "topics.json")
      if (fs.existsSync(topicsFile)) {
        const saved = JSON.parse(fs.readFileSync(topicsFile, "utf8")) as Record<string, unknown>
        let total = 0
        for (const [name, count] of Object.entries(saved)) {
          if (!Number.isSafeInteger(count) || (count as number) < 1) {
            throw new Error(`${topicsFile}: topic ${name} has ${JSON.stringify(count)} partitions`)
          }
          total += count as number
          if ((count as number) > options.maxPartitionsPerTopic || total > options.maxPartitions) {
            throw new Error(
              `${topicsFile}: topic ${name} with ${count} partitions is above the limits ` +
                `(maxPartitionsPerTopic ${options.maxPartitionsPerTopic}, maxPartitions ${options.maxPartitions})`
            )
          }
        }
        for (const [name, count] of Object.entries(saved)) {
          this.topics.set(name, new Topic(name, count as number, this.logDir, this.disk))
        }
      }
      const offsetsFile = path.join(dataDir, "offsets.json")
      if (fs.existsSync(offsetsFile)) {
        const saved = JSON.parse(fs.readFileSync(offsetsFile, "utf8")) as Record<
          string,
          Record<string, CommittedOffset>
        >
        for (const [group, entries] of Object.entries(saved)) this.offsets.set(group, new Map(Object.entries(entries)))
      }
    }
  }

  /** Partitions of every topic. */
  partitionCount(): number {
    let total = 0
    for (const topic of this.topics.values()) total += topic.partitions.length
    return total
  }

  /** Partition files open for appending now. */
  openFiles(): number {
    return this.disk?.files.size ?? 0
  }

  createTopic(name: string, partitions: number): Topic {
    const topic = new Topic(name, partitions, this.logDir, this.disk)
    this.topics.set(name, topic)
    this.saveTopics()
    return topic
  }

  deleteTopic(name: string) {
    const topic = this.topics.get(name)
    if (topic === undefined) return
    topic.close()
    this.topics.delete(name)
    if (this.logDir !== undefined) {
      topic.partitions.forEach((_, p) =>
        fs.rmSync(path.join(this.logDir!, `${encodeURIComponent(name)}-${p}.log`), { force: true })
      )
    }
    for (const offsets of this.offsets.values()) {
      for (const key of offsets.keys()) if (key.startsWith(`${name}\u0000`)) offsets.delete(key)
    }
    this.saveTopics()
  }

  saveTopics() {
    if (this.dataDir === undefined) return
    const out: Record<string, number> = {}
    for (const [name, t] of this.topics) out[name] = t.partitions.length
    writeAtomic(path.join(this.dataDir, "topics.json"), JSON.stringify(out))
  }

  commit(group: string, topic: string, partition: number, offset: CommittedOffset) {
    let offsets = this.offsets.get(group)
    if (offsets === undefined) this.offsets.set(group, offsets = new Map())
    offsets.set(`${topic}\u0000${partition}`, offset)
    this.offsetsDirty = true
  }

  committed(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.offsets.get(group)?.get(`${topic}\u0000${partition}`)
  }

  /** Writes committed offsets if they changed; called after each commit request and at close. */
  flushOffsets() {
    if (this.dataDir === undefined || !this.offsetsDirty) return
    this.offsetsDirty = false
    const out: Record<string, Record<string, CommittedOffset>> = {}
    for (const [group, entries] of this.offsets) out[group] = Object.fromEntries(entries)
    writeAtomic(path.join(this.dataDir, "offsets.json"), JSON.stringify(out))
  }

  close() {
    this.flushOffsets()
    this.disk?.files.closeAll()
  }
}

const writeAtomic = (file: string, content: string) => {
  const tmp = `${file}.tmp`
  fs.writeFileSync(tmp, content)
  fs.renameSync(tmp, file)
}
