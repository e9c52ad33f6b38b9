/**
 * Encode and decode 1M records of a realistic schema (10 fields with a nested record, an array and a timestamp)
 * through the Schema Registry backend (ids cached after the first call) versus raw avsc `toBuffer`/`fromBuffer`,
 * in one run. Ends with `RESULT avro_encode_ratio=X avro_decode_ratio=Y` (framework throughput / raw).
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

  // warm up: registers the schema and fills the id, type and resolver caches
  const sample = yield* backend.encode(records[0], { schema: Order, topic })
  yield* backend.decode(sample, { schema: Order, topic })

  const rawEncodeStart = performance.now()
  const rawEncoded: Array<Buffer> = new Array(total)
  for (let i = 0; i < total; i++) rawEncoded[i] = type.toBuffer(records[i % 1000])
  const rawEncode = (performance.now() - rawEncodeStart) / 1000

  // the framework side runs as an Effect program does: one fiber, a loop of effects
  const fwEncodeStart = performance.now()
  const fwEncoded: Array<Uint8Array> = new Array(total)
  yield* Effect.gen(function*() {
    for (let i = 0; i < total; i++) fwEncoded[i] = yield* backend.encode(records[i % 1000], { schema: Order, topic })
  })
  const fwEncode = (performance.now() - fwEncodeStart) / 1000

  const rawDecodeStart = performance.now()
  for (let i = 0; i < total; i++) type.fromBuffer(rawEncoded[i])
  const rawDecode = (performance.now() - rawDecodeStart) / 1000

  const fwDecodeStart = performance.now()
  yield* Effect.gen(function*() {
    for (let i = 0; i < total; i++) yield* backend.decode(fwEncoded[i], { schema: Order, topic })
  })
  const fwDecode = (performance.now() - fwDecodeStart) / 1000

  const rate = (s: number) => Math.round(total / s)
  console.log(`encode ${total}: raw avsc ${rate(rawEncode)}/s, registry backend ${rate(fwEncode)}/s`)
  console.log(`decode ${total}: raw avsc ${rate(rawDecode)}/s, registry backend ${rate(fwDecode)}/s`)
  console.log(
    `RESULT avro_encode_ratio=${(rawEncode / fwEncode).toFixed(3)} avro_decode_ratio=${
      (rawDecode / fwDecode).toFixed(3)
    }`
  )
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
