/**
 * `deimos tail <topic>`: prints a topic's messages as JSON lines (decoded with the JSON or the Avro Schema Registry
 * backend) through `InlineConsumer`, which commits nothing and needs no group of the user's.
 *
 * @since 0.1.0
 */
import { AvroBackend } from "@deimos/avro"
import { DeimosConfig, JsonBackend, type KeyConfig, SchemaRef } from "@deimos/core"
import { InlineConsumer, KafkaDriver, KafkaJs } from "@deimos/kafka"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { CliError } from "../CliError.js"
import * as Failures from "../Failures.js"
import * as Progress from "../Progress.js"
import * as Settings from "../Settings.js"

const flags = [
  { flag: "brokers", env: "KAFKA_BROKERS" },
  { flag: "registry-url", env: "SCHEMA_REGISTRY_URL" },
  { flag: "format", env: "DEIMOS_SCHEMA_BACKEND" }
] as const

const options = {
  topic: Args.text({ name: "topic" }).pipe(Args.withDescription("The topic, without DEIMOS_TOPIC_PREFIX.")),
  from: Options.text("from").pipe(
    Options.withDescription(
      "Where to start in each partition: beginning, end or an offset (default: beginning; end with --follow)."
    ),
    Options.optional
  ),
  limit: Options.integer("limit").pipe(
    Options.withDescription("Stop after this many messages."),
    Options.optional
  ),
  follow: Options.boolean("follow").pipe(
    Options.withAlias("f"),
    Options.withDescription("Keep printing new messages until SIGINT/SIGTERM.")
  ),
  format: Options.choice("format", ["json", "avro"]).pipe(
    Options.withDescription(
      "Schema backend: json, or avro (Confluent wire format, schemas from the registry). Env DEIMOS_SCHEMA_BACKEND; " +
        "default json."
    ),
    Options.withFallbackConfig(Config.withDefault(Config.literal("json", "avro")("DEIMOS_SCHEMA_BACKEND"), "json"))
  ),
  registryUrl: Settings.setting("registry-url", "SCHEMA_REGISTRY_URL", "Schema Registry URL, for --format avro."),
  brokers: Settings.setting("brokers", "KAFKA_BROKERS", "Kafka brokers, comma-separated (KAFKA_* variables apply too).")
}

class Enough extends Data.TaggedError("Enough")<{}> {}

type From = "beginning" | "end" | bigint

const parseFrom = (value: Option.Option<string>, follow: boolean): Effect.Effect<From, CliError> => {
  if (Option.isNone(value)) return Effect.succeed(follow ? "end" : "beginning")
  const v = value.value
  if (v === "beginning" || v === "end") return Effect.succeed(v)
  if (/^\d+$/.test(v)) return Effect.succeed(BigInt(v))
  return Effect.fail(
    new CliError({ reason: "Usage", message: `--from wants beginning, end or an offset (0 or more), got "${v}".` })
  )
}

/** A key read as text: its JSON value when it is JSON (the JSON backend's keys), else the text. */
const jsonKey = (key: unknown): unknown => {
  if (typeof key !== "string") return key
  try {
    return JSON.parse(key) as unknown
  } catch {
    return key
  }
}

/** A decoded message as one JSON line: bigints as numbers when exact (else strings), bytes as base64. */
const line = (message: InlineConsumer.Message<unknown, unknown>, textKeys: boolean) =>
  JSON.stringify({
    topic: message.topic,
    partition: message.partition,
    offset: message.offset,
    timestamp: message.timestamp.toISOString(),
    key: textKeys ? jsonKey(message.key) : message.key,
    headers: message.headers,
    payload: message.payload
  }, (_, value: unknown) =>
    typeof value === "bigint"
      ? (Number.isSafeInteger(Number(value)) ? Number(value) : value.toString())
      : value instanceof Uint8Array
      ? Buffer.from(value).toString("base64")
      : value)

