/**
 * Encode and decode 1M records of a realistic schema (10 fields with a nested record, an array and a timestamp)
 * through the Schema Registry backend (ids cached after the first call) versus raw avsc `toBuffer`/`fromBuffer`,
 * in one run.
 *
 * Method: after a warm-up, 20 interleaved rounds of 50k records; in each round every side runs once, one after the
 * other, so that load from elsewhere on the shared machine hits every side alike. A side's throughput is the
 * **median of its per-round wall-clock throughputs**, and `RESULT avro_encode_ratio=X avro_decode_ratio=Y` is the
 * backend's median over raw avsc's median, with a handle that names the Avro schema (the payload is the wire value).
 * The backend is driven as the framework's pipelines drive it: batches of 500 composed with `Eager.forEach` (as
 * `Producer.publishList` encodes a list and a consumer decodes a fetched batch). The same backend with one
 * `yield*` per record (a hand-written Effect loop: a fiber step per record) is printed too, as are the best round
 * per side and the CPU time of the process per side (`process.cpuUsage`).
 *
 * The typed path (printed, not in RESULT) is a handle with an Effect Schema, as `deimos codegen` writes it
 * (`Schema.DateFromNumber` for the timestamp, so the payload holds a `Date`): encode and decode go through the
 * compiled Schema bridge of the backend, compared with the same raw avsc figures (which read and write the epoch
 * millis and do no Date conversion).
 *
 * Run: `npm run bench:avro` (`BENCH_RECORDS` to change the 1M)
 */
import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import { Eager, SchemaRef } from "@deimos/core"
import avro from "avsc"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

const total = Number(process.env.BENCH_RECORDS ?? 1_000_000)

const schema = {
  type: "record",
  name: "Order",
  namespace: "bench",
  fields: [
    { name: "id", type: "long" },
    { name: "customer", type: "string" },
    { name: "amount", type: "double" },
    { name: "currency", type: { type: "enum", name: "Currency", symbols: ["EUR", "USD", "GBP"] } },
    { name: "created_at", type: { type: "long", logicalType: "timestamp-millis" } },
    { name: "paid", type: "boolean" },
    { name: "note", type: ["null", "string"], default: null },
    { name: "items", type: { type: "array", items: "string" } },
    {
      name: "address",
      type: {
        type: "record",
        name: "Address",
        fields: [{ name: "street", type: "string" }, { name: "city", type: "string" }, { name: "zip", type: "string" }]
      }
    },
    { name: "quantity", type: "int" }
  ]
} as const

// what `deimos codegen` writes for this schema
const AddressSchema = Schema.Struct({ street: Schema.String, city: Schema.String, zip: Schema.String })
const OrderSchema = Schema.Struct({
  id: Schema.Int,
  customer: Schema.String,
  amount: Schema.Number,
  currency: Schema.Literal("EUR", "USD", "GBP"),
  created_at: Schema.DateFromNumber,
  paid: Schema.Boolean,
  note: Schema.optional(Schema.NullOr(Schema.String)),
  items: Schema.Array(Schema.String),
  address: AddressSchema,
  quantity: Schema.Int
})

