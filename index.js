'use strict'

// The JavaScript face of the vhd native addon. All format work happens in Rust (core/, through
// the binding in src/); the modules in lib/ check arguments, keep each image's open/closed
// state, give every method its callback and promise forms and shape the metadata like
// vhd@0.5.0's objects.

const { version } = require('./package.json')
const { TYPE } = require('./lib/constants.js')
const { Disk, Fixed, Dynamic, Differencing, open, create } = require('./lib/disk.js')
// vhd@0.5.0's structure classes, helpers and constants (lib/structures.js, lib/constants.js).
const { Footer, Header, Locator, checksum, getDiskGeometry, setCreatorDefaults } = require('./lib/structures.js')
const {
  PLATFORM, FEATURES, SECTOR, EPOCH, MIN_SIZE, BLOCK_SIZE, SECTOR_SIZE, TABLE_ENTRY_SIZE,
  HEADER_SIZE, FOOTER_SIZE, NULL_OFFSET, MAX_DYNAMIC_SIZE, VERSION, ACCESS, ATTACH, COMPACT,
  CREATE, DEPENDENCY, DETACH, EXPAND, GETINFO, MERGE, MIRROR, OPEN, RESIZE, SETINFO, STORAGE,
  VENDOR, CREATOR_APPLICATION, CREATOR_VERSION,
} = require('./lib/constants.js')
// vhd@0.5.0's image class and streams (lib/image.js, lib/streams.js).
const { Image } = require('./lib/image.js')
const { ReadStream, WriteStream } = require('./lib/streams.js')
// Partition tables, partition views, and the block-device and file-disk views (lib/partition.js
// gives every disk getPartitions, partition, toBlockDevice and toFileDisk).
const { Partition } = require('./lib/partition.js')
// The maintenance operations (lib/ops.js).
const {
  AbortError, convert, createVhdStream, check, compact, commit, resize, rebase, snapshot, info,
} = require('./lib/ops.js')
// NBD: serving an image or a chain to NBD clients (lib/serve.js).
const { serve, NbdServer } = require('./lib/serve.js')

module.exports = {
  Disk,
  Fixed,
  Dynamic,
  Differencing,
  open,
  create,
  TYPE,
  version,
  // vhd@0.5.0's structures, helpers and constants.
  Footer,
  Header,
  Locator,
  checksum,
  getDiskGeometry,
  PLATFORM, FEATURES, SECTOR, EPOCH, MIN_SIZE, BLOCK_SIZE, SECTOR_SIZE, TABLE_ENTRY_SIZE,
  HEADER_SIZE, FOOTER_SIZE, NULL_OFFSET, MAX_DYNAMIC_SIZE, VERSION, ACCESS, ATTACH, COMPACT,
  CREATE, DEPENDENCY, DETACH, EXPAND, GETINFO, MERGE, MIRROR, OPEN, RESIZE, SETINFO, STORAGE,
  VENDOR, CREATOR_APPLICATION, CREATOR_VERSION,
  // vhd@0.5.0's image class and streams.
  Image,
  ReadStream,
  WriteStream,
  Partition,
  // The maintenance operations.
  convert,
  createVhdStream,
  check,
  compact,
  commit,
  resize,
  rebase,
  snapshot,
  info,
  AbortError,
  // NBD.
  serve,
  NbdServer,
}

// `new VHD.Footer()` takes VHD.CREATOR_APPLICATION and VHD.CREATOR_VERSION as they are then,
// as in 0.5.0 (both stay writable).
setCreatorDefaults(module.exports)
