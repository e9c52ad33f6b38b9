/**
 * JSON that keeps `Date`, `bigint` and `Uint8Array` values, for the mock schema backend.
 */
import * as Utf8 from "./utf8.js"

const TAG = "$deimos"
const TAG_KEY = `"${TAG}"`

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key]
  if (raw instanceof Date) return { [TAG]: "date", v: raw.toISOString() }
  if (typeof raw === "bigint") return { [TAG]: "bigint", v: raw.toString() }
  if (raw instanceof Uint8Array) return { [TAG]: "bytes", v: Buffer.from(raw).toString("base64") }
  return value
}

const reviver = (_key: string, value: unknown): unknown => {
  if (typeof value === "object" && value !== null && TAG in value) {
    const tagged = value as { readonly [TAG]: string; readonly v: string }
    switch (tagged[TAG]) {
      case "date":
        return new Date(tagged.v)
      case "bigint":
        return BigInt(tagged.v)
      case "bytes":
        return new Uint8Array(Buffer.from(tagged.v, "base64"))
    }
  }
  return value
}

/** True when a value holds a Date, bigint or byte array somewhere (only then is the slower replacer needed). */
const needsTags = (value: unknown, depth: number): boolean => {
  if (typeof value === "bigint") return true
  if (typeof value !== "object" || value === null) return false
  if (value instanceof Date || value instanceof Uint8Array) return true
  if (depth > 32) return true
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (needsTags(value[i], depth + 1)) return true
    return false
  }
  for (const key in value) {
    if (needsTags((value as Record<string, unknown>)[key], depth + 1)) return true
  }
  return false
}

export const encode = (value: unknown): Uint8Array =>
  Utf8.encode((needsTags(value, 0) ? JSON.stringify(value, replacer) : JSON.stringify(value)) ?? "null")

export const decode = (bytes: Uint8Array): unknown => {
  const text = Utf8.decode(bytes)
  // the reviver is only needed when something was tagged
  return text.includes(TAG_KEY) ? JSON.parse(text, reviver) : JSON.parse(text)
}

/** Plain JSON (bigints as strings), for the JSON backend. */
export const encodePlain = (value: unknown): Uint8Array =>
  Utf8.encode(JSON.stringify(value, (_k, v) => typeof v === "bigint" ? v.toString() : v) ?? "null")

export const decodePlain = (bytes: Uint8Array): unknown => JSON.parse(Utf8.decode(bytes))
