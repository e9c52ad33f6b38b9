/**
 * TLS and SASL for the kafkajs adapter: the options in the toolkit's types (secrets `Redacted` until kafkajs needs
 * them), files read when the first client connects, the OAUTHBEARER token cache, and the classing of
 * authentication failures as non-retriable errors that name the setting to check.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type { SASLOptions } from "kafkajs"
import * as fs from "node:fs/promises"
import type { ConnectionOptions } from "node:tls"
import { KafkaError } from "../KafkaError.js"
import type { OAuthBearerToken, SaslOptions, TlsOptions } from "../KafkaJs.js"

/** The setting named by an error about a failed TLS or SASL step. */
const settings = {
  ca: "ssl.ca / ssl.caFile (KAFKA_SSL_CA, KAFKA_SSL_CA_FILE): the CA that signed the broker's certificate",
  servername: "ssl.servername (KAFKA_SSL_SERVERNAME): a name the broker's certificate is for",
  clientCert:
    "ssl.cert and ssl.key (KAFKA_SSL_CERT[_FILE], KAFKA_SSL_KEY[_FILE]): a client certificate the broker's CA signed",
  credentials: "sasl.username and sasl.password (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)",
  mechanism: "sasl.mechanism (KAFKA_SASL_MECHANISM): one the broker enables",
  token: "sasl.token: the OAUTHBEARER token provider",
  aws: "sasl.accessKeyId, sasl.secretAccessKey and sasl.sessionToken: the AWS credentials",
  protocol: "ssl and sasl (KAFKA_SSL, KAFKA_SASL_MECHANISM): the broker's listener may need TLS or SASL"
} as const

const readFile = (file: string, setting: string) =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (cause) =>
      new KafkaError({
        reason: "Connect",
        retriable: false,
        code: "CONFIG",
        setting,
        message: `Cannot read ${file} (check ${setting}): ${
          typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : "unreadable"
        }`,
        cause
      })
  })

/** kafkajs's `ssl`: `true` trusts the system's CAs; files are read now. */
export const tlsOf = (ssl: boolean | TlsOptions | undefined): Effect.Effect<boolean | ConnectionOptions, KafkaError> =>
  Effect.gen(function*() {
    if (ssl === undefined || ssl === false) return false
    if (ssl === true) return true
    const ca = ssl.caFile !== undefined
      ? [yield* readFile(ssl.caFile, "ssl.caFile (KAFKA_SSL_CA_FILE)")]
      : ssl.ca === undefined
      ? undefined
      : typeof ssl.ca === "string"
      ? [ssl.ca]
      : [...ssl.ca]
    const cert = ssl.certFile !== undefined
      ? yield* readFile(ssl.certFile, "ssl.certFile (KAFKA_SSL_CERT_FILE)")
      : ssl.cert
    const key = ssl.keyFile !== undefined
      ? yield* readFile(ssl.keyFile, "ssl.keyFile (KAFKA_SSL_KEY_FILE)")
      : ssl.key === undefined
      ? undefined
      : Redacted.value(ssl.key)
    if ((cert === undefined) !== (key === undefined)) {
      return yield* new KafkaError({
        reason: "Connect",
        retriable: false,
        code: "CONFIG",
        setting: settings.clientCert,
        message: `A client certificate needs its key and a key its certificate (check ${settings.clientCert})`
      })
    }
    return {
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      ...(ssl.keyPassword === undefined ? {} : { passphrase: Redacted.value(ssl.keyPassword) }),
      ...(ssl.servername === undefined ? {} : { servername: ssl.servername }),
      rejectUnauthorized: ssl.rejectUnauthorized ?? true
    }
  })

/**
 * The OAUTHBEARER token of the provider, cached: a new one is asked for once the cached one is within
 * `refreshBefore` of its expiry (at most half its lifetime), so connections and re-authentications before that
 * reuse it; `invalidate` drops it (the broker refused it).
 */
export interface TokenCache {
  readonly get: Effect.Effect<OAuthBearerToken, KafkaError>
  readonly invalidate: () => void
}

export const tokenCache = (
  token: Effect.Effect<OAuthBearerToken, unknown>,
  refreshBefore: Duration.DurationInput = "1 minute"
): TokenCache => {
  const margin = Duration.toMillis(Duration.decode(refreshBefore))
  let cached: { readonly token: OAuthBearerToken; readonly refreshAt: number } | undefined
  return {
    get: Effect.suspend(() => {
      const now = Date.now()
      if (cached !== undefined && now < cached.refreshAt) return Effect.succeed(cached.token)
      return token.pipe(
        Effect.mapError((cause) =>
          new KafkaError({
            reason: "Connect",
            retriable: false,
            code: "OAUTHBEARER_TOKEN",
            setting: settings.token,
            message: `The OAUTHBEARER token provider failed (check ${settings.token})`,
            cause
          })
        ),
        Effect.tap((fresh) =>
          Effect.sync(() => {
            const expiresAt = typeof fresh.expiresAt === "number" ? fresh.expiresAt : fresh.expiresAt.getTime()
            const fetched = Date.now()
            cached = { token: fresh, refreshAt: expiresAt - Math.min(margin, (expiresAt - fetched) / 2) }
          })
        )
      )
    }),
    invalidate: () => {
      cached = undefined
    }
  }
}

