/**
 * @deimos/console: the operator web console (checkpoint failures and events, outbox backlog, consumer lag).
 *
 * @since 0.1.0
 */
export * as Console from "./Console.js"
