/**
 * Encode and decode 1M records of a realistic schema (10 fields with a nested record, an array and a timestamp)
 * through the Schema Registry backend versus raw avsc `toBuffer`/`fromBuffer`, in one run.
 *
 * The backend is driven as the toolkit's pipelines drive it: the codecs of the handle and topic are resolved once, a
 * writer (`use: "write"`, registering the schema) and a reader (`use: "read"`, which asks the registry nothing), then
 * each record is `writer.encode(writer.coerce(payload))` (the producer) or `reader.decode(bytes)` (the consumer,
 * after `reader.load`, which fetches the writer schema by id before the warm-up) in a plain loop.
 *
 * Two handles: one that names the Avro schema (the payload is the wire value), and the typed path, a handle with an
 * Effect Schema as `deimos codegen` writes it (`Schema.DateFromNumber` for the timestamp, so payloads hold a `Date`
 * and decoding hands back the Schema's type, with a `Date`). Both are compared with the same raw avsc figures,
 * which read and write the epoch millis.
 *
 * Method: after a warm-up, 20 interleaved rounds of 50k records; in each round every side runs once, one after the
 * other (starting at another side each round, after a full garbage collection), so that load from elsewhere on the
 * shared machine and the garbage of the side before hit every side alike. A side's throughput is the
 * **median of its per-round wall-clock throughputs**; the best round and the CPU time of the process per side
 * (`process.cpuUsage`) are printed too. `RESULT avro_encode_ratio=X avro_decode_ratio=Y avro_typed_encode_ratio=Z
 * avro_typed_decode_ratio=W` are the backend's medians over raw avsc's.
 *
 * Run: `npm run bench:avro` (`BENCH_RECORDS` to change the 1M)
 */
import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import { type SchemaBackend, SchemaRef } from "@deimos/core"
import avro from "avsc"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { median } from "./shared.js"

const total = Number(process.env.BENCH_RECORDS ?? 1_000_000)

// a full collection before each side (with the outputs of the one before dropped), so that no side pays for the
// garbage of another
v8.setFlagsFromString("--expose-gc")
const collect = vm.runInNewContext("gc") as () => void

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

/** The right of an Either, or a thrown error (the bench must not measure failures). */
const right = <A>(result: Either.Either<A, unknown>): A => {
  if (Either.isLeft(result)) throw new Error(`unexpected failure: ${String(result.left)}`)
  return result.right
}

