/**
 * Request handlers of the dev broker, one per API key, for the non-flexible versions it advertises.
 */
import type { Reader } from "./codec.js"
import { Writer } from "./codec.js"
import { crc32c } from "./crc32c.js"
import { ErrorCode } from "./errors.js"
import type { GroupCoordinator } from "./groups.js"
import { Codec, codecOf } from "./log.js"
import type { PartitionLimits, PartitionLog, RecordTime, Storage, Topic } from "./log.js"

export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  DescribeGroups: 15,
  ListGroups: 16,
  SaslHandshake: 17,
  ApiVersions: 18,
  CreateTopics: 19,
  DeleteTopics: 20,
  InitProducerId: 22,
  DescribeConfigs: 32,
  SaslAuthenticate: 36,
  CreatePartitions: 37,
  DeleteGroups: 42
} as const

/** Highest version per API key (lowest is always 0). */
export const maxVersions: ReadonlyMap<number, number> = new Map([
  [ApiKey.Produce, 7],
  [ApiKey.Fetch, 11],
  [ApiKey.ListOffsets, 2],
  [ApiKey.Metadata, 6],
  [ApiKey.OffsetCommit, 5],
  [ApiKey.OffsetFetch, 4],
  [ApiKey.FindCoordinator, 2],
  [ApiKey.JoinGroup, 5],
  [ApiKey.Heartbeat, 3],
  [ApiKey.LeaveGroup, 2],
  [ApiKey.SyncGroup, 3],
  [ApiKey.DescribeGroups, 2],
  [ApiKey.ListGroups, 2],
  [ApiKey.DeleteGroups, 1],
  [ApiKey.ApiVersions, 2],
  [ApiKey.SaslHandshake, 1],
  [ApiKey.SaslAuthenticate, 1],
  [ApiKey.CreateTopics, 3],
  [ApiKey.DeleteTopics, 1],
  [ApiKey.CreatePartitions, 1],
  [ApiKey.DescribeConfigs, 2],
  [ApiKey.InitProducerId, 1]
])

export interface BrokerConfig extends PartitionLimits {
  readonly host: string
  readonly nodeId: number
  readonly clusterId: string
  readonly autoCreateTopics: boolean
  readonly defaultPartitions: number
  readonly maxMessageBytes: number
}

export interface BrokerContext {
  readonly config: BrokerConfig
  port: number
  readonly storage: Storage
  readonly groups: GroupCoordinator
  readonly log: (message: string) => void
  /** For what a broker operator should see (logged as a warning). */
  readonly warn: (message: string) => void
  /** Wakes long-polling fetches when data arrives. */
  readonly waiters: Set<() => void>
  nextProducerId: bigint
  /** Time spent handling requests and records appended/served, for benchmarks. */
  readonly stats: { busyMs: number; producedRecords: number; fetchedBatches: number }
}

export interface RequestInfo {
  readonly version: number
  readonly clientId: string
  readonly clientHost: string
  /** Runs `f` when the connection closes; answers a function that cancels it. */
  readonly onClose: (f: () => void) => () => void
}

/**
 * A handler returns the response body, a promise of it, or `null` for no response (produce with acks=0, a
 * long-poll whose connection closed).
 */
export type Handler = (ctx: BrokerContext, r: Reader, info: RequestInfo) => Buffer | Promise<Buffer | null> | null

const validTopicName = /^[a-zA-Z0-9._-]{1,249}$/

/**
 * Why a topic cannot have `count` partitions, `added` of them new, with `pending` more promised by the same
 * validate-only request (answered INVALID_PARTITIONS), or `undefined` when it can. Checked before anything is
 * allocated: a count in a request is only a number.
 */
