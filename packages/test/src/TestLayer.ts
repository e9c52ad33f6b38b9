/**
 * One layer for unit tests (REFERENCE §11): the in-memory producer backend, the validating mock schema backend and
 * unit-test settings (handler errors surface at once instead of being swallowed). Nothing global: each test that
 * builds the layer gets its own store.
 *
 * @since 0.1.0
 */
import { DeimosConfig, ProducerBackend, SchemaBackend, type SentMessages } from "@deimos/core"
import * as Layer from "effect/Layer"
import { register } from "./internal/registry.js"

/**
 * What the test layer provides.
 *
 * @since 0.1.0
 */
export type Provides = ProducerBackend.ProducerBackend | SentMessages.SentMessages | SchemaBackend.SchemaBackend

/**
 * Unit-test settings: `reraiseErrors` on, no retries, so a handler error fails `testConsumeMessage` with
 * `ConsumerFatalError` holding the handler's error.
 *
 * @since 0.1.0
 */
export const testSettings: DeimosConfig.Options = { reraiseErrors: true, backoff: { maxRetries: 0 } }

/**
 * Builds a test layer: choose the schema backend (e.g. `AvroBackend.layerValidation(...)` when the app uses Avro;
 * the layer then fails as that backend's layer does, with a `SchemaError` for a schema directory that does not
 * load) and override settings.
 *
 * @since 0.1.0
 */
export const make = <E = never>(options: {
  readonly schemaBackend?: Layer.Layer<SchemaBackend.SchemaBackend, E> | undefined
  readonly config?: DeimosConfig.Options | undefined
} = {}): Layer.Layer<Provides, E> =>
  Layer.mergeAll(
    Layer.tap(ProducerBackend.layerTest, register(options.config?.topicPrefix ?? "")),
    options.schemaBackend ?? SchemaBackend.layerMockValidating,
    DeimosConfig.layer({ ...testSettings, ...options.config })
  )

/**
 * The default test layer: `it.effect("...", () => ..., ).pipe(Effect.provide(TestLayer.layer))` or
 * `it.layer(TestLayer.layer)`.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<Provides> = make()
