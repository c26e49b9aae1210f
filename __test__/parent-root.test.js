'use strict'

// `parentRoot` (the folder that parents found through locators must lie in) reaches every
// entry point that opens a parent chain: each export of the JavaScript API and each command
// of the `vhd` CLI (`--parent-root DIR`). One table per surface: every row runs its entry
// point on a chain whose base lies outside the folder the chain's images are in, once with
// that folder as the root (refused with ERR_VHD_PARENT_OUTSIDE_ROOT, nothing written or
// left behind) and once with a root that holds the whole chain (it works). Coverage tests
// fail when an export or a command has no row, so that a new entry point cannot forget it.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { Readable } = require('node:stream')
const { pipeline } = require('node:stream/promises')
const VHD = require('..')
const ops = require('../lib/ops.js')
const { MiB, tempDir, pattern } = require('./helpers.js')

const BIN = path.join(__dirname, '..', 'bin', 'vhd.js')
const OUTSIDE_ROOT = 'ERR_VHD_PARENT_OUTSIDE_ROOT'

let tmp
before(() => {
  tmp = tempDir('vhd-parent-root-')
})
after(() => tmp.cleanup())

/**
 * `dir/outside/base.vhd` (dynamic) ← `dir/inside/mid.vhd` ← `dir/inside/child.vhd`, each
 * holding data of its own. With `parentRoot` `inside`, the chain of the child (or of mid)
 * reaches outside the root one level down; with `dir`, all of it is inside.
 */
async function makeChain() {
  const dir = fs.mkdtempSync(path.join(tmp.dir, 'chain-'))
  const inside = path.join(dir, 'inside')
  const outside = path.join(dir, 'outside')
  fs.mkdirSync(inside)
  fs.mkdirSync(outside)
  const base = path.join(outside, 'base.vhd')
  const mid = path.join(inside, 'mid.vhd')
  const child = path.join(inside, 'child.vhd')
  const fill = async (disk, offset, seed) => {
    await disk.write(pattern(4096, seed), offset)
    await disk.close()
  }
  await fill(await VHD.create(base, { type: 'dynamic', size: 4 * MiB }), 0, 1)
  await fill(await VHD.create(mid, { type: 'differencing', parent: base }), MiB, 2)
  await fill(await VHD.create(child, { type: 'differencing', parent: mid }), 2 * MiB, 3)
  return { dir, inside, outside, base, mid, child, out: (name) => path.join(inside, name) }
}

/** Every file under `dir` with its SHA-256: what a refused operation must leave as it was. */
function tree(dir) {
  const files = {}
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const file = path.join(entry.parentPath ?? entry.path, entry.name)
    files[path.relative(dir, file)] = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
  }
  return files
}

/** Opens a disk with `open`, then closes it: what a class's or `VHD.open`'s row does. */
async function openAndClose(disk) {
  await disk.open()
  await disk.close()
}

/** A check report that says the parent link could not be used (the check itself ran). */
function refusedByCheck(report) {
  assert.equal(report.corrupt, true, JSON.stringify(report))
  assert.ok(report.findings.some((f) => f.code === 'parent-unusable'), JSON.stringify(report.findings))
}

function cleanCheck(report) {
  assert.equal(report.clean, true, JSON.stringify(report.findings))
}

/**
 * The JavaScript entry points. `export` is the export of `require('vhd')` the row exercises;
 * `run(chain, parentRoot)` resolves when the entry point worked. `refused(result)` checks a
 * refusal that resolves (default: a rejection with ERR_VHD_PARENT_OUTSIDE_ROOT);
 * `worked(result, chain)` checks the success (default: nothing more than resolving).
 */