const partitionsRefused = (ctx: BrokerContext, count: number, added: number, pending = 0): string | undefined => {
  if (count < 1) return "Number of partitions must be larger than 0."
  const { maxPartitions, maxPartitionsPerTopic } = ctx.config
  if (count > maxPartitionsPerTopic) {
    return `Number of partitions ${count} is above the limit of ${maxPartitionsPerTopic} per topic (maxPartitionsPerTopic).`
  }
  const total = ctx.storage.partitionCount() + pending
  if (total + added > maxPartitions) {
    return `Adding ${added} partitions would give the broker ${
      total + added
    }, above its limit of ${maxPartitions} (maxPartitions); it has ${total} now.`
  }
  return undefined
}

/** The topic, auto-created when allowed; `"Refused"` when auto-creation would pass the partition limits. */
const topicFor = (ctx: BrokerContext, name: string, autoCreate: boolean): Topic | "Refused" | undefined => {
  const existing = ctx.storage.topics.get(name)
  if (existing !== undefined) return existing
  if (!autoCreate || !ctx.config.autoCreateTopics || !validTopicName.test(name)) return undefined
  const partitions = ctx.config.defaultPartitions
  const refused = partitionsRefused(ctx, partitions, partitions)
  if (refused !== undefined) {
    ctx.warn(`cannot auto-create topic ${name}: ${refused}`)
    return "Refused"
  }
  ctx.log(`auto-created topic ${name} with ${partitions} partitions`)
  return ctx.storage.createTopic(name, partitions)
}

// ---------------------------------------------------------------------------------------------------------------
// ApiVersions

export const apiVersionsBody = (version: number, error: number): Buffer => {
  const w = new Writer(512)
  w.int16(error)
  w.array([...maxVersions.entries()], (w, [key, max]) => w.int16(key).int16(0).int16(max))
  if (version >= 1) w.int32(0)
  return Buffer.from(w.result())
}

const apiVersions: Handler = (_ctx, _r, info) => apiVersionsBody(info.version, ErrorCode.NONE)

// ---------------------------------------------------------------------------------------------------------------
// Metadata

const metadata: Handler = (ctx, r, { version }) => {
  const requested = version === 0 ? r.array((r) => r.string()) : r.nullableArray((r) => r.string())
  const allowAuto = version >= 4 ? r.bool() : true
  const names = requested === null || (version === 0 && requested.length === 0)
    ? [...ctx.storage.topics.keys()]
    : requested
  return metadataBody(ctx, version, names, allowAuto)
}

/** The Metadata response: the one broker, and each topic with its partitions (all led by this broker). */
const metadataBody = (ctx: BrokerContext, version: number, names: ReadonlyArray<string>, allowAuto: boolean) => {
  const w = new Writer(1024)
  if (version >= 3) w.int32(0)
  w.int32(1).int32(ctx.config.nodeId).string(ctx.config.host).int32(ctx.port)
  if (version >= 1) w.nullableString(null)
  if (version >= 2) w.nullableString(ctx.config.clusterId)
  if (version >= 1) w.int32(ctx.config.nodeId)
  w.int32(names.length)
  for (const name of names) {
    const found = topicFor(ctx, name, allowAuto)
    const topic = found === "Refused" ? undefined : found
    w.int16(
      found === "Refused"
        ? ErrorCode.INVALID_PARTITIONS
        : topic === undefined
        ? (validTopicName.test(name) ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION : ErrorCode.INVALID_TOPIC_EXCEPTION)
        : ErrorCode.NONE
    ).string(name)
    if (version >= 1) w.bool(false)
    const partitions = topic?.partitions ?? []
    w.int32(partitions.length)
    for (let p = 0; p < partitions.length; p++) {
      w.int16(ErrorCode.NONE).int32(p).int32(ctx.config.nodeId)
      w.int32(1).int32(ctx.config.nodeId) // replicas
      w.int32(1).int32(ctx.config.nodeId) // isr
      if (version >= 5) w.int32(0) // offline replicas
    }
  }
  return Buffer.from(w.result())
}

// ---------------------------------------------------------------------------------------------------------------
// Produce

interface BatchCheck {
  readonly error: number
  readonly batches: ReadonlyArray<Buffer>
}

