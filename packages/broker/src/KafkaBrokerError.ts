/**
 * Errors of the development Kafka broker itself (protocol errors go to clients as Kafka error codes).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * The broker could not start: `Listen` when the port is taken or the host is unknown, `LoadState` when the data
 * directory cannot be created or read (or holds something that is not broker state), `Config` when the TLS or SASL
 * options cannot work (no mechanism, no user, a certificate or key that is not PEM).
 *
 * @since 0.1.0
 */
export class KafkaBrokerError extends Data.TaggedError("KafkaBrokerError")<{
  readonly reason: "Listen" | "LoadState" | "Config"
  readonly message: string
  readonly cause: unknown
}> {}
