/**
 * The work of `ConsumerProcessor`: decoding with the resolved codecs, the handler under the error policy, spans,
 * metrics and dead letters.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as Consumer from "../Consumer.js"
import type { ConsumerFatalError } from "../ConsumerError.js"
import type { Processor, RawMessage } from "../ConsumerProcessor.js"
import * as DeadLetter from "../DeadLetter.js"
import type * as DeimosConfig from "../DeimosConfig.js"
import * as ErrorPolicy from "../ErrorPolicy.js"
import * as Instrumentation from "../Instrumentation.js"
import * as KeyConfig from "../KeyConfig.js"
import * as Metrics from "../Metrics.js"
import type * as ProducerBackend from "../ProducerBackend.js"
import type * as SchemaBackend from "../SchemaBackend.js"
import type { SchemaError } from "../SchemaError.js"
import type * as SchemaRef from "../SchemaRef.js"
import * as Tombstone from "../Tombstone.js"
import * as TraceContext from "../TraceContext.js"
import * as Utf8 from "./utf8.js"

export interface Bindings {
  readonly settings: DeimosConfig.Settings
  readonly backend: SchemaBackend.SchemaBackend.Service
  readonly producerBackend: ProducerBackend.ProducerBackend.Service | undefined
}

/** How keys are read: with the key codec, as plain UTF-8, or not at all (`keyConfig: { none: true }`). */
type KeyDecoder = Pick<SchemaBackend.Codec<unknown>, "decode" | "load">

const noLoad = () => undefined
const nullKey = Either.right(null)
const unkeyed: KeyDecoder = { decode: () => nullKey, load: noLoad }
const plainKeys: KeyDecoder = { decode: (bytes) => Either.right(Utf8.decodeLossy(bytes)), load: noLoad }

const keyDecoderOf = (
  source: Source,
  backend: SchemaBackend.SchemaBackend.Service,
  topic: string
): Effect.Effect<KeyDecoder, SchemaError> => {
  const keySchema = KeyConfig.keySchema(source.keyConfig, source.schema)
  if (keySchema !== undefined) return backend.keyCodec(keySchema, topic, "read")
  return Effect.succeed("none" in source.keyConfig ? unkeyed : plainKeys)
}

/** What decoding a topic's messages needs to know. */
export interface Source {
  readonly schema: SchemaRef.Any
  readonly keyConfig: KeyConfig.KeyConfig<Record<string, unknown>>
}

/** Decodes the messages of one topic: the key, then the payload (`null` for a null value). */
export const decoder = (
  source: Source,
  backend: SchemaBackend.SchemaBackend.Service,
  topic: string
): Effect.Effect<
  (raw: RawMessage) => Effect.Effect<{ readonly key: unknown; readonly payload: unknown }, SchemaError>,
  SchemaError
> =>
  Effect.gen(function*() {
    const codec = yield* backend.codec(source.schema, topic, "read")
    const key = yield* keyDecoderOf(source, backend, topic)
    return (raw) => {
      const decode = Effect.suspend(() => {
        const k = raw.key === null ? nullKey : key.decode(raw.key)
        if (Either.isLeft(k)) return Effect.fail(k.left)
        if (raw.value === null) return Effect.succeed({ key: k.right, payload: null })
        return Effect.map(codec.decode(raw.value), (payload) => ({ key: k.right, payload }))
      })
      const loads = loadsOf(key, codec, raw)
      return loads === undefined ? decode : Effect.zipRight(loads, decode)
    }
  })

const noHeaders: Readonly<Record<string, string>> = Object.freeze({})

/** Header values as strings (a header sent as bytes is read as UTF-8). */
export const headersOf = (raw: RawMessage): Readonly<Record<string, string>> => {
  let out: Record<string, string> | undefined
  for (const k in raw.headers) {
    const v = raw.headers[k]
    if (v === undefined) continue
    out ??= {}
    out[k] = typeof v === "string" ? v : Utf8.decodeLossy(v)
  }
  return out ?? noHeaders
}

