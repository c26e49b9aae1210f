// The package works from ES modules as well as from CommonJS: `import VHD from 'vhd'` is the
// CommonJS object, and every export is also a named import. The imports run in a scratch
// project whose node_modules/vhd links to this repository, so they resolve the package by
// its name, as a user's program does.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

const program = `
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import VHD, * as named from 'vhd'
import { Dynamic, Fixed, Differencing, Image, Footer, ReadStream, create, open, TYPE } from 'vhd'

const cjs = createRequire(import.meta.url)('vhd')
assert.equal(VHD, cjs, 'the default import is the CommonJS module')
for (const key of Object.keys(cjs)) assert.equal(named[key], cjs[key], 'named import ' + key)
assert.equal(Dynamic, cjs.Dynamic)
assert.equal(Fixed, cjs.Fixed)
assert.equal(Differencing, cjs.Differencing)
assert.equal(Image, cjs.Image)
assert.equal(Footer, cjs.Footer)
assert.equal(ReadStream, cjs.ReadStream)
assert.equal(TYPE.DYNAMIC, 3)

const file = join(process.argv[2], 'esm.vhd')
const disk = await create(file, { type: 'dynamic', size: 4 * 1024 * 1024 })
assert.ok(disk instanceof Dynamic)
await disk.write(Buffer.from('from an ES module'), 12345)
await disk.close()
const again = await open(file, { readOnly: true })
const { buffer } = await again.read(12345, 17)
assert.equal(buffer.toString(), 'from an ES module')
await again.close()
const image = new Image({ path: file, flags: 'r' })
await image.open()
assert.equal(image.type, TYPE.DYNAMIC)
await image.close()
console.log(JSON.stringify(Object.keys(named).sort()))
`

test('import VHD from "vhd" and named imports, in an ES module', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vhd-esm-'))
  try {
    mkdirSync(join(dir, 'node_modules'))
    symlinkSync(root, join(dir, 'node_modules', 'vhd'), 'dir')
    writeFileSync(join(dir, 'program.mjs'), program)
    const result = spawnSync(process.execPath, [join(dir, 'program.mjs'), dir], { encoding: 'utf8' })
    assert.equal(result.status, 0, result.stderr)
    const names = JSON.parse(result.stdout)
    for (const name of ['default', 'Fixed', 'Dynamic', 'Differencing', 'Image', 'Footer', 'Header', 'Locator', 'ReadStream', 'WriteStream', 'open', 'create', 'checksum', 'TYPE']) {
      assert.ok(names.includes(name), `${name} is importable`)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
