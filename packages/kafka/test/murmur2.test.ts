import { describe, expect, it } from "@effect/vitest"
import { createRequire } from "node:module"
import { murmur2, murmur2Text, partitionOf } from "../src/internal/murmur2.js"

// kafkajs's own murmur2 (a port of the Java client's), the reference
const reference = createRequire(import.meta.url)("kafkajs/src/producer/partitioners/default/murmur2") as (
  key: Buffer | string
) => number

describe("murmur2", () => {
  it("gives Kafka's test vectors (Java client UtilsTest)", () => {
    const vectors: ReadonlyArray<readonly [string, number]> = [
      ["21", -973932308],
      ["foobar", -790332482],
      ["a-little-bit-long-string", -985981536],
      ["a-little-bit-longer-string", -1486304829],
      ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
      ["abc", 479470107]
    ]
    for (const [text, hash] of vectors) {
      expect(murmur2(Buffer.from(text))).toBe(hash)
      expect(murmur2Text(text)).toBe(hash)
    }
  })

  it("agrees with kafkajs's murmur2 on random bytes and texts of every length remainder, ASCII or not", () => {
    let seed = 42
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
    const alphabet = "abcXYZ019-_ éü日本😀"
    for (let n = 0; n < 2000; n++) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)))
      expect(murmur2(bytes)).toBe(reference(bytes))
      const text = Array.from(
        { length: Math.floor(random() * 30) },
        () => alphabet[Math.floor(random() * alphabet.length)]
      ).join("")
      expect(murmur2Text(text)).toBe(reference(Buffer.from(text, "utf8")))
      expect(murmur2(new Uint8Array(bytes))).toBe(reference(bytes))
    }
  })

  it("maps a hash to a partition as the Java client (positive hash modulo the count)", () => {
    expect(partitionOf(-973932308, 3)).toBe((-973932308 & 0x7fffffff) % 3)
    expect(partitionOf(479470107, 7)).toBe(479470107 % 7)
  })
})
