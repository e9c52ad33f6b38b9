/**
 * Errors of the development Schema Registry itself (not the Confluent-shaped HTTP errors it answers with).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * The registry could not start (`Listen`: the port is taken or the host is unknown; `LoadState`: the data file
 * cannot be read or holds something that is not registry state) or could not save a change (`SaveState`; the
 * request is then answered with 500 / 50001 and the change is not applied).
 *
 * @since 0.1.0
 */
export class SchemaRegistryError extends Data.TaggedError("SchemaRegistryError")<{
  readonly reason: "Listen" | "LoadState" | "SaveState"
  readonly message: string
  readonly cause: unknown
}> {}
