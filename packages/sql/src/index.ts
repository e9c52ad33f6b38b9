/**
 * @deimos/sql: Postgres for Deimos. The `Database` service with ambient transactions (postgres.js or PGlite, through
 * drizzle), migrations, the transactional outbox and its relay, record consumers and producers, change capture,
 * pollers, and drizzle tables generated from Avro records.
 *
 * @since 0.1.0
 */
export * as ChangeCapture from "./ChangeCapture.js"
export * as Database from "./Database.js"
export * as DatabaseError from "./DatabaseError.js"
export * as Migrations from "./Migrations.js"
export * as Outbox from "./Outbox.js"
export * as OutboxRelay from "./OutboxRelay.js"
export * as Poller from "./Poller.js"
export * as RecordConsumer from "./RecordConsumer.js"
export * as RecordProducer from "./RecordProducer.js"
export * as TableCodegen from "./TableCodegen.js"
