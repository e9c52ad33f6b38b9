/**
 * The one place avsc types are created: every `avro.Type.forSchema` of the package goes through {@link typeOf}, so
 * what every type needs is given here once: the exact long of `longs.ts` (longs exact over ±(2^53 − 1), refused
 * outside), for the types of schema directories, handles, keys, typed readers and writer schemas fetched by id.
 */
import avro from "avsc"
import * as Longs from "./longs.js"

/** Named types by full name, as avsc registers them while parsing. */
export type Registry = { [name: string]: avro.Type }

/** A hook over each schema node: the type to use for it, or undefined for avsc's own. */
export type TypeHook = (schema: avro.Schema, opts: unknown) => avro.Type | undefined

/** Options of {@link typeOf}: the named types the schema may refer to, and a hook over each schema node. */
export interface TypeOptions {
  readonly registry?: Registry | undefined
  /** Asked first; where it answers undefined, the exact long (and the float and double promoting to it) apply. */
  readonly typeHook?: TypeHook | undefined
}

const withLongs = (own: TypeHook): TypeHook => (schema, opts) => own(schema, opts) ?? Longs.typeHook(schema)

/** The avsc type of a schema (parsed JSON); throws what avsc throws for an invalid schema or an unknown name. */
export const typeOf = (schema: unknown, options: TypeOptions = {}): avro.Type =>
  avro.Type.forSchema(schema as avro.Schema, {
    ...(options.registry === undefined ? {} : { registry: options.registry }),
    typeHook: (options.typeHook === undefined ? Longs.typeHook : withLongs(options.typeHook)) as never
  })
