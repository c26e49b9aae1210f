'use strict'

// napi-rs platform naming, shared by binding.js (runtime) and scripts/install.js.
// The addon for a platform is `vhd.<triple>.node` and its prebuilt package `vhd-<triple>`.

const { readFileSync } = require('node:fs')

function isMusl() {
  // Same checks as the loaders napi-rs generates: the ldd script first, then
  // the process report (glibc processes report the glibc version they run on).
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // no readable ldd: fall through to the report
  }
  try {
    const report = process.report && process.report.getReport()
    const header = report && (typeof report === 'string' ? JSON.parse(report) : report).header
    if (header) return !header.glibcVersionRuntime
  } catch {
    // no report available
  }
  return false
}

/** napi-rs name of a platform, e.g. `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
function platformTriple(platform = process.platform, arch = process.arch) {
  switch (platform) {
    case 'linux': {
      const musl = isMusl()
      if (arch === 'arm') return musl ? 'linux-arm-musleabihf' : 'linux-arm-gnueabihf'
      return `linux-${arch}-${musl ? 'musl' : 'gnu'}`
    }
    case 'win32':
      return `win32-${arch}-msvc`
    case 'android':
      return arch === 'arm' ? 'android-arm-eabi' : `android-${arch}`
    default:
      // darwin, freebsd, openharmony, ...: napi-rs uses `${platform}-${arch}`
      return `${platform}-${arch}`
  }
}

/** File name of the addon for a triple, as `napi build --platform` names it. */
function addonFileName(triple = platformTriple()) {
  return `vhd.${triple}.node`
}

/** Name of the prebuilt per-platform npm package for a triple. */
function platformPackageName(triple = platformTriple()) {
  return `vhd-${triple}`
}

module.exports = { isMusl, platformTriple, addonFileName, platformPackageName }