/**
 * Splits a records blob into RecordBatch v2 batches, checking magic, size and CRC-32C, and that zstd is only sent by
 * a producer that may (Produce v7+, as Kafka requires).
 */
export const checkBatches = (records: Buffer, maxMessageBytes: number, zstdAllowed = true): BatchCheck => {
  const batches: Array<Buffer> = []
  let at = 0
  while (at < records.length) {
    if (records.length - at < 61) return { error: ErrorCode.CORRUPT_MESSAGE, batches }
    const size = 12 + records.readInt32BE(at + 8)
    if (size < 61 || at + size > records.length) return { error: ErrorCode.CORRUPT_MESSAGE, batches }
    const batch = records.subarray(at, at + size)
    if (batch.readInt8(16) !== 2) return { error: ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, batches }
    if (size > maxMessageBytes) return { error: ErrorCode.MESSAGE_TOO_LARGE, batches }
    if (crc32c(batch, 21, size) !== batch.readUInt32BE(17)) return { error: ErrorCode.CORRUPT_MESSAGE, batches }
    if (!zstdAllowed && codecOf(batch) === Codec.zstd) return { error: ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, batches }
    batches.push(batch)
    at += size
  }
  return { error: ErrorCode.NONE, batches }
}

const produce: Handler = (ctx, r, { version }) => {
  if (version >= 3) r.nullableString()
  const acks = r.int16()
  r.int32() // timeout
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => ({ index: r.int32(), records: r.bytes() }))
  }))
  const w = new Writer(256)
  w.int32(topics.length)
  let appended = false
  for (const t of topics) {
    w.string(t.name)
    w.int32(t.partitions.length)
    const found = topicFor(ctx, t.name, true)
    const topic = found === "Refused" ? undefined : found
    for (const p of t.partitions) {
      const log = topic?.partitions[p.index]
      let error: number = ErrorCode.NONE
      let baseOffset = -1
      if (log === undefined) {
        error = validTopicName.test(t.name) ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION : ErrorCode.INVALID_TOPIC_EXCEPTION
      } else if (acks !== 0 && acks !== 1 && acks !== -1) {
        error = ErrorCode.INVALID_REQUIRED_ACKS
      } else if (p.records !== null) {
        const checked = checkBatches(p.records, ctx.config.maxMessageBytes, version >= 7)
        error = checked.error
        if (error === ErrorCode.NONE) {
          for (const batch of checked.batches) {
            let result: number | "OutOfOrder"
            try {
              result = log.append(batch)
            } catch (cause) {
              ctx.warn(`cannot write to ${log.file}: ${String(cause)}`)
              error = ErrorCode.KAFKA_STORAGE_ERROR
              break
            }
            if (result === "OutOfOrder") {
              error = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
              break
            }
            if (baseOffset < 0) baseOffset = result
            appended = true
            ctx.stats.producedRecords += batch.readInt32BE(57)
          }
        } else {
          ctx.log(`produce to ${t.name}[${p.index}] rejected with error ${error}`)
        }
      }
      w.int32(p.index).int16(error).int64(baseOffset)
      if (version >= 2) w.int64(-1)
      if (version >= 5) w.int64(log?.logStartOffset ?? -1)
    }
  }
  if (version >= 1) w.int32(0)
  if (appended) { for (const wake of [...ctx.waiters]) wake() }
  return acks === 0 ? null : Buffer.from(w.result())
}

// ---------------------------------------------------------------------------------------------------------------
// Fetch

interface FetchPartition {
  readonly partition: number
  readonly fetchOffset: number
  readonly maxBytes: number
}