const timestampMillis = (payload: unknown): number | undefined => {
  if (typeof payload !== "object" || payload === null || !("timestamp" in payload)) return undefined
  const ts = (payload as { readonly timestamp: unknown }).timestamp
  if (ts instanceof Date) return ts.getTime()
  if (typeof ts === "number") return ts > 1e14 ? ts / 1000 : ts
  if (typeof ts === "bigint") return Number(ts) > 1e14 ? Number(ts) / 1000 : Number(ts)
  if (typeof ts === "string") {
    const parsed = Date.parse(ts)
    return Number.isNaN(parsed) ? undefined : parsed
  }
  return undefined
}

/** What a step reads of the fiber it runs in, without a fiber step: its metric labels and its clock. */
const fiberView = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => ({
  labels: fiber.getFiberRef(FiberRef.currentMetricLabels),
  clock: Context.get(fiber.currentDefaultServices as Context.Context<Clock.Clock>, Clock.Clock)
})

const spanOptions = (consumer: string, raw: RawMessage, headers: Readonly<Record<string, string>>) => {
  const parent = TraceContext.parse(headers[TraceContext.header])
  return {
    kind: "consumer" as const,
    captureStackTrace: false,
    attributes: {
      "resource.name": consumer,
      consumer,
      topic: raw.topic,
      partition: raw.partition,
      offset: raw.offset
    },
    ...(Option.isSome(parent) ? { parent: parent.value } : {})
  }
}

/** Effect's built-in tracer, which records nothing anywhere: in use when the program installs no tracer. */
const builtInTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/**
 * `body` in a `deimos-consumer` span, a child of the producer's span (`traceparent`), when a tracer is installed.
 * With the built-in tracer no span is made: it would be recorded nowhere, and making one per message costs about
 * 15 µs (measured on the processor alone, 200k messages: 5 µs per message without it, 20 µs with it), most of it
 * Effect providing the span to the handler as its parent. The producer's trace still reaches the handler, so that
 * what it publishes carries it on.
 */
const traced = <A, E, R>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  consumer: string,
  raw: RawMessage,
  headers: Readonly<Record<string, string>>,
  body: () => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  if (fiber.currentTracer !== builtInTracer) {
    return Effect.withSpan(Effect.suspend(body), "deimos-consumer", spanOptions(consumer, raw, headers))
  }
  const traceparent = headers[TraceContext.header]
  if (traceparent === undefined) return body()
  const parent = TraceContext.parse(traceparent)
  return parent._tag === "Some" ? Effect.withParentSpan(body(), parent.value) : body()
}

/** Span links beyond this many distinct producer traces in one batch are dropped. */
const maxBatchLinks = 128

/** The span of a batch: a child of the first message's trace, linked to the other messages' traces. */
const batchSpanOptions = (
  consumer: string,
  first: RawMessage,
  headers: ReadonlyArray<Readonly<Record<string, string>>>
) => {
  const options = spanOptions(consumer, first, headers[0])
  const seen = new Set<string>()
  const own = headers[0][TraceContext.header]
  if (own !== undefined) seen.add(own)
  const links: Array<Tracer.SpanLink> = []
  for (let i = 1; i < headers.length && links.length < maxBatchLinks; i++) {
    const traceparent = headers[i][TraceContext.header]
    if (traceparent === undefined || seen.has(traceparent)) continue
    seen.add(traceparent)
    const span = TraceContext.parse(traceparent)
    if (Option.isSome(span)) links.push({ _tag: "SpanLink", span: span.value, attributes: {} })
  }
  return links.length === 0 ? options : { ...options, links }
}

/** An attempt at messages, with what a dead letter of it would send. */
interface Attempted<P> extends ErrorPolicy.Target<P> {
  readonly received: ReadonlyArray<RawMessage>
}

/** An attempt at one message. */
interface MessageAttempt<P> extends Attempted<P> {
  readonly raw: RawMessage
  readonly headers: Readonly<Record<string, string>>
}

