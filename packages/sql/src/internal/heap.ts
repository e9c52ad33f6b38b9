/**
 * How far V8 lets the heap of a relay worker process grow between full collections.
 *
 * A relay keeps each batch (and the one read ahead) alive across a send, so those rows outlive young collections
 * and are promoted; V8 then lets the old generation grow up to four times what survived the last full collection
 * before collecting again, and a worker draining a backlog peaked anywhere from 230 to 350 MB of RSS from run to run.
 * Growth at most ×2 (`--heap-growing-percent=100`) bounds it at the same rate: draining 800k rows with 4 workers,
 * 174–180 MB RSS at 68–70k msg/s against 235 MB (and spikes to 346 MB) at 68k msg/s by default; ×1.5 gave 158 MB at
 * 61k msg/s. V8 reads the setting at each full collection, so setting it once the process runs takes effect.
 *
 * Only the worker entry points call this (a library must not change its host's V8 flags); a flag of the same name
 * given to Node (`NODE_OPTIONS` or the command line) is left as it is.
 */
import * as v8 from "node:v8"

const flag = "--heap-growing-percent"

export const boundHeapGrowth = (percent = 100): void => {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
  if (given.some((arg) => arg.startsWith(flag) || arg.startsWith("--heap_growing_percent"))) return
  v8.setFlagsFromString(`${flag}=${percent}`)
}
