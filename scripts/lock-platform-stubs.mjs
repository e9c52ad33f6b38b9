// The npm registry reachable from our machines serves no manifests for some foreign-platform optional packages
// (e.g. @rollup/rollup-android-arm64), so `npm install` leaves them out of package-lock.json and `npm ci` then
// refuses the lock ("Missing: … from lock file"). This adds a lock entry for each missing optional platform package,
// with the os/cpu/libc its name states, so `npm ci` skips it on every other platform just as it would with a
// complete lock. Run after any `npm install` that rewrites the lock: `node scripts/lock-platform-stubs.mjs`.
import { readFileSync, writeFileSync } from "node:fs"

const file = new URL("../package-lock.json", import.meta.url)
const lock = JSON.parse(readFileSync(file, "utf8"))
const platform =
  /-(android|darwin|freebsd|linux|openbsd|openharmony|win32|sunos|aix|netbsd)-(arm64|arm|x64|ia32|loong64|ppc64|riscv64|s390x|mips64el)(?:-(gnu|musl|gnueabihf|musleabihf|msvc|eabi))?$/

let added = 0
for (const meta of Object.values(lock.packages)) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    if (lock.packages[`node_modules/${name}`] !== undefined) continue
    const match = platform.exec(name)
    if (match === null) {
      console.error(`left alone: ${name} (optional, missing from the lock, no platform in its name)`)
      continue
    }
    const [, os, cpu, abi] = match
    const libc = abi?.startsWith("musl") ? ["musl"] : abi?.startsWith("gnu") ? ["glibc"] : undefined
    lock.packages[`node_modules/${name}`] = {
      version,
      cpu: [cpu],
      os: [os],
      ...(libc === undefined ? {} : { libc }),
      optional: true
    }
    added++
  }
}
writeFileSync(file, JSON.stringify(lock, null, 2) + "\n")
console.log(`lock-platform-stubs: added ${added} entries`)
