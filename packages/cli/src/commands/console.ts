/**
 * `deimos console`: the operator web console (`@deimos/console`) beside the events API on one server, until
 * SIGINT/SIGTERM: checkpoint failures and events, the outbox backlog, and the lag of the groups named with `--lag`.
 * It runs no handlers, so a retry from the page answers 422 here: serve `Console.layerRoutes` beside
 * `EventsServer.layer({ checkpoints })` in the consumers' process to retry.
 *
 * @since 0.1.0
 */
import { Console as WebConsole } from "@deimos/console"
import { DeimosConfig } from "@deimos/core"
import { KafkaJs, LagReporter } from "@deimos/kafka"
import { Database } from "@deimos/sql"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { CliError } from "../CliError.js"
import * as Failures from "../Failures.js"
import * as Server from "../internal/server.js"
import * as Settings from "../Settings.js"

const flags = [
  ...Server.flags,
  { flag: "brokers", env: "KAFKA_BROKERS" },
  { flag: "outbox-schema", env: "OUTBOX_SCHEMA" },
  { flag: "outbox-prefix", env: "OUTBOX_PREFIX" }
] as const

const options = {
  ...Server.options,
  outboxSchema: Settings.setting("outbox-schema", "OUTBOX_SCHEMA", "Postgres schema of the outbox tables."),
  outboxPrefix: Settings.setting("outbox-prefix", "OUTBOX_PREFIX", "Prefix of the outbox table names."),
  noOutbox: Options.boolean("no-outbox").pipe(
    Options.withDescription("Hide the outbox view (no outbox tables here). Env CONSOLE_OUTBOX=false.")
  ),
  lag: Options.text("lag").pipe(
    Options.withDescription(
      "A group:topic pair whose lag the consumers view shows (repeatable; topics without DEIMOS_TOPIC_PREFIX); " +
        "needs --brokers. Env CONSOLE_LAG=group:topic,…"
    ),
    Options.repeated
  ),
  brokers: Settings.setting(
    "brokers",
    "KAFKA_BROKERS",
    "Kafka brokers, comma-separated, for --lag (KAFKA_* variables apply too)."
  )
}

/** `group:topic` pairs, from the flags or else `CONSOLE_LAG`; a bad pair is a `CliError` naming the form. */
const lagGroups = (given: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const pairs: ReadonlyArray<string> = given.length > 0
      ? given
      : Option.match(yield* Config.option(Config.string("CONSOLE_LAG")), {
        onNone: (): ReadonlyArray<string> => [],
        onSome: (text) => text.split(",")
      })
    const parsed = WebConsole.parseLagGroups(pairs)
    if (Either.isLeft(parsed)) {
      return yield* new CliError({
        reason: "Usage",
        message: `--lag (or CONSOLE_LAG) wants group:topic pairs, e.g. billing:orders; got "${parsed.left}".`
      })
    }
    return parsed.right
  })

/**
 * @since 0.1.0
 */
export const command = Command.make("console", options, (o) =>
  Effect.gen(function*() {
    // every setting read before connecting anything: a configuration mistake is reported as one
    const { database, migrate, server } = yield* Server.settings(o)
    const groups = yield* lagGroups(o.lag)
    const [showOutbox, outbox, kafka, deimos] = yield* Config.all([
      Config.withDefault(Config.boolean("CONSOLE_OUTBOX"), true),
      Config.all({
        schema: Config.option(Config.string("OUTBOX_SCHEMA")).pipe(Config.map(Option.getOrUndefined)),
        prefix: Config.option(Config.string("OUTBOX_PREFIX")).pipe(Config.map(Option.getOrUndefined))
      }),
      groups.length > 0 ? KafkaJs.config : Config.succeed(undefined),
      DeimosConfig.config
    ])
    return yield* Effect.gen(function*() {
      // the driver is built once (this scope) and shared by every measure
      const lag = kafka === undefined ? undefined : LagReporter.measureGroups(
        groups.map((g) => ({ groupId: g.groupId, topic: (deimos.topicPrefix ?? "") + g.topic }))
      ).pipe(Effect.provide(yield* Layer.build(KafkaJs.layer(kafka))))
      const routes = WebConsole.layerRoutes({
        checkpoint: server.tables,
        outbox: o.noOutbox || !showOutbox ? false : outbox,
        lag
      })
      return yield* Server.serve("Console", "/console", server, migrate, routes)
    }).pipe(Effect.scoped, Effect.provide(Database.layer(database)))
  }).pipe(
    Settings.provide([
      ...Server.values(o),
      ["KAFKA_BROKERS", o.brokers],
      ["OUTBOX_SCHEMA", o.outboxSchema],
      ["OUTBOX_PREFIX", o.outboxPrefix]
    ], flags),
    Failures.failed("console failed")
  )).pipe(
    Command.withDescription(
      "Serve the operator web console (/console: checkpoint failures and events, the outbox backlog, consumer lag) " +
        "beside the events API on one server until SIGINT/SIGTERM. Reads DATABASE_URL and the DATABASE_* " +
        "variables, the CHECKPOINT_* variables of events-api, OUTBOX_SCHEMA, OUTBOX_PREFIX, CONSOLE_OUTBOX, " +
        "CONSOLE_LAG with KAFKA_BROKERS (and the KAFKA_* variables), DEIMOS_TOPIC_PREFIX, DEIMOS_PROGRESS and " +
        "DEIMOS_PROGRESS_INTERVAL."
    )
  )
