/**
 * Tombstones: a message with a key and a null value, which deletes the key in compacted topics and in record
 * consumers.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export const TypeId: unique symbol = Symbol.for("@deimos/core/Tombstone")

/**
 * @since 0.1.0
 */
export interface Tombstone<K = unknown> {
  readonly [TypeId]: typeof TypeId
  readonly _tag: "Tombstone"
  readonly key: K
}

/**
 * A tombstone for `key`. Publishing it sends the encoded key with a null value.
 *
 * @since 0.1.0
 */
export const make = <K>(key: K): Tombstone<K> => ({ [TypeId]: TypeId, _tag: "Tombstone", key })

/**
 * @since 0.1.0
 */
export const isTombstone = (u: unknown): u is Tombstone => typeof u === "object" && u !== null && TypeId in u
