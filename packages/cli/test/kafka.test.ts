// tail and offsets as subprocesses against the dev broker and registry of this test process.
import { AvroBackend } from "@deimos/avro"
import { DevCluster } from "@deimos/broker"
import { DeimosConfig, JsonBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaDriver, KafkaJs, KafkaProducerBackend } from "@deimos/kafka"
import { describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { eventually, jsonLines, run, runHere, start, waitFor } from "./helpers.js"

const Event = SchemaRef.fromSchema(Schema.Struct({ id: Schema.String, n: Schema.Number }), { name: "Event" })
const Widget = SchemaRef.make<{ readonly id: string; readonly size: number }>({
  name: "Widget",
  namespace: "com.example",
  avro: {
    type: "record",
    name: "Widget",
    namespace: "com.example",
    fields: [{ name: "id", type: "string" }, { name: "size", type: "int" }]
  }
})

const Test = Layer.unwrapEffect(
  Effect.map(
    DevCluster.DevCluster,
    (cluster) => KafkaJs.layer({ brokers: cluster.brokers, clientId: "cli-test", logLevel: "nothing" })
  )
).pipe(
  Layer.provideMerge(DevCluster.layer({ port: 0, partitions: 3 })),
  Layer.merge(DeimosConfig.layer())
)

let seq = 0
const unique = (base: string) => `${base}-${process.pid}-${++seq}`

/** Events `n` = from … from+count-1, all in one partition (one partition key). */
const publish = (topic: string, count: number, from = 0) =>
  Producer.make({ topic, schema: Event, keyConfig: { field: "id" } }).publishList(
    Array.from(
      { length: count },
      (_, i) => Producer.envelope({ id: `e${from + i}`, n: from + i }, { partitionKey: "p" })
    )
  ).pipe(Effect.provide(KafkaProducerBackend.layer()), Effect.provide(JsonBackend.layer))

const brokersFlag = Effect.map(DevCluster.DevCluster, (c) => ["--brokers", c.brokers.join(",")])

const committed = (group: string, topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const admin = yield* (yield* KafkaDriver.KafkaDriver).admin
    return (yield* admin.committedOffsets(group, topic)).filter((c) => c.offset !== "-1")
  }))