const fetch: Handler = (ctx, r, { onClose, version }) => {
  r.int32() // replica id
  const maxWait = r.int32()
  const minBytes = r.int32()
  const maxBytes = version >= 3 ? r.int32() : 0x7fffffff
  if (version >= 4) r.int8()
  if (version >= 7) {
    r.int32()
    r.int32()
  }
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r): FetchPartition => {
      const partition = r.int32()
      if (version >= 9) r.int32()
      const fetchOffset = r.int64n()
      if (version >= 5) r.int64()
      return { partition, fetchOffset, maxBytes: r.int32() }
    })
  }))
  // forgotten topics (v7+) and rack id (v11+) are read and ignored

  /**
   * What this version may be served of the batches read: clients of Fetch below v10 cannot read zstd, so they get
   * the batches before the first zstd one, or `"Zstd"` (UNSUPPORTED_COMPRESSION_TYPE) when it comes first.
   */
  const servable = (read: { readonly chunks: Array<Buffer>; readonly size: number }) => {
    if (version >= 10) return read
    const zstd = read.chunks.findIndex((batch) => codecOf(batch) === Codec.zstd)
    if (zstd < 0) return read
    if (zstd === 0) return "Zstd" as const
    const chunks = read.chunks.slice(0, zstd)
    return { chunks, size: chunks.reduce((n, c) => n + c.length, 0) }
  }

  const build = (): Buffer => {
    const w = new Writer(1024)
    if (version >= 1) w.int32(0)
    if (version >= 7) w.int16(ErrorCode.NONE).int32(0)
    let total = 0
    w.int32(topics.length)
    for (const t of topics) {
      w.string(t.name)
      w.int32(t.partitions.length)
      const topic = ctx.storage.topics.get(t.name)
      for (const p of t.partitions) {
        const log: PartitionLog | undefined = topic?.partitions[p.partition]
        let error: number = ErrorCode.NONE
        let chunks: Array<Buffer> = []
        let size = 0
        if (log === undefined) {
          error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        } else if (p.fetchOffset > log.nextOffset || p.fetchOffset < log.logStartOffset) {
          error = ErrorCode.OFFSET_OUT_OF_RANGE
        } else if (total < maxBytes || total === 0) {
          const read = servable(log.read(p.fetchOffset, Math.min(p.maxBytes, Math.max(1, maxBytes - total))))
          if (read === "Zstd") {
            error = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
          } else {
            chunks = read.chunks
            size = read.size
            total += size
          }
        }
        w.int32(p.partition).int16(error).int64(log?.nextOffset ?? -1)
        if (version >= 4) w.int64(log?.nextOffset ?? -1)
        if (version >= 5) w.int64(log?.logStartOffset ?? -1)
        if (version >= 4) w.int32(-1) // aborted transactions: null
        if (version >= 11) w.int32(-1) // preferred read replica
        if (error === ErrorCode.NONE) w.bytesChunks(chunks, size)
        else w.int32(-1)
      }
    }
    return Buffer.from(w.result())
  }

  /**
   * Whether the fetch should be answered now: enough bytes (counted without building the response), or an error
   * in some partition (as Kafka, which answers errors at once). Checked on every produce while long-polling.
   */
  const ready = (): boolean => {
    let total = 0
    for (const t of topics) {
      const topic = ctx.storage.topics.get(t.name)
      for (const p of t.partitions) {
        const log = topic?.partitions[p.partition]
        if (log === undefined || p.fetchOffset > log.nextOffset || p.fetchOffset < log.logStartOffset) return true
        if (p.fetchOffset === log.nextOffset) continue
        const read = servable(log.read(p.fetchOffset, Math.min(p.maxBytes, Math.max(1, maxBytes - total))))
        if (read === "Zstd") return true
        total += read.size
        if (total >= minBytes) return true
      }
    }
    return total >= minBytes
  }

  if (maxWait <= 0 || ready()) return build()
  // waits for data, until max wait or until the connection closes (then nobody is left to answer)
  return new Promise<Buffer | null>((resolve) => {
    let done = false
    const stop = () => {
      done = true
      clearTimeout(timer)
      ctx.waiters.delete(wake)
      cancelOnClose()
    }
    const finish = () => {
      if (done) return
      stop()
      resolve(build())
    }
    const wake = () => {
      if (ready()) finish()
    }
    const timer = setTimeout(finish, maxWait)
    ctx.waiters.add(wake)
    const cancelOnClose = onClose(() => {
      if (done) return
      stop()
      resolve(null)
    })
  })
}

