/**
 * A schema handle: names a schema (Avro name + namespace, resolved by the schema backend) and/or carries an Effect
 * `Schema`, and carries the payload type so producers and consumers infer it.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"

/** @since 0.1.0 */
export const TypeId: unique symbol = Symbol.for("@deimos/core/SchemaRef")
/** @since 0.1.0 */
export type TypeId = typeof TypeId

/**
 * A handle on a value schema. `A` is the payload type producers accept and consumers receive; `I` is the encoded
 * (wire-shaped, JSON-like) form when an Effect `Schema` is attached.
 *
 * @since 0.1.0
 */
export interface SchemaRef<A, I = A> {
  readonly [TypeId]: { readonly _A: (_: never) => A; readonly _I: (_: never) => I }
  /** Record name, e.g. `"Widget"`. */
  readonly name: string
  /** Namespace, e.g. `"com.example"`. */
  readonly namespace: string | undefined
  /** `namespace.name`, or `name` without a namespace. */
  readonly fullName: string
  /** Effect Schema validating and decoding the payload, when attached. */
  readonly schema: Schema.Schema<A, I> | undefined
  /** The Avro schema (parsed JSON) when known, e.g. from generated modules. */
  readonly avro: AvroSchema | undefined
}

/**
 * Avro schema JSON, as parsed from an `.avsc` file.
 *
 * @since 0.1.0
 */
export type AvroSchema = string | { readonly [key: string]: unknown } | ReadonlyArray<unknown>

/**
 * Any schema handle, whatever its payload type.
 *
 * @since 0.1.0
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Any = SchemaRef<any, any>

/**
 * The payload type carried by a schema handle.
 *
 * @since 0.1.0
 */
export type Type<S> = S extends SchemaRef<infer A, infer _I> ? A : never

/**
 * The encoded type carried by a schema handle.
 *
 * @since 0.1.0
 */
export type Encoded<S> = S extends SchemaRef<infer _A, infer I> ? I : never

/** @since 0.1.0 */
export declare namespace SchemaRef {
  /** Options of {@link make}. */
  export interface Options<A, I> {
    readonly name: string
    readonly namespace?: string | undefined
    readonly schema?: Schema.Schema<A, I> | undefined
    readonly avro?: AvroSchema | undefined
  }
}

const variance = { _A: (_: never) => _, _I: (_: never) => _ }

/**
 * Builds a schema handle. With only a name, the payload type must be given explicitly:
 * `SchemaRef.make<Widget>({ name: "Widget", namespace: "com.example" })`.
 *
 * @since 0.1.0
 */
export const make = <A, I = A>(options: SchemaRef.Options<A, I>): SchemaRef<A, I> => {
  const { name, namespace } = splitName(options.name, options.namespace)
  return {
    [TypeId]: variance,
    name,
    namespace,
    fullName: namespace === undefined ? name : `${namespace}.${name}`,
    schema: options.schema,
    avro: options.avro
  }
}

/**
 * A schema handle from an Effect `Schema`; the payload type is the schema's type.
 *
 * @since 0.1.0
 */
export const fromSchema = <A, I>(
  schema: Schema.Schema<A, I>,
  options: { readonly name: string; readonly namespace?: string | undefined }
): SchemaRef<A, I> => make({ ...options, schema })

/**
 * Is this value a schema handle?
 *
 * @since 0.1.0
 */
export const isSchemaRef = (u: unknown): u is Any => typeof u === "object" && u !== null && TypeId in u

/**
 * The name of the key schema generated for `keyConfig: { field }`: `"<Schema>_key"`.
 *
 * @since 0.1.0
 */
export const keySchemaName = (ref: Any): string => `${ref.name}_key`

/**
 * The Avro record fields of the attached Avro schema, when it is a record.
 *
 * @since 0.1.0
 */
export const avroFields = (ref: Any): Option.Option<ReadonlyArray<{ readonly [key: string]: unknown }>> => {
  const avro = ref.avro
  if (typeof avro === "object" && avro !== null && !Array.isArray(avro)) {
    const fields = (avro as { readonly fields?: unknown }).fields
    if (Array.isArray(fields)) return Option.some(fields as ReadonlyArray<{ readonly [key: string]: unknown }>)
  }
  return Option.none()
}

const splitName = (name: string, namespace: string | undefined) => {
  const dot = name.lastIndexOf(".")
  if (dot > 0 && namespace === undefined) {
    return { name: name.slice(dot + 1), namespace: name.slice(0, dot) }
  }
  return { name, namespace: namespace === "" ? undefined : namespace }
}
