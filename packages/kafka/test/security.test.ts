import { DevCertificates, KafkaBroker } from "@deimos/broker"
import { KafkaError, KafkaJs } from "@deimos/kafka"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as path from "node:path"

const users = [{ username: "svc", password: "svc-Pa55word" }]
const password = Redacted.make("svc-Pa55word")

/** Sends one message through the toolkit's driver and answers how many the topic holds. */
const roundTrip = (options: KafkaJs.Options, topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const driver = yield* KafkaJs.make({ logLevel: "nothing", connectAttempts: 3, ...options })
    const producer = yield* driver.producer()
    yield* producer.send(topic, [{ key: null, value: Buffer.from("secured"), partitionKey: null, headers: {} }])
    const admin = yield* driver.admin
    const offsets = yield* admin.topicOffsets(topic)
    return offsets.reduce((n, o) => n + Number(o.high), 0)
  }))

/** The error of connecting a producer with `options`. */
const connectError = (options: KafkaJs.Options) =>
  Effect.scoped(Effect.gen(function*() {
    const driver = yield* KafkaJs.make({ logLevel: "nothing", connectAttempts: 3, connectionTimeout: 2000, ...options })
    return yield* Effect.flip(driver.producer())
  }))

/** An unsecured JWS (what the dev broker's OAUTHBEARER takes) expiring at `exp` (epoch seconds). */
const jws = (sub: string, exp: number) =>
  `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${
    Buffer.from(JSON.stringify({ sub, exp })).toString("base64url")
  }.`

/** A refused authentication: typed, not retriable, tried once, naming the setting to check. */
const expectRefused = (error: KafkaError.KafkaError, setting: RegExp) => {
  expect(error._tag).toBe("KafkaError")
  expect(error.reason).toBe("Connect")
  expect(error.retriable).toBe(false)
  expect(KafkaError.isAuthenticationFailure(error)).toBe(true)
  expect(error.message).toMatch(setting)
  expect(`check ${error.setting}`).toMatch(setting)
  expect(error.message).toContain("(after 1 attempt)")
}

