'use strict'

// Native loader for the vhd addon, following the napi-rs layout. It tries, in order:
//   1. `vhd.<triple>.node` next to this file (built from source by
//      scripts/install.js or `npm run build`);
//   2. the prebuilt per-platform package `vhd-<triple>` (an optionalDependency).
// `<triple>` is the napi-rs platform name, e.g. `linux-x64-gnu` (scripts/platform.js).
// No state is kept besides Node's require cache.

const { existsSync } = require('node:fs')
const { join } = require('node:path')
const { platformTriple, addonFileName, platformPackageName, noAddonAdvice } = require('./scripts/platform.js')

/** vhd's package.json (which platform packages the release lists), or {} if unreadable. */
function ownPackageJson() {
  try {
    return require('./package.json')
  } catch {
    return {}
  }
}

function loadNative() {
  const triple = platformTriple()
  const localFile = join(__dirname, addonFileName(triple))
  const packageName = platformPackageName(triple)
  const attempts = []
  let cause

  if (existsSync(localFile)) {
    try {
      return require(localFile)
    } catch (err) {
      attempts.push(`${localFile}: ${err.message}`)
      cause = err
    }
  } else {
    attempts.push(`${localFile}: not found`)
  }

  try {
    return require(packageName)
  } catch (err) {
    const notInstalled =
      err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(`'${packageName}'`)
    attempts.push(`package ${packageName}: ${notInstalled ? 'not installed' : err.message}`)
    // Keep the most telling error: a real load failure beats "not installed".
    if (!cause || !notInstalled) cause = err
  }

  const error = new Error(
    `vhd: cannot load the native addon for ${triple}.\n` +
      `Tried:\n${attempts.map((a) => `  - ${a}`).join('\n')}\n` +
      `${noAddonAdvice(triple, ownPackageJson())} ` +
      "If npm skipped vhd's install script, allow it first (`npm install-scripts approve vhd`).",
    { cause },
  )
  error.code = 'ERR_VHD_NATIVE_NOT_FOUND'
  throw error
}

module.exports = loadNative()
