/**
 * @since 0.1.0
 */
export * as Backends from "./Backends.js"
export * as Cli from "./Cli.js"
export * as CliError from "./CliError.js"
export * as MigrationSets from "./MigrationSets.js"
export * as Modules from "./Modules.js"
export * as Progress from "./Progress.js"
export * as Settings from "./Settings.js"
