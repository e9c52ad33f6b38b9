/**
 * How a producer or consumer keys its messages.
 *
 * @since 0.1.0
 */
import type * as SchemaBackend from "./SchemaBackend.js"
import type * as SchemaRef from "./SchemaRef.js"

/**
 * - `{ none: true }`: no key; giving one is an error.
 * - `{ plain: true }`: the key is sent unencoded (UTF-8 of its string form).
 * - `{ field: "id" }`: the key is that field of the payload, encoded with an auto-generated `<Schema>_key` schema.
 * - `{ schema: KeySchema }`: the key is given explicitly and encoded with that schema.
 *
 * @since 0.1.0
 */
export type KeyConfig<A> =
  | { readonly none: true }
  | { readonly plain: true }
  | { readonly field: keyof A & string }
  | { readonly schema: SchemaRef.Any }

/**
 * The type of the key under a key config.
 *
 * @since 0.1.0
 */
export type KeyOf<A, KC> = KC extends { readonly field: infer F } ? F extends keyof A ? A[F] : never
  : KC extends { readonly schema: SchemaRef.SchemaRef<infer K, infer _I> } ? K
  : KC extends { readonly plain: true } ? string | number
  : never

/**
 * The key schema the backend encodes with, if any.
 *
 * @since 0.1.0
 */
export const keySchema = (
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  config: KeyConfig<any>,
  valueSchema: SchemaRef.Any
): SchemaBackend.KeySchema | undefined =>
  "field" in config
    ? { _tag: "Field", field: config.field, valueSchema }
    : "schema" in config
    ? { _tag: "Schema", schema: config.schema }
    : undefined

/**
 * A readable name of the key config, for messages.
 *
 * @since 0.1.0
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const describe = (config: KeyConfig<any>): string =>
  "none" in config
    ? "{ none: true }"
    : "plain" in config
    ? "{ plain: true }"
    : "field" in config
    ? `{ field: "${config.field}" }`
    : `{ schema: ${config.schema.fullName} }`
