'use strict'

// Every file in examples/ runs, so that none can rot: each in a child process whose current
// and temporary folders are a fresh folder of its own, with a time limit. It must exit 0,
// print nothing on stderr, print its key line, and leave nothing behind.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { tempDir } = require('./helpers.js')

const EXAMPLES = path.join(__dirname, '..', 'examples')

/** Per example, a line its output must contain: the result it exists to show. */
const KEY_LINES = {
  'demo.js': /^All checks passed; the temporary folder was removed\.$/m,
  'create.js': /^read 11 bytes: boot sector$/m,
  'chain.js': /^base at 0 after commit: snap: version 2$/m,
  'convert.js': /^back to raw: identical$/m,
  'stream-to-server.js': /^the uploaded image: 25165824 bytes, check exit code 0, starts with "the first sector of the disk"$/m,
  'check-repair.js': /^after repair: exit code 0, 0 findings left$/m,
  'migrate-from-0.5.js': /^read back: written the 0\.5\.0 way$/m,
  'files-inside-a-vhd.js': /^\/HELLO\.TXT in partition 1: hello from inside a VHD$/m,
  'serve-a-chain.js': /^nbdinfo --size: 67108864 bytes$/m,
}

/**
 * Examples that need more than Node to make their input (sfdisk, mkfs.vfat, mcopy): skipped
 * without it (SKIPPED: on stderr), except under CI, where the run fails instead.
 */
const NEEDS_TOOLS = new Set(['files-inside-a-vhd.js'])
const toolsSkip = (() => {
  const { skipWithoutTools } = require('./partition-disks.js')
  return skipWithoutTools()
})()

/** Examples that run an NBD client (nbdinfo, Debian: libnbd-bin): skipped without it, except under CI. */
const NEEDS_NBD = new Set(['serve-a-chain.js'])
const nbdSkip = (() => {
  if (spawnSync('sh', ['-c', 'command -v nbdinfo']).status === 0 || process.env.CI) return false
  const reason = 'nbdinfo is missing (apt-get install libnbd-bin)'
  process.stderr.write(`SKIPPED: ${reason}\n`)
  return reason
})()

test('every example has a key line to check (a new example needs a row)', () => {
  const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.js'))
  assert.deepEqual(files.sort(), Object.keys(KEY_LINES).sort())
})

for (const [file, keyLine] of Object.entries(KEY_LINES)) {
  test(`examples/${file} runs and shows its result`, { skip: (NEEDS_TOOLS.has(file) && toolsSkip) || (NEEDS_NBD.has(file) && nbdSkip) }, () => {
    const scratch = tempDir('vhd-example-test-')
    try {
      const run = spawnSync(process.execPath, [path.join(EXAMPLES, file)], {
        cwd: scratch.dir,
        env: { ...process.env, TMPDIR: scratch.dir, TMP: scratch.dir, TEMP: scratch.dir },
        encoding: 'utf8',
        timeout: 60_000,
      })
      const output = `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`
      assert.equal(run.error, undefined, output)
      assert.equal(run.status, 0, output)
      assert.equal(run.stderr, '', output)
      assert.match(run.stdout, keyLine, output)
      assert.deepEqual(fs.readdirSync(scratch.dir), [], 'the example left files behind')
    } finally {
      scratch.cleanup()
    }
  })
}
