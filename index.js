'use strict'

// The JavaScript face of the vhd native addon. All format work happens in Rust (core/, through
// the binding in src/); the modules in lib/ check arguments, keep each image's open/closed
// state, give every method its callback and promise forms and shape the metadata like
// vhd@0.5.0's objects.

const { version } = require('./package.json')
const { TYPE } = require('./lib/constants.js')
const { Disk, Fixed, Dynamic, Differencing, open, create } = require('./lib/disk.js')

module.exports = {
  Disk,
  Fixed,
  Dynamic,
  Differencing,
  open,
  create,
  TYPE,
  version,
}
