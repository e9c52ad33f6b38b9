import { DevCertificates, KafkaBroker, SchemaRegistry } from "@deimos/broker"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { Kafka, type KafkaConfig, logLevel, type SASLOptions } from "kafkajs"
import { execFile } from "node:child_process"
import * as https from "node:https"
import type * as tls from "node:tls"
import { body, bytes, connect, i32, reader, str } from "./rawClient.js"

const users = [{ username: "alice", password: "alice-secret" }, { username: "bob", password: "b0b=,pass" }]

/** Produces one message and reads the topic's offsets back through a kafkajs client with `config`. */
const roundTrip = (broker: string, config: Partial<KafkaConfig>, topic: string) =>
  Effect.promise(async () => {
    const kafka = new Kafka({
      brokers: [broker],
      clientId: "security-test",
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      connectionTimeout: 3000,
      ...config
    })
    const producer = kafka.producer()
    const admin = kafka.admin()
    try {
      await producer.connect()
      await producer.send({ topic, messages: [{ value: "secured" }] })
      await admin.connect()
      const offsets = await admin.fetchTopicOffsets(topic)
      return offsets.reduce((n, o) => n + Number(o.high), 0)
    } finally {
      await producer.disconnect()
      await admin.disconnect()
    }
  })

/** The kafkajs error of a failed connection, or "connected". */
const connectError = (broker: string, config: Partial<KafkaConfig>) =>
  Effect.promise(async () => {
    const kafka = new Kafka({
      brokers: [broker],
      clientId: "security-test",
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      connectionTimeout: 3000,
      ...config
    })
    const admin = kafka.admin()
    try {
      await admin.connect()
      await admin.listTopics()
      return "connected" as const
    } catch (error) {
      return error as Error & { readonly code?: string }
    } finally {
      await admin.disconnect()
    }
  })

const kcat = (args: ReadonlyArray<string>, input?: string) =>
  Effect.async<{ readonly ok: boolean; readonly stdout: string; readonly stderr: string }>((resume) => {
    const child = execFile(
      "kcat",
      [...args],
      { timeout: 20_000 },
      (error, stdout, stderr) => resume(Effect.succeed({ ok: error === null, stdout, stderr }))
    )
    if (input !== undefined) child.stdin?.end(input)
    return Effect.sync(() => child.kill())
  })

const sasl = (mechanism: "plain" | "scram-sha-256" | "scram-sha-512", username: string, password: string) =>
  ({ mechanism, username, password }) as SASLOptions

