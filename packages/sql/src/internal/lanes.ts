/**
 * The lane of an outbox row: FNV-1a (32 bits) of its partition key (UTF-8), else of its key, modulo the lane count;
 * a message with neither goes to any lane (its order matters to nobody). Any stable hash keeps per-key order; this
 * one is short and has no dependency.
 */
export const laneOf = (partitionKey: string | null, key: Uint8Array | null, lanes: number): number => {
  const bytes = partitionKey !== null ? Buffer.from(partitionKey, "utf8") : key
  if (bytes === null) return Math.floor(Math.random() * lanes)
  let hash = 0x811c9dc5
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i]
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % lanes
}
