/**
 * The conformance suite of the `SchemaBackend` port: every backend runs it (mock, JSON, Avro local, validation,
 * Schema Registry).
 *
 * @since 0.1.0
 */
import { SchemaBackend, type SchemaRef } from "@deimos/core"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

/**
 * @since 0.1.0
 */
export interface Options<E> {
  /** Does the backend validate payloads? */
  readonly validates: boolean
  /** The schema under test, with a field usable as key. */
  readonly schema: SchemaRef.Any
  readonly keyField: string
  /** A valid payload (type side) and the same payload with loosely-typed values that coercion fixes. */
  readonly valid: object
  readonly loose: object
  /** An invalid payload and the field paths its error must name. */
  readonly invalid: { readonly payload: unknown; readonly paths: ReadonlyArray<string> }
  readonly layer: Layer.Layer<SchemaBackend.SchemaBackend, E>
}

/**
 * Registers the suite's tests under `describe(name)`.
 *
 * @since 0.1.0
 */
export const suite = <E>(name: string, options: Options<E>): void => {
  const topic = "conformance"
  const key = { _tag: "Field" as const, field: options.keyField, valueSchema: options.schema }
  describe(`SchemaBackend conformance: ${name}`, () => {
    it.layer(options.layer, { timeout: 30_000 })((it) => {
      it.effect("round-trips a payload", () =>
        Effect.gen(function*() {
          const backend = yield* SchemaBackend.SchemaBackend
          const bytes = yield* backend.encode(options.valid, { schema: options.schema, topic })
          expect(bytes).toBeInstanceOf(Uint8Array)
          expect(yield* backend.decode(bytes, { schema: options.schema, topic })).toEqual(options.valid)
        }))

      it.effect("round-trips a field key", () =>
        Effect.gen(function*() {
          const backend = yield* SchemaBackend.SchemaBackend
          const value = (options.valid as Record<string, unknown>)[options.keyField]
          const bytes = yield* backend.encodeKey(value, { key, topic })
          expect(yield* backend.decodeKey(bytes, { key, topic })).toEqual(value)
        }))

      it.effect("reports the schema's fields", () =>
        Effect.gen(function*() {
          const backend = yield* SchemaBackend.SchemaBackend
          const fields = yield* backend.schemaFields(options.schema)
          expect(fields.map((f) => f.name)).toEqual(expect.arrayContaining(Object.keys(options.valid)))
          for (const f of fields) expect(typeof f.sqlType).toBe("string")
        }))

      it.effect("coerces loosely-typed values into a valid payload", () =>
        Effect.gen(function*() {
          const backend = yield* SchemaBackend.SchemaBackend
          const coerced = yield* backend.coerce(options.loose, options.schema)
          if (options.validates) {
            yield* backend.validate(coerced, options.schema)
            expect(coerced).toEqual(options.valid)
          }
        }))

      it.effect(
        options.validates ? "rejects an invalid payload naming the field paths" : "does not validate",
        () =>
          Effect.gen(function*() {
            const backend = yield* SchemaBackend.SchemaBackend
            const result = yield* Effect.either(
              backend.encode(options.invalid.payload, { schema: options.schema, topic })
            )
            if (!options.validates) {
              expect(result._tag).toBe("Right")
              return
            }
            expect(result._tag).toBe("Left")
            if (result._tag === "Left") {
              expect(result.left.reason).toBe("Validation")
              const paths = (result.left.issues ?? []).map((i) => i.path.join("."))
              expect(paths).toEqual(expect.arrayContaining([...options.invalid.paths]))
            }
          })
      )

      it.effect("answers garbage bytes with a typed SchemaError, never a crash", () =>
        Effect.gen(function*() {
          const backend = yield* SchemaBackend.SchemaBackend
          for (const garbage of [new Uint8Array([255, 254, 1]), new Uint8Array(0), new Uint8Array([0, 0, 0])]) {
            const result = yield* Effect.either(backend.decode(garbage, { schema: options.schema, topic }))
            expect(result._tag).toBe("Left")
            if (result._tag === "Left") expect(result.left._tag).toBe("SchemaError")
          }
        }))
    })
  })
}
