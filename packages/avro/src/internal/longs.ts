/**
 * Avro longs as JavaScript numbers, exact over the whole safe range ±(2^53 − 1) and refused outside it.
 *
 * avsc 5.7.9 computes the zigzag encoding of a long in doubles, which is wrong for a negative long below −2^52: its
 * odd zigzag value no longer fits a double, so −(2^52 + 1) is written as the bytes of +2^52, and the bytes another
 * implementation writes for −(2^52 + 1) or −(2^53 − 1) are read as positive numbers (upstream avsc #455, fixed only
 * in the 6.0 alphas); the same reading promotes such a long to a wrong double for a `double` or `float` reader. avsc
 * also refuses ±(2^53 − 1), the ends of the safe range. The types here keep avsc's own reading and writing where it
 * is exact (it writes every long from −2^52 up exactly and reads every long below 2^52 exactly) and handle only the
 * rest, with `bigint`s:
 * - writing takes every safe integer (`Number.isSafeInteger`) and writes its exact zigzag varint; anything else is
 *   refused as avsc refuses a wrong type, so validation reports it with the field's path;
 * - reading returns every long in ±(2^53 − 1) exactly and throws on a long outside (int64 min and max written by
 *   another implementation, say) and on a varint longer than a long's ten bytes, which the backends report as a
 *   `Decode` error: never a rounded or sign-flipped number;
 * - a `double` or `float` reader of a long writer (a promotion Avro allows) gets the double nearest the long.
 *
 * The long is a subclass of avsc's `LongType`, not a custom long of `LongType.__with`: it stays a `long` to avsc
 * (unions put it in the number bucket, so `["long", "double"]` stays a wrapped union; resolvers and branch names
 * are a long's), and the common values cost what they cost in avsc. A `__with` type is an `abstract:long`, which
 * changes how avsc wraps unions, and converts every value through a `Buffer`. Measured on a record of eight longs
 * (Node 20, 2-core VM, medians of 25 rounds, three runs): avsc's long 264–353 ns per record to write and 217–360
 * to read, this one 276–369 and 295–349 (the same, within the noise), a `__with` long with a copy-free varint
 * buffer 794–1041 and 935–1505, about three times as slow; `npm run bench:avro` does not tell avsc's long and
 * this one apart either (see the README).
 */
import avro from "avsc"

/** The part of avsc's `Tap` (a buffer and a position) the types use. */
interface Tap {
  readonly buf: Buffer
  pos: number
  readLong(): number
  writeLong(n: number): void
}

/** 2^52: avsc writes every long from −2^52 up exactly and reads every long below 2^52 exactly. */
const exactInAvsc = 4_503_599_627_370_496

const maxLong = BigInt(Number.MAX_SAFE_INTEGER)

const exactRange = "the exact range of a JavaScript number, ±(2^53 − 1) = ±9007199254740991"

/**
 * A value as validation messages show it: its JSON (cut at 80 characters), with bigints, which `JSON.stringify`
 * refuses, written `123n`.
 */
export const show = (value: unknown): string =>
  typeof value === "bigint"
    ? `${value}n`
    : JSON.stringify(value, (_, v: unknown) => typeof v === "bigint" ? `${v}n` : v)?.slice(0, 80) ?? String(value)

/** Writes a safe integer below −2^52 (the range avsc gets wrong) as its exact zigzag varint. */
const writeExact = (tap: Tap, value: number) => {
  const buf = tap.buf
  let z = -2n * BigInt(value) - 1n
  while (z >= 0x80n) {
    // as in avsc, bytes past the end of the buffer are dropped but counted: the encoder then asks for a bigger one
    buf[tap.pos++] = Number(z & 0x7fn) | 0x80
    z >>= 7n
  }
  buf[tap.pos++] = Number(z)
}

/**
 * The long of the varint from `start` to `tap.pos` (which avsc read as a number of 2^52 or more), read again
 * exactly; undefined when the buffer ends first (the tap is then past its end, which the decoder reports).
 */
