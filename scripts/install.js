#!/usr/bin/env node
'use strict'

// `npm install` hook of the vhd package (also run on a fresh clone and by `npm rebuild vhd`).
//
// 1. If the addon already loads through binding.js (a prebuilt `vhd-<triple>` package, or a
//    `vhd.<triple>.node` next to package.json), there is nothing to do.
// 2. Otherwise build it from the shipped Rust sources with plain
//    `cargo build --release -p vhd-node` (a user's install has no devDependencies, so no napi
//    CLI) and copy `<target dir>/release/libvhd_node.so` to `vhd.<triple>.node`.
//    `CARGO_TARGET_DIR` (and any cargo config) is honoured through `cargo metadata`.
// Step 1 is skipped, and cargo always runs (it rebuilds only what changed):
//  - in a git checkout of this repository when cargo is available, so that `npm install`
//    after a pull never keeps a stale addon;
//  - when VHD_BUILD_FROM_SOURCE=1 or `npm install --build-from-source` asks for it.
//
// About the optionalDependency `vhd-linux-x64-gnu`: npm 11 silently skips an optional
// dependency that the registry does not have (404), so `npm install` works whether or not the
// platform package was published. `npm ci` however refuses a package-lock.json that does not
// list every dependency of package.json ("Missing: vhd-linux-x64-gnu@ from lock file"), and
// `npm install` never writes an entry for a package it could not fetch. So our
// package-lock.json carries a hand-added entry for it, marked `"optional": true` with its
// os/cpu/libc: npm ci and npm install then try it, log "reify failed optional dependency"
// and go on, and keep the entry. If you regenerate the lockfile from scratch, add it back
// (the `node_modules/vhd-linux-x64-gnu` entry, as `napi prepublish` lockfiles have it).

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { platformTriple, addonFileName, platformPackageName } = require('./platform.js')

const ROOT = path.resolve(__dirname, '..')
const CRATE = 'vhd-node'
const LIB_NAME = 'vhd_node'

function log(message) {
  process.stderr.write(`vhd: ${message}\n`)
}

class InstallError extends Error {}

/** Does binding.js load in a fresh Node process? Returns { ok, message }. */
function addonLoads(root = ROOT) {
  const script =
    'try { require(process.argv[1]) } catch (e) { process.stderr.write(e.message); process.exit(1) }'
  const res = spawnSync(process.execPath, ['-e', script, path.join(root, 'binding.js')], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  return { ok: res.status === 0, message: (res.stderr || '').trim() }
}

function hasCargo(env = process.env) {
  const res = spawnSync('cargo', ['--version'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] })
  return !res.error && res.status === 0 ? res.stdout.trim() : null
}

/** Cargo's target directory for the workspace at `root` (honours CARGO_TARGET_DIR). */
function cargoTargetDir(root = ROOT, env = process.env) {
  const res = spawnSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], {
    cwd: root,
    env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (!res.error && res.status === 0) {
    try {
      const dir = JSON.parse(res.stdout).target_directory
      if (dir) return dir
    } catch {
      // fall through to the environment
    }
  }
  return env.CARGO_TARGET_DIR ? path.resolve(root, env.CARGO_TARGET_DIR) : path.join(root, 'target')
}

function cdylibFileName(platform = process.platform) {
  if (platform === 'win32') return `${LIB_NAME}.dll`
  if (platform === 'darwin') return `lib${LIB_NAME}.dylib`
  return `lib${LIB_NAME}.so`
}

/** Copy via a temporary file and rename, so a process that mapped the old addon is unaffected. */
function copyAtomic(from, to) {
  const tmp = `${to}.${process.pid}.tmp`
  fs.copyFileSync(from, tmp)
  fs.renameSync(tmp, to)
}

/**
 * `cargo build --release -p vhd-node` in `root` and copy the library to `dest`
 * (default: `vhd.<triple>.node` in `root`). Returns the path written.
 */
function buildFromSource({ root = ROOT, env = process.env, dest } = {}) {
  const cargo = hasCargo(env)
  if (!cargo) {
    throw new InstallError(
      '`cargo` was not found on PATH, so the addon cannot be built from source.\n' +
        'Install Rust from https://rustup.rs and run `npm rebuild vhd`, or install vhd on a ' +
        `platform that has a prebuilt ${platformPackageName()} package.`,
    )
  }
  if (!fs.existsSync(path.join(root, 'Cargo.toml'))) {
    throw new InstallError(`no Cargo.toml in ${root}: the Rust sources are missing`)
  }
  const targetDir = cargoTargetDir(root, env)
  const args = ['build', '--release', '-p', CRATE]
  log(`building the native addon from source with ${cargo} (cargo ${args.join(' ')}); this can take a few minutes`)
  const started = Date.now()
  const res = spawnSync('cargo', args, { cwd: root, env, stdio: ['ignore', 2, 2] })
  if (res.error || res.status !== 0) {
    throw new InstallError(
      `\`cargo ${args.join(' ')}\` failed (${res.error ? res.error.message : `exit code ${res.status}`})`,
    )
  }
  // With CARGO_BUILD_TARGET set, cargo puts artifacts under <target dir>/<triple>/.
  const profileDir = env.CARGO_BUILD_TARGET
    ? path.join(targetDir, env.CARGO_BUILD_TARGET, 'release')
    : path.join(targetDir, 'release')
  const built = path.join(profileDir, cdylibFileName())
  if (!fs.existsSync(built)) throw new InstallError(`cargo succeeded but ${built} does not exist`)
  const out = dest || path.join(root, addonFileName(platformTriple()))
  copyAtomic(built, out)
  log(`built ${path.relative(root, out) || out} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return out
}

function truthy(value) {
  return value !== undefined && value !== '' && value !== '0' && value !== 'false'
}

function main() {
  const force = truthy(process.env.VHD_BUILD_FROM_SOURCE) || truthy(process.env.npm_config_build_from_source)
  const checkout = fs.existsSync(path.join(ROOT, '.git')) && hasCargo() !== null
  let before = null
  if (!force && !checkout) {
    before = addonLoads()
    if (before.ok) {
      log('native addon found (prebuilt package or earlier build); nothing to build')
      return
    }
  }
  try {
    buildFromSource()
  } catch (err) {
    // Say why no prebuilt addon loaded, too (e.g. a platform package that is there but broken).
    if (err instanceof InstallError && before) err.message += `\n\n${before.message}`
    throw err
  }
  const after = addonLoads()
  if (!after.ok) throw new InstallError(`the addon was built but does not load:\n${after.message}`)
}

if (require.main === module) {
  try {
    main()
  } catch (err) {
    if (!(err instanceof InstallError)) throw err
    log(`install failed: ${err.message}`)
    process.exit(1)
  }
}

module.exports = { addonLoads, buildFromSource, cargoTargetDir, cdylibFileName, hasCargo }