describe("deimos tail and offsets", () => {
  layer(Test, { timeout: 90_000, excludeTestServices: true })((it) => {
    it.effect("tail prints every message as a JSON line; --limit and --from cut it", () =>
      Effect.gen(function*() {
        const topic = unique("cli-tail")
        yield* publish(topic, 5)
        const brokers = yield* brokersFlag
        const all = yield* run(["tail", topic, ...brokers])
        expect(all.code).toBe(0)
        const lines = jsonLines(all.stdout)
        expect(lines.map((l) => (l.payload as { n: number }).n)).toEqual([0, 1, 2, 3, 4])
        expect(lines.map((l) => l.offset)).toEqual(["0", "1", "2", "3", "4"])
        // the JSON backend's key, shown as its JSON value
        expect(lines[0]).toMatchObject({ topic, key: { id: "e0" }, payload: { id: "e0", n: 0 } })
        const two = yield* runHere(["tail", topic, "--limit", "2", ...brokers])
        expect(jsonLines(two.stdout).map((l) => l.offset)).toEqual(["0", "1"])
        const from3 = yield* runHere(["tail", topic, "--from", "3", ...brokers])
        expect(jsonLines(from3.stdout).map((l) => l.offset)).toEqual(["3", "4"])
        const end = yield* runHere(["tail", topic, "--from", "end", ...brokers])
        expect(end.code).toBe(0)
        expect(end.stdout).toBe("")
      }))

    it.effect("tail reads every partition: partitions in order, offsets in order within each", () =>
      Effect.gen(function*() {
        const topic = unique("cli-tail-spread")
        yield* Producer.make({ topic, schema: Event, keyConfig: { field: "id" } }).publishList(
          Array.from({ length: 30 }, (_, n) => ({ id: `k${n}`, n }))
        ).pipe(Effect.provide(KafkaProducerBackend.layer()), Effect.provide(JsonBackend.layer))
        const { code, stdout } = yield* runHere(["tail", topic, ...(yield* brokersFlag)])
        expect(code).toBe(0)
        const lines = jsonLines(stdout).map((l) => [l.partition as number, Number(l.offset)] as const)
        expect(lines).toHaveLength(30)
        expect(new Set(lines.map(([p]) => p)).size).toBeGreaterThan(1)
        expect([...lines].sort((a, b) => a[0] - b[0] || a[1] - b[1])).toEqual(lines)
        const from2 = yield* runHere(["tail", topic, "--from", "2", ...(yield* brokersFlag)])
        const perPartition = new Map<number, number>()
        for (const [p] of lines) perPartition.set(p, (perPartition.get(p) ?? 0) + 1)
        const expected = [...perPartition.values()].reduce((n, c) => n + Math.max(0, c - 2), 0)
        expect(jsonLines(from2.stdout).every((l) => Number(l.offset) >= 2)).toBe(true)
        expect(jsonLines(from2.stdout)).toHaveLength(expected)
      }))

    it.effect("tail --format avro decodes with the registry's schemas", () =>
      Effect.gen(function*() {
        const topic = unique("cli-tail-avro")
        const cluster = yield* DevCluster.DevCluster
        yield* Producer.make({ topic, schema: Widget, keyConfig: { field: "id" } }).publishList([
          Producer.envelope({ id: "w1", size: 3 }, { partitionKey: "p" }),
          Producer.envelope({ id: "w2", size: 4 }, { partitionKey: "p" })
        ]).pipe(
          Effect.provide(KafkaProducerBackend.layer()),
          Effect.provide(AvroBackend.layerSchemaRegistry({ url: cluster.registryUrl }))
        )
        const avro = yield* run(["tail", topic, "--format", "avro", ...(yield* brokersFlag)], {
          SCHEMA_REGISTRY_URL: cluster.registryUrl
        })
        expect(avro.stderr).toBe("")
        expect(avro.code).toBe(0)
        expect(jsonLines(avro.stdout).map((l) => [l.key, l.payload])).toEqual([
          // the key as its schema decodes it: the generated key record
          [{ id: "w1" }, { id: "w1", size: 3 }],
          [{ id: "w2" }, { id: "w2", size: 4 }]
        ])
        // a topic the registry does not know: the message names the fix
        const unknown = yield* runHere([
          "tail",
          unique("cli-nothing"),
          "--format",
          "avro",
          "--registry-url",
          cluster.registryUrl,
          ...(yield* brokersFlag)
        ])
        expect(unknown.code).toBe(1)
        expect(unknown.stderr).toContain("--format json")
      }))

    it.effect("tail --follow prints what arrives after it started, shows lag, and exits 0 on SIGTERM", () =>
      Effect.gen(function*() {
        const topic = unique("cli-follow")
        yield* publish(topic, 3)
        const p = yield* start(["tail", topic, "--follow", ...(yield* brokersFlag)], {
          DEIMOS_PROGRESS_INTERVAL: "100 millis"
        })
        yield* waitFor("a progress line", () => p.stderr().includes(`tail ${topic}: 0 messages`), p)
        yield* publish(topic, 2, 3)
        yield* waitFor("the two new messages", () => jsonLines(p.stdout()).length === 2, p)
        expect(jsonLines(p.stdout()).map((l) => (l.payload as { n: number }).n)).toEqual([3, 4])
        yield* waitFor("a progress line after them", () => /2 messages .*lag 0/.test(p.stderr()), p)
        yield* p.signal("SIGTERM")
        expect(yield* p.exited).toBe(0)
      }).pipe(Effect.scoped))

    it.effect("offsets shows committed, high and lag; --reset and --skip move them within the log", () =>
      Effect.gen(function*() {
        const topic = unique("cli-offsets")
        const group = unique("cli-group")
        yield* publish(topic, 10)
        const brokers = yield* brokersFlag
        const shown = yield* run(["offsets", group, topic, ...brokers])
        expect(shown.code).toBe(0)
        expect(shown.stdout).toContain("total lag 10")
        const latest = yield* runHere(["offsets", group, topic, "--reset", "latest", ...brokers])
        expect(latest.code).toBe(0)
        expect(latest.stdout).toContain("total lag 0")
        const full = (yield* committed(group, topic)).find((c) => c.offset !== "0")!
        expect(full.offset).toBe("10")
        const back = yield* runHere([
          "offsets",
          group,
          topic,
          "--skip",
          "-3",
          "--partition",
          String(full.partition),
          ...brokers
        ])
        expect(back.code).toBe(0)
        expect(back.stdout).toContain("total lag 3")
        expect((yield* committed(group, topic)).find((c) => c.partition === full.partition)?.offset).toBe("7")
        const far = yield* runHere(["offsets", group, topic, "--skip", "100", ...brokers])
        expect(far.stdout).toContain("total lag 0")
        const earliest = yield* runHere(["offsets", group, topic, "--reset", "earliest", ...brokers])
        expect(earliest.stdout).toContain("total lag 10")
        const both = yield* runHere(["offsets", group, topic, "--reset", "earliest", "--skip", "1", ...brokers])
        expect(both.code).toBe(2)
        expect(both.stderr).toContain("--reset or --skip, not both")
        const nowhere = yield* runHere(["offsets", group, topic, "--partition", "9", ...brokers])
        expect(nowhere.code).toBe(2)
        expect(nowhere.stderr).toContain("has no partition 9")
        const notNumber = yield* runHere(["offsets", group, topic, "--partition", "one", ...brokers])
        expect(notNumber.code).toBe(2)
        expect(notNumber.stderr).toContain("--partition wants a partition number")
      }))

    it.effect("offsets refuses to move a running group's offsets (exit 1, says why)", () =>
      Effect.gen(function*() {
        const topic = unique("cli-offsets-busy")
        const group = unique("cli-busy")
        yield* publish(topic, 2)
        const driver = yield* KafkaDriver.KafkaDriver
        const consumer = yield* driver.consumer({
          groupId: group,
          topics: [topic],
          maxWaitTime: "100 millis",
          heartbeatInterval: "200 millis"
        })
        let seen = 0
        yield* Effect.forkScoped(consumer.run((batch) => Effect.sync(() => (seen += batch.messages.length))))
        yield* eventually("the consumer running", Effect.sync(() => seen), (n) => n >= 2)
        const busy = yield* runHere(["offsets", group, topic, "--reset", "earliest", ...(yield* brokersFlag)])
        expect(busy.code).toBe(1)
        expect(busy.stderr).toContain(`Cannot set the offsets of ${group}`)
      }).pipe(Effect.scoped))
  })
})
