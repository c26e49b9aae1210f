'use strict'

// The documentation, checked like code:
// - the README's two developer commands come first, and its command-line lines run;
// - the README's quick-start blocks run as pasted: each goes into the file its first line
//   names (`// quick-start.js`), in a scratch project where `require('vhd')` / `import 'vhd'`
//   is this checkout, and must exit 0 and print what its `console.log(...) // comment` says;
// - every relative link of the README, CONTRIBUTING.md, docs/ and examples/ resolves, and every
//   `#anchor` names a heading of its target (GitHub's anchors);
// - docs/api.md's error table and index.d.ts name the same codes;
// - the API reference builds from index.d.ts with no TypeDoc warning (`npm run docs` builds it
//   with `cargo doc` too; .ci/run runs that).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { tempDir } = require('./helpers.js')

const ROOT = path.resolve(__dirname, '..')
const read = (file) => fs.readFileSync(path.join(ROOT, file), 'utf8')

/** The markdown files whose links are checked, relative to the root. */
function markdownFiles() {
  const docs = fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md'))
  return ['README.md', 'CONTRIBUTING.md', 'examples/README.md', ...docs.map((f) => `docs/${f}`)]
}

/** `text` without fenced code blocks (each line kept, emptied, so line numbers stay). */
function withoutFences(text) {
  let fenced = false
  return text
    .split('\n')
    .map((line) => {
      if (/^\s*```/.test(line)) {
        fenced = !fenced
        return ''
      }
      return fenced ? '' : line
    })
    .join('\n')
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading) {
  return heading
    .trim()
    .toLowerCase()
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-')
}

/** The anchors of a markdown file's headings (a repeated heading gets -1, -2…). */
function anchors(text) {
  const seen = new Map()
  const result = new Set()
  for (const [, heading] of withoutFences(text).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = slug(heading)
    const n = seen.get(base) || 0
    seen.set(base, n + 1)
    result.add(n === 0 ? base : `${base}-${n}`)
  }
  return result
}

/** The `[text](target)` links of a markdown file, outside code (link text may span lines). */
function links(text) {
  const prose = withoutFences(text).replace(/`[^`\n]*`/g, 'code')
  return [...prose.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1])
}

test('the README starts with the two commands for developers of this repository', () => {
  const first = read('README.md').match(/```sh\n([\s\S]*?)```/)
  assert.ok(first, 'no sh block in the README')
  assert.ok(read('README.md').trimStart().startsWith('# vhd\n\n```sh\n'), 'the commands are not at the top')
  assert.match(first[1], /^npm install && npm run demo /m)
  assert.match(first[1], /^npm test /m)
})

test('every relative link resolves, and every #anchor names a heading', () => {
  const problems = []
  let checked = 0
  for (const file of markdownFiles()) {
    for (const target of links(read(file))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // https:, mailto:
      checked += 1
      const [pathPart, anchor] = target.split('#')
      const resolved = pathPart ? path.join(path.dirname(file), pathPart) : file
      if (!fs.existsSync(path.join(ROOT, resolved))) {
        problems.push(`${file}: ${target}: no file ${resolved}`)
        continue
      }
      if (anchor === undefined) continue
      if (!resolved.endsWith('.md')) {
        problems.push(`${file}: ${target}: an anchor into a file that is not markdown`)
      } else if (!anchors(read(resolved)).has(anchor)) {
        problems.push(`${file}: ${target}: ${resolved} has no heading whose anchor is #${anchor}`)
      }
    }
  }
  assert.deepEqual(problems, [])
  assert.ok(checked > 30, `only ${checked} links found: is the link parser broken?`)
})

test('the anchor rule is GitHub\'s', () => {
  assert.equal(slug('The vhd@0.5.0 API'), 'the-vhd050-api')
  assert.equal(slug('How this API differs from `fs.promises`'), 'how-this-api-differs-from-fspromises')
  assert.equal(slug('Migrating from 0.5'), 'migrating-from-05')
  assert.deepEqual([...anchors('# A\n## A\n```\n# not a heading\n```\n## B')], ['a', 'a-1', 'b'])
})

test("the README's quick start runs as pasted", () => {
  const readme = read('README.md')
  const section = readme.split(/^## /m).find((s) => s.startsWith('Quick start\n'))
  assert.ok(section, 'no Quick start section')
  const blocks = [...section.matchAll(/```js\n\/\/ (\S+)\n([\s\S]*?)```/g)]
  assert.ok(blocks.some(([, name]) => name.endsWith('.js')), 'no block for a .js file')
  const scratch = tempDir('vhd-quick-start-')
  try {
    fs.mkdirSync(path.join(scratch.dir, 'node_modules'))
    fs.symlinkSync(ROOT, path.join(scratch.dir, 'node_modules', 'vhd'), 'dir')
    for (const [, name, code] of blocks) {
      fs.writeFileSync(path.join(scratch.dir, name), `// ${name}\n${code}`)
      const run = spawnSync(process.execPath, [name], { cwd: scratch.dir, encoding: 'utf8', timeout: 30_000 })
      const output = `${name}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`
      assert.equal(run.status, 0, output)
      assert.equal(run.stderr, '', output)
      const promised = [...code.matchAll(/console\.log\(.*\) *\/\/ *(.+)$/gm)].map((m) => m[1].trim())
      assert.ok(promised.length > 0, `${name}: no console.log(...) // OUTPUT line to check`)
      for (const line of promised) assert.ok(run.stdout.includes(line), `${name} does not print "${line}"\n${output}`)
    }
  } finally {
    scratch.cleanup()
  }
})

test("the README's command-line lines run, in order, and exit 0", () => {
  const section = read('README.md').split(/^## /m).find((s) => s.startsWith('Command line\n'))
  assert.ok(section, 'no Command line section')
  const block = section.match(/```sh\n([\s\S]*?)```/)
  assert.ok(block, 'no sh block in the Command line section')
  const commands = block[1]
    .split('\n')
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter(Boolean)
  assert.ok(commands.length >= 3 && commands.every((c) => c.startsWith('npx vhd ')), commands.join('\n'))
  const scratch = tempDir('vhd-readme-cli-')
  try {
    for (const command of commands) {
      const args = command.split(/\s+/).slice(2) // after `npx vhd`; the block uses no quoting
      const run = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'vhd.js'), ...args], {
        cwd: scratch.dir,
        encoding: 'utf8',
        timeout: 30_000,
      })
      assert.equal(run.status, 0, `${command}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`)
    }
  } finally {
    scratch.cleanup()
  }
})

test("the error table of docs/api.md has a row for every code index.d.ts names", () => {
  const api = read('docs/api.md')
  const section = api.split(/^## /m).find((s) => s.startsWith('Errors\n'))
  assert.ok(section, 'no Errors section in docs/api.md')
  const documented = new Set()
  for (const [, cell] of section.matchAll(/^\| ([^|]+) \|/gm)) {
    for (const [, code] of cell.matchAll(/`([A-Z_]+)`/g)) documented.add(code)
  }
  // Every string literal code of index.d.ts (the ErrorCode union and AbortError's code); the
  // OS's own codes (E...) share one row.
  const named = new Set([...read('index.d.ts').matchAll(/'((?:ERR|ABORT)_[A-Z_]+)'/g)].map((m) => m[1]))
  assert.ok(named.size > 20, `only ${named.size} codes found in index.d.ts`)
  assert.deepEqual([...named].filter((code) => !documented.has(code)).sort(), [])
})

test('the API reference builds from index.d.ts with no TypeDoc warning', () => {
  const scratch = tempDir('vhd-typedoc-')
  try {
    const run = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'docs.js'), '--only', 'typedoc', '--out', scratch.dir], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    })
    assert.equal(run.status, 0, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`)
    assert.ok(fs.existsSync(path.join(scratch.dir, 'index.html')))
  } finally {
    scratch.cleanup()
  }
})