const API = [
  {
    name: 'VHD.open',
    export: 'open',
    run: async (c, parentRoot) => (await VHD.open(c.child, { parentRoot })).close(),
  },
  {
    name: 'VHD.open, then getAllocatedRanges (map)',
    export: 'open',
    run: async (c, parentRoot) => {
      const disk = await VHD.open(c.child, { parentRoot, readOnly: true })
      const ranges = await disk.getAllocatedRanges()
      await disk.close()
      return ranges
    },
    // Data at every level: the base (depth 2), mid (1) and the child (0).
    worked: (ranges) => assert.deepEqual([...new Set(ranges.map((r) => r.depth))].sort(), [0, 1, 2]),
  },
  {
    name: 'new VHD.Differencing().open()',
    export: 'Differencing',
    run: (c, parentRoot) => openAndClose(new VHD.Differencing(c.child, { parentRoot })),
  },
  {
    name: 'new VHD.Image().open()',
    export: 'Image',
    run: (c, parentRoot) => openAndClose(new VHD.Image({ path: c.child, parentRoot })),
  },
  {
    name: 'new VHD.ReadStream({ path })',
    export: 'ReadStream',
    run: async (c, parentRoot) => {
      const chunks = []
      for await (const chunk of new VHD.ReadStream({ path: c.child, parentRoot, highWaterMark: MiB })) chunks.push(chunk)
      return Buffer.concat(chunks)
    },
    worked: (bytes) => assert.ok(bytes.subarray(0, 4096).equals(pattern(4096, 1))),
  },
  {
    name: 'new VHD.WriteStream({ path })',
    export: 'WriteStream',
    run: (c, parentRoot) => pipeline(Readable.from([Buffer.alloc(512, 7)]), new VHD.WriteStream({ path: c.child, parentRoot })),
  },
  {
    name: 'VHD.create (differencing, over a named parent whose own parent is outside)',
    export: 'create',
    run: async (c, parentRoot) => {
      const disk = await VHD.create(c.out('new.vhd'), { type: 'differencing', parent: c.mid, parentRoot })
      const chain = disk.chain
      await disk.close()
      // The image returned reopens as it was made: over the named parent, with the root.
      await openAndClose(disk)
      return chain
    },
    worked: (chain, c) => assert.deepEqual(chain, [c.out('new.vhd'), c.mid, c.base]),
  },
  {
    name: 'VHD.snapshot (of a named image whose parent is outside)',
    export: 'snapshot',
    run: async (c, parentRoot) => {
      const disk = await VHD.snapshot(c.mid, c.out('snap.vhd'), { parentRoot })
      const chain = disk.chain
      await disk.close()
      await openAndClose(disk)
      return chain
    },
    worked: (chain) => assert.equal(chain.length, 3),
  },
  {
    name: 'VHD.rebase (onto a named parent whose own parent is outside)',
    export: 'rebase',
    run: (c, parentRoot) => VHD.rebase(c.child, c.mid, { parentRoot }),
  },
  {
    name: 'VHD.convert',
    export: 'convert',
    run: (c, parentRoot) => VHD.convert(c.child, c.out('flat.raw'), { to: 'raw', parentRoot }),
    worked: (report) => assert.equal(report.virtualSize, 4 * MiB),
  },
  {
    name: 'VHD.createVhdStream',
    export: 'createVhdStream',
    run: async (c, parentRoot) => {
      const stream = await VHD.createVhdStream(c.child, { type: 'dynamic', parentRoot })
      stream.resume()
      await new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject))
    },
  },
  {
    name: 'VHD.check',
    export: 'check',
    run: (c, parentRoot) => VHD.check(c.child, { parentRoot }),
    refused: refusedByCheck,
    worked: cleanCheck,
  },
  {
    name: 'VHD.check with repair',
    export: 'check',
    run: (c, parentRoot) => VHD.check(c.child, { parentRoot, repair: true }),
    refused: refusedByCheck,
    worked: cleanCheck,
  },
  {
    name: 'VHD.info',
    export: 'info',
    run: (c, parentRoot) => VHD.info(c.child, { parentRoot }),
    worked: (info) => assert.equal(info.chain.length, 3),
  },
  {
    name: 'VHD.compact',
    export: 'compact',
    run: (c, parentRoot) => VHD.compact(c.child, { parentRoot }),
  },
  {
    name: 'VHD.commit',
    export: 'commit',
    run: (c, parentRoot) => VHD.commit(c.child, { parentRoot }),
    worked: (report) => assert.equal(report.bytesCommitted, 4096),
  },
  {
    name: 'VHD.resize',
    export: 'resize',
    run: (c, parentRoot) => VHD.resize(c.child, 8 * MiB, { parentRoot }),
  },
  {
    name: 'VHD.serve (a path: the server opens the chain)',
    export: 'serve',
    run: async (c, parentRoot) => {
      // The socket beside the chain's folder, not in it (the tree must stay as it was).
      const server = await VHD.serve(c.child, { socket: `${c.dir}.sock`, parentRoot, readOnly: true })
      const uri = server.uri
      await server.close()
      return uri
    },
    worked: (uri, c) => assert.equal(uri, `nbd+unix:///?socket=${c.dir}.sock`),
  },
]

/**
 * Functions and classes of `require('vhd')` that never open a chain, and why. Any other
 * function export must have a row in API.
 */
const NOT_OPENING_A_CHAIN = {
  Disk: 'abstract: not constructible',
  Fixed: 'opens fixed images only: a differencing one is refused (ERR_VHD_WRONG_TYPE) before any parent is looked for',
  Dynamic: 'opens dynamic images only: a differencing one is refused (ERR_VHD_WRONG_TYPE) before any parent is looked for',
  Footer: 'parses and writes bytes',
  Header: 'parses and writes bytes',
  Locator: 'parses and writes bytes',
  checksum: 'computes over bytes',
  getDiskGeometry: 'computes a geometry',
  AbortError: 'an error class',
  Partition: 'not constructible: a view of a disk already open (disk.partition(index)), which opened its chain',
  NbdServer: 'not constructible: made by VHD.serve (which has its row)',
}

