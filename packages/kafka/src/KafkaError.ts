/**
 * Errors from the Kafka driver, mapped at the edge by each adapter: `retriable` says whether trying again may help;
 * the driver's error is kept as `cause`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * What was being done when the error happened.
 *
 * @since 0.1.0
 */
export type Reason = "Connect" | "Produce" | "Consume" | "Commit" | "Admin"

/**
 * @since 0.1.0
 */
export class KafkaError extends Data.TaggedError("KafkaError")<{
  readonly reason: Reason
  readonly message: string
  /** Whether trying again may help (a broker restart, a rebalance), as the driver classed it. */
  readonly retriable: boolean
  /** The broker's error name when there is one, e.g. `MESSAGE_TOO_LARGE`. */
  readonly code?: string | undefined
  /**
   * The setting to check when connecting failed for an authentication or TLS reason (refused credentials, an
   * untrusted certificate, an unreadable key file), e.g. `sasl.username and sasl.password (KAFKA_SASL_USERNAME,
   * KAFKA_SASL_PASSWORD)`; such errors are not retriable.
   */
  readonly setting?: string | undefined
  /** The driver's error. */
  readonly cause?: unknown
}> {}

/**
 * Whether connecting failed because the client's credentials or certificates were refused, or the broker's were
 * not trusted: a configuration to fix, not an outage to wait out (`setting` says which).
 *
 * @since 0.1.0
 */
export const isAuthenticationFailure = (error: KafkaError): boolean =>
  error.reason === "Connect" && error.setting !== undefined

/**
 * Whether the broker refused a request or a message as larger than it accepts (`MESSAGE_TOO_LARGE`,
 * `RECORD_LIST_TOO_LARGE`): sending it again as it is cannot succeed.
 *
 * @since 0.1.0
 */
export const isTooLarge = (error: KafkaError): boolean =>
  error.code === "MESSAGE_TOO_LARGE" || error.code === "RECORD_LIST_TOO_LARGE"
