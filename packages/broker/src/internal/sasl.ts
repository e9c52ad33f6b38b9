/**
 * SASL on a listener, as Kafka does it: SaslHandshake names the mechanism, SaslAuthenticate carries its tokens.
 * PLAIN (RFC 4616), SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802 / RFC 7677, with Kafka's extensions in the
 * client-first message) and OAUTHBEARER with unsecured JWS tokens (RFC 7628, as Kafka's default validator).
 * Credentials are kept as SCRAM keys (salted, 4096 iterations) and a hash of each PLAIN password; no password is
 * ever logged or answered.
 */
import * as crypto from "node:crypto"

export type Mechanism = "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" | "OAUTHBEARER"

export const mechanisms: ReadonlyArray<Mechanism> = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

export interface SaslOptions {
  readonly mechanisms: ReadonlyArray<Mechanism>
  /** name → password, for PLAIN and SCRAM. */
  readonly users: ReadonlyMap<string, string>
}

interface ScramCredential {
  readonly salt: Buffer
  readonly iterations: number
  readonly storedKey: Buffer
  readonly serverKey: Buffer
}

type Hash = "sha256" | "sha512"

const hashOf = (mechanism: "SCRAM-SHA-256" | "SCRAM-SHA-512"): Hash =>
  mechanism === "SCRAM-SHA-256" ? "sha256" : "sha512"

const hmac = (hash: Hash, key: Buffer, data: string | Buffer) => crypto.createHmac(hash, key).update(data).digest()

const scramCredential = (hash: Hash, password: string, iterations = 4096): ScramCredential => {
  const salt = crypto.randomBytes(16)
  const salted = crypto.pbkdf2Sync(
    Buffer.from(password.normalize("NFKC")),
    salt,
    iterations,
    hash === "sha256" ? 32 : 64,
    hash
  )
  const clientKey = hmac(hash, salted, "Client Key")
  return {
    salt,
    iterations,
    storedKey: crypto.createHash(hash).update(clientKey).digest(),
    serverKey: hmac(hash, salted, "Server Key")
  }
}

const plainDigest = (password: string) => crypto.createHash("sha256").update(password, "utf8").digest()

/** The credentials of a listener, derived once at start. */
export interface Credentials {
  readonly mechanisms: ReadonlyArray<Mechanism>
  readonly plain: ReadonlyMap<string, Buffer>
  readonly scram: ReadonlyMap<string, ReadonlyMap<string, ScramCredential>>
}

export const credentials = (options: SaslOptions): Credentials => {
  const plain = new Map<string, Buffer>()
  const scram = new Map<string, Map<string, ScramCredential>>()
  for (const m of ["SCRAM-SHA-256", "SCRAM-SHA-512"] as const) {
    if (options.mechanisms.includes(m)) scram.set(m, new Map())
  }
  for (const [name, password] of options.users) {
    plain.set(name, plainDigest(password))
    for (const [m, users] of scram) users.set(name, scramCredential(hashOf(m as "SCRAM-SHA-256"), password))
  }
  return { mechanisms: options.mechanisms, plain, scram }
}

/** One step of an exchange: the server's answer, or a refusal (the connection is closed after it). */
export type Step =
  | { readonly _tag: "Continue"; readonly response: Buffer }
  | { readonly _tag: "Done"; readonly response: Buffer; readonly principal: string; readonly lifetimeMs: number }
  | { readonly _tag: "Failed"; readonly message: string; readonly log: string }

const failed = (message: string, log: string): Step => ({ _tag: "Failed", message, log })

const invalidCredentials = (mechanism: Mechanism) =>
  `Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism}`

/** An exchange of one mechanism on one connection. */
export interface Exchange {
  readonly step: (token: Buffer) => Step
}

const plainExchange = (credentials: Credentials): Exchange => ({
  step: (token) => {
    // [authzid] NUL authcid NUL passwd
    const parts = token.toString("utf8").split("\u0000")
    if (parts.length !== 3) return failed("Invalid SASL/PLAIN response: expected 3 tokens", "malformed PLAIN token")
    const [authzid, user, password] = parts
    if (user === "") return failed("Authentication failed: username not specified", "PLAIN without a username")
    if (authzid !== "" && authzid !== user) {
      return failed(
        "Authentication failed: Client requested an authorization id that is different from username",
        `PLAIN authzid of ${user}`
      )
    }
    const expected = credentials.plain.get(user)
    const given = plainDigest(password)
    if (expected === undefined || !crypto.timingSafeEqual(expected, given)) {
      return failed(
        "Authentication failed: Invalid username or password",
        `PLAIN ${expected === undefined ? "unknown user" : "wrong password for"} ${user}`
      )
    }
    return { _tag: "Done", response: Buffer.alloc(0), principal: user, lifetimeMs: 0 }
  }
})

/** `a=1,b=2` attributes of a SCRAM message (values may hold `=`). */
const attributes = (message: string): Map<string, string> => {
  const out = new Map<string, string>()
  for (const part of message.split(",")) {
    const eq = part.indexOf("=")
    if (eq > 0) out.set(part.slice(0, eq), part.slice(eq + 1))
  }
  return out
}

const unescapeName = (name: string) => name.replace(/=2C/g, ",").replace(/=3D/g, "=")