/** A null value the handler does not get: a tombstone of a consumer without `tombstones: true`, or keyless. */
const isSkipped = (consumer: Consumer.Any, raw: RawMessage) =>
  raw.value === null && (!consumer.tombstones || raw.key === null)

/** The I/O decoding a message needs first (writer schemas not met yet), or undefined. */
const loadsOf = (
  key: KeyDecoder,
  codec: SchemaBackend.Codec<unknown>,
  raw: RawMessage
): Effect.Effect<void, SchemaError> | undefined => {
  const keyLoad = raw.key === null ? undefined : key.load(raw.key)
  const valueLoad = raw.value === null ? undefined : codec.load(raw.value)
  if (keyLoad === undefined) return valueLoad
  return valueLoad === undefined ? keyLoad : Effect.zipRight(keyLoad, valueLoad)
}

export const make = <A, K, E, R, P>(
  consumer: Consumer.Consumer<A, K, E, R, P>,
  bindings: Bindings
): Effect.Effect<Processor<R>, SchemaError> =>
  Effect.gen(function*() {
    const { backend, producerBackend, settings } = bindings
    const topic = settings.topicPrefix + consumer.topic
    const codec = yield* backend.codec(consumer.schema, topic, "read")
    const key = yield* keyDecoderOf(consumer, backend, topic)
    const name = consumer.name
    // every message of this consumer is of its topic: its metrics are bound once
    const m = Metrics.handlerMetrics(topic)
    const deadLetterTopic = consumer.errorPolicy.deadLetterTopic ?? DeadLetter.defaultTopic

    /** Decodes one message: its key, then its payload (a `Tombstone` of the key for a null value). */
    const decode = (raw: RawMessage): Either.Either<readonly [unknown, unknown], SchemaError> => {
      const k = raw.key === null ? nullKey : key.decode(raw.key)
      if (Either.isLeft(k)) return Either.left(k.left)
      if (raw.value === null) return Either.right([k.right, Tombstone.make(k.right)] as const)
      const p = codec.decode(raw.value)
      return Either.isLeft(p) ? Either.left(p.left) : Either.right([k.right, p.right] as const)
    }

    /** Sends the messages of a given-up attempt to the dead-letter topic. */
    const deadLetter: ErrorPolicy.DeadLetterSend<Attempted<unknown>> | undefined = producerBackend === undefined
      ? undefined
      : (target, cause, retryCount) => {
        const raws = target.received
        const first = raws[0]
        const to = deadLetterTopic(first.topic)
        const reason: DeadLetter.Reason = {
          consumer: name,
          errorTag: ErrorPolicy.tagOf(cause),
          errorMessage: Cause.pretty(cause).split("\n")[0],
          attempts: retryCount + 1
        }
        // sent and acknowledged before the offset is committed (a buffering backend is asked to send now)
        return producerBackend.execute(to, raws.map((raw) => DeadLetter.messageOf(raw, reason)), { sync: true }).pipe(
          Effect.zipRight(Metrics.countHandler("dead_letter", first.topic, raws.length)),
          Effect.zipRight(Instrumentation.emit({
            _tag: "DeadLetter",
            consumer: name,
            topic: first.topic,
            partition: first.partition,
            offset: first.offset,
            deadLetterTopic: to,
            count: raws.length
          }))
        )
      }
    /** A tombstone the handler does not get: counted, then committed like a handled message. */
    const skip = Effect.withFiberRuntime<void>((fiber) => {
      const { labels } = fiberView(fiber)
      m.received.unsafeUpdate(1, labels)
      m.tombstoneSkipped.unsafeUpdate(1, labels)
      return Effect.void
    })

    const measureBatch = <X, Y, Z>(first: RawMessage, count: number, body: Effect.Effect<X, Y, Z>) =>
      Effect.withFiberRuntime<X, Y, Z>((fiber) => {
        const { clock, labels } = fiberView(fiber)
        m.batchReceived.unsafeUpdate(1, labels)
        const start = clock.unsafeCurrentTimeMillis()
        return Effect.matchCauseEffect(body, {
          onFailure: (cause) => {
            m.batchError.unsafeUpdate(1, labels)
            return Effect.failCause(cause)
          },
          onSuccess: (result) => {
            m.consumeBatch.unsafeUpdate((clock.unsafeCurrentTimeMillis() - start) / 1000, labels)
            m.batchSuccess.unsafeUpdate(1, labels)
            return Effect.as(
              Instrumentation.emit({
                _tag: "BatchConsumed",
                consumer: name,
                topic: first.topic,
                partition: first.partition,
                count
              }),
              result
            )
          }
        })
      })

    if (consumer.delivery !== "inlineBatch") {
      const handle = consumer.handle
      const bound = ErrorPolicy.bind(name, consumer.errorPolicy, settings)

      /** One attempt at a message: decode (after any lookup it needs), then the handler, counted and timed. */
      const handleOnce = (
        fiber: Fiber.RuntimeFiber<unknown, unknown>,
        target: MessageAttempt<P>,
        retryCount: number
      ): Effect.Effect<void, unknown, R> => {
        const { headers, raw } = target
        const { clock, labels } = fiberView(fiber)
        if (retryCount === 0) m.received.unsafeUpdate(1, labels)
        const failed = (cause: Cause.Cause<unknown>) => {
          if (!Cause.isInterruptedOnly(cause)) m.error.unsafeUpdate(1, labels)
          return Effect.failCause(cause)
        }
        const run = (): Effect.Effect<void, unknown, R> => {
          const decoded = decode(raw)
          if (Either.isLeft(decoded)) return failed(Cause.fail(decoded.left))
          const [k, payload] = decoded.right
          target.payload = payload as P
          const metadata: Consumer.Metadata<K> = {
            consumer: name,
            topic: raw.topic,
            partition: raw.partition,
            offset: raw.offset,
            key: k as K | null,
            headers,
            timestamp: new Date(Number(raw.timestamp)),
            retryCount
          }
          const start = clock.unsafeCurrentTimeMillis()
          const delayed = timestampMillis(payload)
          if (delayed !== undefined) m.timeDelayed.unsafeUpdate((start - delayed) / 1000, labels)
          return Effect.matchCauseEffect(handle(payload as P, metadata), {
            onFailure: failed,
            onSuccess: () => {
              m.consume.unsafeUpdate((clock.unsafeCurrentTimeMillis() - start) / 1000, labels)
              m.success.unsafeUpdate(1, labels)
              return Exit.void
            }
          })
        }
        const loads = loadsOf(key, codec, raw)
        return loads === undefined ? run() : Effect.matchCauseEffect(loads, { onFailure: failed, onSuccess: run })
      }

      // made once: what runs per message is this, over the message's target
      const attempt = (target: MessageAttempt<P>, retryCount: number): Effect.Effect<void, unknown, R> =>
        Effect.withFiberRuntime<void, unknown, R>((fiber) =>
          traced(fiber, name, target.raw, target.headers, () => handleOnce(fiber, target, retryCount))
        )

      const message = (raw: RawMessage): Effect.Effect<void, ConsumerFatalError, R> => {
        if (isSkipped(consumer, raw)) return skip
        const target: MessageAttempt<P> = {
          topic: raw.topic,
          partition: raw.partition,
          offset: raw.offset,
          payload: undefined,
          received: [raw],
          raw,
          headers: headersOf(raw)
        }
        return ErrorPolicy.run(bound, target, attempt, deadLetter)
      }
      return {
        consumer,
        topic,
        message,
        batch: (raws) =>
          raws.length === 0
            ? Effect.void
            : measureBatch(raws[0], raws.length, Effect.forEach(raws, message, { discard: true })),
        measureBatch
      }
    }

    const handleBatch = consumer.handleBatch
    const bound = ErrorPolicy.bind(name, consumer.errorPolicy, settings)
    // an undecodable message of a batch is an attempt of its own, under the same policy (its payload unknown)
    const single = bound as unknown as ErrorPolicy.Bound<never>

    /** A message that cannot be decoded: the policy swallows it (counted), dead-letters it, or stops there. */
    const undecodable = (raw: RawMessage, error: SchemaError) =>
      ErrorPolicy.run(
        single,
        { topic: raw.topic, partition: raw.partition, offset: raw.offset, payload: undefined, received: [raw] },
        () =>
          Effect.withFiberRuntime<void, SchemaError>((fiber) =>
            traced(fiber, name, raw, headersOf(raw), () => {
              m.error.unsafeUpdate(1, fiberView(fiber).labels)
              return Effect.fail(error)
            })
          ),
        deadLetter
      )

    /** `handleBatch` on the decoded messages of a batch, under the policy. */
    const handleAll = (
      raws: ReadonlyArray<RawMessage>,
      keys: ReadonlyArray<unknown>,
      payloads: ReadonlyArray<P>
    ): Effect.Effect<void, ConsumerFatalError, R> => {
      const first = raws[0]
      const headers = raws.map(headersOf)
      const offsets = raws.map((raw) => raw.offset)
      const target: Attempted<ReadonlyArray<P>> = {
        topic: first.topic,
        partition: first.partition,
        offset: first.offset,
        payload: payloads,
        received: raws
      }
      const run = (_: Attempted<ReadonlyArray<P>>, retryCount: number): Effect.Effect<void, unknown, R> =>
        Effect.withFiberRuntime<void, unknown, R>((fiber) => {
          const { labels } = fiberView(fiber)
          const metadata: Consumer.BatchMetadata<K> = {
            consumer: name,
            topic: first.topic,
            partition: first.partition,
            firstOffset: first.offset,
            lastOffset: offsets[offsets.length - 1],
            batchSize: raws.length,
            offsets,
            keys: keys as ReadonlyArray<K | null>,
            headers,
            retryCount
          }
          return Effect.matchCauseEffect(handleBatch(payloads, metadata), {
            onFailure: (cause) => {
              if (!Cause.isInterruptedOnly(cause)) m.error.unsafeUpdate(raws.length, labels)
              return Effect.failCause(cause)
            },
            onSuccess: () => {
              m.success.unsafeUpdate(raws.length, labels)
              return Exit.void
            }
          })
        }).pipe(Effect.withSpan("deimos-consumer", batchSpanOptions(name, first, headers)))
      return ErrorPolicy.run(bound, target, run, deadLetter)
    }

    /**
     * Each message decoded on its own: one that cannot be is an attempt of its own, and the handler gets the others
     * (one bad message neither hides the batch nor is committed unseen).
     */
    const batch = (raws: ReadonlyArray<RawMessage>): Effect.Effect<void, ConsumerFatalError, R> =>
      raws.length === 0 ? Effect.void : measureBatch(
        raws[0],
        raws.length,
        Effect.gen(function*() {
          yield* Metrics.countHandler("received", raws[0].topic, raws.length)
          const decodedRaws: Array<RawMessage> = []
          const keys: Array<unknown> = []
          const payloads: Array<P> = []
          const failures: Array<readonly [RawMessage, SchemaError]> = []
          let skipped = 0
          for (const raw of raws) {
            if (isSkipped(consumer, raw)) {
              skipped++
              continue
            }
            const loads = loadsOf(key, codec, raw)
            if (loads !== undefined) {
              const loaded = yield* Effect.either(loads)
              if (Either.isLeft(loaded)) {
                failures.push([raw, loaded.left])
                continue
              }
            }
            const decoded = decode(raw)
            if (Either.isLeft(decoded)) {
              failures.push([raw, decoded.left])
              continue
            }
            decodedRaws.push(raw)
            keys.push(decoded.right[0])
            payloads.push(decoded.right[1] as P)
          }
          if (skipped > 0) yield* Metrics.countHandler("tombstone_skipped", raws[0].topic, skipped)
          for (const [raw, error] of failures) yield* undecodable(raw, error)
          if (decodedRaws.length > 0) yield* handleAll(decodedRaws, keys, payloads)
        })
      )

    return {
      consumer,
      topic,
      message: (raw) => batch([raw]),
      batch,
      measureBatch
    }
  })
