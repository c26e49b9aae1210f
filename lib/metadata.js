'use strict'

// The parents of an open differencing image as nested descriptions. (The footer and header
// come from the native side in their one form: lib/structures.js makes them a `Footer` and
// a `Header`.)

const { Buffer } = require('node:buffer')

/** The flat native list of parents (nearest first) as nested descriptions. */
function shapeParent(parents, index = 0) {
  if (index >= parents.length) return null
  const p = parents[index]
  return {
    path: p.path,
    type: p.diskType ?? null,
    size: p.size,
    uuid: p.uniqueId ? Buffer.from(p.uniqueId) : null,
    raw: p.raw,
    parent: shapeParent(parents, index + 1),
  }
}

module.exports = {
  shapeParent,
}
