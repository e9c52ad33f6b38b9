/**
 * The conformance suite of the `SchemaBackend` port: every backend runs it (mock, JSON, Avro local, validation,
 * Schema Registry), with a small schema set of its own. It checks what the pipelines rely on: codecs resolved once,
 * synchronous `Either` answers, round trips, validation with field paths, coercion, and typed errors (never a
 * throw) for garbage bytes.
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
  /** Does the backend validate payloads and keys? (the mock does not) */
  readonly validates: boolean
  /**
   * Does the backend write bytes only it reads back? Then a cut-off encoding is an error too (every backend must
   * answer garbage with an error).
   */
  readonly encodes: boolean
  /** The value schema under test, with a field usable as key. */
  readonly schema: SchemaRef.Any
  readonly keyField: string
  /** A key schema of its own (`keyConfig: { schema }`) and a valid key. */
  readonly keySchema: { readonly schema: SchemaRef.Any; readonly valid: unknown; readonly invalid: unknown }
  /** A valid payload (type side) and the same payload with loosely-typed values that coercion fixes. */
  readonly valid: object
  readonly loose: object
  /** An invalid payload and the field paths its error must name. */
  readonly invalid: { readonly payload: unknown; readonly paths: ReadonlyArray<string> }
  readonly layer: Layer.Layer<SchemaBackend.SchemaBackend, E>
}

const garbage = [new Uint8Array([255, 254, 1]), new Uint8Array(0), new Uint8Array([0, 0, 0])]

/**
 * Registers the suite's tests under `describe(name)`.
 *
 * @since 0.1.0
 */