/** kafkajs's `sasl`; the OAUTHBEARER provider runs the cached token effect on `runtime`. */
export const saslOf = (
  sasl: SaslOptions | undefined,
  cache: TokenCache | undefined,
  runtime: Runtime.Runtime<never>
): SASLOptions | undefined => {
  if (sasl === undefined) return undefined
  switch (sasl.mechanism) {
    case "oauthbearer":
      return {
        mechanism: "oauthbearer",
        oauthBearerProvider: async () => {
          const exit = await Runtime.runPromiseExit(runtime)(cache!.get)
          if (Exit.isFailure(exit)) {
            const failure = Cause.failureOption(exit.cause)
            throw Object.assign(
              new Error(failure._tag === "Some" ? failure.value.message : "The OAUTHBEARER token provider failed"),
              {
                code: "OAUTHBEARER_TOKEN",
                cause: failure._tag === "Some" ? failure.value.cause : undefined
              }
            )
          }
          const token = exit.value
          return {
            value: Redacted.value(token.value),
            ...(token.extensions === undefined ? {} : { extensions: { ...token.extensions } })
          }
        }
      } as SASLOptions
    case "aws":
      return {
        mechanism: "aws",
        authorizationIdentity: sasl.authorizationIdentity,
        accessKeyId: sasl.accessKeyId,
        secretAccessKey: Redacted.value(sasl.secretAccessKey),
        ...(sasl.sessionToken === undefined ? {} : { sessionToken: Redacted.value(sasl.sessionToken) })
      } as SASLOptions
    default:
      return {
        mechanism: sasl.mechanism,
        username: sasl.username,
        password: Redacted.value(sasl.password)
      } as SASLOptions
  }
}

interface Chained {
  readonly name?: unknown
  readonly message?: unknown
  readonly type?: unknown
  readonly code?: unknown
  readonly cause?: unknown
  readonly originalError?: unknown
}

const chainOf = (error: unknown): ReadonlyArray<Chained> => {
  const out: Array<Chained> = []
  let current = error as Chained | undefined
  while (current !== undefined && current !== null && typeof current === "object" && out.length < 8) {
    out.push(current)
    current = (current.cause ?? current.originalError) as Chained | undefined
  }
  return out
}

/** The TLS failure codes of node's `tls` that say the broker's certificate is not trusted. */
const untrusted = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED"
])

/** Alerts of a broker that refused the client's certificate (or its absence). */
const clientCertRefused = /CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|HANDSHAKE_FAILURE/

/** What failed, when an error of a connection is an authentication failure: the setting to check. */
export const authenticationFailure = (
  error: unknown,
  sasl: SaslOptions | undefined
): { readonly code: string; readonly what: string; readonly setting: string } | undefined => {
  for (const e of chainOf(error)) {
    const code = typeof e.code === "string" ? e.code : undefined
    const type = typeof e.type === "string" ? e.type : undefined
    const message = typeof e.message === "string" ? e.message : ""
    if (code === "OAUTHBEARER_TOKEN") return { code, what: "no OAUTHBEARER token", setting: settings.token }
    if (code !== undefined && untrusted.has(code)) {
      return { code, what: "the broker's TLS certificate is not trusted", setting: settings.ca }
    }
    if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
      return { code, what: "the broker's TLS certificate is not for this host", setting: settings.servername }
    }
    if (code !== undefined && clientCertRefused.test(code)) {
      return { code, what: "the broker refused the client's TLS certificate", setting: settings.clientCert }
    }
    if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "EPROTO") {
      return { code, what: "the TLS handshake failed", setting: settings.protocol }
    }
    if (type === "UNSUPPORTED_SASL_MECHANISM" || /mechanism is not supported/.test(message)) {
      return {
        code: "UNSUPPORTED_SASL_MECHANISM",
        what: "the broker does not enable this SASL mechanism",
        setting: settings.mechanism
      }
    }
    if (
      type === "SASL_AUTHENTICATION_FAILED" || type === "ILLEGAL_SASL_STATE" ||
      e.name === "KafkaJSSASLAuthenticationError"
    ) {
      const setting = sasl?.mechanism === "oauthbearer"
        ? settings.token
        : sasl?.mechanism === "aws"
        ? settings.aws
        : settings.credentials
      return { code: "SASL_AUTHENTICATION_FAILED", what: "SASL authentication failed", setting }
    }
  }
  return undefined
}
