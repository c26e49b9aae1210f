'use strict'

// Constants of the format and of vhd@0.5.0's module, with its names and values.

/** 2000-01-01T00:00:00Z, the VHD epoch, in ms since the Unix epoch. */
const VHD_EPOCH_MS = 946684800000

/** Disk types, with vhd@0.5.0's names and values. */
const TYPE = Object.freeze({
  NONE: 0,
  RESERVED_DEPRECATED1: 1,
  FIXED: 2,
  DYNAMIC: 3,
  DIFF: 4,
  RESERVED_DEPRECATED2: 5,
  RESERVED_DEPRECATED3: 6,
})

module.exports = {
  VHD_EPOCH_MS,
  TYPE,
}
