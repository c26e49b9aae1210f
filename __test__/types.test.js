'use strict'

// The types, checked on every `npm test`:
// - __test__/types.test-d.ts compiled against index.d.ts (the published types work);
// - lib/ and index.js type-checked (tsc --checkJs, tsconfig.json) against binding.d.ts, the
//   native layer's declarations as napi build generates them: a native signature that lib/
//   does not follow fails;
// - index.d.ts compared with what index.js really exports, name for name and, for each
//   class, member for member (static and instance), both ways. Names rather than a tsc
//   check of index.js against index.d.ts: the types tsc infers for untyped JavaScript are
//   loose (a parameter without JSDoc is `any`), so such a check would pass most drift; a
//   missing or extra export or member is what drifts, and the signatures themselves are
//   exercised by types.test-d.ts.

const { test } = require('node:test')
const assert = require('node:assert')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { Readable, Writable } = require('node:stream')

const root = path.join(__dirname, '..')
const tsc = require.resolve('typescript/bin/tsc')

test('index.d.ts type-checks (tsc --strict)', () => {
  const result = spawnSync(
    process.execPath,
    [
      tsc, '--noEmit', '--strict', '--target', 'es2020', '--module', 'commonjs',
      '--moduleResolution', 'node', '--types', 'node', path.join('__test__', 'types.test-d.ts'),
    ],
    { cwd: root, encoding: 'utf8' },
  )
  assert.strictEqual(result.status, 0, `tsc failed:\n${result.stdout}${result.stderr}`)
})

test('lib/ and index.js type-check against binding.d.ts (tsc --checkJs)', () => {
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, encoding: 'utf8' })
  assert.strictEqual(result.status, 0, `tsc --checkJs failed:\n${result.stdout}${result.stderr}`)
})

/**
 * The names index.d.ts declares, as the TypeScript compiler reads them: every exported value
 * (not types), and for each one that can be constructed, its static members and the members
 * of its instances that index.d.ts itself declares (inherited ones, such as Readable's, are
 * Node's business).
 */
function declaredApi() {
  const ts = require('typescript')
  const file = path.join(root, 'index.d.ts')
  const program = ts.createProgram([file], { strict: true, types: ['node'], noEmit: true })
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(file)
  const ours = (symbol) => (symbol.declarations ?? []).some((d) => d.getSourceFile() === source)
  // Symbol-keyed members (`[Symbol.asyncDispose]`, named `__@…` here) are left out, as at runtime.
  const names = (symbols) => new Set(symbols.filter(ours).map((s) => s.getName()).filter((n) => !n.startsWith('__@')))
  const api = new Map()
  for (const symbol of checker.getExportsOfModule(checker.getSymbolAtLocation(source))) {
    if (!(symbol.flags & ts.SymbolFlags.Value)) continue
    const type = checker.getTypeOfSymbolAtLocation(symbol, source)
    const construct = type.getConstructSignatures()
    api.set(symbol.getName(), construct.length === 0 ? null : {
      statics: new Set([...names(type.getProperties())].filter((n) => n !== 'prototype')),
      instance: names(construct[0].getReturnType().getProperties()),
    })
  }
  return api
}

/** Node's classes ours extend: their members (and their instances' own fields) are not ours. */
const BASES = [Object, Error, Readable, Writable]

/**
 * String-named own properties of `object`. Symbols and `_`-names are left out: internals,
 * and the methods Node's streams call (`_read`, `_write`, `_destroy`…), which @types/node
 * declares on Readable and Writable.
 */
const ownNames = (object) => Object.getOwnPropertyNames(object).filter((name) => !name.startsWith('_'))

/** The members our code gives an instance: its prototype chain up to Node's, and its own fields. */
function runtimeInstance(Class, instance) {
  const names = new Set()
  for (let proto = Class.prototype; proto && !BASES.some((B) => B.prototype === proto); proto = Object.getPrototypeOf(proto)) {
    for (const name of ownNames(proto)) if (name !== 'constructor') names.add(name)
  }
  if (instance) {
    const base = BASES.find((B) => instance instanceof B && B !== Object && B !== Error) ?? (instance instanceof Error ? Error : Object)
    const baseFields = new Set(ownNames(base === Object ? {} : base === Error ? new Error('x') : new base()))
    for (const name of ownNames(instance)) if (!baseFields.has(name)) names.add(name)
  }
  return names
}

