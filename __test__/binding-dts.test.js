'use strict'

// binding.d.ts, committed, is what `napi build --dts` generates for the current Rust sources
// (`npm run build` writes it): the declarations lib/ is type-checked against. A native
// signature or object changed without regenerating it fails here.
//
// `npm install` builds the addon with plain cargo (scripts/install.js), which generates no
// declarations, so this test generates them itself, as `napi build` does but without
// compiling: napi-derive writes each crate's type definitions to NAPI_TYPE_DEF_TMP_FOLDER
// while it expands the macros, so a `cargo check` of the binding crate is enough (a few
// seconds once its dependencies are checked), and @napi-rs/cli's own generateTypeDef turns
// them into the .d.ts text.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { generateTypeDef } = require('@napi-rs/cli')
const { tempDir } = require('./helpers.js')

const root = path.join(__dirname, '..')

/** The first line where `a` and `b` differ, with a few lines of each from there. */
function firstDifference(a, b) {
  const left = a.split('\n')
  const right = b.split('\n')
  let i = 0
  while (i < left.length && i < right.length && left[i] === right[i]) i++
  const show = (lines) => lines.slice(i, i + 6).map((line) => `    ${line}`).join('\n')
  return `line ${i + 1}:\n  committed binding.d.ts:\n${show(left)}\n  generated:\n${show(right)}`
}

test('binding.d.ts is what napi generates for the current sources (run `npm run build` and commit it)', async () => {
  const tmp = tempDir('vhd-binding-dts-')
  try {
    const result = spawnSync('cargo', ['check', '--quiet', '-p', 'vhd-node', '--lib'], {
      cwd: root,
      encoding: 'utf8',
      env: {
        ...process.env,
        NAPI_TYPE_DEF_TMP_FOLDER: tmp.dir,
        // napi-build reruns the crate's build script (and so the macros) when this changes.
        NAPI_FORCE_BUILD_VHD_NODE: String(process.hrtime.bigint()),
      },
    })
    assert.equal(result.status, 0, `cargo check failed:\n${result.stderr}`)
    // Options as package.json's `napi build --platform --no-js` uses them.
    const { dts } = await generateTypeDef({ typeDefDir: tmp.dir, cwd: root, declareBindingTarget: false })
    assert.match(dts, /export declare function parseFooter\(/, 'the declarations were generated')
    const committed = fs.readFileSync(path.join(root, 'binding.d.ts'), 'utf8')
    assert.ok(committed === dts, `binding.d.ts is stale: run \`npm run build\` (it writes binding.d.ts) and commit it. First difference at ${firstDifference(committed, dts)}`)
  } finally {
    tmp.cleanup()
  }
})