describe('parentRoot reaches every JavaScript entry point', () => {
  test('every function export that can open a chain has a row (lib/ops.js, lib/disk.js, streams, Image)', () => {
    const covered = new Set(API.map((row) => row.export))
    for (const [name, value] of Object.entries(VHD)) {
      if (typeof value !== 'function' || name in NOT_OPENING_A_CHAIN) continue
      assert.ok(covered.has(name), `VHD.${name} opens images: add it to the parentRoot table (or to NOT_OPENING_A_CHAIN, saying why)`)
    }
    // Every operation of lib/ops.js (they all take a path), whatever index.js exports.
    for (const [name, value] of Object.entries(ops)) {
      if (typeof value !== 'function' || name === 'AbortError' || name === 'VhdStream') continue
      assert.ok(covered.has(name), `lib/ops.js ${name} takes a path: add it to the parentRoot table`)
    }
    for (const row of API) assert.equal(typeof VHD[row.export], 'function', `${row.name}: VHD.${row.export}`)
  })

  for (const row of API) {
    test(`${row.name}: refused with a parent outside parentRoot, works with one inside`, async () => {
      const c = await makeChain()
      const before = tree(c.dir)
      let outcome
      try {
        outcome = { value: await row.run(c, c.inside) }
      } catch (error) {
        outcome = { error }
      }
      if (row.refused) {
        assert.equal(outcome.error, undefined, `${row.name} failed: ${outcome.error}`)
        row.refused(outcome.value)
      } else {
        assert.ok(outcome.error, `${row.name} used a parent outside parentRoot`)
        assert.equal(outcome.error.code, OUTSIDE_ROOT, outcome.error.stack)
      }
      // Nothing written, nothing left behind (outputs, temporary files).
      assert.deepEqual(tree(c.dir), before)

      const value = await row.run(c, c.dir)
      if (row.worked) row.worked(value, c)
    })
  }

  test('a parent named by the caller is trusted: create and snapshot over a parent outside the root work, and reopen', async () => {
    const c = await makeChain()
    const created = await VHD.create(c.out('over-base.vhd'), { type: 'differencing', parent: c.base, parentRoot: c.inside })
    assert.deepEqual(created.chain, [c.out('over-base.vhd'), c.base])
    await created.close()
    await openAndClose(created)
    const snap = await VHD.snapshot(c.base, c.out('snap-of-base.vhd'), { parentRoot: c.inside })
    await snap.close()
    await openAndClose(snap)
    // Without the named parent, the same child is refused: its parent is outside.
    await assert.rejects(VHD.open(c.out('snap-of-base.vhd'), { parentRoot: c.inside }), { code: OUTSIDE_ROOT })
    // rebase onto a named parent outside the root.
    await VHD.rebase(c.mid, c.base, { parentRoot: c.inside })
  })

  test('parentRoot is checked the same way everywhere; rebase refuses parent/parents', async () => {
    const c = await makeChain()
    const calls = [
      (parentRoot) => VHD.create(c.out('x.vhd'), { type: 'differencing', parent: c.mid, parentRoot }),
      (parentRoot) => VHD.create(c.out('y.vhd'), { type: 'dynamic', size: MiB, parentRoot }),
      (parentRoot) => VHD.snapshot(c.mid, c.out('z.vhd'), { parentRoot }),
      (parentRoot) => VHD.rebase(c.child, c.mid, { parentRoot }),
      (parentRoot) => VHD.info(c.child, { parentRoot }),
    ]
    for (const call of calls) {
      await assert.rejects(call(42), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.parentRoot/ })
      await assert.rejects(call('a\u0000b'), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.parentRoot/ })
    }
    for (const key of ['parent', 'parents']) {
      await assert.rejects(VHD.rebase(c.child, c.mid, { [key]: key === 'parent' ? c.mid : [c.mid] }), { code: 'ERR_INVALID_ARG_VALUE' })
    }
    assert.deepEqual(fs.readdirSync(c.inside).sort(), ['child.vhd', 'mid.vhd'])
  })
})

// ---------------------------------------------------------------------------------------
// The CLI: `--parent-root DIR` on every command.

function vhd(args) {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 64 * MiB })
  if (result.error) throw result.error
  return result
}

/** The commands `vhd --help` lists. */
function listedCommands() {
  const help = vhd(['--help']).stdout
  const section = help.split('Commands:\n')[1].split('\n\n')[0]
  // `help` and `completions` open no image.
  const openNone = ['help', 'completions']
  return section
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0])
    .filter((name) => name && !openNone.includes(name))
}

