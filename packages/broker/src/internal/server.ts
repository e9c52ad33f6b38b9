/**
 * The TCP side: length-prefixed frames, request headers, strictly ordered responses per connection. Bad frames
 * close only their own connection.
 */
import * as net from "node:net"
import { Reader, TruncatedError } from "./codec.js"
import { ErrorCode } from "./errors.js"
import { GroupCoordinator } from "./groups.js"
import type { Storage } from "./log.js"
import { ApiKey, apiVersionsBody, type BrokerConfig, type BrokerContext, handlers, maxVersions } from "./protocol.js"

export interface ServerOptions extends BrokerConfig {
  readonly port: number
  /** Topics, logs and offsets; opened (and closed) by the caller. */
  readonly storage: Storage
  /** Largest request frame accepted; a larger one closes the connection. */
  readonly maxFrameBytes: number
  readonly log: (level: "info" | "warn", message: string) => void
}

export interface RunningServer {
  readonly port: number
  readonly context: BrokerContext
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

  const onConnection = (socket: net.Socket) => {
    sockets.add(socket)
    socket.setNoDelay(true)
    const clientHost = socket.remoteAddress ?? "unknown"
    let buffered: Buffer = Buffer.alloc(0)
    // responses leave in request order: each request takes a slot, filled when its handler is done
    const slots: Array<{ data: Buffer | null; done: boolean }> = []
    let closed = false

    const flush = () => {
      while (slots.length > 0 && slots[0].done) {
        const slot = slots.shift()!
        if (slot.data !== null && !closed) socket.write(slot.data)
      }
    }
    const kill = (why: string) => {
      if (closed) return
      closed = true
      options.log("warn", `closing connection from ${clientHost}: ${why}`)
      socket.destroy()
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
        if (handler === undefined) return kill(`unknown API key ${apiKey}`)
        const slot = { data: null as Buffer | null, done: false }
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
        const started = performance.now()
        const result = handler(context, r, { version, clientId, clientHost })
        context.stats.busyMs += performance.now() - started
        const complete = (body: Buffer | null) => {
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

    // chunks are only concatenated once a whole frame has arrived (large produce requests come in many chunks)
    let chunks: Array<Buffer> = []
    let chunkBytes = 0
    let need = 4
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      chunkBytes += chunk.length
      if (chunkBytes < need) return
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
      buffered = at === buffered.length ? Buffer.alloc(0) : buffered.subarray(at)
      if (buffered.length > 0 && buffered.length < 4) need = 4 - buffered.length
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      closed = true
      sockets.delete(socket)
    })
  }

  const server = net.createServer(onConnection)
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port, options.host, () => {
      server.off("error", reject)
      const address = server.address() as net.AddressInfo
      context.port = address.port
      resolve({
        port: address.port,
        context,
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
