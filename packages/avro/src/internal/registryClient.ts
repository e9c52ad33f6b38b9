/**
 * A small Confluent Schema Registry client: register / look up subjects, fetch schemas by id. Network and 5xx
 * failures are retriable and retried with exponential backoff; 4xx answers are surfaced with their Confluent code.
 */
import { SchemaError } from "@deimos/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"

export interface RegistryOptions {
  readonly url: string
  readonly auth?: { readonly username: string; readonly password: Redacted.Redacted } | undefined
  /** Retries of retriable failures (unreachable registry, 5xx). @default 5 */
  readonly retries?: number | undefined
  /** The backoff between retries. @default Schedule.exponential("100 millis") */
  readonly retrySchedule?: Schedule.Schedule<unknown, SchemaError.SchemaError> | undefined
}

export const makeClient = (options: RegistryOptions) => {
  const retry = {
    schedule: options.retrySchedule ?? Schedule.exponential("100 millis"),
    times: options.retries ?? 5,
    while: (e: SchemaError.SchemaError) => e.retriable === true
  }
  const base = options.url.replace(/\/+$/, "")
  const headers: Record<string, string> = { "content-type": "application/vnd.schemaregistry.v1+json" }
  if (options.auth !== undefined) {
    headers.authorization = `Basic ${
      Buffer.from(`${options.auth.username}:${Redacted.value(options.auth.password)}`).toString("base64")
    }`
  }
  const call = <A>(method: string, path: string, subject: string | undefined, body?: unknown) =>
    Effect.tryPromise({
      try: async () => {
        const response = await fetch(base + path, {
          method,
          headers,
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
      Effect.flatMap(({ json, status }) => {
        if (status >= 200 && status < 300) return Effect.succeed(json as A)
        const detail = json as { readonly error_code?: number; readonly message?: string } | undefined
        return Effect.fail(
          new SchemaError.SchemaError({
            reason: "Registry",
            retriable: status >= 500,
            schema: subject,
            cause: detail,
            message: `Schema Registry answered ${status}${
              detail?.error_code === undefined || detail.error_code === status ? "" : ` (${detail.error_code})`
            }${subject === undefined ? "" : ` for subject ${subject}`}: ${detail?.message ?? "no message"}`
          })
        )
      }),
      Effect.retry(retry)
    )
  return {
    register: (subject: string, schema: string) =>
      Effect.map(
        call<{ readonly id: number }>("POST", `/subjects/${encodeURIComponent(subject)}/versions`, subject, { schema }),
        (r) => r.id
      ),
    lookup: (subject: string, schema: string) =>
      Effect.map(
        call<{ readonly id: number }>("POST", `/subjects/${encodeURIComponent(subject)}`, subject, { schema }),
        (r) => r.id
      ),
    schemaById: (id: number) =>
      Effect.map(call<{ readonly schema: string }>("GET", `/schemas/ids/${id}`, undefined), (r) => r.schema)
  }
}