/**
 * One row per command: `args(chain, root)` is its command line; refused runs exit 1 with
 * the code on stderr unless `refusedStatus` says otherwise (check: 4, a broken parent link).
 * The rows place the option in each of the forms the parser takes.
 */
const CLI = [
  { command: 'info', args: (c, root) => ['info', '--parent-root', root, c.child] },
  { command: 'map', args: (c, root) => ['map', c.child, '--parent-root', root] },
  { command: 'cat', args: (c, root) => ['cat', `--parent-root=${root}`, c.child] },
  { command: 'partitions', args: (c, root) => ['partitions', '--parent-root', root, c.child] },
  { command: 'convert', args: (c, root) => ['convert', '--to', 'raw', '--parent-root', root, c.child, c.out('flat.raw')] },
  { command: 'check', args: (c, root) => ['check', '--parent-root', root, c.child], refusedStatus: 4 },
  { command: 'check', args: (c, root) => ['check', '--repair', '--parent-root', root, c.child], refusedStatus: 4 },
  { command: 'compact', args: (c, root) => ['compact', '--parent-root', root, c.child] },
  { command: 'resize', args: (c, root) => ['resize', '--parent-root', root, c.child, '8M'] },
  { command: 'resize', args: (c, root) => ['resize', '--parent-root', root, c.child, '+1M'] },
  { command: 'commit', args: (c, root) => ['commit', '--parent-root', root, c.child] },
  { command: 'rebase', args: (c, root) => ['rebase', '--parent-root', root, c.child, c.mid] },
  { command: 'snapshot', args: (c, root) => ['snapshot', '--parent-root', root, c.mid, c.out('snap.vhd')] },
  { command: 'create', args: (c, root) => ['create', '--parent', c.mid, '--parent-root', root, c.out('new.vhd')] },
  // Runs until stopped: once it serves, SIGTERM must stop it cleanly (exit 0).
  { command: 'serve', args: (c, root) => ['serve', '--socket', c.out('s.sock'), '--parent-root', root, c.child], serves: true },
]

/** Runs `vhd serve …` until it says it serves, then stops it with SIGTERM; resolves to its exit. */
function serveThenStop(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let stopped = false
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => {
      stderr += d
      // Once: a second signal ends the npm command at once (exit 143).
      if (!stopped && /serving .* on nbd\+unix:/.test(stderr)) {
        stopped = true
        child.kill('SIGTERM')
      }
    })
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

describe('--parent-root reaches every command of the CLI', () => {
  test('every command has a row, and its --help shows --parent-root DIR', () => {
    const commands = listedCommands()
    assert.ok(commands.length >= 11, commands.join(' '))
    const covered = new Set(CLI.map((row) => row.command))
    for (const command of commands) {
      assert.ok(covered.has(command), `vhd ${command}: add it to the --parent-root table`)
      const help = vhd([command, '--help'])
      assert.equal(help.status, 0, help.stderr)
      assert.match(help.stdout, /--parent-root DIR/, `vhd ${command} --help`)
      assert.match(help.stdout.split('\n')[0], /\[--parent-root DIR\]/, `vhd ${command} --help: the usage line`)
    }
    assert.match(vhd(['--help']).stdout, /--parent-root DIR/)
  })

  for (const row of CLI) {
    const line = row.args({ child: 'FILE', mid: 'PARENT', out: (n) => n }, 'DIR').join(' ')
    test(`vhd ${line}: refused with a parent outside DIR, works with one inside`, async () => {
      const c = await makeChain()
      const before = tree(c.dir)
      const refused = vhd(row.args(c, c.inside))
      if (row.refusedStatus) {
        assert.equal(refused.status, row.refusedStatus, refused.stdout + refused.stderr)
        assert.match(refused.stdout, /parent-unusable/)
      } else {
        assert.equal(refused.status, 1, refused.stdout + refused.stderr)
        assert.match(refused.stderr, new RegExp(`^vhd: ${OUTSIDE_ROOT}: `))
        assert.equal(refused.stdout, '')
      }
      assert.deepEqual(tree(c.dir), before)

      const worked = row.serves ? await serveThenStop(row.args(c, c.dir)) : vhd(row.args(c, c.dir))
      assert.equal(worked.status, 0, worked.stdout + worked.stderr)
    })
  }

  test('the option goes after the command, as with qemu-img', () => {
    const result = vhd(['--parent-root', '/', 'info', 'x.vhd'])
    assert.equal(result.status, 1)
    assert.match(result.stderr, /unknown option '--parent-root' \(a command's options go after it/)
  })
})