// ---------------------------------------------------------------------------------------------------------------
// ListOffsets

const listOffsets: Handler = (ctx, r, { version }) => {
  r.int32()
  if (version >= 2) r.int8()
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => {
      const index = r.int32()
      const timestamp = r.int64n()
      if (version === 0) r.int32()
      return { index, timestamp }
    })
  }))
  const w = new Writer(256)
  if (version >= 2) w.int32(0)
  w.array(topics, (w, t) => {
    const topic = ctx.storage.topics.get(t.name)
    w.string(t.name)
    w.array(t.partitions, (w, p) => {
      const log = topic?.partitions[p.index]
      // latest and earliest answer timestamp -1; by time, the record found and its timestamp, or -1 and -1
      const found: RecordTime | undefined = log === undefined
        ? undefined
        : p.timestamp === -1
        ? { offset: log.nextOffset, timestamp: -1 }
        : p.timestamp === -2
        ? { offset: log.logStartOffset, timestamp: -1 }
        : log.offsetForTimestamp(p.timestamp)
      w.int32(p.index).int16(log === undefined ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION : ErrorCode.NONE)
      if (version === 0) {
        // v0 answers offsets only; for a time after every record, the log end (as before v1 existed)
        w.array(log === undefined ? [] : [found?.offset ?? log.nextOffset], (w, o) => w.int64(o))
      } else {
        w.int64(found?.timestamp ?? -1).int64(found?.offset ?? -1)
      }
    })
  })
  return Buffer.from(w.result())
}

// ---------------------------------------------------------------------------------------------------------------
// Group coordination

const findCoordinator: Handler = (ctx, r, { version }) => {
  r.string()
  if (version >= 1) r.int8()
  const w = new Writer(64)
  if (version >= 1) w.int32(0)
  w.int16(ErrorCode.NONE)
  if (version >= 1) w.nullableString(null)
  w.int32(ctx.config.nodeId).string(ctx.config.host).int32(ctx.port)
  return Buffer.from(w.result())
}

const joinGroup: Handler = async (ctx, r, { clientHost, clientId, version }) => {
  const groupId = r.string()
  const sessionTimeout = r.int32()
  const rebalanceTimeout = version >= 1 ? r.int32() : sessionTimeout
  const memberId = r.string()
  const instanceId = version >= 5 ? r.nullableString() : null
  const protocolType = r.string()
  const protocols = r.array((r) => ({ name: r.string(), metadata: Buffer.from(r.bytes() ?? Buffer.alloc(0)) }))
  const result = await ctx.groups.join({
    groupId,
    memberId,
    instanceId,
    clientId,
    clientHost,
    sessionTimeout,
    rebalanceTimeout,
    protocolType,
    protocols
  })
  const w = new Writer(256)
  if (version >= 2) w.int32(0)
  w.int16(result.error).int32(result.generation).string(result.protocol).string(result.leader).string(result.memberId)
  w.array(result.members, (w, m) => {
    w.string(m.memberId)
    if (version >= 5) w.nullableString(m.instanceId)
    w.bytes(m.metadata)
  })
  return Buffer.from(w.result())
}

const syncGroup: Handler = async (ctx, r, { version }) => {
  const groupId = r.string()
  const generation = r.int32()
  const memberId = r.string()
  if (version >= 3) r.nullableString()
  const assignments = r.array((r) => ({ memberId: r.string(), assignment: Buffer.from(r.bytes() ?? Buffer.alloc(0)) }))
  const result = await ctx.groups.sync({ groupId, generation, memberId, assignments })
  const w = new Writer(128)
  if (version >= 1) w.int32(0)
  w.int16(result.error).bytes(result.assignment)
  return Buffer.from(w.result())
}

const heartbeat: Handler = (ctx, r, { version }) => {
  const groupId = r.string()
  const generation = r.int32()
  const memberId = r.string()
  if (version >= 3) r.nullableString()
  const w = new Writer(16)
  if (version >= 1) w.int32(0)
  w.int16(ctx.groups.heartbeat(groupId, generation, memberId))
  return Buffer.from(w.result())
}

