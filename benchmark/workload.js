'use strict'

// The clock and the access patterns the benchmark's scenarios share (benchmark/index.js and
// benchmark/partitions.js): the same random offsets and the same queue depth mean the same
// work for every reader compared.

/** A monotonic clock reading, and the seconds since one. */
const now = () => process.hrtime.bigint()
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9

/** Offsets are multiples of this: the 4 KiB of a random read. */
const ALIGN = 4 * 1024

/** Deterministic pseudo-random 4 KiB-aligned offsets in [0, size) (xorshift32 from `seed`). */
function randomOffsets(count, size, seed) {
  let x = seed >>> 0 || 1
  const slots = Math.floor(size / ALIGN)
  const out = new Array(count)
  for (let i = 0; i < count; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = (x % slots) * ALIGN
  }
  return out
}

/** Runs `op(offset)` for every offset with `depth` operations in flight. */
async function atDepth(offsets, depth, op) {
  let next = 0
  const worker = async () => {
    while (next < offsets.length) await op(offsets[next++])
  }
  await Promise.all(Array.from({ length: Math.min(depth, offsets.length) }, worker))
}

module.exports = { now, seconds, randomOffsets, atDepth }