export const suite = <E>(name: string, options: Options<E>): void => {
  const topic = "conformance"
  const fieldKey: SchemaBackend.KeySchema = { _tag: "Field", field: options.keyField, valueSchema: options.schema }
  const schemaKey: SchemaBackend.KeySchema = { _tag: "Schema", schema: options.keySchema.schema }
  // a topic of their own for keys with a schema of their own: a registry holds one key schema per subject
  const keyTopic = `${topic}-keyed`
  // the codecs of the suite's topics, resolved through the backend in context
  const codecs = Effect.gen(function*() {
    const backend = yield* SchemaBackend.SchemaBackend
    return {
      backend,
      value: yield* backend.codec(options.schema, topic, "write"),
      valueReader: yield* backend.codec(options.schema, topic, "read"),
      fieldKey: yield* backend.keyCodec(fieldKey, topic, "write"),
      fieldKeyReader: yield* backend.keyCodec(fieldKey, topic, "read"),
      schemaKey: yield* backend.keyCodec(schemaKey, keyTopic, "write"),
      schemaKeyReader: yield* backend.keyCodec(schemaKey, keyTopic, "read")
    }
  })
  /** Decodes as the pipelines do: the I/O a codec asks for first, then the synchronous decode. */
  const decode = <A>(codec: SchemaBackend.Codec<A>, bytes: Uint8Array) => SchemaBackend.decodeWith(codec, bytes)
  describe(`SchemaBackend conformance: ${name}`, () => {
    it.layer(options.layer, { timeout: 30_000 })((it) => {
      it.effect("resolves a codec once per schema handle and topic", () =>
        Effect.gen(function*() {
          const { backend, value, valueReader } = yield* codecs
          expect(yield* backend.codec(options.schema, topic, "write")).toBe(value)
          expect(yield* backend.codec(options.schema, topic, "read")).toBe(valueReader)
          expect(value.topic).toBe(topic)
        }))

      it.effect("round-trips a payload", () =>
        Effect.gen(function*() {
          const { value, valueReader } = yield* codecs
          const bytes = value.encode(options.valid)
          expect(bytes._tag).toBe("Right")
          if (bytes._tag === "Left") return
          expect(bytes.right).toBeInstanceOf(Uint8Array)
          expect(bytes.right.length).toBeGreaterThan(0)
          expect(yield* decode(valueReader, bytes.right)).toEqual(options.valid)
        }))

      it.effect("round-trips a field key (the field's value in, the same value out)", () =>
        Effect.gen(function*() {
          const { fieldKey, fieldKeyReader } = yield* codecs
          const value = (options.valid as Record<string, unknown>)[options.keyField]
          const bytes = yield* fieldKey.encode(fieldKey.coerce(value))
          expect(yield* decode(fieldKeyReader, bytes)).toEqual(value)
        }))

      it.effect("round-trips a key with a schema of its own", () =>
        Effect.gen(function*() {
          const { schemaKey, schemaKeyReader } = yield* codecs
          const bytes = yield* schemaKey.encode(schemaKey.coerce(options.keySchema.valid))
          expect(yield* decode(schemaKeyReader, bytes)).toEqual(options.keySchema.valid)
        }))

      it.effect(options.validates ? "rejects an invalid key" : "does not validate keys", () =>
        Effect.gen(function*() {
          const { schemaKey } = yield* codecs
          const result = schemaKey.encode(schemaKey.coerce(options.keySchema.invalid))
          expect(result._tag).toBe(options.validates ? "Left" : "Right")
          if (result._tag === "Left") expect(result.left._tag).toBe("SchemaError")
        }))

      it.effect("reports the schema's fields", () =>
        Effect.gen(function*() {
          const { backend } = yield* codecs
          const fields = yield* backend.fields(options.schema)
          expect(fields.map((f) => f.name)).toEqual(expect.arrayContaining(Object.keys(options.valid)))
          for (const f of fields) expect(f.type).toMatch(/^[a-z]/)
          const key = fields.find((f) => f.name === options.keyField)
          expect(key?.nullable).toBe(false)
        }))

      it.effect(
        options.validates ? "coerces loosely-typed values into the valid payload" : "leaves payloads as they are",
        () =>
          Effect.gen(function*() {
            const { value } = yield* codecs
            const coerced = value.coerce(options.loose)
            if (options.validates) {
              yield* value.validate(coerced)
              expect(coerced).toEqual(options.valid)
            } else {
              expect(coerced).toEqual(options.loose)
            }
          })
      )

      it.effect(
        options.validates ? "rejects an invalid payload naming the field paths" : "does not validate",
        () =>
          Effect.gen(function*() {
            const { value } = yield* codecs
            const encoded = value.encode(options.invalid.payload)
            const validated = value.validate(options.invalid.payload)
            if (!options.validates) {
              expect(encoded._tag).toBe("Right")
              expect(validated._tag).toBe("Right")
              return
            }
            for (const result of [encoded, validated]) {
              expect(result._tag).toBe("Left")
              if (result._tag === "Left") {
                expect(result.left.reason).toBe("Validation")
                const paths = (result.left.issues ?? []).map((i) => i.path.join("."))
                expect(paths).toEqual(expect.arrayContaining([...options.invalid.paths]))
              }
            }
          })
      )

      it.effect("answers garbage bytes with a typed SchemaError, never a crash (payloads and keys)", () =>
        Effect.gen(function*() {
          const { schemaKeyReader, valueReader } = yield* codecs
          for (const bytes of garbage) {
            const payload = yield* Effect.either(decode(valueReader, bytes))
            expect(payload._tag).toBe("Left")
            if (payload._tag === "Left") expect(payload.left._tag).toBe("SchemaError")
            const key = yield* Effect.either(decode(schemaKeyReader, bytes))
            expect(key._tag).toBe("Left")
            if (key._tag === "Left") expect(key.left._tag).toBe("SchemaError")
          }
        }))

      if (options.encodes) {
        it.effect("answers a cut-off encoding with a typed SchemaError", () =>
          Effect.gen(function*() {
            const { value, valueReader } = yield* codecs
            const bytes = yield* value.encode(options.valid)
            for (const cut of [bytes.length - 1, Math.floor(bytes.length / 2)]) {
              const result = yield* Effect.either(decode(valueReader, bytes.slice(0, cut)))
              expect(result._tag).toBe("Left")
              if (result._tag === "Left") expect(result.left._tag).toBe("SchemaError")
            }
          }))
      }
    })
  })
}
