#!/usr/bin/env node
'use strict'

// `npm install` hook of the vhd package (also run on a fresh clone and by `npm rebuild vhd`).
//
// 1. If the addon already loads through binding.js (a prebuilt `vhd-<triple>` package, or a
//    `vhd.<triple>.node` next to package.json), there is nothing to do.
// 2. Otherwise build it from the shipped Rust sources with plain
//    `cargo build --release -p vhd-node` (a user's install has no devDependencies, so no napi
//    CLI) and copy the library (`libvhd_node.so`, `.dylib`, `vhd_node.dll`) to
//    `vhd.<triple>.node`.
// Step 1 is skipped, and cargo always runs (it rebuilds only what changed):
//  - in a git checkout of this repository when cargo is available, so that `npm install`
//    after a pull never keeps a stale addon;
//  - when VHD_BUILD_FROM_SOURCE=1 or `npm install --build-from-source` asks for it.
//
// Where cargo builds (`buildTarget`). A git checkout (a `.git` file or folder next to
// package.json: a clone or a worktree; an installed package never has one) builds in the
// workspace's own target directory, so that the developer's next build is incremental. An
// installed package (under node_modules) builds in a temporary directory that is removed
// afterwards, so that only `vhd.<triple>.node` (about 2 MB) stays, not ~100 MB of
// intermediate files. A target directory the user chose (CARGO_TARGET_DIR, or
// `build.target-dir` in a cargo config) is used as it is and kept.
//
// What the user sees. npm (7 and later) runs install scripts in the background and shows
// their output only when they fail, or with `--foreground-scripts`; a build of a minute in
// silence looks like a hang. So when npm hides our output and there is a terminal, the
// progress (our lines and cargo's own, with its progress bar) goes to that terminal
// (`/dev/tty`) directly; otherwise to stderr. Failures always go to stderr too, which npm
// prints. `npm install --foreground-scripts` shows everything on every system (Windows
// included, where we do not open the console ourselves); `--loglevel silent` shows nothing.
//
// About the prebuilt packages: the package.json in the repository lists no
// optionalDependencies; the release (RELEASING.md, scripts/release.js) adds one per
// platform to the package.json it publishes, together with those packages. So a clone or a
// tarball packed from it never asks the registry for a package that does not exist, and
// the messages below say whether a prebuilt package exists for this platform by looking at
// that list.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { platformTriple, addonFileName, cdylibFileName, noAddonAdvice } = require('./platform.js')

const ROOT = path.resolve(__dirname, '..')
const CRATE = 'vhd-node'

class InstallError extends Error {}

function truthy(value) {
  return value !== undefined && value !== '' && value !== '0' && value !== 'false'
}

/**
 * Where progress goes: a file descriptor, and how to let it go. The terminal itself when
 * npm runs us in the background (it would hide stderr until the end, and print it only on
 * failure); stderr otherwise (run by hand, `--foreground-scripts`, no terminal, Windows).
 * @param {NodeJS.ProcessEnv} env
 * @returns {{ fd: number, close: () => void }}
 */
function progressOutput(env = process.env) {
  const stderr = { fd: 2, close() {} }
  if (env.npm_config_loglevel === 'silent') return { fd: -1, close() {} }
  // npm hides the output of a dependency's install scripts (not of `npm run`'s).
  const installing = ['preinstall', 'install', 'postinstall'].includes(env.npm_lifecycle_event ?? '')
  const hiddenByNpm = installing && !truthy(env.npm_config_foreground_scripts)
  if (!hiddenByNpm || process.stderr.isTTY || process.platform === 'win32') return stderr
  try {
    const fd = fs.openSync('/dev/tty', 'w')
    return { fd, close: () => fs.closeSync(fd) }
  } catch {
    return stderr // no controlling terminal (CI, a service): npm shows stderr on failure
  }
}

/** Writes `vhd: message` where progress goes (see `progressOutput`). */
function logTo(output, message) {
  if (output.fd < 0) return
  try {
    fs.writeSync(output.fd, `vhd: ${message}\n`)
  } catch {
    // A terminal that went away must not fail the install.
  }
}

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

/** Cargo's target directory for the workspace at `root` (honours CARGO_TARGET_DIR and cargo configs). */
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

/** A git checkout (clone or worktree) of the repository, rather than an installed package. */
function isCheckout(root = ROOT) {
  return fs.existsSync(path.join(root, '.git'))
}

/**
 * The target directory to build in: `{ dir, temporary }`. A checkout, or a directory the
 * user chose (CARGO_TARGET_DIR, a cargo config's `build.target-dir`), is used and kept; an
 * installed package builds in a fresh temporary directory, removed afterwards (only the
 * addon is kept). TMPDIR chooses where that one goes.
 */
