/**
 * The one place avsc types are created: every `avro.Type.forSchema` of the package goes through {@link typeOf}, so
 * an option every type needs (a custom long type, say) is given here once.
 */
import avro from "avsc"

/** Named types by full name, as avsc registers them while parsing. */
export type Registry = { [name: string]: avro.Type }

/** Options of {@link typeOf}: the named types the schema may refer to, and a hook over each schema node. */
export interface TypeOptions {
  readonly registry?: Registry | undefined
  readonly typeHook?: ((schema: avro.Schema, opts: unknown) => avro.Type | undefined) | undefined
}

/** The avsc type of a schema (parsed JSON); throws what avsc throws for an invalid schema or an unknown name. */
export const typeOf = (schema: unknown, options: TypeOptions = {}): avro.Type =>
  avro.Type.forSchema(schema as avro.Schema, {
    ...(options.registry === undefined ? {} : { registry: options.registry }),
    ...(options.typeHook === undefined ? {} : { typeHook: options.typeHook as never })
  })