describe("dev broker security", () => {
  it.scopedLive("TLS with a private CA: kafkajs connects trusting the CA, and fails verification trusting another", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const { broker } = yield* KafkaBroker.make({ port: 0, partitions: 1, tls: certs.server })
      expect(yield* roundTrip(broker, { ssl: { ca: [certs.ca] } }, "tls-topic")).toBe(1)
      const wrongCa = yield* connectError(broker, { ssl: { ca: [certs.otherCa] } })
      expect(wrongCa).not.toBe("connected")
      expect((wrongCa as Error).message).toMatch(/certificate/i)
      // a plaintext client cannot talk to the TLS listener
      const plain = yield* connectError(broker, { connectionTimeout: 1000, requestTimeout: 1000 })
      expect(plain).not.toBe("connected")
    }))

  it.scopedLive("mutual TLS: a client certificate signed by the CA is required", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const { broker } = yield* KafkaBroker.make({ port: 0, partitions: 1, tls: { ...certs.server, ca: certs.ca } })
      expect(yield* roundTrip(broker, { ssl: { ca: [certs.ca], ...certs.client } }, "mtls-topic")).toBe(1)
      expect(yield* connectError(broker, { ssl: { ca: [certs.ca] } })).not.toBe("connected")
      // a client certificate the CA did not sign is refused too
      const stranger = yield* DevCertificates.make()
      expect(yield* connectError(broker, { ssl: { ca: [certs.ca], ...stranger.client } })).not.toBe("connected")
    }))

  it.scopedLive("SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512: the right password passes, a wrong one or an unknown user is refused", () =>
    Effect.gen(function*() {
      const { broker } = yield* KafkaBroker.make({
        port: 0,
        partitions: 1,
        sasl: { mechanisms: ["plain", "scram-sha-256", "scram-sha-512"], users }
      })
      for (const mechanism of ["plain", "scram-sha-256", "scram-sha-512"] as const) {
        // bob's password has the characters SCRAM escapes in names and the ones it separates attributes with
        expect(yield* roundTrip(broker, { sasl: sasl(mechanism, "bob", "b0b=,pass") }, `sasl-${mechanism}`)).toBe(1)
        const wrong = yield* connectError(broker, { sasl: sasl(mechanism, "alice", "not-her-password") })
        expect((wrong as Error).name).toBe("KafkaJSSASLAuthenticationError")
        const unknown = yield* connectError(broker, { sasl: sasl(mechanism, "mallory", "alice-secret") })
        expect((unknown as Error).name).toBe("KafkaJSSASLAuthenticationError")
      }
    }))

  it.scopedLive("a SASL listener refuses a request before authentication by closing the connection, as Kafka does", () =>
    Effect.gen(function*() {
      const { broker } = yield* KafkaBroker.make({ port: 0, sasl: { mechanisms: ["plain"], users } })
      const conn = yield* Effect.promise(() => connect(broker))
      // ApiVersions is allowed before authentication
      const versions = yield* Effect.promise(() => conn.request(18, 0, Buffer.alloc(0)))
      expect(versions.readInt16BE(0)).toBe(0)
      // Metadata is not: no answer, the connection closes
      const answer = conn.request(3, 1, body(i32(0))).then(() => "answered", () => "failed")
      yield* Effect.promise(() => conn.closed)
      expect(conn.isClosed()).toBe(true)
      expect(yield* Effect.promise(() => Promise.race([answer, Promise.resolve("unanswered")]))).not.toBe("answered")
    }))

  it.scopedLive("a mechanism the listener does not offer is refused with the list it offers", () =>
    Effect.gen(function*() {
      const { broker } = yield* KafkaBroker.make({ port: 0, sasl: { mechanisms: ["scram-sha-512"], users } })
      const error = yield* connectError(broker, { sasl: sasl("plain", "alice", "alice-secret") })
      expect((error as Error).message).toMatch(/SASL mechanism/)
    }))

  it.scopedLive("OAUTHBEARER takes an unexpired unsecured JWS and refuses an expired one", () =>
    Effect.gen(function*() {
      const { broker } = yield* KafkaBroker.make({
        port: 0,
        partitions: 1,
        sasl: { mechanisms: ["oauthbearer"], users: [] }
      })
      const jws = (exp: number) =>
        [{ alg: "none" }, { sub: "svc", exp }, ""].map((p) =>
          p === "" ? "" : Buffer.from(JSON.stringify(p)).toString("base64url")
        ).join(".")
      const bearer = (token: string): Partial<KafkaConfig> => ({
        sasl: { mechanism: "oauthbearer", oauthBearerProvider: async () => ({ value: token }) }
      })
      expect(yield* roundTrip(broker, bearer(jws(Date.now() / 1000 + 3600)), "oauth-topic")).toBe(1)
      const expired = yield* connectError(broker, bearer(jws(Date.now() / 1000 - 60)))
      expect((expired as Error).message).toMatch(/expired/)
    }))

  it.scopedLive("an OAUTHBEARER session lasts until the token's exp: answered as its lifetime, then the connection is closed", () =>
    Effect.gen(function*() {
      const { broker } = yield* KafkaBroker.make({ port: 0, sasl: { mechanisms: ["oauthbearer"], users: [] } })
      const conn = yield* Effect.promise(() => connect(broker))
      const handshake = reader(yield* Effect.promise(() => conn.request(17, 1, str("OAUTHBEARER"))))
      expect(handshake.int16()).toBe(0)
      const exp = Date.now() / 1000 + 0.4
      const token = `${Buffer.from("{\"alg\":\"none\"}").toString("base64url")}.${
        Buffer.from(JSON.stringify({ sub: "svc", exp })).toString("base64url")
      }.`
      const auth = reader(
        yield* Effect.promise(() =>
          conn.request(36, 1, bytes(Buffer.from(`n,,\u0001auth=Bearer ${token}\u0001\u0001`)))
        )
      )
      expect(auth.int16()).toBe(0)
      auth.string() // error message (null)
      auth.bytes()
      const lifetime = Number(auth.int64())
      expect(lifetime).toBeGreaterThan(0)
      expect(lifetime).toBeLessThanOrEqual(400)
      // authenticated: Metadata is answered
      expect((yield* Effect.promise(() => conn.request(3, 1, body(i32(0))))).length).toBeGreaterThan(0)
      // once the session has ended, the next request closes the connection
      yield* Effect.sleep(lifetime + 50)
      void conn.request(3, 1, body(i32(0))).catch(() => undefined)
      yield* Effect.promise(() => conn.closed)
      expect(conn.isClosed()).toBe(true)
    }))

  it.scopedLive("bad SASL options fail start-up with a Config error", () =>
    Effect.gen(function*() {
      const noUsers = yield* Effect.exit(KafkaBroker.make({ port: 0, sasl: { mechanisms: ["plain"], users: [] } }))
      expect(Exit.isFailure(noUsers) && JSON.stringify(noUsers.cause)).toMatch(/needs at least one user/)
      const none = yield* Effect.exit(KafkaBroker.make({ port: 0, sasl: { mechanisms: [], users } }))
      expect(Exit.isFailure(none)).toBe(true)
    }))

  it.scopedLive("kcat (librdkafka) over TLS, mutual TLS, and SASL_SSL with SCRAM-SHA-512", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const secured = yield* KafkaBroker.make({ port: 0, partitions: 1, tls: certs.server })
      const tlsArgs = ["-b", secured.broker, "-X", "security.protocol=ssl", "-X", `ssl.ca.location=${certs.dir}/ca.pem`]
      const produced = yield* kcat([...tlsArgs, "-P", "-t", "kcat-tls"], "over-tls\n")
      expect(produced.stderr).toBe("")
      expect(produced.ok).toBe(true)
      const consumed = yield* kcat([...tlsArgs, "-C", "-t", "kcat-tls", "-o", "beginning", "-e", "-q"])
      expect(consumed.stdout.trim()).toBe("over-tls")
      const wrongCa = yield* kcat([
        "-b",
        secured.broker,
        "-X",
        "security.protocol=ssl",
        "-X",
        `ssl.ca.location=${certs.dir}/other-ca.pem`,
        "-L",
        "-m",
        "2"
      ])
      expect(wrongCa.ok).toBe(false)

      const mutual = yield* KafkaBroker.make({ port: 0, partitions: 1, tls: { ...certs.server, ca: certs.ca } })
      const mtlsArgs = ["-b", mutual.broker, "-X", "security.protocol=ssl", "-X", `ssl.ca.location=${certs.dir}/ca.pem`]
      const withCert = [
        ...mtlsArgs,
        "-X",
        `ssl.certificate.location=${certs.dir}/client.pem`,
        "-X",
        `ssl.key.location=${certs.dir}/client.key`
      ]
      expect((yield* kcat([...withCert, "-P", "-t", "kcat-mtls"], "over-mtls\n")).ok).toBe(true)
      expect((yield* kcat([...withCert, "-C", "-t", "kcat-mtls", "-o", "beginning", "-e", "-q"])).stdout.trim())
        .toBe("over-mtls")
      expect((yield* kcat([...mtlsArgs, "-L", "-m", "2"])).ok).toBe(false)

      const scram = yield* KafkaBroker.make({
        port: 0,
        partitions: 1,
        tls: certs.server,
        sasl: { mechanisms: ["scram-sha-512"], users }
      })
      const saslArgs = (password: string) => [
        "-b",
        scram.broker,
        "-X",
        "security.protocol=sasl_ssl",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        "sasl.username=alice",
        "-X",
        `sasl.password=${password}`,
        "-X",
        `ssl.ca.location=${certs.dir}/ca.pem`
      ]
      expect((yield* kcat([...saslArgs("alice-secret"), "-P", "-t", "kcat-scram"], "over-scram\n")).ok).toBe(true)
      const read = yield* kcat([...saslArgs("alice-secret"), "-C", "-t", "kcat-scram", "-o", "beginning", "-e", "-q"])
      expect(read.stdout.trim()).toBe("over-scram")
      const refused = yield* kcat([...saslArgs("wrong"), "-L", "-m", "2"])
      expect(refused.ok).toBe(false)
      expect(refused.stderr).toMatch(/SASL authentication error|Authentication failed/i)
    }))

  it.scopedLive("the registry with basic auth over HTTPS: 401 without or with wrong credentials, 200 with them", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const registry = yield* SchemaRegistry.make({ port: 0, users, tls: certs.server })
      expect(registry.url).toMatch(/^https:\/\//)
      const get = (authorization?: string, ca = certs.ca) =>
        Effect.promise(() =>
          new Promise<{ status: number; body: string } | Error>((resolve) => {
            const request = https.get(`${registry.url}/subjects`, {
              ca,
              headers: authorization === undefined ? {} : { authorization }
            }, (response) => {
              let text = ""
              response.on("data", (chunk) => (text += chunk))
              response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }))
            })
            request.on("error", resolve)
          })
        )
      const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
      expect(yield* get()).toEqual({ status: 401, body: JSON.stringify({ error_code: 401, message: "Unauthorized" }) })
      expect(yield* get(basic("alice", "wrong"))).toMatchObject({ status: 401 })
      expect(yield* get(basic("nobody", "alice-secret"))).toMatchObject({ status: 401 })
      expect(yield* get(basic("alice", "alice-secret"))).toEqual({ status: 200, body: "[]" })
      expect(yield* get(basic("alice", "alice-secret"), certs.otherCa)).toBeInstanceOf(Error)
    }))

  it.scopedLive("the registry with mutual TLS refuses a client without a certificate", () =>
    Effect.gen(function*() {
      const certs = yield* DevCertificates.make()
      const registry = yield* SchemaRegistry.make({ port: 0, tls: { ...certs.server, ca: certs.ca } })
      const url = new URL(registry.url)
      const handshake = (options: tls.ConnectionOptions) =>
        Effect.promise(() =>
          new Promise<string>((resolve) => {
            const socket = https.get(`${registry.url}/subjects`, { ...options, ca: certs.ca }, (response) => {
              resolve(String(response.statusCode))
              response.resume()
            })
            socket.on("error", (error) => resolve(`error: ${error.message}`))
          })
        )
      expect(url.protocol).toBe("https:")
      expect(yield* handshake(certs.client)).toBe("200")
      expect(yield* handshake({})).toMatch(/^error/)
    }))
})