function buildTarget(root = ROOT, env = process.env) {
  const dir = cargoTargetDir(root, env)
  const chosen = ![root, fs.realpathSync(root)].some((r) => path.resolve(dir) === path.join(r, 'target'))
  if (isCheckout(root) || env.CARGO_TARGET_DIR || chosen) {
    return { dir, temporary: false }
  }
  return { dir: fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-build-')), temporary: true }
}

/** Copy via a temporary file and rename, so a process that mapped the old addon is unaffected. */
function copyAtomic(from, to) {
  const tmp = `${to}.${process.pid}.tmp`
  fs.copyFileSync(from, tmp)
  fs.renameSync(tmp, to)
}

function readPackageJson(root = ROOT) {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  } catch {
    return {}
  }
}

/** The error when cargo is missing: what is true for this platform, and what to do. */
function noCargoMessage(root = ROOT) {
  return (
    '`cargo` was not found on PATH, so the native addon cannot be built from source.\n' +
    noAddonAdvice(platformTriple(), readPackageJson(root))
  )
}

/**
 * `cargo build --release -p vhd-node` in `root` and copy the library to `dest`
 * (default: `vhd.<triple>.node` in `root`). Progress goes to `output` (cargo's own lines
 * too). Returns the path written.
 */
function buildFromSource({ root = ROOT, env = process.env, dest, output = progressOutput(env) } = {}) {
  const cargo = hasCargo(env)
  if (!cargo) throw new InstallError(noCargoMessage(root))
  if (!fs.existsSync(path.join(root, 'Cargo.toml'))) {
    throw new InstallError(`no Cargo.toml in ${root}: the Rust sources are missing`)
  }
  const target = buildTarget(root, env)
  try {
    const args = ['build', '--release', '-p', CRATE]
    logTo(
      output,
      `building the native addon from source with ${cargo} (cargo ${args.join(' ')}) in ` +
        `${target.dir}${target.temporary ? ' (removed afterwards)' : ''}; this takes a minute or more`,
    )
    const started = Date.now()
    const stdio = output.fd < 0 ? ['ignore', 'ignore', 'pipe'] : ['ignore', output.fd, output.fd]
    const res = spawnSync('cargo', args, {
      cwd: root,
      env: { ...env, CARGO_TARGET_DIR: target.dir },
      stdio,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    })
    if (res.error || res.status !== 0) {
      // Cargo's errors went to `output`; with a silent log level, say them here.
      const said = output.fd < 0 && res.stderr ? `\n${res.stderr.trim()}` : ''
      throw new InstallError(
        `\`cargo ${args.join(' ')}\` failed (${res.error ? res.error.message : `exit code ${res.status}`})${said}`,
      )
    }
    // With CARGO_BUILD_TARGET set, cargo puts artifacts under <target dir>/<triple>/.
    const profileDir = env.CARGO_BUILD_TARGET
      ? path.join(target.dir, env.CARGO_BUILD_TARGET, 'release')
      : path.join(target.dir, 'release')
    const built = path.join(profileDir, cdylibFileName())
    if (!fs.existsSync(built)) throw new InstallError(`cargo succeeded but ${built} does not exist`)
    const out = dest || path.join(root, addonFileName(platformTriple()))
    copyAtomic(built, out)
    logTo(output, `built ${path.relative(root, out) || out} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    return out
  } finally {
    if (target.temporary) fs.rmSync(target.dir, { recursive: true, force: true })
  }
}

function main() {
  const env = process.env
  const force = truthy(env.VHD_BUILD_FROM_SOURCE) || truthy(env.npm_config_build_from_source)
  const checkout = isCheckout() && hasCargo() !== null
  const output = progressOutput(env)
  try {
    let before = null
    if (!force && !checkout) {
      before = addonLoads()
      if (before.ok) {
        logTo(output, 'native addon found (prebuilt package or earlier build); nothing to build')
        return
      }
    }
    try {
      buildFromSource({ env, output })
    } catch (err) {
      // Say why no prebuilt addon loaded, too (e.g. a platform package that is there but broken).
      if (err instanceof InstallError && before) err.message += `\n\n${before.message}`
      throw err
    }
    const after = addonLoads()
    if (!after.ok) throw new InstallError(`the addon was built but does not load:\n${after.message}`)
  } finally {
    output.close()
  }
}

if (require.main === module) {
  try {
    main()
  } catch (err) {
    if (!(err instanceof InstallError)) throw err
    // stderr, always: npm prints it when the install fails.
    process.stderr.write(`vhd: install failed: ${err.message}\n`)
    process.exit(1)
  }
}

module.exports = {
  addonLoads,
  buildFromSource,
  buildTarget,
  cargoTargetDir,
  cdylibFileName,
  hasCargo,
  isCheckout,
  noCargoMessage,
  progressOutput,
}
