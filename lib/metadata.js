'use strict'

// The native metadata shaped like vhd@0.5.0's Footer, Header and Locator objects.

const { Buffer } = require('node:buffer')
const { VHD_EPOCH_MS } = require('./constants.js')


function versionParts(value) {
  return { major: value >>> 16, minor: value & 0xffff }
}

/** Bytes up to the first NUL, as ASCII (0.5.0 keeps trailing spaces: 'win '). */
function asciiField(bytes) {
  const end = bytes.indexOf(0)
  return bytes.toString('ascii', 0, end === -1 ? bytes.length : end)
}

function shapeFooter(f) {
  return {
    signature: f.cookie,
    features: f.features,
    formatVersion: versionParts(f.formatVersion),
    dataOffset: BigInt(f.dataOffset),
    timestamp: f.timestamp * 1000 + VHD_EPOCH_MS,
    creatorApplication: asciiField(f.creatorApplication),
    creatorVersion: versionParts(f.creatorVersion),
    creatorHostOS: f.creatorHostOs,
    originalSize: BigInt(f.originalSize),
    currentSize: BigInt(f.currentSize),
    diskGeometry: { cylinders: f.cylinders, heads: f.heads, sectors: f.sectorsPerTrack },
    diskType: f.diskType,
    checksum: f.checksum,
    uuid: Buffer.from(f.uniqueId),
    savedState: f.savedState,
    reserved: Buffer.from(f.reserved),
  }
}

function shapeHeader(h) {
  return {
    signature: h.cookie,
    dataOffset: BigInt(h.dataOffset),
    tableOffset: BigInt(h.tableOffset),
    headerVersion: versionParts(h.headerVersion),
    maxTableEntries: h.maxTableEntries,
    // vhd@0.5.0 calls the block size "sectorSize".
    sectorSize: h.blockSize,
    checksum: h.checksum,
    parentId: Buffer.from(h.parentUniqueId),
    parentTimestamp: h.parentTimestamp * 1000 + VHD_EPOCH_MS,
    reserved1: h.reserved1,
    parentName: h.parentName,
    parentLocators: h.parentLocators.map((l) => ({
      platformCode: l.platformCode,
      dataSpace: l.platformDataSpace,
      dataLength: l.platformDataLength,
      reserved: l.reserved,
      dataOffset: BigInt(l.platformDataOffset),
      // The path the entry holds, decoded (not a 0.5.0 field).
      text: l.text ?? null,
    })),
    reserved2: Buffer.from(h.reserved2),
  }
}

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
  shapeFooter,
  shapeHeader,
  shapeParent,
}
