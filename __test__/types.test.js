'use strict'

// Compiles __test__/types.test-d.ts against index.d.ts with the TypeScript compiler, so that
// the published types are checked on every `npm test`.

const { test } = require('node:test')
const assert = require('node:assert')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')

test('index.d.ts type-checks (tsc --strict)', () => {
  const tsc = require.resolve('typescript/bin/tsc')
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
