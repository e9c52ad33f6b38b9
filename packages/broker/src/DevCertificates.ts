/**
 * Throwaway certificates for TLS and mutual TLS in development and tests, made with `openssl` when asked for, so
 * no private key is ever committed: a CA, a server certificate it signed (for `localhost` and `127.0.0.1`), a client
 * certificate it signed, and an unrelated second CA (what a client with the wrong CA trusts).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

/**
 * A certificate and its private key (PEM texts).
 *
 * @since 0.1.0
 */
export interface KeyPair {
  readonly cert: string
  readonly key: string
}

/**
 * @since 0.1.0
 */
export interface Certificates {
  /** The CA's certificate (PEM): what clients trust, and what the server checks client certificates against. */
  readonly ca: string
  /** Signed by `ca`, for `localhost` and `127.0.0.1` (and the extra names asked for). */
  readonly server: KeyPair
  /** Signed by `ca`, for mutual TLS; its subject is `CN=<clientName>`. */
  readonly client: KeyPair
  /** A second CA that signed nothing here: trusting it alone fails verification of the server. */
  readonly otherCa: string
  /** The directory the PEM files are in (`ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`, `other-ca.pem`), removed when the scope closes. */
  readonly dir: string
}

/**
 * `openssl` failed or is not installed.
 *
 * @since 0.1.0
 */
export class DevCertificatesError extends Data.TaggedError("DevCertificatesError")<{
  readonly message: string
  readonly cause: unknown
}> {}

/**
 * @since 0.1.0
 */
export interface Options {
  /** More DNS names of the server certificate. @default none */
  readonly serverNames?: ReadonlyArray<string> | undefined
  /** @default "deimos-client" */
  readonly clientName?: string | undefined
  /** The `openssl` binary. @default "openssl" */
  readonly openssl?: string | undefined
}

const run = (openssl: string, cwd: string, args: ReadonlyArray<string>) =>
  Effect.async<void, DevCertificatesError>((resume) => {
    const child = execFile(openssl, [...args], { cwd, timeout: 30_000 }, (error, _stdout, stderr) => {
      if (error === null) resume(Effect.void)
      else {
        resume(Effect.fail(
          new DevCertificatesError({
            message: `openssl ${args[0]} failed: ${stderr.trim() || error.message}`,
            cause: error
          })
        ))
      }
    })
    return Effect.sync(() => child.kill())
  })

const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

/**
 * Makes the certificates in a temporary directory, removed when the scope closes. They are valid for two days.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<Certificates, DevCertificatesError, Scope.Scope> =>
  Effect.gen(function*() {
    const openssl = options.openssl ?? "openssl"
    const dir = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => fs.mkdtemp(path.join(os.tmpdir(), "deimos-certs-")),
        catch: (cause) => new DevCertificatesError({ message: "Cannot make a temporary directory", cause })
      }),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )
    const sh = (...args: ReadonlyArray<string>) => run(openssl, dir, args)
    const ca = (name: string, cn: string) =>
      sh("req", "-x509", ...key, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${cn}`)
    const names = ["DNS:localhost", "IP:127.0.0.1", ...(options.serverNames ?? []).map((n) => `DNS:${n}`)]
    const write = (file: string, text: string) =>
      Effect.tryPromise({
        try: () => fs.writeFile(path.join(dir, file), text),
        catch: (cause) => new DevCertificatesError({ message: `Cannot write ${file}`, cause })
      })
    const signed = (name: string, cn: string, usage: string, extra: string) =>
      Effect.gen(function*() {
        yield* write(
          `${name}.ext`,
          `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=${usage}\n${extra}`
        )
        yield* sh("req", ...key, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`)
        yield* sh(
          "x509",
          "-req",
          "-in",
          `${name}.csr`,
          "-CA",
          "ca.pem",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-out",
          `${name}.pem`,
          "-days",
          "2",
          "-extfile",
          `${name}.ext`
        )
      })
    yield* ca("ca", "deimos-dev-ca")
    yield* ca("other-ca", "deimos-other-ca")
    yield* signed("server", "localhost", "serverAuth", `subjectAltName=${names.join(",")}\n`)
    yield* signed("client", options.clientName ?? "deimos-client", "clientAuth", "")
    const read = (file: string) =>
      Effect.tryPromise({
        try: () => fs.readFile(path.join(dir, file), "utf8"),
        catch: (cause) => new DevCertificatesError({ message: `Cannot read ${file}`, cause })
      })
    return {
      ca: yield* read("ca.pem"),
      server: { cert: yield* read("server.pem"), key: yield* read("server.key") },
      client: { cert: yield* read("client.pem"), key: yield* read("client.key") },
      otherCa: yield* read("other-ca.pem"),
      dir
    }
  })
