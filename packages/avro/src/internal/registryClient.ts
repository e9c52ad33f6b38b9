/**
 * A small Confluent Schema Registry client: register / look up subjects, fetch schemas by id. Each request has a
 * timeout (a registry that accepts the connection and never answers must not stall encoding); timeouts, network
 * failures and 5xx answers are retriable and retried with the schedule; 4xx answers are surfaced with their
 * Confluent code, and the answer (its status and body) as the error's cause.
 */
import { SchemaError } from "@deimos/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"

export interface ClientOptions {
  readonly url: string
  readonly auth?: { readonly username: string; readonly password: Redacted.Redacted } | undefined
  /** Retries of retriable failures (unreachable registry, timeout, 5xx). @default 5 */
  readonly retries?: number | undefined
  /** The backoff between retries. @default Schedule.exponential("100 millis") */
  readonly retrySchedule?: Schedule.Schedule<unknown, SchemaError.SchemaError> | undefined
  /** How long one request may take. @default "10 seconds" */
  readonly requestTimeout?: Duration.DurationInput | undefined
}

/** The cause of a `Registry` error for an HTTP answer: its status and body. */
export interface Answer {
  readonly status: number
  readonly body: unknown
}

/** Is this the registry's 404 (an unknown subject, version or schema id)? */
export const isNotFound = (error: SchemaError.SchemaError): boolean =>
  error.reason === "Registry" && typeof error.cause === "object" && error.cause !== null &&
  (error.cause as Partial<Answer>).status === 404

export interface Client {
  /** The registry's base URL (no trailing slash), for messages. */
  readonly url: string
  /** Registers a schema under a subject (or finds it registered): its id. */
  readonly register: (subject: string, schema: string) => Effect.Effect<number, SchemaError.SchemaError>
  /** The id of a schema registered under a subject; a 404 (40401, 40403) when it is not. */
  readonly lookup: (subject: string, schema: string) => Effect.Effect<number, SchemaError.SchemaError>
  /** The schema (JSON text) of an id; a 404 (40403) when the registry does not know it. */
  readonly schemaById: (id: number) => Effect.Effect<string, SchemaError.SchemaError>
}

export const makeClient = (options: ClientOptions): Client => {
  const retry = {
    schedule: options.retrySchedule ?? Schedule.exponential("100 millis"),
    times: options.retries ?? 5,
    while: (e: SchemaError.SchemaError) => e.retriable === true
  }
  const timeout = Duration.decode(options.requestTimeout ?? "10 seconds")
  const base = options.url.replace(/\/+$/, "")
  const headers: Record<string, string> = { "content-type": "application/vnd.schemaregistry.v1+json" }
  if (options.auth !== undefined) {
    headers.authorization = `Basic ${
      Buffer.from(`${options.auth.username}:${Redacted.value(options.auth.password)}`).toString("base64")
    }`
  }
  const call = <A>(method: string, path: string, subject: string | undefined, body?: unknown) =>
    Effect.tryPromise({
      // the signal aborts the request when the attempt is interrupted (by its timeout, or from outside)
      try: async (signal) => {
        const response = await fetch(base + path, {
          method,
          headers,
          signal,
          ...(body === undefined ? {} : { body: JSON.stringify(body) })
        })
        const text = await response.text()
        let json: unknown = undefined
        if (text !== "") {
          try {
            json = JSON.parse(text)
          } catch {
            json = { message: text.slice(0, 200) }
          }
        }
        return { status: response.status, json }
      },
      catch: (cause) =>
        new SchemaError.SchemaError({
          reason: "Registry",
          retriable: true,
          schema: subject,
          cause,
          message: `Schema Registry at ${base} unreachable (${method} ${path}): ${String(cause)}`
        })
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new SchemaError.SchemaError({
            reason: "Registry",
            retriable: true,
            schema: subject,
            message: `Schema Registry at ${base} did not answer ${method} ${path} within ${Duration.format(timeout)}`
          })
      }),
      Effect.flatMap(({ json, status }) => {
        if (status >= 200 && status < 300) return Effect.succeed(json as A)
        const detail = json as { readonly error_code?: number; readonly message?: string } | undefined
        return Effect.fail(
          new SchemaError.SchemaError({
            reason: "Registry",
            retriable: status >= 500,
            schema: subject,
            cause: { status, body: json } satisfies Answer,
            message: `Schema Registry answered ${status}${
              detail?.error_code === undefined || detail.error_code === status ? "" : ` (${detail.error_code})`
            }${subject === undefined ? "" : ` for subject ${subject}`}: ${detail?.message ?? "no message"}`
          })
        )
      }),
      Effect.retry(retry)
    )
  return {
    url: base,
    register: (subject, schema) =>
      Effect.map(
        call<{ readonly id: number }>("POST", `/subjects/${encodeURIComponent(subject)}/versions`, subject, { schema }),
        (r) => r.id
      ),
    lookup: (subject, schema) =>
      Effect.map(
        call<{ readonly id: number }>("POST", `/subjects/${encodeURIComponent(subject)}`, subject, { schema }),
        (r) => r.id
      ),
    schemaById: (id) =>
      Effect.map(call<{ readonly schema: string }>("GET", `/schemas/ids/${id}`, undefined), (r) => r.schema)
  }
}
