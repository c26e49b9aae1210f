#!/usr/bin/env node
'use strict'

// Packs the prebuilt per-platform package of one target, napi-rs layout:
//   vhd-<triple>-<version>.tgz = package.json + README.md + vhd.<triple>.node
// The package.json is made here from vhd's own (`platformManifest`: same version, license,
// repository and engines, plus the target's os/cpu/libc), so nothing can drift between the
// main package and the platform packages; nothing under npm/ is kept in git.
//
// Usage: node scripts/pack-platform.js [--target TRIPLE] [--addon FILE] [--build] [--out-dir DIR]
//   --target TRIPLE  one of TARGETS below (default: this machine's, e.g. linux-x64-gnu)
//   --addon FILE     the addon to pack (default: vhd.<triple>.node in the repository root,
//                    built first when missing)
//   --build          build it first with `cargo build --release -p vhd-node` (with
//                    `--target <rust target>` when packing another target than this
//                    machine's: the Rust target and its linker must be installed)
//   --out-dir DIR    where the .tgz goes (default: the repository root)
// Prints the tarball's path on stdout. RELEASING.md says how a release uses it.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { buildFromSource } = require('./install.js')
const { platformTriple, addonFileName, platformPackageName, cdylibFileName } = require('./platform.js')

const ROOT = path.resolve(__dirname, '..')

/**
 * The platforms vhd publishes a prebuilt package for (the napi-rs set): napi-rs's name,
 * Rust's target triple, and npm's `os`, `cpu` and `libc` for the package. The release
 * workflow (.github/workflows/release.yml) builds exactly these (a test checks it).
 */
const TARGETS = [
  { triple: 'linux-x64-gnu', rust: 'x86_64-unknown-linux-gnu', os: 'linux', cpu: 'x64', libc: 'glibc' },
  { triple: 'linux-arm64-gnu', rust: 'aarch64-unknown-linux-gnu', os: 'linux', cpu: 'arm64', libc: 'glibc' },
  { triple: 'linux-x64-musl', rust: 'x86_64-unknown-linux-musl', os: 'linux', cpu: 'x64', libc: 'musl' },
  { triple: 'linux-arm64-musl', rust: 'aarch64-unknown-linux-musl', os: 'linux', cpu: 'arm64', libc: 'musl' },
  { triple: 'darwin-x64', rust: 'x86_64-apple-darwin', os: 'darwin', cpu: 'x64' },
  { triple: 'darwin-arm64', rust: 'aarch64-apple-darwin', os: 'darwin', cpu: 'arm64' },
  { triple: 'win32-x64-msvc', rust: 'x86_64-pc-windows-msvc', os: 'win32', cpu: 'x64' },
]

/** @param {string} triple */
function targetOf(triple) {
  const target = TARGETS.find((t) => t.triple === triple)
  if (!target) throw new Error(`no prebuilt package for ${triple}: the targets are ${TARGETS.map((t) => t.triple).join(', ')}`)
  return target
}

function mainPackageJson() {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
}

/**
 * The package.json of the prebuilt package for `target`, from vhd's own `pkg`.
 * @param {(typeof TARGETS)[number]} target
 * @param {Record<string, any>} pkg
 */
function platformManifest(target, pkg = mainPackageJson()) {
  const addon = addonFileName(target.triple)
  return {
    name: platformPackageName(target.triple),
    version: pkg.version,
    description: `The prebuilt native addon of the vhd package for ${target.triple} (${target.rust})`,
    main: addon,
    files: [addon],
    license: pkg.license,
    repository: pkg.repository,
    homepage: pkg.homepage,
    bugs: pkg.bugs,
    engines: pkg.engines,
    os: [target.os],
    cpu: [target.cpu],
    ...(target.libc ? { libc: [target.libc] } : {}),
  }
}

/**
 * The optionalDependencies the published vhd lists: every platform package, at vhd's own
 * version (scripts/release.js writes them into package.json before `npm publish`).
 * @param {Record<string, any>} pkg
 */
function optionalDependencies(pkg = mainPackageJson()) {
  return Object.fromEntries(TARGETS.map((t) => [platformPackageName(t.triple), pkg.version]))
}

