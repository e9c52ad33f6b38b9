/**
 * `deimos-console`: the events API and the web console as a process of their own. Configured by the environment:
 * `DATABASE_URL` (and the other `Database.config` variables); the `CHECKPOINT_*` variables of `EventsServer.config`
 * (port 9292, host, the bearer token `CHECKPOINT_API_TOKEN`, where the checkpoint tables are); `OUTBOX_SCHEMA` and
 * `OUTBOX_PREFIX` (where the outbox tables are; `CONSOLE_OUTBOX=false` hides the outbox view); and
 * `CONSOLE_LAG=group:topic,…` (topics without `DEIMOS_TOPIC_PREFIX`, which is put in front) with `KAFKA_BROKERS`
 * (and the other `KafkaJs.config` variables) for the consumers view.
 * Open `http://<host>:<port>/console`. This process has no handlers, so a retry answers 422 here: serve
 * `Console.layerRoutes` beside `EventsServer.layer({ checkpoints })` in the consumers' process to retry from the page.
 * SIGTERM or SIGINT stops it.
 *
 * @since 0.1.0
 */
import { EventsServer } from "@deimos/checkpoint"
import { DeimosConfig } from "@deimos/core"
import { KafkaJs, LagReporter } from "@deimos/kafka"
import { Database } from "@deimos/sql"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Console from "../Console.js"

const groups = Config.option(
  Config.string("CONSOLE_LAG").pipe(
    Config.mapOrFail((text) =>
      Either.mapLeft(
        Console.parseLagGroups(text.split(",")),
        () =>
          ConfigError.InvalidData(
            [],
            "CONSOLE_LAG wants group:topic pairs separated by commas, e.g. billing:orders,audit:orders"
          )
      )
    )
  )
)

const Server = Layer.unwrapScoped(Effect.gen(function*() {
  const settings = yield* EventsServer.config
  const showOutbox = yield* Config.withDefault(Config.boolean("CONSOLE_OUTBOX"), true)
  const outbox = yield* Config.all({
    schema: Config.option(Config.string("OUTBOX_SCHEMA")).pipe(Config.map(Option.getOrUndefined)),
    prefix: Config.option(Config.string("OUTBOX_PREFIX")).pipe(Config.map(Option.getOrUndefined))
  })
  const lagGroups = yield* groups
  const topicPrefix = (yield* DeimosConfig.config).topicPrefix ?? ""
  // the driver is built once (the layer's scope) and shared by every measure; topics are named as the consumers
  // name them, with DEIMOS_TOPIC_PREFIX in front
  const lag = Option.isSome(lagGroups)
    ? LagReporter.measureGroups(lagGroups.value.map((g) => ({ groupId: g.groupId, topic: topicPrefix + g.topic })))
      .pipe(Effect.provide(yield* Layer.build(KafkaJs.layerConfig())))
    : undefined
  yield* Effect.logInfo(`Console on http://${settings.host}:${settings.port}/console`)
  return EventsServer.layer(
    settings,
    Console.layerRoutes({ checkpoint: settings.tables, outbox: showOutbox ? outbox : false, lag })
  )
})).pipe(Layer.provide(Database.layerConfig()))

NodeRuntime.runMain(Layer.launch(Server))