const program = Effect.gen(function*() {
  const registry = yield* SchemaRegistry.make({ port: 0 })
  const backend = yield* AvroBackend.makeSchemaRegistry({ url: registry.url })
  const type = avro.Type.forSchema(schema as unknown as avro.Schema)
  const topic = "orders"

  // resolved once, as a producer (a writer: this registers the schema) or a consumer (a reader) binds its topic
  const writer: SchemaBackend.Codec<Record<string, unknown>> = yield* backend.codec(Order, topic, "write")
  const typedWriter = yield* backend.codec(TypedOrder, topic, "write")
  const reader: SchemaBackend.Codec<Record<string, unknown>> = yield* backend.codec(Order, topic, "read")
  const typedReader = yield* backend.codec(TypedOrder, topic, "read")
  // copied into pooled memory, as the backend's frames are (avsc's own buffers are separate allocations, which read
  // slower): both decode sides read bytes laid out alike
  const rawInputs = records.map((r) => Buffer.from(type.toBuffer(r)))
  const fwInputs = records.map((r) => right(writer.encode(writer.coerce(r))))
  // the consumer loads the writer schema of an id it meets first (one request, by id)
  for (const c of [reader, typedReader]) {
    const load = c.load(fwInputs[0])
    if (load !== undefined) yield* load
  }
  // warm up: lets the JIT settle on every side
  for (let w = 0; w < 20; w++) {
    for (let i = 0; i < 1000; i++) {
      type.fromBuffer(type.toBuffer(records[i]))
      right(reader.decode(right(writer.encode(writer.coerce(records[i])))))
      right(typedReader.decode(right(typedWriter.encode(typedWriter.coerce(typedRecords[i])))))
    }
  }

  // outputs go to a ring of 1000 slots (kept, so nothing is optimised away, without growing the heap)
  const rounds = 20
  const perRound = Math.ceil(total / rounds)
  const ring: Array<unknown> = new Array(1000)
  const sides = ["rawEncode", "fwEncode", "typedEncode", "rawDecode", "fwDecode", "typedDecode"] as const
  type Side = typeof sides[number]
  const wall = Object.fromEntries(sides.map((side) => [side, [] as Array<number>])) as Record<Side, Array<number>>
  const cpu = Object.fromEntries(sides.map((side) => [side, 0])) as Record<Side, number>
  const loops: Record<Side, () => void> = {
    rawEncode: () => {
      for (let i = 0; i < perRound; i++) ring[i % 1000] = type.toBuffer(records[i % 1000])
    },
    fwEncode: () => {
      for (let i = 0; i < perRound; i++) ring[i % 1000] = writer.encode(writer.coerce(records[i % 1000]))
    },
    typedEncode: () => {
      for (let i = 0; i < perRound; i++) ring[i % 1000] = typedWriter.encode(typedWriter.coerce(typedRecords[i % 1000]))
    },
    rawDecode: () => {
      for (let i = 0; i < perRound; i++) ring[i % 1000] = type.fromBuffer(rawInputs[i % 1000])
    },
    fwDecode: () => {
      for (let i = 0; i < perRound; i++) ring[i % 1000] = reader.decode(fwInputs[i % 1000])
    },
    typedDecode: () => {
      for (let i = 0; i < perRound; i++) ring[i % 1000] = typedReader.decode(fwInputs[i % 1000])
    }
  }
  for (let round = 0; round < rounds; round++) {
    // each round starts at another side, so that none always follows the same one
    for (let s = 0; s < sides.length; s++) {
      const side = sides[(round + s) % sides.length]
      ring.fill(undefined)
      collect()
      const started = performance.now()
      const cpuStarted = process.cpuUsage()
      loops[side]()
      const used = process.cpuUsage(cpuStarted)
      wall[side].push((performance.now() - started) / 1000)
      cpu[side] += (used.user + used.system) / 1e6
    }
  }
  const n = perRound * rounds
  // the typed decode hands back the Schema's type, with a Date
  const last = right(typedReader.decode(fwInputs[999]))
  if (!(last.created_at instanceof Date)) throw new Error("typed decode: no Date")
  if (JSON.stringify({ ...last, created_at: last.created_at.getTime() }) !== JSON.stringify(records[999])) {
    throw new Error("typed decode: decoded value differs")
  }
  if (JSON.stringify(right(reader.decode(fwInputs[999]))) !== JSON.stringify(records[999])) {
    throw new Error("decoded value differs")
  }
  if (!Buffer.from(right(typedWriter.encode(typedWriter.coerce(typedRecords[7])))).equals(fwInputs[7])) {
    throw new Error("typed encode: bytes differ")
  }

  const rate = (seconds: number, count: number) => Math.round(count / seconds)
  const medianRate = (side: Side) => median(wall[side].map((s) => perRound / s))
  const bestRate = (side: Side) => Math.max(...wall[side].map((s) => perRound / s))
  const ratio = (side: Side, raw: Side) => (medianRate(side) / medianRate(raw)).toFixed(3)
  const line = (label: string, side: Side, raw: Side) =>
    console.log(
      `${label.padEnd(26)} median ${Math.round(medianRate(side))}/s (best ${Math.round(bestRate(side))}/s, ` +
        `${rate(cpu[side], n)}/s per CPU second)` +
        (side === raw
          ? ""
          : `  ratio ${ratio(side, raw)} median, ` +
            `${(bestRate(side) / bestRate(raw)).toFixed(3)} best, ${(cpu[raw] / cpu[side]).toFixed(3)} CPU`)
    )
  console.log(`${n} records per side, ${rounds} interleaved rounds of ${perRound} (wall clock per round)`)
  line("encode raw avsc", "rawEncode", "rawEncode")
  line("encode registry backend", "fwEncode", "rawEncode")
  line("encode typed (Schema)", "typedEncode", "rawEncode")
  line("decode raw avsc", "rawDecode", "rawDecode")
  line("decode registry backend", "fwDecode", "rawDecode")
  line("decode typed (Schema)", "typedDecode", "rawDecode")
  // RESULT: median per-round wall-clock throughput of the backend over that of raw avsc
  console.log(
    `RESULT avro_encode_ratio=${ratio("fwEncode", "rawEncode")} avro_decode_ratio=${ratio("fwDecode", "rawDecode")} ` +
      `avro_typed_encode_ratio=${ratio("typedEncode", "rawEncode")} ` +
      `avro_typed_decode_ratio=${ratio("typedDecode", "rawDecode")}`
  )
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