const leaveGroup: Handler = (ctx, r, { version }) => {
  const groupId = r.string()
  const memberId = r.string()
  const w = new Writer(16)
  if (version >= 1) w.int32(0)
  w.int16(ctx.groups.leave(groupId, memberId))
  return Buffer.from(w.result())
}

const offsetCommit: Handler = (ctx, r, { version }) => {
  const groupId = r.string()
  const generation = version >= 1 ? r.int32() : -1
  const memberId = version >= 1 ? r.string() : ""
  if (version >= 2 && version <= 4) r.int64()
  const topics = r.array((r) => ({
    name: r.string(),
    partitions: r.array((r) => {
      const index = r.int32()
      const offset = r.int64n()
      if (version === 1) r.int64()
      return { index, offset, metadata: r.nullableString() }
    })
  }))
  const check = ctx.groups.checkCommit(groupId, generation, memberId)
  const w = new Writer(128)
  if (version >= 3) w.int32(0)
  w.array(topics, (w, t) => {
    w.string(t.name)
    const topic = ctx.storage.topics.get(t.name)
    w.array(t.partitions, (w, p) => {
      let error: number = check
      if (error === ErrorCode.NONE) {
        if (topic?.partitions[p.index] === undefined) error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        else ctx.storage.commit(groupId, t.name, p.index, { offset: p.offset, metadata: p.metadata })
      }
      w.int32(p.index).int16(error)
    })
  })
  if (check !== ErrorCode.NONE) ctx.log(`offset commit for group ${groupId} rejected with error ${check}`)
  ctx.storage.flushOffsets()
  return Buffer.from(w.result())
}

const offsetFetch: Handler = (ctx, r, { version }) => {
  const groupId = r.string()
  const requested = version >= 2
    ? r.nullableArray((r) => ({ name: r.string(), partitions: r.array((r) => r.int32()) }))
    : r.array((r) => ({ name: r.string(), partitions: r.array((r) => r.int32()) }))
  const topics = requested ?? (() => {
    const byTopic = new Map<string, Array<number>>()
    for (const key of ctx.storage.offsets.get(groupId)?.keys() ?? []) {
      const [name, p] = key.split("\u0000")
      byTopic.set(name, [...(byTopic.get(name) ?? []), Number(p)])
    }
    return [...byTopic].map(([name, partitions]) => ({ name, partitions }))
  })()
  const w = new Writer(128)
  if (version >= 3) w.int32(0)
  w.array(topics, (w, t) => {
    w.string(t.name)
    w.array(t.partitions, (w, p) => {
      const committed = ctx.storage.committed(groupId, t.name, p)
      w.int32(p).int64(committed?.offset ?? -1).nullableString(committed?.metadata ?? "").int16(ErrorCode.NONE)
    })
  })
  if (version >= 2) w.int16(ErrorCode.NONE)
  return Buffer.from(w.result())
}

const describeGroups: Handler = (ctx, r, { version }) => {
  const ids = r.array((r) => r.string())
  const w = new Writer(256)
  if (version >= 1) w.int32(0)
  w.array(ids, (w, id) => {
    const g = ctx.groups.describe(id)
    w.int16(g.error).string(id).string(g.state).string(g.protocolType).string(g.protocol)
    w.array(g.members, (w, m) => {
      w.string(m.memberId).string(m.clientId).string(m.clientHost).bytes(m.metadata).bytes(m.assignment)
    })
  })
  return Buffer.from(w.result())
}

const listGroups: Handler = (ctx, _r, { version }) => {
  const w = new Writer(256)
  if (version >= 1) w.int32(0)
  w.int16(ErrorCode.NONE)
  w.array([...ctx.groups.groups.values()], (w, g) => w.string(g.id).string(g.protocolType ?? ""))
  return Buffer.from(w.result())
}

