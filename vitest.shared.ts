import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.dirname(fileURLToPath(import.meta.url))

/** Resolve `@deimos/<pkg>` and `@deimos/<pkg>/<Module>` to the TypeScript sources, so tests never need a build. */
export const alias = [
  {
    find: /^@deimos\/([a-z-]+)$/,
    replacement: path.join(root, "packages/$1/src/index.ts")
  },
  {
    find: /^@deimos\/([a-z-]+)\/(.+)$/,
    replacement: path.join(root, "packages/$1/src/$2.ts")
  }
]
