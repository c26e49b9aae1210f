#!/usr/bin/env node
'use strict'

// Steps of the release (RELEASING.md) that change the package before `npm publish`; run by
// .github/workflows/release.yml on a fresh checkout, never needed on a developer's clone.
//
//   node scripts/release.js check-version TAG
//     fails unless TAG is `v<version>` of package.json (and of Cargo.toml's workspace).
//   node scripts/release.js add-optional-dependencies
//     lists every prebuilt platform package (scripts/pack-platform.js TARGETS) at this
//     version in package.json's optionalDependencies. The package.json in git lists none,
//     so that no install asks the registry for a package that is not published (yet); the
//     published one lists them all, published just before it.

const fs = require('node:fs')
const path = require('node:path')
const { optionalDependencies } = require('./pack-platform.js')

const ROOT = path.resolve(__dirname, '..')
const PACKAGE_JSON = path.join(ROOT, 'package.json')

function readPackage() {
  return JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8'))
}

function checkVersion(tag) {
  const pkg = readPackage()
  const cargo = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8')
  const cargoVersion = /\[workspace\.package\][^[]*?\nversion\s*=\s*"([^"]+)"/.exec(cargo)?.[1]
  if (tag !== `v${pkg.version}`) throw new Error(`the tag ${tag} is not v${pkg.version} (package.json)`)
  if (cargoVersion !== pkg.version) {
    throw new Error(`Cargo.toml's workspace version ${cargoVersion} is not package.json's ${pkg.version}`)
  }
}

function addOptionalDependencies() {
  const pkg = readPackage()
  pkg.optionalDependencies = { ...pkg.optionalDependencies, ...optionalDependencies(pkg) }
  fs.writeFileSync(PACKAGE_JSON, `${JSON.stringify(pkg, null, 2)}\n`)
  process.stdout.write(`${JSON.stringify(pkg.optionalDependencies, null, 2)}\n`)
}

function main([command, ...args]) {
  if (command === 'check-version' && args.length === 1) return checkVersion(args[0])
  if (command === 'add-optional-dependencies' && args.length === 0) return addOptionalDependencies()
  throw new Error('usage: release.js check-version TAG | add-optional-dependencies')
}

try {
  main(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`vhd: release: ${err.message}\n`)
  process.exit(1)
}