const scramExchange = (credentials: Credentials, mechanism: "SCRAM-SHA-256" | "SCRAM-SHA-512"): Exchange => {
  const hash = hashOf(mechanism)
  let stage: "first" | "final" | "done" = "first"
  let user = ""
  let credential: ScramCredential | undefined
  let nonce = ""
  let clientFirstBare = ""
  let serverFirst = ""
  let gs2Header = ""
  return {
    step: (token) => {
      const message = token.toString("utf8")
      if (stage === "first") {
        stage = "final"
        // gs2-header: "n,," or "y,," (no channel binding) with an optional a=authzid
        const match = /^([ny]),(a=[^,]*)?,(.*)$/.exec(message)
        if (match === null) return failed(`Invalid SCRAM client first message`, "malformed SCRAM client-first")
        gs2Header = `${match[1]},${match[2] ?? ""},`
        clientFirstBare = match[3]
        const attrs = attributes(clientFirstBare)
        const name = attrs.get("n")
        const clientNonce = attrs.get("r")
        if (name === undefined || clientNonce === undefined || clientNonce === "") {
          return failed(`Invalid SCRAM client first message`, "SCRAM client-first without n= or r=")
        }
        user = unescapeName(name)
        // Kafka's extensions (tokenauth=true for delegation tokens) are not supported
        if (attrs.get("tokenauth") === "true") {
          return failed(invalidCredentials(mechanism), `SCRAM token auth for ${user}`)
        }
        credential = credentials.scram.get(mechanism)?.get(user)
        if (credential === undefined) return failed(invalidCredentials(mechanism), `${mechanism} unknown user ${user}`)
        nonce = clientNonce + crypto.randomBytes(18).toString("base64").replace(/[=,]/g, "")
        serverFirst = `r=${nonce},s=${credential.salt.toString("base64")},i=${credential.iterations}`
        return { _tag: "Continue", response: Buffer.from(serverFirst) }
      }
      if (stage === "final" && credential !== undefined) {
        stage = "done"
        const proofAt = message.lastIndexOf(",p=")
        if (proofAt < 0) return failed(`Invalid SCRAM client final message`, "SCRAM client-final without p=")
        const withoutProof = message.slice(0, proofAt)
        const attrs = attributes(withoutProof)
        // Kafka checks that the nonce ends with the server's (librdkafka sends its own nonce before it again)
        if (!(attrs.get("r") ?? "").endsWith(nonce)) {
          return failed(invalidCredentials(mechanism), `${mechanism} nonce mismatch for ${user}`)
        }
        if (attrs.get("c") !== Buffer.from(gs2Header).toString("base64")) {
          return failed(invalidCredentials(mechanism), `${mechanism} channel binding mismatch for ${user}`)
        }
        const proof = Buffer.from(message.slice(proofAt + 3), "base64")
        const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`
        const signature = hmac(hash, credential.storedKey, authMessage)
        if (proof.length !== signature.length) {
          return failed(invalidCredentials(mechanism), `${mechanism} bad proof for ${user}`)
        }
        const clientKey = Buffer.alloc(proof.length)
        for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i] ^ signature[i]
        const stored = crypto.createHash(hash).update(clientKey).digest()
        if (!crypto.timingSafeEqual(stored, credential.storedKey)) {
          return failed(invalidCredentials(mechanism), `${mechanism} wrong password for ${user}`)
        }
        const serverSignature = hmac(hash, credential.serverKey, authMessage).toString("base64")
        return { _tag: "Done", response: Buffer.from(`v=${serverSignature}`), principal: user, lifetimeMs: 0 }
      }
      return failed(`Unexpected SCRAM message`, "SCRAM message after the exchange ended")
    }
  }
}

const base64UrlJson = (part: string): unknown => JSON.parse(Buffer.from(part, "base64url").toString("utf8"))

/**
 * OAUTHBEARER with unsecured JWS tokens (`alg: none`), as Kafka's default validator: the token needs a `sub` and an
 * `exp` in the future; the session lasts until `exp` (the client re-authenticates before).
 */
const oauthExchange = (): Exchange => ({
  step: (token) => {
    // gs2-header, then kvpairs separated by \x01, ending with \x01\x01
    const message = token.toString("utf8")
    const auth = message.split("\u0001").find((kv) => kv.startsWith("auth="))
    const bearer = auth === undefined ? undefined : /^auth=Bearer (.+)$/i.exec(auth)?.[1]
    if (bearer === undefined) return failed("Invalid OAUTHBEARER client first message", "OAUTHBEARER without a token")
    const parts = bearer.split(".")
    let claims: { readonly sub?: unknown; readonly exp?: unknown }
    try {
      if (parts.length !== 3) throw new Error("not a JWS")
      claims = base64UrlJson(parts[1]) as typeof claims
    } catch {
      return failed("Authentication failed: the OAUTHBEARER token is not a JWS", "OAUTHBEARER malformed token")
    }
    const sub = typeof claims.sub === "string" ? claims.sub : ""
    if (sub === "") {
      return failed("Authentication failed: the OAUTHBEARER token has no sub claim", "OAUTHBEARER without sub")
    }
    const exp = typeof claims.exp === "number" ? claims.exp * 1000 : NaN
    const left = exp - Date.now()
    if (!(left > 0)) {
      return failed("Authentication failed: the OAUTHBEARER token has expired", `OAUTHBEARER expired token for ${sub}`)
    }
    return { _tag: "Done", response: Buffer.alloc(0), principal: sub, lifetimeMs: Math.floor(left) }
  }
})

export const exchange = (credentials: Credentials, mechanism: Mechanism): Exchange =>
  mechanism === "PLAIN"
    ? plainExchange(credentials)
    : mechanism === "OAUTHBEARER"
    ? oauthExchange()
    : scramExchange(credentials, mechanism)