describe("KafkaJs against secured listeners", () => {
  it.scopedLive("TLS with a private CA inline, and mutual TLS with CA, certificate and key from files", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const tls = yield* KafkaBroker.make({ port: 0, partitions: 1, tls: certs.server })
      expect(yield* roundTrip({ brokers: [tls.broker], ssl: { ca: certs.ca } }, "tls")).toBe(1)
      const mtls = yield* KafkaBroker.make({ port: 0, partitions: 1, tls: { ...certs.server, ca: certs.ca } })
      const files = {
        caFile: path.join(certs.dir, "ca.pem"),
        certFile: path.join(certs.dir, "client.pem"),
        keyFile: path.join(certs.dir, "client.key")
      }
      expect(yield* roundTrip({ brokers: [mtls.broker], ssl: files }, "mtls")).toBe(1)
      expect(
        yield* roundTrip({
          brokers: [mtls.broker],
          ssl: { ca: certs.ca, cert: certs.client.cert, key: Redacted.make(certs.client.key), servername: "localhost" }
        }, "mtls")
      ).toBe(2)
    }))

  it.scopedLive("SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, and SCRAM-SHA-512 over TLS", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const sasl = yield* KafkaBroker.make({
        port: 0,
        partitions: 1,
        sasl: { mechanisms: ["plain", "scram-sha-256", "scram-sha-512"], users }
      })
      for (const mechanism of ["plain", "scram-sha-256", "scram-sha-512"] as const) {
        expect(yield* roundTrip({ brokers: [sasl.broker], sasl: { mechanism, username: "svc", password } }, mechanism))
          .toBe(1)
      }
      const saslSsl = yield* KafkaBroker.make({
        port: 0,
        partitions: 1,
        tls: certs.server,
        sasl: { mechanisms: ["scram-sha-512"], users }
      })
      expect(
        yield* roundTrip({
          brokers: [saslSsl.broker],
          ssl: { ca: certs.ca },
          sasl: { mechanism: "scram-sha-512", username: "svc", password }
        }, "sasl-ssl")
      ).toBe(1)
    }))

  it.scopedLive("wrong password, unknown user, unoffered mechanism, wrong CA, missing or unknown client certificate: a typed error at once", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const sasl = yield* KafkaBroker.make({ port: 0, sasl: { mechanisms: ["scram-sha-256", "plain"], users } })
      const brokers = [sasl.broker]
      const credentials = /check sasl\.username and sasl\.password \(KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD\)/
      for (const mechanism of ["plain", "scram-sha-256"] as const) {
        const wrong = yield* connectError({
          brokers,
          sasl: { mechanism, username: "svc", password: Redacted.make("wrong") }
        })
        expectRefused(wrong, credentials)
        expect(wrong.code).toBe("SASL_AUTHENTICATION_FAILED")
        expectRefused(yield* connectError({ brokers, sasl: { mechanism, username: "nobody", password } }), credentials)
      }
      expectRefused(
        yield* connectError({ brokers, sasl: { mechanism: "scram-sha-512", username: "svc", password } }),
        /check sasl\.mechanism/
      )

      // SASL against a listener without it
      const open = yield* KafkaBroker.make({ port: 0 })
      expectRefused(
        yield* connectError({ brokers: [open.broker], sasl: { mechanism: "plain", username: "svc", password } }),
        /check sasl\.mechanism/
      )

      const tls = yield* KafkaBroker.make({ port: 0, tls: { ...certs.server, ca: certs.ca } })
      const client = { cert: certs.client.cert, key: Redacted.make(certs.client.key) }
      expectRefused(
        yield* connectError({ brokers: [tls.broker], ssl: { ca: certs.otherCa, ...client } }),
        /check ssl\.ca \/ ssl\.caFile/
      )
      expectRefused(
        yield* connectError({ brokers: [tls.broker], ssl: { ca: certs.ca, ...client, servername: "kafka.example" } }),
        /check ssl\.servername/
      )
      expectRefused(
        yield* connectError({ brokers: [tls.broker], ssl: { ca: certs.ca } }),
        /check ssl\.cert and ssl\.key/
      )
      // a certificate of another CA: the broker closes the connection after the handshake, which is all the
      // client sees (no alert), so it is a connection error after the attempts, not an authentication failure
      const stranger = yield* DevCertificates.make()
      const unknownCert = yield* connectError({
        brokers: [tls.broker],
        ssl: { ca: certs.ca, cert: stranger.client.cert, key: Redacted.make(stranger.client.key) },
        connectAttempts: 1
      })
      expect(unknownCert.reason).toBe("Connect")
      expect(KafkaError.isAuthenticationFailure(unknownCert)).toBe(false)
      const missingFile = yield* connectError({ brokers: [tls.broker], ssl: { caFile: "/nonexistent/ca.pem" } })
      expect(missingFile.message).toContain("check ssl.caFile (KAFKA_SSL_CA_FILE)")
      expect(missingFile.retriable).toBe(false)
      expect(missingFile.setting).toBe("ssl.caFile (KAFKA_SSL_CA_FILE)")
    }))

  it.scopedLive("OAUTHBEARER: the token is cached until near expiry, a refused token is replaced and the connection retried", () =>
    Effect.gen(function*() {
      const broker = yield* KafkaBroker.make({
        port: 0,
        partitions: 1,
        sasl: { mechanisms: ["oauthbearer"], users: [] }
      })
      let calls = 0
      // the first token claims an hour but its JWS has expired (a revoked or clock-skewed token): the broker refuses it
      const token = Effect.sync(() => {
        calls++
        const exp = Date.now() / 1000 + (calls === 1 ? -60 : 3600)
        return { value: Redacted.make(jws("svc", exp)), expiresAt: Date.now() + 3_600_000 }
      })
      const options: KafkaJs.Options = { brokers: [broker.broker], sasl: { mechanism: "oauthbearer", token } }
      expect(yield* roundTrip(options, "oauth")).toBe(1)
      // refused once, then a new token; the admin client's connection reused the cached one
      expect(calls).toBe(2)

      // a token at its expiry is never reused: the producer's and the admin client's connections each get a new one
      let near = 0
      const shortLived = Effect.sync(() => {
        near++
        return { value: Redacted.make(jws("svc", Date.now() / 1000 + 3600)), expiresAt: Date.now() }
      })
      expect(
        yield* roundTrip({
          brokers: [broker.broker],
          sasl: { mechanism: "oauthbearer", token: shortLived, refreshBefore: "10 seconds" }
        }, "oauth")
      ).toBe(2)
      expect(near).toBe(2)

      const failing = yield* connectError({
        brokers: [broker.broker],
        sasl: { mechanism: "oauthbearer", token: Effect.fail("identity provider down") }
      })
      expect(failing.retriable).toBe(false)
      expect(failing.message).toContain("check sasl.token")
      expect(KafkaError.isAuthenticationFailure(failing)).toBe(true)
    }))

  it.scopedLive("no password, key or token appears in any log line or error of a failed and a successful connection", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.make(({ annotations, cause, message }) => {
        lines.push(JSON.stringify({ message, annotations: [...annotations], cause: String(cause) }))
      })
      const secretPassword = "Sup3r-S3cret-pw"
      const secretToken = jws("svc", Date.now() / 1000 + 3600)
      const logged = Effect.gen(function*() {
        const certs = yield* DevCertificates.make()
        const keyBody = certs.client.key.split("\n")[1]
        const broker = yield* KafkaBroker.make({
          port: 0,
          partitions: 1,
          tls: { ...certs.server, ca: certs.ca },
          sasl: {
            mechanisms: ["scram-sha-512", "plain", "oauthbearer"],
            users: [{ username: "svc", password: secretPassword }]
          }
        })
        const ssl = { ca: certs.ca, cert: certs.client.cert, key: Redacted.make(certs.client.key) }
        const debug = { brokers: [broker.broker], ssl, logLevel: "debug" } as const
        const errors: Array<unknown> = []
        for (const mechanism of ["scram-sha-512", "plain"] as const) {
          errors.push(
            yield* connectError({
              ...debug,
              sasl: { mechanism, username: "svc", password: Redacted.make(`${secretPassword}-wrong`) }
            })
          )
          expect(
            yield* roundTrip({
              ...debug,
              sasl: { mechanism, username: "svc", password: Redacted.make(secretPassword) }
            }, "logs")
          ).toBeGreaterThan(0)
        }
        expect(
          yield* roundTrip({
            ...debug,
            sasl: {
              mechanism: "oauthbearer",
              token: Effect.succeed({ value: Redacted.make(secretToken), expiresAt: Date.now() + 3_600_000 })
            }
          }, "logs")
        ).toBeGreaterThan(0)
        return { errors, keyBody }
      })
      const { errors, keyBody } = yield* logged.pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Logger.withMinimumLogLevel(LogLevel.All)
      )
      // the capture saw kafkajs's debug logs and the broker's, failures included
      expect(lines.length).toBeGreaterThan(20)
      expect(lines.some((l) => l.includes("authentication"))).toBe(true)
      const everything = [
        ...lines,
        ...errors.map((e) => String(e)),
        ...errors.map((e) => JSON.stringify(e)),
        ...errors.map((e) => (e as KafkaError.KafkaError).message)
      ].join("\n")
      for (const secret of [secretPassword, secretToken, secretToken.split(".")[1], keyBody]) {
        expect(everything).not.toContain(secret)
      }
    }))
})
