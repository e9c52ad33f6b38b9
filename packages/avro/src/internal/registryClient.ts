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
import * as https from "node:https"

/** TLS to the registry, PEM texts (files are read by the caller). */
export interface ClientTls {
  readonly ca?: string | ReadonlyArray<string> | undefined
  readonly cert?: string | undefined
  readonly key?: Redacted.Redacted<string> | undefined
  readonly servername?: string | undefined
  readonly rejectUnauthorized?: boolean | undefined
}

export interface ClientOptions {
  readonly url: string
  readonly auth?: { readonly username: string; readonly password: Redacted.Redacted } | undefined
  /** `Authorization: Bearer <token>` (instead of `auth`). */
  readonly bearerToken?: Redacted.Redacted<string> | undefined
  readonly tls?: ClientTls | undefined
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

const untrusted =
  /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_SIGNATURE_FAILURE|CERT_HAS_EXPIRED|CERT_UNTRUSTED|ALTNAME/
const refused = /CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA/

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
  } else if (options.bearerToken !== undefined) {
    headers.authorization = `Bearer ${Redacted.value(options.bearerToken)}`
  }
  const tls = options.tls
  const agent = tls === undefined ? undefined : new https.Agent({
    keepAlive: true,
    ...(tls.ca === undefined ? {} : { ca: typeof tls.ca === "string" ? tls.ca : [...tls.ca] }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: Redacted.value(tls.key) }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
    rejectUnauthorized: tls.rejectUnauthorized ?? true
  })
  /** One request: `fetch`, or node's https with the agent's CA and client certificate. */
  const send = (method: string, url: string, signal: AbortSignal, body: string | undefined) =>
    agent === undefined
      ? fetch(url, { method, headers, signal, ...(body === undefined ? {} : { body }) }).then(async (response) => ({
        status: response.status,
        text: await response.text()
      }))
      : new Promise<{ status: number; text: string }>((resolve, reject) => {
        const request = https.request(url, { method, headers, agent, signal }, (response) => {
          let text = ""
          response.setEncoding("utf8")
          response.on("data", (chunk: string) => (text += chunk))
          response.on("end", () => resolve({ status: response.statusCode ?? 0, text }))
          response.on("error", reject)
        })
        request.on("error", reject)
        request.end(body)
      })
  const call = <A>(method: string, path: string, subject: string | undefined, body?: unknown) =>
    Effect.tryPromise({
      // the signal aborts the request when the attempt is interrupted (by its timeout, or from outside)
      try: async (signal) => {
        const { status, text } = await send(
          method,
          base + path,
          signal,
          body === undefined ? undefined : JSON.stringify(body)
        )
        let json: unknown = undefined
        if (text !== "") {
          try {
            json = JSON.parse(text)
          } catch {
            json = { message: text.slice(0, 200) }
          }
        }
        return { status, json }
      },
      catch: (cause) => {
        const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : ""
        // a certificate the client does not trust, or one the registry refuses: trying again cannot help
        const certificate = untrusted.test(code)
          ? " (check the registry TLS CA: tls.ca / tls.caFile, SCHEMA_REGISTRY_SSL_CA_FILE)"
          : refused.test(code)
          ? " (check the registry client certificate: tls.cert / tls.key, SCHEMA_REGISTRY_SSL_CERT_FILE / _KEY_FILE)"
          : ""
        return new SchemaError.SchemaError({
          reason: "Registry",
          retriable: certificate === "",
          schema: subject,
          cause,
          message: `Schema Registry at ${base} unreachable (${method} ${path}): ${
            cause instanceof Error ? cause.message : String(cause)
          }${certificate}`
        })
      }
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
            }${subject === undefined ? "" : ` for subject ${subject}`}: ${detail?.message ?? "no message"}${
              status === 401 || status === 403
                ? " (check auth: SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD, or SCHEMA_REGISTRY_BEARER_TOKEN)"
                : ""
            }`
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
