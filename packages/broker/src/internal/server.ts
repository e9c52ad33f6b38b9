/**
 * The TCP side: length-prefixed frames, request headers, strictly ordered responses per connection. Bad frames
 * close only their own connection; so do passing the broker-wide cap on bytes of half-received requests and being
 * idle for too long.
 */
import * as net from "node:net"
import * as tls from "node:tls"
import { Reader, TruncatedError, Writer } from "./codec.js"
import { ErrorCode } from "./errors.js"
import { GroupCoordinator } from "./groups.js"
import type { Storage } from "./log.js"
import { ApiKey, apiVersionsBody, type BrokerConfig, type BrokerContext, handlers, maxVersions } from "./protocol.js"
import * as Sasl from "./sasl.js"

/** TLS on the listener: PEM texts. With `ca`, clients must present a certificate it signed (mutual TLS). */
export interface TlsOptions {
  readonly cert: string | Buffer
  readonly key: string | Buffer
  readonly ca?: string | Buffer | undefined
}

export interface ServerOptions extends BrokerConfig {
  readonly port: number
  /** Topics, logs and offsets; opened (and closed) by the caller. */
  readonly storage: Storage
  /** Largest request frame accepted; a larger one closes the connection. */
  readonly maxFrameBytes: number
  /** Bytes of requests not yet whole, across connections; the connection whose bytes pass it is closed. */
  readonly maxBufferedRequestBytes: number
  /** A connection with nothing received, sent or pending for this long is closed. */
  readonly connectionsMaxIdleMs: number
  readonly log: (level: "info" | "warn", message: string) => void
  readonly tls?: TlsOptions | undefined
  /** SASL required before any request but ApiVersions, SaslHandshake and SaslAuthenticate. */
  readonly sasl?: Sasl.Credentials | undefined
}

/** What the server holds right now. */
export interface ServerLoad {
  readonly connections: number
  /** Bytes of requests not yet whole, across connections. */
  readonly bufferedRequestBytes: number
}

export interface RunningServer {
  readonly port: number
  readonly context: BrokerContext
  readonly load: () => ServerLoad
  readonly close: () => Promise<void>
}

const frameHeader = (correlationId: number, body: Buffer): Buffer => {
  const out = Buffer.allocUnsafe(8 + body.length)
  out.writeInt32BE(4 + body.length, 0)
  out.writeInt32BE(correlationId, 4)
  body.copy(out, 8)
  return out
}

