/**
 * The events API served over HTTP by `@effect/platform-node`: the {@link EventsApi} routes and the OpenAPI document
 * at `/docs/openapi.json`. Building the layer starts listening (the server runs in the layer's scope, so it composes
 * with consumers and other background layers in one `Layer.launch`); closing the scope stops it.
 *
 * Other modules serve their own routes on the same server and behind the same token: give `routes` layers made with
 * `HttpApiBuilder.Router.use((router) => router.get("/console", …))`, and check mutating requests with
 * `EventsApi.authorize(bearer)` (the `EventsApi.Token` in context is the server's).
 *
 * @since 0.1.0
 */
import type * as Database from "@deimos/sql/Database"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import type * as Checkpoint from "./Checkpoint.js"
import type * as Tables from "./CheckpointTables.js"
import * as EventsApi from "./EventsApi.js"

/**
 * @since 0.1.0
 */
export interface Options<Cs extends ReadonlyArray<Checkpoint.Any>> extends EventsApi.Options<Cs> {
  /** The port to listen on; 0 picks a free one (read it from `HttpServer.HttpServer`'s address). @default 9292 */
  readonly port?: number | undefined
  /** @default "0.0.0.0" */
  readonly host?: string | undefined
  /** The bearer token mutating routes need. @default none: they need none */
  readonly token?: Redacted.Redacted | undefined
}

/**
 * The server, listening once built. Provides the `HttpServer` (its address) and the `EventsApi.Token`.
 * `routes`: more routes for the same server (`HttpApiBuilder.Router.use` layers), which may use the token.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <const Cs extends ReadonlyArray<Checkpoint.Any> = readonly [], RE = never, RR = never>(
  options: Options<Cs> = {},
  routes: Layer.Layer<never, RE, RR> = Layer.empty as Layer.Layer<never, RE, RR>
): Layer.Layer<
  HttpServer.HttpServer | EventsApi.Token,
  ServeError | RE,
  Database.Database | Checkpoint.Requirements<Cs[number]> | Exclude<RR, EventsApi.Token | HttpApiBuilder.Router>
> => {
  const token = EventsApi.layerToken(options.token)
  return HttpApiBuilder.serve().pipe(
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/docs/openapi.json" })),
    Layer.provide(routes),
    Layer.provide(EventsApi.layer(options)),
    Layer.provideMerge(token),
    Layer.provideMerge(
      NodeHttpServer.layer(createServer, { port: options.port ?? 9292, host: options.host ?? "0.0.0.0" })
    )
  ) as Layer.Layer<
    HttpServer.HttpServer | EventsApi.Token,
    ServeError | RE,
    Database.Database | Checkpoint.Requirements<Cs[number]> | Exclude<RR, EventsApi.Token | HttpApiBuilder.Router>
  >
}

/**
 * The server's settings from `Config` (with the default provider, the environment): `CHECKPOINT_API_PORT` (9292),
 * `CHECKPOINT_API_HOST` (`0.0.0.0`), `CHECKPOINT_API_TOKEN` (redacted; none by default), `CHECKPOINT_SCHEMA` and
 * `CHECKPOINT_TABLE_PREFIX` (where the tables are).
 *
 * @since 0.1.0
 */
export const config: Config.Config<{
  readonly port: number
  readonly host: string
  readonly token: Redacted.Redacted | undefined
  readonly tables: Tables.Naming
}> = Config.all({
  port: Config.withDefault(Config.port("API_PORT"), 9292),
  host: Config.withDefault(Config.string("API_HOST"), "0.0.0.0"),
  token: Config.option(Config.redacted("API_TOKEN")).pipe(Config.map((o) => o._tag === "Some" ? o.value : undefined)),
  tables: Config.all({
    schema: Config.option(Config.string("SCHEMA")).pipe(Config.map((o) => o._tag === "Some" ? o.value : undefined)),
    prefix: Config.withDefault(Config.string("TABLE_PREFIX"), "")
  })
}).pipe(Config.nested("CHECKPOINT"))

/**
 * {@link layer} with its settings from {@link config}, serving the given checkpoints' retries.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <const Cs extends ReadonlyArray<Checkpoint.Any> = readonly []>(
  checkpoints?: Cs
): Layer.Layer<
  HttpServer.HttpServer | EventsApi.Token,
  ServeError | ConfigError.ConfigError,
  Database.Database | Checkpoint.Requirements<Cs[number]>
> =>
  Layer.unwrapEffect(
    Effect.map(config, (settings) => layer<Cs>({ ...settings, checkpoints }))
  )
