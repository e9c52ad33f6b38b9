/** A bare Kafka-protocol TCP client for sending hand-made (and broken) frames. */
import * as net from "node:net"

export interface RawConnection {
  /** Sends a request with header v1 and resolves with the response body (after the correlation id). */
  readonly request: (apiKey: number, version: number, body: Buffer) => Promise<Buffer>
  /** Writes raw bytes. */
  readonly write: (bytes: Buffer) => void
  /** Resolves when the broker closes the connection. */
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
  readonly end: () => void
}

export const connect = (broker: string): Promise<RawConnection> =>
  new Promise((resolve, reject) => {
    const [host, port] = broker.split(":")
    const socket = net.connect(Number(port), host)
    let buffered = Buffer.alloc(0)
    let correlation = 1
    let closed = false
    const pending = new Map<number, (body: Buffer) => void>()
    const closedPromise = new Promise<void>((done) =>
      socket.on("close", () => {
        closed = true
        done()
      })
    )
    socket.on("error", () => {})
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk])
      while (buffered.length >= 4 && buffered.length >= 4 + buffered.readInt32BE(0)) {
        const size = buffered.readInt32BE(0)
        const frame = buffered.subarray(4, 4 + size)
        buffered = buffered.subarray(4 + size)
        const id = frame.readInt32BE(0)
        pending.get(id)?.(Buffer.from(frame.subarray(4)))
        pending.delete(id)
      }
    })
    socket.once("connect", () =>
      resolve({
        request: (apiKey, version, body) =>
          new Promise((done, fail) => {
            const id = correlation++
            const clientId = Buffer.from("raw-test")
            const header = Buffer.alloc(10 + clientId.length)
            header.writeInt16BE(apiKey, 0)
            header.writeInt16BE(version, 2)
            header.writeInt32BE(id, 4)
            header.writeInt16BE(clientId.length, 8)
            clientId.copy(header, 10)
            const size = Buffer.alloc(4)
            size.writeInt32BE(header.length + body.length)
            pending.set(id, done)
            closedPromise.then(() => fail(new Error("connection closed")))
            socket.write(Buffer.concat([size, header, body]))
          }),
        write: (bytes) => socket.write(bytes),
        closed: closedPromise,
        isClosed: () => closed,
        end: () => socket.destroy()
      }))
    socket.once("error", reject)
  })
