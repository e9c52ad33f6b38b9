import { KafkaJs } from "@deimos/kafka"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"

const read = (env: Record<string, string>) =>
  Effect.withConfigProvider(KafkaJs.config, ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))

describe("KafkaJs.config", () => {
  it.effect("reads brokers, client id, SSL, SASL with a redacted password, timeouts; defaults the rest", () =>
    Effect.gen(function*() {
      const options = yield* read({
        KAFKA_BROKERS: "kafka-1:9092, kafka-2:9092,",
        KAFKA_CLIENT_ID: "billing",
        KAFKA_SSL: "true",
        KAFKA_SASL_MECHANISM: "scram-sha-512",
        KAFKA_SASL_USERNAME: "svc",
        KAFKA_SASL_PASSWORD: "s3cret",
        KAFKA_REQUEST_TIMEOUT: "10 seconds",
        KAFKA_SHUTDOWN_TIMEOUT: "5 seconds"
      })
      expect(options.brokers).toEqual(["kafka-1:9092", "kafka-2:9092"])
      expect(options.clientId).toBe("billing")
      expect(options.ssl).toBe(true)
      const sasl = options.sasl
      if (sasl?.mechanism !== "scram-sha-512") throw new Error(`expected scram-sha-512, got ${sasl?.mechanism}`)
      expect(sasl.username).toBe("svc")
      expect(Redacted.isRedacted(sasl.password)).toBe(true)
      expect(String(sasl.password)).not.toContain("s3cret")
      expect(Redacted.value(sasl.password)).toBe("s3cret")
      expect(Duration.toMillis(Duration.decode(options.requestTimeout!))).toBe(10_000)
      expect(Duration.toMillis(Duration.decode(options.shutdownTimeout!))).toBe(5_000)
      expect(Duration.toMillis(Duration.decode(options.connectionTimeout!))).toBe(3_000)
      expect(options.connectAttempts).toBe(5)
      expect(options.logLevel).toBe("warn")
    }))

  it.effect("no SASL without a mechanism; a mechanism without its password is an error naming the key", () =>
    Effect.gen(function*() {
      const plain = yield* read({ KAFKA_BROKERS: "localhost:9092" })
      expect(plain.sasl).toBeUndefined()
      expect(plain.ssl).toBe(false)
      const error = yield* Effect.flip(
        read({ KAFKA_BROKERS: "localhost:9092", KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: "svc" })
      )
      expect(String(error)).toContain("SASL_PASSWORD")
      const missing = yield* Effect.flip(read({}))
      expect(String(missing)).toContain("KAFKA.BROKERS")
    }))

  it.effect("reads TLS: a CA file, an inline certificate and a redacted key, the server name; any of them turns TLS on", () =>
    Effect.gen(function*() {
      const options = yield* read({
        KAFKA_BROKERS: "kafka:9093",
        KAFKA_SSL_CA_FILE: "/etc/kafka/ca.pem",
        KAFKA_SSL_CERT: "-----BEGIN CERTIFICATE-----",
        KAFKA_SSL_KEY: "-----BEGIN PRIVATE KEY----- secret",
        KAFKA_SSL_SERVERNAME: "kafka.internal",
        KAFKA_SSL_REJECT_UNAUTHORIZED: "false"
      })
      const ssl = options.ssl
      if (typeof ssl !== "object") throw new Error(`expected TLS options, got ${ssl}`)
      expect(ssl.caFile).toBe("/etc/kafka/ca.pem")
      expect(ssl.cert).toBe("-----BEGIN CERTIFICATE-----")
      expect(Redacted.isRedacted(ssl.key)).toBe(true)
      expect(String(ssl.key)).not.toContain("secret")
      expect(ssl.servername).toBe("kafka.internal")
      expect(ssl.rejectUnauthorized).toBe(false)
      expect((yield* read({ KAFKA_BROKERS: "kafka:9093", KAFKA_SSL: "true" })).ssl).toBe(true)
    }))
})
