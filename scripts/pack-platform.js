#!/usr/bin/env node
'use strict'

// Build the prebuilt per-platform package tarball, napi-rs layout:
//   npm/<triple>/ (package.json, README.md) + vhd.<triple>.node  ->  vhd-<triple>-<version>.tgz
//
// Usage: node scripts/pack-platform.js [--out-dir DIR] [--build]
//   --out-dir DIR  where the .tgz goes (default: the repository root)
//   --build        rebuild the addon with cargo first, even if vhd.<triple>.node exists
// The addon is the `vhd.<triple>.node` in the repository root (from `npm install` or
// `npm run build`); it is built with `cargo build --release -p vhd-node` when missing.
// Only the host platform can be packed. Prints the tarball's path on stdout.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { buildFromSource } = require('./install.js')
const { platformTriple, addonFileName } = require('./platform.js')

const ROOT = path.resolve(__dirname, '..')

function parseArgs(argv) {
  const opts = { outDir: ROOT, build: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--build') opts.build = true
    else if (arg === '--out-dir') opts.outDir = path.resolve(argv[++i] || '')
    else if (arg.startsWith('--out-dir=')) opts.outDir = path.resolve(arg.slice('--out-dir='.length))
    else throw new Error(`unknown argument: ${arg}`)
  }
  return opts
}

function npmCommand(args) {
  // Under `npm run`, npm_execpath is the npm CLI that runs us; use the same one.
  const execPath = process.env.npm_execpath
  if (execPath && /\.[cm]?js$/.test(execPath)) return [process.execPath, [execPath, ...args]]
  return ['npm', args]
}

function main() {
  const opts = parseArgs(process.argv.slice(2))
  const triple = platformTriple()
  const pkgDir = path.join(ROOT, 'npm', triple)
  if (!fs.existsSync(path.join(pkgDir, 'package.json'))) {
    throw new Error(`no platform package directory npm/${triple} for this platform`)
  }
  const fileName = addonFileName(triple)
  const localAddon = path.join(ROOT, fileName)
  if (opts.build || !fs.existsSync(localAddon)) buildFromSource({ root: ROOT })
  fs.copyFileSync(localAddon, path.join(pkgDir, fileName))
  process.stderr.write(`vhd: packing npm/${triple} with ${fileName}\n`)

  fs.mkdirSync(opts.outDir, { recursive: true })
  const [cmd, args] = npmCommand(['pack', '--json', '--pack-destination', opts.outDir])
  const res = spawnSync(cmd, args, { cwd: pkgDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (res.error || res.status !== 0) {
    throw new Error(`npm pack failed in npm/${triple}: ${res.error ? res.error.message : `exit code ${res.status}`}`)
  }
  const [info] = JSON.parse(res.stdout)
  const tarball = path.join(opts.outDir, info.filename)
  if (!info.files.some((f) => f.path === fileName)) throw new Error(`${tarball} lacks ${fileName}`)
  process.stdout.write(`${tarball}\n`)
}

try {
  main()
} catch (err) {
  process.stderr.write(`vhd: pack:platform failed: ${err.message}\n`)
  process.exit(1)
}