const Order = SchemaRef.make<Record<string, unknown>>({ name: "bench.Order", avro: schema })
const TypedOrder = SchemaRef.make({ name: "bench.Order", schema: OrderSchema, avro: schema })
const records = Array.from({ length: 1000 }, (_, i) => ({
  id: i,
  customer: `customer-${i}`,
  amount: i * 1.5,
  currency: "EUR" as const,
  created_at: 1_700_000_000_000 + i,
  paid: i % 2 === 0,
  note: i % 3 === 0 ? null : "leave at the door",
  items: ["sku-1", "sku-2", "sku-3"],
  address: { street: "1 Main St", city: "Springfield", zip: "12345" },
  quantity: i % 10
}))
const typedRecords = records.map((r) => ({ ...r, created_at: new Date(r.created_at) }))

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const program = Effect.gen(function*() {
  const registry = yield* SchemaRegistry.make({ port: 0 })
  const backend = yield* AvroBackend.makeSchemaRegistry({ url: registry.url })
  const type = avro.Type.forSchema(schema as unknown as avro.Schema)
  const topic = "orders"

  // warm up: registers the schema and fills the id, type and resolver caches; lets the JIT settle on every side
  const rawInputs = records.map((r) => type.toBuffer(r))
  const fwInputs: Array<Uint8Array> = []
  for (const r of records) fwInputs.push(yield* backend.encode(r, { schema: Order, topic }))
  for (let w = 0; w < 20; w++) {
    for (let i = 0; i < 1000; i++) {
      type.fromBuffer(type.toBuffer(records[i]))
      yield* backend.decode(yield* backend.encode(records[i], { schema: Order, topic }), { schema: Order, topic })
      yield* backend.decode(yield* backend.encode(typedRecords[i], { schema: TypedOrder, topic }), {
        schema: TypedOrder,
        topic
      })
    }
  }

  // outputs go to a ring of 1000 slots (kept, so nothing is optimised away, without growing the heap)
  const rounds = 20
  const perRound = Math.ceil(total / rounds)
  const ring: Array<unknown> = new Array(1000)
  const sides = [
    "rawEncode",
    "fwEncode",
    "typedEncode",
    "stepEncode",
    "rawDecode",
    "fwDecode",
    "typedDecode",
    "stepDecode"
  ] as const
  type Side = typeof sides[number]
  const wall = Object.fromEntries(sides.map((side) => [side, [] as Array<number>])) as Record<Side, Array<number>>
  const cpu = Object.fromEntries(sides.map((side) => [side, 0])) as Record<Side, number>
  const codec = { schema: Order, topic }
  const typedCodec = { schema: TypedOrder, topic }
  const batch = 500
  /** `perRound` items of `items` (its first 1000, cycled) through `f`, 500 at a time with `Eager.forEach`. */
  const inBatches = <A, B, E>(items: ReadonlyArray<A>, f: (a: A) => Effect.Effect<B, E>) => {
    const chunks = [items.slice(0, batch), items.slice(batch, 2 * batch)]
    return Effect.gen(function*() {
      for (let i = 0; i < perRound; i += batch) {
        const out = yield* Eager.forEach(chunks[(i / batch) % 2], f)
        ring[i % 1000] = out[out.length - 1]
      }
    })
  }
  const measure = <E>(side: Side, body: Effect.Effect<void, E>): Effect.Effect<void, E> =>
    Effect.suspend(() => {
      const started = performance.now()
      const cpuStarted = process.cpuUsage()
      return Effect.map(body, () => {
        const used = process.cpuUsage(cpuStarted)
        wall[side].push((performance.now() - started) / 1000)
        cpu[side] += (used.user + used.system) / 1e6
      })
    })
  for (let round = 0; round < rounds; round++) {
    yield* measure(
      "rawEncode",
      Effect.sync(() => {
        for (let i = 0; i < perRound; i++) ring[i % 1000] = type.toBuffer(records[i % 1000])
      })
    )
    // the framework side as its pipelines drive it: batches of 500 through Eager.forEach, as Producer.publishList
    // encodes a list and the consumer decodes a fetched batch
    yield* measure("fwEncode", inBatches(records, (r) => backend.encode(r, codec)))
    yield* measure("typedEncode", inBatches(typedRecords, (r) => backend.encode(r, typedCodec)))
    // and as a hand-written Effect loop would: one fiber step (`yield*`) per record
    yield* measure(
      "stepEncode",
      Effect.gen(function*() {
        for (let i = 0; i < perRound; i++) ring[i % 1000] = yield* backend.encode(records[i % 1000], codec)
      })
    )
    yield* measure(
      "rawDecode",
      Effect.sync(() => {
        for (let i = 0; i < perRound; i++) ring[i % 1000] = type.fromBuffer(rawInputs[i % 1000])
      })
    )
    yield* measure("fwDecode", inBatches(fwInputs, (bytes) => backend.decode(bytes, codec)))
    yield* measure("typedDecode", inBatches(fwInputs, (bytes) => backend.decode(bytes, typedCodec)))
    yield* measure(
      "stepDecode",
      Effect.gen(function*() {
        for (let i = 0; i < perRound; i++) ring[i % 1000] = yield* backend.decode(fwInputs[i % 1000], codec)
      })
    )
  }
  const n = perRound * rounds
  // the last side decoded the records (the typed decode is checked below: a Date)
  if (JSON.stringify(ring[999]) !== JSON.stringify(records[999])) throw new Error("decoded value differs")
  const typedDecoded = yield* backend.decode(fwInputs[5], { schema: TypedOrder, topic })
  if (!((typedDecoded as { created_at: unknown }).created_at instanceof Date)) throw new Error("typed decode: no Date")

  const rate = (seconds: number, count: number) => Math.round(count / seconds)
  const medianRate = (side: Side) => median(wall[side].map((s) => perRound / s))
  const bestRate = (side: Side) => Math.max(...wall[side].map((s) => perRound / s))
  const line = (label: string, side: Side, raw: Side) =>
    console.log(
      `${label.padEnd(26)} median ${Math.round(medianRate(side))}/s (best ${Math.round(bestRate(side))}/s, ` +
        `${rate(cpu[side], n)}/s per CPU second)` +
        (side === raw
          ? ""
          : `  ratio ${(medianRate(side) / medianRate(raw)).toFixed(3)} median, ` +
            `${(bestRate(side) / bestRate(raw)).toFixed(3)} best, ${(cpu[raw] / cpu[side]).toFixed(3)} CPU`)
    )
  console.log(`${n} records per side, ${rounds} interleaved rounds of ${perRound} (wall clock per round)`)
  line("encode raw avsc", "rawEncode", "rawEncode")
  line("encode registry backend", "fwEncode", "rawEncode")
  line("encode typed (Schema)", "typedEncode", "rawEncode")
  line("encode, yield* per record", "stepEncode", "rawEncode")
  line("decode raw avsc", "rawDecode", "rawDecode")
  line("decode registry backend", "fwDecode", "rawDecode")
  line("decode typed (Schema)", "typedDecode", "rawDecode")
  line("decode, yield* per record", "stepDecode", "rawDecode")
  console.log(
    `typed path (Effect Schema handle) vs raw avsc: encode ${
      (medianRate("typedEncode") / medianRate("rawEncode")).toFixed(3)
    } decode ${(medianRate("typedDecode") / medianRate("rawDecode")).toFixed(3)} (median wall clock)`
  )
  // RESULT: median per-round wall-clock throughput of the backend over that of raw avsc
  console.log(
    `RESULT avro_encode_ratio=${(medianRate("fwEncode") / medianRate("rawEncode")).toFixed(3)} avro_decode_ratio=${
      (medianRate("fwDecode") / medianRate("rawDecode")).toFixed(3)
    }`
  )
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
