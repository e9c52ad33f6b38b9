/**
 * UTF-8 for the hot paths, on Node's `Buffer` (a `Buffer` is a `Uint8Array`: callers see the port's type).
 * `Buffer.from` takes small strings from Node's pooled slab, where `TextEncoder.encode` allocates a fresh
 * `ArrayBuffer` per call (about 3 µs and the GC behind it for a 200-byte payload on Node 20, a fifth of the whole
 * produce path); `buffer.isUtf8` then `toString` is several times faster than a fatal `TextDecoder`.
 */
import { isUtf8 } from "node:buffer"

/** The UTF-8 bytes of `text`. */
export const encode = (text: string): Uint8Array => Buffer.from(text, "utf8")

/** The text of UTF-8 `bytes`; throws a `TypeError` on bytes that are not UTF-8 (as a fatal `TextDecoder`). */
export const decode = (bytes: Uint8Array): string => {
  if (!isUtf8(bytes)) throw new TypeError("The bytes are not valid UTF-8")
  return decodeLossy(bytes)
}

/** The text of `bytes`, invalid sequences replaced by U+FFFD (as a non-fatal `TextDecoder`). */
export const decodeLossy = (bytes: Uint8Array): string =>
  (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString("utf8")