function parseArgs(argv) {
  const opts = { outDir: ROOT, build: false, triple: null, addon: null }
  const value = (arg, i) => {
    const eq = arg.indexOf('=')
    if (eq >= 0) return [arg.slice(eq + 1), i]
    if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`)
    return [argv[i + 1], i + 1]
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const name = arg.split('=')[0]
    if (arg === '--build') opts.build = true
    else if (name === '--out-dir') [opts.outDir, i] = value(arg, i)
    else if (name === '--target') [opts.triple, i] = value(arg, i)
    else if (name === '--addon') [opts.addon, i] = value(arg, i)
    else throw new Error(`unknown argument: ${arg}`)
  }
  opts.outDir = path.resolve(opts.outDir)
  if (opts.addon) opts.addon = path.resolve(opts.addon)
  return opts
}

function npmCommand(args) {
  // Under `npm run`, npm_execpath is the npm CLI that runs us; use the same one.
  const execPath = process.env.npm_execpath
  if (execPath && /\.[cm]?js$/.test(execPath)) return [process.execPath, [execPath, ...args]]
  return [process.platform === 'win32' ? 'npm.cmd' : 'npm', args]
}

/** Builds the addon of `target` with cargo (cross-compiling when it is not this machine's). */
function buildAddon(target) {
  if (target.triple === platformTriple()) return buildFromSource({ root: ROOT })
  const env = { ...process.env, CARGO_BUILD_TARGET: target.rust }
  const res = spawnSync('cargo', ['build', '--release', '-p', 'vhd-node'], { cwd: ROOT, env, stdio: ['ignore', 2, 2] })
  if (res.error || res.status !== 0) throw new Error(`cargo build --target ${target.rust} failed`)
  const targetDir = require('./install.js').cargoTargetDir(ROOT)
  return path.join(targetDir, target.rust, 'release', cdylibFileName(target.os))
}

/**
 * Packs the platform package of `triple` with the addon `addon` into `outDir`; returns the
 * tarball's path.
 */
function packPlatform({ triple, addon, outDir }) {
  const target = targetOf(triple)
  const fileName = addonFileName(triple)
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), `vhd-${triple}-`))
  try {
    const manifest = platformManifest(target)
    fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
    fs.writeFileSync(
      path.join(stage, 'README.md'),
      `# \`${manifest.name}\`\n\nThe **${target.rust}** build of the native addon of ` +
        `[\`vhd\`](https://www.npmjs.com/package/vhd) ${manifest.version}. Install \`vhd\`, not ` +
        'this package: npm picks the package of your platform itself.\n',
    )
    fs.copyFileSync(addon, path.join(stage, fileName))
    fs.mkdirSync(outDir, { recursive: true })
    const [cmd, args] = npmCommand(['pack', '--json', '--pack-destination', outDir])
    const res = spawnSync(cmd, args, { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    if (res.error || res.status !== 0) {
      throw new Error(`npm pack of ${manifest.name} failed: ${res.error ? res.error.message : `exit code ${res.status}`}`)
    }
    const [info] = JSON.parse(res.stdout)
    const tarball = path.join(outDir, info.filename)
    if (!info.files.some((f) => f.path === fileName)) throw new Error(`${tarball} lacks ${fileName}`)
    return tarball
  } finally {
    fs.rmSync(stage, { recursive: true, force: true })
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2))
  const target = targetOf(opts.triple || platformTriple())
  let addon = opts.addon
  if (!addon) {
    addon = path.join(ROOT, addonFileName(target.triple))
    if (opts.build || !fs.existsSync(addon)) {
      const built = buildAddon(target)
      if (built !== addon) fs.copyFileSync(built, addon)
    }
  }
  if (!fs.existsSync(addon)) throw new Error(`${addon} does not exist`)
  process.stderr.write(`vhd: packing ${platformPackageName(target.triple)} with ${addon}\n`)
  process.stdout.write(`${packPlatform({ triple: target.triple, addon, outDir: opts.outDir })}\n`)
}

if (require.main === module) {
  try {
    main()
  } catch (err) {
    process.stderr.write(`vhd: pack:platform failed: ${err.message}\n`)
    process.exit(1)
  }
}

module.exports = { TARGETS, platformManifest, optionalDependencies, packPlatform }
