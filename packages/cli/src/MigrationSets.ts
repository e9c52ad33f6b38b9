/**
 * The migration sets `deimos migrate` knows, in the order they are applied. A package that owns tables adds its set
 * here (a name, a description, the variables that place its tables, its migrations for a schema and table prefix).
 *
 * @since 0.1.0
 */
import { CheckpointTables } from "@deimos/checkpoint"
import { type Migrations, Outbox, Poller } from "@deimos/sql"
import * as Config from "effect/Config"
import * as Option from "effect/Option"

/**
 * Where a set's tables live.
 *
 * @since 0.1.0
 */
export type Naming = Migrations.Naming

/**
 * @since 0.1.0
 */
export interface MigrationSet {
  readonly name: string
  readonly description: string
  /** The variables that place the set's tables when no flag does; none: the search path, no prefix. */
  readonly env?: { readonly schema: string; readonly prefix: string } | undefined
  readonly migrations: (naming: Naming) => ReadonlyArray<Migrations.Migration>
}

/**
 * Every set, in the order they are applied.
 *
 * @since 0.1.0
 */
export const all: ReadonlyArray<MigrationSet> = [
  {
    name: "outbox",
    description: "the transactional outbox (kafka_messages, kafka_topic_info, kafka_relays)",
    env: { schema: "OUTBOX_SCHEMA", prefix: "OUTBOX_PREFIX" },
    migrations: Outbox.migrations
  },
  {
    name: "checkpoint",
    description: "the checkpointed consumers' event log and failures (checkpoint_events, checkpoint_failures)",
    env: { schema: "CHECKPOINT_SCHEMA", prefix: "CHECKPOINT_TABLE_PREFIX" },
    migrations: CheckpointTables.migrations
  },
  {
    name: "poller",
    description: "the DB pollers' cursors and leases (poll_info)",
    migrations: Poller.migrations
  }
]

/**
 * The set called `name`.
 *
 * @since 0.1.0
 */
export const byName = (name: string): MigrationSet | undefined => all.find((s) => s.name === name)

/**
 * Where `set`'s tables go: the flags' schema and prefix where given, else the set's own variables.
 *
 * @since 0.1.0
 */
export const namingOf = (set: MigrationSet, flags: Naming): Config.Config<Naming> => {
  const read = (given: string | undefined, env: string | undefined) =>
    given !== undefined || env === undefined
      ? Config.succeed(given)
      : Config.map(Config.option(Config.string(env)), Option.getOrUndefined)
  return Config.all({ schema: read(flags.schema, set.env?.schema), prefix: read(flags.prefix, set.env?.prefix) })
}

/**
 * The table recording what was applied of a set placed at `naming`: `<schema>.deimos_migrations`, or
 * `deimos_migrations` of the search path.
 *
 * @since 0.1.0
 */
export const recordTable = (naming: Naming): string | undefined =>
  naming.schema === undefined ? undefined : `${naming.schema}.deimos_migrations`