const readBig = (tap: Tap, start: number): bigint | undefined => {
  const end = tap.pos
  if (end > tap.buf.length) return undefined
  if (end - start > 10) throw new Error(`invalid long: a varint of ${end - start} bytes, longer than a long's 10`)
  let z = 0n
  for (let i = end - 1; i >= start; i--) z = (z << 7n) | BigInt(tap.buf[i] & 0x7f)
  if (z >= 1n << 64n) throw new Error(`invalid long: the varint ${z} does not fit 64 bits`)
  return (z & 1n) === 0n ? z >> 1n : -(z >> 1n) - 1n
}

/** Reads a long: exactly in ±(2^53 − 1), else a `RangeError`. */
const read = (tap: Tap): number => {
  const start = tap.pos
  const n = tap.readLong()
  if (n < exactInAvsc) return n
  const big = readBig(tap, start)
  if (big === undefined) return n
  if (big > maxLong || big < -maxLong) throw new RangeError(`the long ${big} is outside ${exactRange}`)
  return Number(big)
}

/** Reads a long promoted to a double: the double nearest it. */
const readNearest = (tap: Tap): number => {
  const start = tap.pos
  const n = tap.readLong()
  if (n < exactInAvsc) return n
  const big = readBig(tap, start)
  return big === undefined ? n : Number(big)
}

const write = (tap: Tap, value: unknown): void => {
  if (typeof value === "number" && value >= -exactInAvsc && value <= Number.MAX_SAFE_INTEGER && value % 1 === 0) {
    tap.writeLong(value)
  } else if (Number.isSafeInteger(value)) {
    writeExact(tap, value as number)
  } else {
    throw new Error(`invalid "long": ${show(value)} (longs are integers in ${exactRange})`)
  }
}

/** avsc's long, exact over ±(2^53 − 1). `_read` and `_write` do not use `this`: avsc copies `_read` to resolvers. */
class ExactLongType extends avro.types.LongType {
  _check(value: unknown, _flags: unknown, hook?: (value: unknown, type: avro.Type) => void): boolean {
    const ok = Number.isSafeInteger(value)
    if (!ok && hook !== undefined) hook(value, this)
    return ok
  }
  _read(tap: Tap): number {
    return read(tap)
  }
  _write(tap: Tap, value: unknown): void {
    write(tap, value)
  }
}

interface Resolver {
  _read: (tap: Tap) => unknown
}

/** The `_update` of avsc's float and double types, which resolvers call with the writer's type. */
type Update = (this: avro.Type, resolver: Resolver, writer: avro.Type) => void
const doubleUpdate = (avro.types.DoubleType.prototype as unknown as { readonly _update: Update })._update
const floatUpdate = (avro.types.FloatType.prototype as unknown as { readonly _update: Update })._update

/** avsc's double, reading a long writer's longs as the nearest doubles. */
class PromotingDoubleType extends avro.types.DoubleType {
  _update(resolver: Resolver, writer: avro.Type): void {
    if (writer.typeName === "long") resolver._read = readNearest
    else doubleUpdate.call(this, resolver, writer)
  }
}

/** avsc's float, reading a long writer's longs as the nearest doubles (avsc does not round them to floats). */
class PromotingFloatType extends avro.types.FloatType {
  _update(resolver: Resolver, writer: avro.Type): void {
    if (writer.typeName === "long") resolver._read = readNearest
    else floatUpdate.call(this, resolver, writer)
  }
}

const typeNameOf = (schema: avro.Schema): unknown =>
  typeof schema === "string"
    ? schema
    : typeof schema === "object" && schema !== null && !Array.isArray(schema)
    ? (schema as { readonly type?: unknown }).type
    : undefined

/**
 * The `typeHook` every avsc type of the package is created with (`typeOf` in `avsc.ts` installs it): the exact
 * long for `"long"` and `{ "type": "long" }` (timestamps and the other logical types on a long included: none are
 * registered), float and double readers that promote longs through it, avsc's own types for the rest.
 */
export const typeHook = (schema: avro.Schema): avro.Type | undefined => {
  switch (typeNameOf(schema)) {
    case "long":
      return new ExactLongType()
    case "double":
      return new PromotingDoubleType()
    case "float":
      return new PromotingFloatType()
    default:
      return undefined
  }
}