const deleteGroups: Handler = (ctx, r) => {
  const ids = r.array((r) => r.string())
  const w = new Writer(128)
  w.int32(0)
  w.array(ids, (w, id) => {
    const error = ctx.groups.delete(id)
    if (error === ErrorCode.NONE) ctx.storage.offsets.delete(id)
    w.string(id).int16(error)
  })
  return Buffer.from(w.result())
}

// ---------------------------------------------------------------------------------------------------------------
// Admin

/** A topic's answer in CreateTopics and CreatePartitions. */
interface TopicOutcome {
  readonly error: number
  readonly message: string | null
}

const created: TopicOutcome = { error: ErrorCode.NONE, message: null }

const createTopics: Handler = (ctx, r, { version }) => {
  const topics = r.array((r) => {
    const name = r.string()
    const partitions = r.int32()
    const replication = r.int16()
    const assignments = r.array((r) => ({ index: r.int32(), brokers: r.array((r) => r.int32()) }))
    r.array((r) => ({ name: r.string(), value: r.nullableString() }))
    return { name, partitions, replication, assignments }
  })
  r.int32()
  const validateOnly = version >= 1 ? r.bool() : false
  // a validate-only request counts what its earlier topics would have created against the broker's limit
  let validated = 0
  const outcome = (t: (typeof topics)[number]): TopicOutcome => {
    const partitions = t.partitions === -1
      ? (t.assignments.length > 0 ? t.assignments.length : ctx.config.defaultPartitions)
      : t.partitions
    if (!validTopicName.test(t.name)) {
      return { error: ErrorCode.INVALID_TOPIC_EXCEPTION, message: `Invalid topic name ${t.name}` }
    }
    if (ctx.storage.topics.has(t.name)) {
      return { error: ErrorCode.TOPIC_ALREADY_EXISTS, message: `Topic '${t.name}' already exists.` }
    }
    const refused = partitionsRefused(ctx, partitions, partitions, validated)
    if (refused !== undefined) return { error: ErrorCode.INVALID_PARTITIONS, message: refused }
    if (t.replication !== -1 && t.replication !== 1) {
      return {
        error: ErrorCode.INVALID_REPLICATION_FACTOR,
        message: `Replication factor: ${t.replication} larger than available brokers: 1.`
      }
    }
    if (validateOnly) {
      validated += partitions
    } else {
      ctx.storage.createTopic(t.name, partitions)
      ctx.log(`created topic ${t.name} with ${partitions} partitions`)
    }
    return created
  }
  const w = new Writer(128)
  if (version >= 2) w.int32(0)
  w.array(topics, (w, t) => {
    const { error, message } = outcome(t)
    w.string(t.name).int16(error)
    if (version >= 1) w.nullableString(message)
  })
  return Buffer.from(w.result())
}