/** The latest schema registered under `subject`, if any. */
const latest = (subject: string) =>
  Effect.gen(function*() {
    const url = yield* Config.string("SCHEMA_REGISTRY_URL")
    const username = yield* Config.option(Config.string("SCHEMA_REGISTRY_USERNAME"))
    const password = yield* Config.option(Config.redacted("SCHEMA_REGISTRY_PASSWORD"))
    const headers: Record<string, string> = {}
    if (Option.isSome(username) && Option.isSome(password)) {
      headers.authorization = `Basic ${
        Buffer.from(`${username.value}:${Redacted.value(password.value)}`).toString("base64")
      }`
    }
    const where = `${url.replace(/\/+$/, "")}/subjects/${encodeURIComponent(subject)}/versions/latest`
    return yield* Effect.tryPromise({
      try: async (signal) => {
        const response = await fetch(where, { headers, signal })
        if (response.status === 404) return Option.none<SchemaRef.AvroSchema>()
        if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`)
        const body = await response.json() as { readonly schema: string }
        return Option.some(JSON.parse(body.schema) as SchemaRef.AvroSchema)
      },
      catch: (cause) =>
        new CliError({
          reason: "Failed",
          message: `Cannot read subject ${subject} from the Schema Registry at ${url}: ${String(cause)}`,
          cause
        })
    })
  })

const refOf = (avro: SchemaRef.AvroSchema, fallbackName: string) => {
  const named = typeof avro === "object" && !Array.isArray(avro) ? avro as { name?: unknown; namespace?: unknown } : {}
  return SchemaRef.make<unknown>({
    name: typeof named.name === "string" ? named.name : fallbackName,
    namespace: typeof named.namespace === "string" ? named.namespace : undefined,
    avro
  })
}

/** The value schema handle and key config to read `topic` with. */
const schemaOf = (format: "json" | "avro", topic: string) =>
  Effect.gen(function*() {
    if (format === "json") {
      return {
        schema: SchemaRef.fromSchema(Schema.Unknown, { name: "Message" }),
        keyConfig: { plain: true } as KeyConfig.KeyConfig<unknown>
      }
    }
    const value = yield* latest(`${topic}-value`)
    if (Option.isNone(value)) {
      return yield* new CliError({
        reason: "Failed",
        message: `The Schema Registry has no subject ${topic}-value: is the topic written in Avro (else --format json)?`
      })
    }
    const key = yield* latest(`${topic}-key`)
    return {
      schema: refOf(value.value, "Message"),
      keyConfig: Option.match(key, {
        onNone: () => ({ plain: true }),
        onSome: (avro) => ({ schema: refOf(avro, "Key") })
      }) as KeyConfig.KeyConfig<unknown>
    }
  })

/**
 * @since 0.1.0
 */
export const command = Command.make("tail", options, (o) =>
  Effect.gen(function*() {
    const from = yield* parseFrom(o.from, o.follow)
    // every setting read before connecting anything: a configuration mistake is reported as one
    const [kafka, deimos, registry] = yield* Config.all([
      KafkaJs.config,
      DeimosConfig.config,
      o.format === "avro" ? AvroBackend.registryConfig : Config.succeed(undefined)
    ])
    if (Option.isSome(o.limit) && o.limit.value < 1) {
      return yield* new CliError({ reason: "Usage", message: `--limit wants 1 or more, got ${o.limit.value}.` })
    }
    return yield* Effect.gen(function*() {
      const settings = yield* DeimosConfig.DeimosConfig
      const topic = settings.topicPrefix + o.topic
      const { keyConfig, schema } = yield* schemaOf(o.format, topic)
      const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
      const positions = new Map<number, bigint>()
      let highs = new Map<number, bigint>()
      let printed = 0
      const limit = Option.getOrUndefined(o.limit)

      const print = (message: InlineConsumer.Message<unknown, unknown>) =>
        Effect.gen(function*() {
          yield* Console.log(line(message, "plain" in keyConfig))
          positions.set(message.partition, BigInt(message.offset) + 1n)
          printed++
          if (limit !== undefined && printed >= limit) return yield* new Enough()
        })

      /**
       * Reads what is new in every partition since the last pass: one read for the partitions at the same position
       * (a position at or below a partition's first offset reads from its start), each read through a group join.
       */
      const pass = Effect.gen(function*() {
        const offsets = [...(yield* admin.topicOffsets(topic))].sort((a, b) => a.partition - b.partition)
        highs = new Map(offsets.map((p) => [p.partition, BigInt(p.high)]))
        const reads = new Map<bigint, Array<number>>()
        for (const p of offsets) {
          const low = BigInt(p.low)
          const high = BigInt(p.high)
          if (!positions.has(p.partition)) {
            positions.set(p.partition, from === "beginning" ? low : from === "end" ? high : from < low ? low : from)
          }
          const position = positions.get(p.partition)!
          if (position >= high) continue
          const start = position <= low ? 0n : position
          reads.set(start, [...(reads.get(start) ?? []), p.partition])
        }
        for (const [start, partitions] of reads) {
          // the topic as given: InlineConsumer adds the prefix
          yield* InlineConsumer.run({ topic: o.topic, schema, keyConfig, partitions, fromOffset: start }, print)
          // offsets without a record (transaction markers) are passed too
          for (const partition of partitions) {
            const high = highs.get(partition)!
            if (positions.get(partition)! < high) positions.set(partition, high)
          }
        }
      })

      if (o.follow) {
        const rate = yield* Progress.rate()
        yield* Progress.show(Effect.sync(() => {
          let lag = 0n
          for (const [partition, high] of highs) lag += high - (positions.get(partition) ?? high)
          return `tail ${topic}: ${printed} messages (${Progress.formatRate(rate(printed))}), lag ${lag}`
        }))
      }
      yield* pass
      while (o.follow) {
        yield* Effect.sleep("300 millis")
        yield* pass
      }
    }).pipe(
      Effect.catchTag("Enough", () => Effect.void),
      Effect.scoped,
      Effect.provide(Layer.mergeAll(
        KafkaJs.layer(kafka),
        DeimosConfig.layer(deimos),
        o.format === "json" ? JsonBackend.layer : AvroBackend.layerSchemaRegistry(registry!)
      ))
    )
  }).pipe(
    Settings.provide([
      ["KAFKA_BROKERS", o.brokers],
      ["SCHEMA_REGISTRY_URL", o.registryUrl]
    ], flags),
    Failures.failed(`tail ${o.topic} failed`)
  )).pipe(
    Command.withDescription(
      "Print a topic's messages as JSON lines (topic, partition, offset, timestamp, key, headers, payload). Reads " +
        "KAFKA_BROKERS and the KAFKA_* variables, DEIMOS_TOPIC_PREFIX, DEIMOS_SCHEMA_BACKEND, SCHEMA_REGISTRY_URL " +
        "(and _USERNAME, _PASSWORD) for avro, DEIMOS_PROGRESS and DEIMOS_PROGRESS_INTERVAL (with --follow)."
    )
  )