export const start = (options: ServerOptions): Promise<RunningServer> => {
  const storage = options.storage
  const info = (m: string) => options.log("info", m)
  const context: BrokerContext = {
    config: options,
    port: options.port,
    storage,
    groups: new GroupCoordinator(info, (group) => info(`group ${group} is empty`)),
    log: info,
    warn: (m) => options.log("warn", m),
    waiters: new Set(),
    stats: { busyMs: 0, producedRecords: 0, fetchedBatches: 0 },
    nextProducerId: BigInt(Date.now()) * 1000n
  }
  const sockets = new Set<net.Socket>()
  let bufferedRequestBytes = 0

  const onConnection = (socket: net.Socket) => {
    sockets.add(socket)
    socket.setNoDelay(true)
    const clientHost = socket.remoteAddress ?? "unknown"
    let buffered: Buffer = Buffer.alloc(0)
    // chunks are only concatenated once a whole frame has arrived (large produce requests come in many chunks)
    let chunks: Array<Buffer> = []
    let chunkBytes = 0
    let need = 4
    // responses leave in request order: each request takes a slot, filled when its handler is done
    const slots: Array<{ data: Buffer | null; done: boolean; thenClose?: string }> = []
    let closed = false
    // run when the connection closes (a long-polling fetch stops waiting)
    const onClose = new Set<() => void>()
    // this connection's share of `bufferedRequestBytes`
    let held = 0
    // SASL: whether the client has authenticated, the exchange under way, and when the session ends (0: never)
    let authenticated = options.sasl === undefined
    let exchange: { readonly mechanism: Sasl.Mechanism; readonly exchange: Sasl.Exchange } | undefined
    let sessionEndsAt = 0

    const idle = setTimeout(function idleFor() {
      // a connection waiting for an answer is busy, not idle
      if (slots.length > 0) idle.refresh()
      else close("info", `idle for ${options.connectionsMaxIdleMs} ms`)
    }, options.connectionsMaxIdleMs)
    idle.unref()

    const flush = () => {
      while (slots.length > 0 && slots[0].done) {
        const slot = slots.shift()!
        if (slot.data !== null && !closed) socket.write(slot.data)
        if (slot.thenClose !== undefined && !closed) {
          // the answer leaves first, then the connection closes (as Kafka does after a failed authentication)
          closed = true
          options.log("warn", `closing connection from ${clientHost}: ${slot.thenClose}`)
          socket.end()
          setTimeout(() => socket.destroy(), 1000).unref()
        }
      }
      idle.refresh()
    }
    const close = (level: "info" | "warn", why: string) => {
      if (closed) return
      closed = true
      options.log(level, `closing connection from ${clientHost}: ${why}`)
      socket.destroy()
    }
    const kill = (why: string) => close("warn", why)
    /** Records that this connection now holds `bytes` of requests not yet whole; passing the cap closes it. */
    const hold = (bytes: number) => {
      bufferedRequestBytes += bytes - held
      held = bytes
      if (bytes > 0 && bufferedRequestBytes > options.maxBufferedRequestBytes) {
        const total = bufferedRequestBytes
        release()
        kill(
          `requests not yet whole would hold ${total} bytes across connections, above ${options.maxBufferedRequestBytes} (maxBufferedRequestBytes)`
        )
      }
    }
    const release = () => {
      bufferedRequestBytes -= held
      held = 0
      buffered = Buffer.alloc(0)
      chunks = []
      chunkBytes = 0
    }

    const handle = (frame: Buffer) => {
      const r = new Reader(frame)
      let correlationId = -1
      try {
        const apiKey = r.int16()
        const version = r.int16()
        correlationId = r.int32()
        const clientId = r.nullableString() ?? ""
        const handler = handlers.get(apiKey)
        const saslRequest = apiKey === ApiKey.SaslHandshake || apiKey === ApiKey.SaslAuthenticate
        if (handler === undefined && !saslRequest) return kill(`unknown API key ${apiKey}`)
        if (!authenticated && !saslRequest && apiKey !== ApiKey.ApiVersions) {
          // Kafka closes a SASL listener's connection on any other request before authentication
          return kill(`API ${apiKey} request from ${clientId} before SASL authentication`)
        }
        if (sessionEndsAt > 0 && !saslRequest && Date.now() >= sessionEndsAt) {
          return kill(`the SASL session of ${clientId} expired without re-authentication`)
        }
        const slot: { data: Buffer | null; done: boolean; thenClose?: string } = { data: null, done: false }
        slots.push(slot)
        const max = maxVersions.get(apiKey)!
        if (version < 0 || version > max) {
          // librdkafka probes ApiVersions v3 first: normal, so not a warning
          options.log(
            apiKey === ApiKey.ApiVersions ? "info" : "warn",
            `unsupported version ${version} of API ${apiKey} from ${clientId}`
          )
          // ApiVersions answers in its v0 layout with the list (KIP-511); others get the bare error code
          const body = apiKey === ApiKey.ApiVersions
            ? apiVersionsBody(0, ErrorCode.UNSUPPORTED_VERSION)
            : Buffer.from([0, ErrorCode.UNSUPPORTED_VERSION])
          slot.data = frameHeader(correlationId, body)
          slot.done = true
          return flush()
        }
        if (saslRequest) {
          const answer = apiKey === ApiKey.SaslHandshake ? handshake(r) : authenticate(r, version, clientId)
          slot.data = frameHeader(correlationId, answer.body)
          if (answer.thenClose !== undefined) slot.thenClose = answer.thenClose
          slot.done = true
          return flush()
        }
        const started = performance.now()
        const result = handler!(context, r, {
          version,
          clientId,
          clientHost,
          onClose: (f) => {
            onClose.add(f)
            return () => onClose.delete(f)
          }
        })
        context.stats.busyMs += performance.now() - started
        const complete = (body: Buffer | null) => {
          if (closed) return
          slot.data = body === null ? null : frameHeader(correlationId, body)
          slot.done = true
          flush()
        }
        if (result instanceof Promise) {
          result.then(complete, (error: unknown) => kill(`handler failed: ${String(error)}`))
        } else {
          complete(result)
        }
      } catch (error) {
        kill(error instanceof TruncatedError ? `malformed request (${error.message})` : `bad request: ${String(error)}`)
      }
    }

    const saslMechanisms = options.sasl?.mechanisms ?? []
    /** SaslHandshake: the mechanism, which starts a new exchange (also to re-authenticate). */
    const handshake = (r: Reader): { body: Buffer; thenClose?: string } => {
      const mechanism = r.string()
      const w = new Writer(128)
      const known = saslMechanisms.find((m) => m === mechanism.toUpperCase())
      if (options.sasl === undefined || known === undefined) {
        w.int16(ErrorCode.UNSUPPORTED_SASL_MECHANISM).array(saslMechanisms, (w, m) => w.string(m))
        return {
          body: Buffer.from(w.result()),
          thenClose: options.sasl === undefined
            ? `SASL ${mechanism} on a listener without SASL`
            : `unsupported SASL mechanism ${mechanism}`
        }
      }
      exchange = { mechanism: known, exchange: Sasl.exchange(options.sasl, known) }
      w.int16(ErrorCode.NONE).array(saslMechanisms, (w, m) => w.string(m))
      return { body: Buffer.from(w.result()) }
    }
    /** SaslAuthenticate: one token of the exchange under way. */
    const authenticate = (r: Reader, version: number, clientId: string): { body: Buffer; thenClose?: string } => {
      const token = r.bytes() ?? Buffer.alloc(0)
      const w = new Writer(256)
      const answer = (error: number, message: string | null, bytes: Buffer, lifetimeMs: number) => {
        w.int16(error).nullableString(message).bytes(bytes)
        if (version >= 1) w.int64(lifetimeMs)
        return Buffer.from(w.result())
      }
      if (exchange === undefined) {
        return {
          body: answer(ErrorCode.ILLEGAL_SASL_STATE, "SaslAuthenticate before SaslHandshake", Buffer.alloc(0), 0),
          thenClose: "SaslAuthenticate before SaslHandshake"
        }
      }
      const step = exchange.exchange.step(token)
      if (step._tag === "Continue") return { body: answer(ErrorCode.NONE, null, step.response, 0) }
      const mechanism = exchange.mechanism
      exchange = undefined
      if (step._tag === "Failed") {
        authenticated = false
        return {
          body: answer(ErrorCode.SASL_AUTHENTICATION_FAILED, step.message, Buffer.alloc(0), 0),
          thenClose: `SASL ${mechanism} authentication of ${clientId} failed (${step.log})`
        }
      }
      authenticated = true
      sessionEndsAt = step.lifetimeMs > 0 ? Date.now() + step.lifetimeMs : 0
      info(`${clientHost} (${clientId}) authenticated as ${step.principal} with SASL ${mechanism}`)
      return { body: answer(ErrorCode.NONE, null, step.response, step.lifetimeMs) }
    }

    socket.on("data", (chunk: Buffer) => {
      if (closed) return
      idle.refresh()
      chunks.push(chunk)
      chunkBytes += chunk.length
      if (chunkBytes < need) return hold(buffered.length + chunkBytes)
      buffered = chunks.length === 1 && buffered.length === 0
        ? chunk
        : Buffer.concat(buffered.length === 0 ? chunks : [buffered, ...chunks])
      chunks = []
      chunkBytes = 0
      let at = 0
      need = 4
      while (!closed && buffered.length - at >= 4) {
        const size = buffered.readInt32BE(at)
        if (size < 8 || size > options.maxFrameBytes) {
          kill(`frame size ${size} outside 8..${options.maxFrameBytes}`)
          return
        }
        if (buffered.length - at - 4 < size) {
          need = 4 + size - (buffered.length - at)
          break
        }
        handle(buffered.subarray(at + 4, at + 4 + size))
        at += 4 + size
      }
      if (closed) return
      buffered = at === buffered.length ? Buffer.alloc(0) : buffered.subarray(at)
      if (buffered.length > 0 && buffered.length < 4) need = 4 - buffered.length
      hold(buffered.length)
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      closed = true
      clearTimeout(idle)
      release()
      sockets.delete(socket)
      for (const f of [...onClose]) f()
      onClose.clear()
    })
  }

  const server = options.tls === undefined
    ? net.createServer(onConnection)
    : tls.createServer({
      cert: options.tls.cert,
      key: options.tls.key,
      ...(options.tls.ca === undefined ? {} : { ca: options.tls.ca, requestCert: true, rejectUnauthorized: true })
    }, onConnection)
  if (options.tls !== undefined) {
    // a handshake that fails (no client certificate, one the CA did not sign, no common protocol) closes only it
    server.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
      options.log("warn", `TLS handshake with ${socket.remoteAddress ?? "unknown"} failed: ${error.message}`)
      socket.destroy()
    })
  }
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port, options.host, () => {
      server.off("error", reject)
      const address = server.address() as net.AddressInfo
      context.port = address.port
      resolve({
        port: address.port,
        context,
        load: () => ({ connections: sockets.size, bufferedRequestBytes }),
        close: () =>
          new Promise<void>((done) => {
            for (const wake of [...context.waiters]) wake()
            context.groups.close()
            for (const s of sockets) s.destroy()
            server.close(() => done())
          })
      })
    })
  })
}
