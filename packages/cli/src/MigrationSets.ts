/**
 * The migration sets `deimos migrate` knows, in the order they are applied. A package that owns tables adds its set
 * here (a name, a description, its migrations for a schema and table prefix).
 *
 * @since 0.1.0
 */
import { type Migrations, Outbox } from "@deimos/sql"

/**
 * Where a set's tables live.
 *
 * @since 0.1.0
 */
export interface Naming {
  readonly schema?: string | undefined
  readonly prefix?: string | undefined
}

/**
 * @since 0.1.0
 */
export interface MigrationSet {
  readonly name: string
  readonly description: string
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
    migrations: Outbox.migrations
  }
]
