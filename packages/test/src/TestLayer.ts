/**
 * One layer for unit tests: the in-memory producer backend, the validating mock schema backend and unit-test
 * settings (handler errors surface at once instead of being swallowed; retries do not wait for their backoff).
 * Nothing global: each test that builds the layer gets its own store.
 *
 * @since 0.1.0
 */
import { DeimosConfig, MockBackend, ProducerBackend, type SchemaBackend, type SentMessages } from "@deimos/core"
import * as Layer from "effect/Layer"
import { register } from "./internal/registry.js"

/**
 * What the test layer provides.
 *
 * @since 0.1.0
 */
export type Provides =
  | ProducerBackend.ProducerBackend
  | SentMessages.SentMessages
  | SchemaBackend.SchemaBackend
  | DeimosConfig.DeimosConfig

/**
 * Unit-test settings: `reraiseErrors` on with no retries, so a handler error fails `testConsumeMessage` at once
 * with `ConsumerFatalError` holding the handler's error; `skipBackoff` on, so a consumer whose own policy retries
 * (`backoff: { maxRetries: 3 }`) retries at once under `it.effect`'s `TestClock` instead of waiting for it.
 *
 * @since 0.1.0
 */
export const testSettings: DeimosConfig.Options = {
  reraiseErrors: true,
  backoff: { maxRetries: 0 },
  skipBackoff: true
}

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
    options.schemaBackend ?? MockBackend.layerMockValidating,
    DeimosConfig.layer({ ...testSettings, ...options.config })
  )

/**
 * The default test layer: `it.effect("...", () => ..., ).pipe(Effect.provide(TestLayer.layer))` or
 * `it.layer(TestLayer.layer)`.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<Provides> = make()
