/**
 * The development cluster: the Kafka broker and the Schema Registry together, as one scoped layer for tests and
 * the demo.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as path from "node:path"
import * as KafkaBroker from "./KafkaBroker.js"
import * as SchemaRegistry from "./SchemaRegistry.js"

/**
 * @since 0.1.0
 */
export interface Options extends Omit<KafkaBroker.Options, "dataDir"> {
  /** Registry port. @default 8081; 0 picks a free port */
  readonly registryPort?: number | undefined
  /** Broker data in `<dataDir>/kafka`, registry data in `<dataDir>/registry`. */
  readonly dataDir?: string | undefined
  /** The registry's basic-auth users. @default none (open) */
  readonly registryUsers?: SchemaRegistry.Options["users"]
  /** HTTPS for the registry; `true` uses the broker's `tls`. @default none (HTTP) */
  readonly registryTls?: SchemaRegistry.Options["tls"] | boolean | undefined
}

/**
 * The running cluster, for tests: `DevCluster.layer({ port: 0 })` provides it.
 *
 * @since 0.1.0
 * @category tags
 */
export class DevCluster extends Context.Tag("@deimos/broker/DevCluster")<DevCluster, DevCluster.Service>() {}

/**
 * @since 0.1.0
 */
export declare namespace DevCluster {
  /**
   * A running cluster: the broker list for Kafka clients and the registry URL.
   *
   * @since 0.1.0
   */
  export interface Service {
    readonly brokers: ReadonlyArray<string>
    readonly registryUrl: string
  }
}

/**
 * Starts both; they stop when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<DevCluster.Service, KafkaBroker.KafkaBrokerError | SchemaRegistry.SchemaRegistryError, Scope.Scope> =>
  Effect.gen(function*() {
    const { dataDir, registryPort, registryTls, registryUsers, ...broker } = options
    const kafka = yield* KafkaBroker.make({
      ...broker,
      dataDir: dataDir === undefined ? undefined : path.join(dataDir, "kafka")
    })
    const registry = yield* SchemaRegistry.make({
      port: registryPort ?? (options.port === 0 ? 0 : 8081),
      host: options.host,
      dataDir: dataDir === undefined ? undefined : path.join(dataDir, "registry"),
      users: registryUsers,
      tls: registryTls === true ? options.tls : registryTls === false ? undefined : registryTls
    })
    return { brokers: [kafka.broker], registryUrl: registry.url }
  })

/**
 * `DevCluster.layer({ port: 0 })` in tests: ephemeral ports for both.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<DevCluster, KafkaBroker.KafkaBrokerError | SchemaRegistry.SchemaRegistryError> =>
  Layer.scoped(DevCluster, make(options))
