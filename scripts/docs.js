#!/usr/bin/env node
'use strict'

// `npm run docs`: builds the documentation that is generated, with every warning an error:
// - the API reference of index.d.ts, by TypeDoc (configuration: typedoc.json), into
//   docs/api-reference/ (git-ignored);
// - the crates' documentation, by `cargo doc --workspace --no-deps` with
//   RUSTDOCFLAGS=-D warnings, into target/doc/. The binding crate (vhd-node) is a cdylib with
//   no public Rust API: its documentation is its private items, so it is documented with
//   --document-private-items, where its links to private modules are the point.
//
// Options: --only typedoc|cargo (one of the two), --out DIR (TypeDoc's output folder).
// Exits with the status of the first step that fails.

const { spawnSync } = require('node:child_process')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..')

function parseArgs(argv) {
  const options = { only: null, out: null }
  for (let i = 0; i < argv.length; i += 1) {
    const [name, inline] = argv[i].split(/=(.*)/s)
    const value = () => (inline !== undefined ? inline : argv[++i])
    if (name === '--only') options.only = value()
    else if (name === '--out') options.out = value()
    else throw new Error(`docs: unknown option ${argv[i]} (--only typedoc|cargo, --out DIR)`)
  }
  if (![null, 'typedoc', 'cargo'].includes(options.only)) {
    throw new Error(`docs: --only takes typedoc or cargo, not ${options.only}`)
  }
  return options
}

/** Runs one step, its output passed through; returns its exit status. */
function run(label, command, args, env = {}) {
  console.log(`docs: ${label}`)
  const result = spawnSync(command, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } })
  if (result.error) {
    console.error(`docs: could not run ${command}: ${result.error.message}`)
    return 1
  }
  return result.status === null ? 1 : result.status
}

function typedoc(out) {
  const bin = path.join(path.dirname(require.resolve('typedoc/package.json')), 'bin', 'typedoc')
  // typedoc.json sets treatWarningsAsErrors; say it here too so that no config edit loses it.
  const args = [bin, '--options', path.join(ROOT, 'typedoc.json'), '--treatWarningsAsErrors']
  if (out) args.push('--out', path.resolve(out))
  return run('TypeDoc: index.d.ts -> ' + (out || 'docs/api-reference/'), process.execPath, args)
}

function cargoDoc() {
  const deny = { RUSTDOCFLAGS: [process.env.RUSTDOCFLAGS, '-D warnings'].filter(Boolean).join(' ') }
  return (
    run('cargo doc: the workspace crates', 'cargo', ['doc', '--workspace', '--no-deps', '--exclude', 'vhd-node'], deny) ||
    run('cargo doc: the binding (vhd-node), private items', 'cargo', ['doc', '-p', 'vhd-node', '--no-deps', '--document-private-items'], {
      RUSTDOCFLAGS: `${deny.RUSTDOCFLAGS} -A rustdoc::private-intra-doc-links`,
    })
  )
}

function main() {
  let options
  try {
    options = parseArgs(process.argv.slice(2))
  } catch (error) {
    console.error(error.message)
    return 2
  }
  const steps = []
  if (options.only !== 'cargo') steps.push(() => typedoc(options.out))
  if (options.only !== 'typedoc') steps.push(cargoDoc)
  for (const step of steps) {
    const status = step()
    if (status !== 0) return status
  }
  console.log('docs: done, no warnings')
  return 0
}

process.exitCode = main()
