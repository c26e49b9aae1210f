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

/** File name of the library `cargo build -p vhd-node` makes on `platform`. */
function cdylibFileName(platform = process.platform) {
  if (platform === 'win32') return 'vhd_node.dll'
  if (platform === 'darwin') return 'libvhd_node.dylib'
  return 'libvhd_node.so'
}

/**
 * What to do when no addon loads (binding.js) or none can be built (scripts/install.js),
 * true to what exists: the release adds one optionalDependency per published platform
 * package to the package.json it publishes (RELEASING.md), so a platform package is
 * published exactly when our own package.json lists it.
 * @param {string} triple
 * @param {{ optionalDependencies?: Record<string, string> }} pkg vhd's package.json
 */
function noAddonAdvice(triple, pkg) {
  const name = platformPackageName(triple)
  const rust = 'install Rust from https://rustup.rs (then open a new terminal, so that `cargo` is on PATH) and run `npm rebuild vhd`'
  if (pkg.optionalDependencies && name in pkg.optionalDependencies) {
    return (
      `The prebuilt package ${name} was not installed (npm skips optional dependencies with ` +
      `\`--omit=optional\`, and a lockfile made on another platform may lack it): reinstall vhd ` +
      `without \`--omit=optional\`, or ${rust} to build the addon from source.`
    )
  }
  return (
    `No prebuilt package (${name}) is published for ${triple} yet, so the ` +
    `addon must be built from source: ${rust}.`
  )
}

module.exports = { isMusl, platformTriple, addonFileName, platformPackageName, cdylibFileName, noAddonAdvice }