const deleteTopics: Handler = (ctx, r, { version }) => {
  const names = r.array((r) => r.string())
  r.int32()
  const w = new Writer(128)
  if (version >= 1) w.int32(0)
  w.array(names, (w, name) => {
    const exists = ctx.storage.topics.has(name)
    if (exists) {
      ctx.storage.deleteTopic(name)
      ctx.log(`deleted topic ${name}`)
    }
    w.string(name).int16(exists ? ErrorCode.NONE : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
  })
  return Buffer.from(w.result())
}

const createPartitions: Handler = (ctx, r) => {
  const topics = r.array((r) => ({
    name: r.string(),
    count: r.int32(),
    assignments: r.nullableArray((r) => r.array((r) => r.int32()))
  }))
  r.int32()
  const validateOnly = r.bool()
  let validated = 0
  const outcome = (t: (typeof topics)[number]): TopicOutcome => {
    const topic = ctx.storage.topics.get(t.name)
    if (topic === undefined) {
      return { error: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, message: `Topic ${t.name} does not exist` }
    }
    const current = topic.partitions.length
    if (t.count <= current) {
      return {
        error: ErrorCode.INVALID_PARTITIONS,
        message: `Topic currently has ${current} partitions, which is higher than the requested ${t.count}.`
      }
    }
    const refused = partitionsRefused(ctx, t.count, t.count - current, validated)
    if (refused !== undefined) return { error: ErrorCode.INVALID_PARTITIONS, message: refused }
    if (validateOnly) {
      validated += t.count - current
    } else {
      topic.grow(t.count)
      ctx.storage.saveTopics()
      ctx.log(`topic ${t.name} grew from ${current} to ${t.count} partitions`)
    }
    return created
  }
  const w = new Writer(128)
  w.int32(0)
  w.array(topics, (w, t) => {
    const { error, message } = outcome(t)
    w.string(t.name).int16(error).nullableString(message)
  })
  return Buffer.from(w.result())
}

const describeConfigs: Handler = (ctx, r, { version }) => {
  const resources = r.array((r) => ({
    type: r.int8(),
    name: r.string(),
    keys: r.nullableArray((r) => r.string())
  }))
  if (version >= 1) r.bool()
  const w = new Writer(512)
  w.int32(0)
  w.array(resources, (w, res) => {
    const isTopic = res.type === 2
    const known = isTopic ? ctx.storage.topics.has(res.name) : true
    const all: ReadonlyArray<readonly [string, string]> = isTopic
      ? [["cleanup.policy", "delete"], ["max.message.bytes", String(ctx.config.maxMessageBytes)], [
        "retention.ms",
        "-1"
      ]]
      : [["message.max.bytes", String(ctx.config.maxMessageBytes)], [
        "auto.create.topics.enable",
        String(ctx.config.autoCreateTopics)
      ], ["num.partitions", String(ctx.config.defaultPartitions)]]
    const configs = res.keys === null ? all : all.filter(([k]) => res.keys!.includes(k))
    w.int16(known ? ErrorCode.NONE : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    w.nullableString(known ? null : `Topic ${res.name} does not exist`)
    w.int8(res.type).string(res.name)
    w.array(known ? configs : [], (w, [name, value]) => {
      w.string(name).nullableString(value).bool(false)
      if (version === 0) w.bool(true)
      else w.int8(5) // DEFAULT_CONFIG
      w.bool(false)
      if (version >= 1) w.int32(0)
    })
  })
  return Buffer.from(w.result())
}

const initProducerId: Handler = (ctx, r) => {
  const transactionalId = r.nullableString()
  r.int32()
  const w = new Writer(32)
  w.int32(0)
  if (transactionalId !== null) {
    // transactions are not supported by the dev broker
    w.int16(ErrorCode.UNSUPPORTED_VERSION).int64(-1).int16(-1)
  } else {
    const id = ctx.nextProducerId++
    w.int16(ErrorCode.NONE).int64(id).int16(0)
  }
  return Buffer.from(w.result())
}

export const handlers: ReadonlyMap<number, Handler> = new Map<number, Handler>([
  [ApiKey.Produce, produce],
  [ApiKey.Fetch, fetch],
  [ApiKey.ListOffsets, listOffsets],
  [ApiKey.Metadata, metadata],
  [ApiKey.OffsetCommit, offsetCommit],
  [ApiKey.OffsetFetch, offsetFetch],
  [ApiKey.FindCoordinator, findCoordinator],
  [ApiKey.JoinGroup, joinGroup],
  [ApiKey.Heartbeat, heartbeat],
  [ApiKey.LeaveGroup, leaveGroup],
  [ApiKey.SyncGroup, syncGroup],
  [ApiKey.DescribeGroups, describeGroups],
  [ApiKey.ListGroups, listGroups],
  [ApiKey.ApiVersions, apiVersions],
  [ApiKey.CreateTopics, createTopics],
  [ApiKey.DeleteTopics, deleteTopics],
  [ApiKey.InitProducerId, initProducerId],
  [ApiKey.DescribeConfigs, describeConfigs],
  [ApiKey.CreatePartitions, createPartitions],
  [ApiKey.DeleteGroups, deleteGroups]
])
