/**
 * Payloads as JSON for the event log and the failures table: plain JSON values as they are; `Date`, `bigint` and
 * `Uint8Array` values (which Avro and Effect schemas decode to) tagged, so a stored payload reads back as it was
 * decoded. And the default dedup key: the MD5 of the payload's canonical JSON (keys sorted at every level).
 */
import * as crypto from "node:crypto"

const TAG = "$deimos"

/** A JSON value. */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** The payload as a JSON value (tagging what JSON cannot hold); `undefined` fields are left out. */
export const toJson = (value: unknown, depth = 0): Json => {
  if (depth > 64) throw new Error("payload nested deeper than 64 levels")
  if (value === null || value === undefined) return null
  switch (typeof value) {
    case "string":
    case "boolean":
      return value
    case "number":
      return Number.isFinite(value) ? value : String(value)
    case "bigint":
      return { [TAG]: "bigint", v: value.toString() }
    case "object": {
      if (value instanceof Date) return { [TAG]: "date", v: value.toISOString() }
      if (value instanceof Uint8Array) return { [TAG]: "bytes", v: Buffer.from(value).toString("base64") }
      if (Array.isArray(value)) return value.map((v) => toJson(v, depth + 1))
      if (value instanceof Map) return toJson(Object.fromEntries(value), depth)
      const out: Record<string, Json> = {}
      for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toJson(v, depth + 1)
      return out
    }
    default:
      return String(value)
  }
}

/** The value {@link toJson} was made from (tagged values restored). */
export const fromJson = (json: unknown): unknown => {
  if (Array.isArray(json)) return json.map(fromJson)
  if (typeof json !== "object" || json === null) return json
  const record = json as Record<string, unknown>
  if (typeof record[TAG] === "string" && typeof record.v === "string" && Object.keys(record).length === 2) {
    switch (record[TAG]) {
      case "date":
        return new Date(record.v)
      case "bigint":
        return BigInt(record.v)
      case "bytes":
        return new Uint8Array(Buffer.from(record.v, "base64"))
    }
  }
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(record)) out[k] = fromJson(v)
  return out
}

/** JSON text with the keys of every object sorted: the same for the same payload, whatever its field order. */
export const canonical = (json: Json): string => {
  if (json === null || typeof json !== "object") return JSON.stringify(json)
  if (Array.isArray(json)) return `[${json.map(canonical).join(",")}]`
  const record = json as { readonly [key: string]: Json }
  const keys = Object.keys(record).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(record[k])}`).join(",")}}`
}

/** The MD5 (hex) of the payload's canonical JSON. */
export const checksum = (payload: unknown): string =>
  crypto.createHash("md5").update(canonical(toJson(payload))).digest("hex")
