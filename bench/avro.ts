/**
 * Encode and decode 1M records of a realistic schema (10 fields with a nested record, an array and a timestamp)
 * through the Schema Registry backend (ids cached after the first call) versus raw avsc `toBuffer`/`fromBuffer`,
 * in one run.
 *
 * Method: after a warm-up, 20 interleaved rounds of 50k records; in each round every side runs once, one after the
 * other (raw encode, backend encode, typed encode, raw decode, backend decode, typed decode), so that load from
 * elsewhere on the shared machine hits every side alike. A side's throughput is the **median of its per-round
 * wall-clock throughputs**, and `RESULT avro_encode_ratio=X avro_decode_ratio=Y` is the framework's median over raw
 * avsc's median, with a handle that names the Avro schema (the payload is the wire value). The best round per side,
 * and the CPU time of the process per side (`process.cpuUsage`), are printed too, as extra information.
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
import { SchemaRef } from "@deimos/core"
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

type Side = "rawEncode" | "fwEncode" | "typedEncode" | "rawDecode" | "fwDecode" | "typedDecode"

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
  const wall: Record<Side, Array<number>> = {
    rawEncode: [],
    fwEncode: [],
    typedEncode: [],
    rawDecode: [],
    fwDecode: [],
    typedDecode: []
  }
  const cpu: Record<Side, number> = {
    rawEncode: 0,
    fwEncode: 0,
    typedEncode: 0,
    rawDecode: 0,
    fwDecode: 0,
    typedDecode: 0
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
    // the framework side runs as an Effect program does: one fiber, a loop of effects
    yield* measure(
      "fwEncode",
      Effect.gen(function*() {
        for (let i = 0; i < perRound; i++) {
          ring[i % 1000] = yield* backend.encode(records[i % 1000], { schema: Order, topic })
        }
      })
    )
    yield* measure(
      "typedEncode",
      Effect.gen(function*() {
        for (let i = 0; i < perRound; i++) {
          ring[i % 1000] = yield* backend.encode(typedRecords[i % 1000], { schema: TypedOrder, topic })
        }
      })
    )
    yield* measure(
      "rawDecode",
      Effect.sync(() => {
        for (let i = 0; i < perRound; i++) ring[i % 1000] = type.fromBuffer(rawInputs[i % 1000])
      })
    )
    yield* measure(
      "fwDecode",
      Effect.gen(function*() {
        for (let i = 0; i < perRound; i++) {
          ring[i % 1000] = yield* backend.decode(fwInputs[i % 1000], { schema: Order, topic })
        }
      })
    )
    yield* measure(
      "typedDecode",
      Effect.gen(function*() {
        for (let i = 0; i < perRound; i++) {
          ring[i % 1000] = yield* backend.decode(fwInputs[i % 1000], { schema: TypedOrder, topic })
        }
      })
    )
  }
  const n = perRound * rounds
  // the decoded values are the records (typed: with a Date)
  if (JSON.stringify(ring[999]) !== JSON.stringify(typedRecords[999])) throw new Error("decoded value differs")
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
  line("decode raw avsc", "rawDecode", "rawDecode")
  line("decode registry backend", "fwDecode", "rawDecode")
  line("decode typed (Schema)", "typedDecode", "rawDecode")
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
