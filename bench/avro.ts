/**
 * Encode and decode 1M records of a realistic schema (10 fields with a nested record, an array and a timestamp)
 * through the Schema Registry backend (ids cached after the first call) versus raw avsc `toBuffer`/`fromBuffer`,
 * in one run, in 20 interleaved rounds of 50k records. Ends with `RESULT avro_encode_ratio=X avro_decode_ratio=Y`
 * (framework throughput / raw, per CPU second of the process; wall-clock figures are printed too).
 *
 * Run: `npm run bench:avro`
 */
import { AvroBackend } from "@deimos/avro"
import { SchemaRegistry } from "@deimos/broker"
import { SchemaRef } from "@deimos/core"
import avro from "avsc"
import * as Effect from "effect/Effect"

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

const Order = SchemaRef.make<Record<string, unknown>>({ name: "bench.Order", avro: schema })
const records = Array.from({ length: 1000 }, (_, i) => ({
  id: i,
  customer: `customer-${i}`,
  amount: i * 1.5,
  currency: "EUR",
  created_at: 1_700_000_000_000 + i,
  paid: i % 2 === 0,
  note: i % 3 === 0 ? null : "leave at the door",
  items: ["sku-1", "sku-2", "sku-3"],
  address: { street: "1 Main St", city: "Springfield", zip: "12345" },
  quantity: i % 10
}))

const program = Effect.gen(function*() {
  const registry = yield* SchemaRegistry.make({ port: 0 })
  const backend = AvroBackend.makeSchemaRegistry({ url: registry.url })
  const type = avro.Type.forSchema(schema as unknown as avro.Schema)
  const topic = "orders"

  // warm up: registers the schema and fills the id, type and resolver caches; lets the JIT settle on both sides
  const rawInputs = records.map((r) => type.toBuffer(r))
  const fwInputs: Array<Uint8Array> = []
  for (const r of records) fwInputs.push(yield* backend.encode(r, { schema: Order, topic }))
  for (const b of fwInputs) yield* backend.decode(b, { schema: Order, topic })

  // 1M records per side, in interleaved rounds so that load from elsewhere on the machine hits both sides alike;
  // outputs go to a ring of 1000 slots (kept, so nothing is optimised away, without growing the heap)
  const rounds = 20
  const perRound = Math.ceil(total / rounds)
  const ring: Array<unknown> = new Array(1000)
  // [wall seconds, CPU seconds] per side
  const time = { rawEncode: [0, 0], fwEncode: [0, 0], rawDecode: [0, 0], fwDecode: [0, 0] }
  const measure = <E>(into: Array<number>, body: Effect.Effect<void, E>): Effect.Effect<void, E> =>
    Effect.suspend(() => {
      const wall = performance.now()
      const cpu = process.cpuUsage()
      return Effect.map(body, () => {
        const used = process.cpuUsage(cpu)
        into[0] += (performance.now() - wall) / 1000
        into[1] += (used.user + used.system) / 1e6
      })
    })
  for (let round = 0; round < rounds; round++) {
    yield* measure(
      time.rawEncode,
      Effect.sync(() => {
        for (let i = 0; i < perRound; i++) ring[i % 1000] = type.toBuffer(records[i % 1000])
      })
    )
    // the framework side runs as an Effect program does: one fiber, a loop of effects
    yield* measure(
      time.fwEncode,
      Effect.gen(function*() {
        for (let i = 0; i < perRound; i++) {
          ring[i % 1000] = yield* backend.encode(records[i % 1000], { schema: Order, topic })
        }
      })
    )
    yield* measure(
      time.rawDecode,
      Effect.sync(() => {
        for (let i = 0; i < perRound; i++) ring[i % 1000] = type.fromBuffer(rawInputs[i % 1000])
      })
    )
    yield* measure(
      time.fwDecode,
      Effect.gen(function*() {
        for (let i = 0; i < perRound; i++) {
          ring[i % 1000] = yield* backend.decode(fwInputs[i % 1000], { schema: Order, topic })
        }
      })
    )
  }
  const n = perRound * rounds
  // the decoded values are the records
  if (JSON.stringify(ring[999]) !== JSON.stringify(records[999])) throw new Error("decoded value differs")

  const rate = (s: number) => Math.round(n / s)
  for (
    const [name, raw, fw] of [["encode", time.rawEncode, time.fwEncode], [
      "decode",
      time.rawDecode,
      time.fwDecode
    ]] as const
  ) {
    console.log(
      `${name} ${n}: raw avsc ${rate(raw[1])}/s, registry backend ${rate(fw[1])}/s per CPU second` +
        ` (wall clock: ${rate(raw[0])}/s vs ${rate(fw[0])}/s, ratio ${(raw[0] / fw[0]).toFixed(3)})`
    )
  }
  // RESULT: throughput per CPU second of the process (process.cpuUsage), so that other processes competing for the
  // machine do not skew one side; the wall-clock ratios are printed above
  console.log(
    `RESULT avro_encode_ratio=${(time.rawEncode[1] / time.fwEncode[1]).toFixed(3)} avro_decode_ratio=${
      (time.rawDecode[1] / time.fwDecode[1]).toFixed(3)
    }`
  )
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