/** An instance of each constructible export, made without touching a file, for its own fields. */
function sampleInstances(VHD) {
  const disk = new VHD.Fixed(path.join(root, 'no-such.vhd'))
  const quiet = (stream) => stream.on('error', () => {})
  return {
    Fixed: disk,
    Dynamic: new VHD.Dynamic('x.vhd'),
    Differencing: new VHD.Differencing('x.vhd'),
    Image: new VHD.Image({ path: 'x.vhd' }),
    ReadStream: quiet(new VHD.ReadStream({ image: disk })),
    WriteStream: quiet(new VHD.WriteStream({ image: disk })),
    // As `parse` leaves them: it sets what a fresh one lacks (`calculatedChecksum`).
    Footer: VHD.Footer.parse(new VHD.Footer().write()),
    Header: VHD.Header.parse(new VHD.Header().write()),
    Locator: new VHD.Locator(),
    AbortError: new VHD.AbortError(),
    // Made by disk.partition(index) only; its fields are symbols, so a bare one has them all.
    Partition: Object.create(VHD.Partition.prototype),
    // Made by VHD.serve only; its fields are symbols, so a bare one has them all.
    NbdServer: Object.create(VHD.NbdServer.prototype),
  }
}

/** What only one side has; both lists empty when the two sets are the same. */
function difference(declared, runtime) {
  return {
    declaredOnly: [...declared].filter((n) => !runtime.has(n)).sort(),
    runtimeOnly: [...runtime].filter((n) => !declared.has(n)).sort(),
  }
}
const SAME = { declaredOnly: [], runtimeOnly: [] }

test('index.d.ts declares exactly what index.js exports, member for member', () => {
  const VHD = require('..')
  const declared = declaredApi()
  assert.ok(declared.size > 40 && declared.has('Image'), 'index.d.ts was read')
  assert.deepEqual(difference(new Set(declared.keys()), new Set(Object.keys(VHD))), SAME, 'exported names')
  const samples = sampleInstances(VHD)
  for (const [name, members] of declared) {
    if (members === null) continue // a function or a constant: its name is all there is to compare
    const Class = VHD[name]
    const statics = new Set(ownNames(Class).filter((n) => !['length', 'name', 'prototype'].includes(n)))
    assert.deepEqual(difference(members.statics, statics), SAME, `${name}: static members`)
    assert.ok(name in samples || name === 'Disk', `${name}: no sample instance (add one to sampleInstances)`)
    assert.deepEqual(difference(members.instance, runtimeInstance(Class, samples[name])), SAME, `${name}: instance members`)
  }
})

/** The string literals of the union type `name` of index.d.ts, as the TypeScript compiler reads it. */
function declaredUnion(name) {
  const ts = require('typescript')
  const file = path.join(root, 'index.d.ts')
  const program = ts.createProgram([file], { strict: true, types: ['node'], noEmit: true })
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(file)
  const symbol = checker.getExportsOfModule(checker.getSymbolAtLocation(source)).find((s) => s.getName() === name)
  assert.ok(symbol, `index.d.ts exports no ${name}`)
  const type = checker.getDeclaredTypeOfSymbol(symbol)
  return new Set((type.isUnion() ? type.types : [type]).map((t) => t.value))
}

/** Every file under `dir` (relative to the root) whose name ends with `ext`. */
function sources(dir, ext) {
  const fs = require('node:fs')
  return fs
    .readdirSync(path.join(root, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => fs.readFileSync(path.join(e.parentPath ?? e.path, e.name), 'utf8'))
}

/**
 * The codes the package can produce, from their sources of truth, so that a code added
 * there (a new vhd_core::Error variant's `code()`, a Failure in src/, a code lib/ throws)
 * fails this test until index.d.ts lists it:
 * - every quoted `ERR_…` string of the native layer (src/, core/src/);
 * - the OS error names vhd_core::Error::os_code gives (`=> "ENOENT"`, core/src/error.rs);
 * - every quoted `ERR_…`/`ABORT_ERR` string of lib/, index.js, binding.js.
 * Codes only compared there, never given to an error, are listed in NOT_THROWN.
 */
function producedCodes() {
  const codes = new Set()
  const add = (text, re) => {
    for (const m of text.matchAll(re)) codes.add(m[1])
  }
  for (const text of [...sources('src', '.rs'), ...sources('core/src', '.rs')]) add(text, /"(ERR_[A-Z0-9_]+)"/g)
  // The OS error names (`K::NotFound => "ENOENT"`): vhd_core::Error::os_code's table.
  add(require('node:fs').readFileSync(path.join(root, 'core', 'src', 'error.rs'), 'utf8'), /=> "(E[A-Z0-9]+)"/g)
  for (const text of [...sources('lib', '.js'), ...['index.js', 'binding.js'].map((f) => require('node:fs').readFileSync(path.join(root, f), 'utf8'))]) {
    add(text, /['"`]((?:ERR_[A-Z0-9_]+)|ABORT_ERR)['"`]/g)
  }
  for (const code of NOT_THROWN) codes.delete(code)
  return codes
}

/** Codes that appear in the sources without being any error's code (none today). */
const NOT_THROWN = new Set([])

test('ErrorCode lists exactly the codes the native layer and lib/ can produce', () => {
  const declared = declaredUnion('ErrorCode')
  const produced = producedCodes()
  assert.ok(produced.has('ERR_VHD_CLOSED') && produced.has('ENOENT') && produced.has('ABORT_ERR'), 'the sources were read')
  assert.deepEqual(difference(declared, produced), SAME)
})
