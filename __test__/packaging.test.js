'use strict'

// Packaging tests: what `npm pack` ships, installing that tarball from source and with the
// prebuilt platform package, and the loader's error when neither is available.
// They run real `npm install`s (and a Rust build) in scratch projects, so they are slow.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { cargoTargetDir } = require('../scripts/install.js')
const { addonFileName, platformPackageName, platformTriple } = require('../scripts/platform.js')
const { TARGETS, platformManifest, optionalDependencies } = require('../scripts/pack-platform.js')

const ROOT = path.resolve(__dirname, '..')
const MAIN = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const MINUTE = 60 * 1000
const BUILD_TIMEOUT = 15 * MINUTE // one npm install that may compile the addon
const TRIPLE = platformTriple()
const ADDON = addonFileName(TRIPLE) // vhd.linux-x64-gnu.node
const PLATFORM_PKG = platformPackageName(TRIPLE) // vhd-linux-x64-gnu
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts']
// npm settings worth keeping from the caller; every other npm_* variable (set by `npm test`,
// e.g. npm_config_local_prefix pointing at this repository) must not reach the child npm.
const KEEP_NPM_CONFIG = new Set(
  ['cache', 'registry', 'userconfig', 'globalconfig', 'proxy', 'https_proxy', 'noproxy', 'cafile', 'strict_ssl'].map(
    (k) => `npm_config_${k}`,
  ),
)

let tmp // scratch root for this file, removed in after()
let packed // { tarball, files } of the main package

function cleanEnv(extra = {}) {
  const env = {}
  for (const [key, value] of Object.entries(process.env)) {
    const lower = key.toLowerCase()
    if (lower.startsWith('npm_') && !KEEP_NPM_CONFIG.has(lower)) continue
    if (key === 'INIT_CWD' || key === 'NODE_TEST_CONTEXT' || key === 'VHD_BUILD_FROM_SOURCE') continue
    env[key] = value
  }
  return { ...env, ...extra }
}

function run(cmd, args, { cwd, env = cleanEnv(), timeout = 5 * MINUTE } = {}) {
  const res = spawnSync(cmd, args, { cwd, env, timeout, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
  const output = `${res.stdout || ''}${res.stderr || ''}`
  return { status: res.status, signal: res.signal, error: res.error, stdout: res.stdout || '', output }
}

function describe(res, what) {
  const why = res.error ? res.error.message : res.signal ? `signal ${res.signal}` : `exit code ${res.status}`
  return `${what} failed (${why}):\n${res.output.slice(-8000)}`
}

function mustRun(cmd, args, opts, what = `${cmd} ${args.join(' ')}`) {
  const res = run(cmd, args, opts)
  assert.equal(res.status, 0, describe(res, what))
  return res
}

/** A scratch project whose package.json allows the vhd tarball's install script. */
function scratchProject(name, tarball) {
  const dir = path.join(tmp, name)
  fs.mkdirSync(dir)
  const pkg = {
    name: `scratch-${name}`,
    version: '1.0.0',
    private: true,
    // npm 11 warns about (and later npm versions skip) dependencies' install scripts that
    // allowScripts does not cover; a tarball is named by its file: spec there.
    allowScripts: { [`file:${tarball}`]: true },
  }
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`)
  return dir
}

/** Runs `script` with node in `cwd` and returns its stdout parsed as JSON. */
function nodeJson(cwd, script, env) {
  const res = mustRun(process.execPath, ['-e', script], { cwd, env }, 'node -e <check script>')
  return JSON.parse(res.stdout.trim().split('\n').pop())
}

// Loads the package the way a user does and reports what got loaded.
const CHECK_SCRIPT = `
const fs = require('node:fs')
const path = require('node:path')
const pkgDir = path.dirname(require.resolve('vhd/package.json'))
const out = { pkgDir, version: require('vhd/binding.js').version() }
if (fs.existsSync(path.join(pkgDir, 'index.js'))) out.indexType = typeof require('vhd')
out.addons = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
try { out.platformPkg = require.resolve(${JSON.stringify(PLATFORM_PKG)}) } catch { out.platformPkg = null }
console.log(JSON.stringify(out))
`

/** A PATH with node and npm but no directory that holds cargo, rustc or rustup. */
function pathWithoutRust() {
  const bin = path.join(tmp, 'bin-no-rust')
  if (!fs.existsSync(bin)) {
    fs.mkdirSync(bin)
    fs.symlinkSync(process.execPath, path.join(bin, 'node'))
    const which = run('sh', ['-c', 'command -v npm'])
    assert.equal(which.status, 0, 'npm not found on PATH')
    fs.symlinkSync(fs.realpathSync(which.stdout.trim()), path.join(bin, 'npm'))
  }
  const hasRust = (dir) => ['cargo', 'rustc', 'rustup'].some((t) => fs.existsSync(path.join(dir, t)))
  return [bin, ...['/usr/bin', '/bin'].filter((d) => fs.existsSync(d) && !hasRust(d))].join(path.delimiter)
}

function noRustEnv() {
  const env = cleanEnv({ PATH: pathWithoutRust() })
  for (const tool of ['cargo', 'rustc']) {
    const res = spawnSync(tool, ['--version'], { env })
    assert.ok(res.error && res.error.code === 'ENOENT', `${tool} is still reachable on the restricted PATH`)
  }
  return env
}

function packPlatform() {
  const out = path.join(tmp, 'platform-tgz')
  const res = mustRun(
    process.execPath,
    [path.join(ROOT, 'scripts', 'pack-platform.js'), '--out-dir', out],
    { cwd: ROOT, timeout: BUILD_TIMEOUT },
    'scripts/pack-platform.js',
  )
  const tarball = res.stdout.trim().split('\n').pop()
  assert.equal(path.basename(tarball), `${PLATFORM_PKG}-1.0.0.tgz`)
  assert.ok(fs.existsSync(tarball), `${tarball} was not written`)
  return tarball
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-packaging-'))
  const dest = path.join(tmp, 'main-tgz')
  fs.mkdirSync(dest)
  const res = mustRun('npm', ['pack', '--json', '--pack-destination', dest], { cwd: ROOT })
  const [info] = JSON.parse(res.stdout)
  packed = { tarball: path.join(dest, info.filename), files: info.files.map((f) => f.path) }
  assert.equal(info.filename, 'vhd-1.0.0.tgz')
})

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

test('the packed tarball ships the loader and the Rust sources, and nothing else', () => {
  const files = new Set(packed.files)
  const required = [
    'package.json',
    'binding.js',
    'scripts/install.js',
    'scripts/platform.js',
    'Cargo.toml',
    'build.rs',
    'core/Cargo.toml',
    'src/lib.rs',
    'index.js',
    'index.d.ts',
    'Cargo.lock',
    'core/src/lib.rs',
  ]
  for (const f of required) assert.ok(files.has(f), `${f} is missing from the tarball`)
  // Every JavaScript module index.js loads ships too.
  for (const f of fs.readdirSync(path.join(ROOT, 'lib'))) {
    assert.ok(files.has(`lib/${f}`), `lib/${f} is missing from the tarball`)
  }

  // Every Rust source of both crates ships, so a from-source build works.
  const walk = (dir) =>
    fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
      const rel = `${dir}/${e.name}`
      return e.isDirectory() ? walk(rel) : [rel]
    })
  for (const f of [...walk('src'), ...walk('core/src')].filter((f) => !f.endsWith('.node'))) {
    assert.ok(files.has(f), `${f} is missing from the tarball`)
  }

  const forbidden = [
    /^target\//,
    /^node_modules\//,
    /^__test__\//,
    /^core\/tests\//,
    /^npm\//,
    /^\.ci\//,
    /^\.git/,
    /\.node$/,
    /\.tgz$/,
  ]
  for (const f of packed.files) {
    assert.ok(!forbidden.some((re) => re.test(f)), `${f} must not be in the tarball`)
  }
})

/** `script` (util-linux) runs a command on a pseudo-terminal, as a user's shell would. */
const HAS_SCRIPT = run('sh', ['-c', 'command -v script && script --version']).status === 0
const NO_SCRIPT = HAS_SCRIPT || process.env.CI ? false : 'SKIPPED: needs `script` (util-linux) for a terminal'
if (NO_SCRIPT) process.stderr.write(`${NO_SCRIPT}\n`)

test(
  'npm install of the tarball shows the build on the terminal, builds in a temporary target directory, keeps only the addon',
  { timeout: BUILD_TIMEOUT + 5 * MINUTE, skip: NO_SCRIPT },
  () => {
    const project = scratchProject('from-source', packed.tarball)
    // As a user runs it: on a terminal, without --foreground-scripts (npm then hides the
    // install script's stdout and stderr), without CARGO_TARGET_DIR. TMPDIR is ours, to see
    // that the temporary target directory goes away.
    const tmpdir = path.join(tmp, 'from-source-tmpdir')
    fs.mkdirSync(tmpdir)
    const env = cleanEnv({ TMPDIR: tmpdir })
    delete env.CARGO_TARGET_DIR
    const npm = ['npm', 'install', '--prefer-offline', '--no-audit', '--no-fund', packed.tarball]
    const command = npm.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
    const transcript = path.join(tmp, 'from-source.typescript')
    const res = run('script', ['-qefc', command, transcript], { cwd: project, env, timeout: BUILD_TIMEOUT })
    // What the terminal got, without colours and cursor moves.
    const shown = fs.readFileSync(transcript, 'utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    assert.equal(res.status, 0, `npm install failed:\n${shown.slice(-8000)}`)
    // What the user saw: our lines and cargo's own, though npm hid the script's output.
    assert.match(shown, /vhd: building the native addon from source/)
    assert.match(shown, /\(removed afterwards\)/)
    assert.match(shown, /Compiling vhd-core|Building \[/, 'cargo progress is shown')
    assert.match(shown, /vhd: built vhd\.[\w-]+\.node in/)

    const pkgDir = path.join(project, 'node_modules', 'vhd')
    assert.ok(fs.existsSync(path.join(pkgDir, ADDON)), `the install script did not build ${ADDON}`)
    assert.ok(!fs.existsSync(path.join(pkgDir, 'target')), 'no target/ inside node_modules/vhd')
    // Every file of the package is one of the tarball's, but the addon.
    const walk = (dir) =>
      fs.readdirSync(path.join(pkgDir, dir), { withFileTypes: true }).flatMap((e) => {
        const rel = dir ? `${dir}/${e.name}` : e.name
        return e.isDirectory() ? walk(rel) : [rel]
      })
    const shipped = new Set(packed.files)
    assert.deepEqual(walk('').filter((f) => !shipped.has(f)), [ADDON])
    assert.deepEqual(fs.readdirSync(tmpdir).filter((f) => f.startsWith('vhd-build-')), [], 'the temporary target directory was removed')
    assert.ok(
      !fs.existsSync(path.join(project, 'node_modules', '@napi-rs')),
      'devDependencies must not be installed for users',
    )
    const got = nodeJson(project, CHECK_SCRIPT, env)
    assert.equal(got.version, '1.0.0')
    if ('indexType' in got) assert.equal(got.indexType, 'object')
    assert.deepEqual(got.addons, [fs.realpathSync(path.join(pkgDir, ADDON))])
  },
)

test(
  'with the prebuilt platform package, install needs no Rust toolchain',
  { timeout: BUILD_TIMEOUT + 5 * MINUTE },
  () => {
    const platformTarball = packPlatform()
    const listing = mustRun('tar', ['-tzf', platformTarball]).stdout.split('\n').filter(Boolean)
    assert.deepEqual(listing.sort(), ['package/README.md', `package/${ADDON}`, 'package/package.json'].sort())
    const manifest = JSON.parse(mustRun('tar', ['-xzOf', platformTarball, 'package/package.json']).stdout)
    assert.deepEqual(manifest, platformManifest(TARGETS.find((t) => t.triple === TRIPLE)))
    assert.equal(manifest.version, MAIN.version)

    const project = scratchProject('prebuilt', packed.tarball)
    const env = noRustEnv()
    const res = mustRun('npm', ['install', ...NPM_FLAGS, packed.tarball, platformTarball], {
      cwd: project,
      env,
      timeout: 5 * MINUTE,
    })
    assert.match(res.output, /nothing to build/, 'the install script should have found the prebuilt addon')

    const pkgDir = path.join(project, 'node_modules', 'vhd')
    assert.ok(!fs.existsSync(path.join(pkgDir, ADDON)), `${ADDON} must not be built inside node_modules/vhd`)
    const got = nodeJson(project, CHECK_SCRIPT, env)
    assert.equal(got.version, '1.0.0')
    if ('indexType' in got) assert.equal(got.indexType, 'object')
    const platformDir = fs.realpathSync(path.join(project, 'node_modules', PLATFORM_PKG))
    assert.equal(got.platformPkg, path.join(platformDir, ADDON))
    assert.deepEqual(got.addons, [path.join(platformDir, ADDON)])
  },
)

test('without a prebuilt package or cargo, install fails and says how to fix it', { timeout: 5 * MINUTE }, () => {
  const project = scratchProject('no-rust', packed.tarball)
  const res = run('npm', ['install', ...NPM_FLAGS, packed.tarball], {
    cwd: project,
    env: noRustEnv(),
    timeout: 5 * MINUTE,
  })
  assert.notEqual(res.status, 0, 'npm install should fail')
  assert.match(res.output, /cargo` was not found/)
  assert.ok(res.output.includes(NOT_PUBLISHED), res.output)
  assert.match(res.output, /https:\/\/rustup\.rs/)
})

// What is true today: no platform package is published, and package.json lists none.
const NOT_PUBLISHED = `No prebuilt package (${PLATFORM_PKG}) is published for ${TRIPLE} yet, so the addon must be built from source`

test('install.js without cargo says that no prebuilt package is published and to install Rust', () => {
  // A copy of what the tarball ships for the script, outside any checkout.
  const dir = path.join(tmp, 'no-cargo-script')
  fs.mkdirSync(path.join(dir, 'scripts'), { recursive: true })
  for (const f of ['package.json', 'binding.js', 'scripts/install.js', 'scripts/platform.js', 'Cargo.toml']) {
    fs.copyFileSync(path.join(ROOT, f), path.join(dir, f))
  }
  const res = run(process.execPath, [path.join(dir, 'scripts', 'install.js')], { cwd: dir, env: noRustEnv() })
  assert.equal(res.status, 1, res.output)
  assert.match(res.output, /^vhd: install failed: `cargo` was not found on PATH/m)
  assert.ok(res.output.includes(NOT_PUBLISHED), res.output)
  assert.match(res.output, /install Rust from https:\/\/rustup\.rs .*npm rebuild vhd/)
  assert.doesNotMatch(res.output, /a platform that has a prebuilt/)

  // Once the release lists the platform package (scripts/release.js), the advice is about
  // the package npm did not install instead.
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
  pkg.optionalDependencies = { [PLATFORM_PKG]: pkg.version }
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg))
  const listed = run(process.execPath, [path.join(dir, 'scripts', 'install.js')], { cwd: dir, env: noRustEnv() })
  assert.equal(listed.status, 1, listed.output)
  assert.match(listed.output, new RegExp(`The prebuilt package ${PLATFORM_PKG} was not installed .*--omit=optional`))
  assert.ok(!listed.output.includes(NOT_PUBLISHED), listed.output)
})

test('install.js: where progress goes (stderr, the terminal when npm hides stderr, nowhere when silent)', { skip: NO_SCRIPT }, () => {
  const probe = (env, onTerminal) => {
    const script = `const o = require(${JSON.stringify(path.join(ROOT, 'scripts', 'install.js'))}).progressOutput(process.env)
      const fs = require('node:fs')
      const opened = o.fd > 2 ? fs.readlinkSync('/proc/self/fd/' + o.fd) : null
      process.stdout.write(o.fd === 2 ? 'stderr' : o.fd < 0 ? 'nowhere' : opened === '/dev/tty' ? 'terminal' : String(opened))`
    // stderr is a pipe, as npm makes it for an install script it runs in the background.
    const args = [process.execPath, '-e', script]
    const res = onTerminal
      ? run('script', ['-qefc', `${args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')} 2>/dev/null`, '/dev/null'], { env: cleanEnv(env) })
      : run('setsid', ['-w', ...args], { env: cleanEnv(env) }) // no controlling terminal
    assert.equal(res.status, 0, res.output)
    return res.stdout.replace(/\r/g, '').trim()
  }
  const install = { npm_lifecycle_event: 'install' }
  assert.equal(probe(install, true), 'terminal', 'npm hides stderr: write to the terminal')
  assert.equal(probe({ ...install, npm_config_foreground_scripts: 'true' }, true), 'stderr', '--foreground-scripts shows stderr')
  assert.equal(probe({ npm_lifecycle_event: 'pack:platform' }, true), 'stderr', 'npm run shows stderr')
  assert.equal(probe({}, true), 'stderr', 'run by hand')
  assert.equal(probe(install, false), 'stderr', 'no terminal: stderr, which npm prints on failure')
  assert.equal(probe({ ...install, npm_config_loglevel: 'silent' }, true), 'nowhere')
})

test('install.js: a checkout builds in its own target/, an installed package in a temporary one, a chosen one is kept', () => {
  const { buildTarget, isCheckout } = require('../scripts/install.js')
  const env = cleanEnv()
  delete env.CARGO_TARGET_DIR
  // This repository (a clone or a worktree: .git is a folder or a file).
  assert.ok(isCheckout(ROOT))
  assert.deepEqual(buildTarget(ROOT, env), { dir: cargoTargetDir(ROOT, env), temporary: false })
  // The same sources as the tarball unpacks them under node_modules: no .git.
  const installed = path.join(tmp, 'target-choice', 'node_modules', 'vhd')
  fs.mkdirSync(installed, { recursive: true })
  for (const f of ['Cargo.toml', 'Cargo.lock']) fs.copyFileSync(path.join(ROOT, f), path.join(installed, f))
  for (const dir of ['src', 'core', 'cli', 'testkit']) {
    fs.cpSync(path.join(ROOT, dir), path.join(installed, dir), { recursive: true, filter: (f) => !f.includes(`${path.sep}tests${path.sep}`) })
  }
  assert.ok(!isCheckout(installed))
  const temporary = buildTarget(installed, env)
  assert.equal(temporary.temporary, true)
  assert.equal(path.dirname(temporary.dir), os.tmpdir(), 'under the temporary folder')
  assert.match(path.basename(temporary.dir), /^vhd-build-/)
  fs.rmSync(temporary.dir, { recursive: true })
  // A target directory the user chose is used and kept.
  const chosen = path.join(tmp, 'chosen-target')
  assert.deepEqual(buildTarget(installed, { ...env, CARGO_TARGET_DIR: chosen }), { dir: chosen, temporary: false })
})

test('every platform package: name, version, main, files, os/cpu/libc (the napi-rs set)', () => {
  const expected = {
    'linux-x64-gnu': ['linux', 'x64', 'glibc'],
    'linux-arm64-gnu': ['linux', 'arm64', 'glibc'],
    'linux-x64-musl': ['linux', 'x64', 'musl'],
    'linux-arm64-musl': ['linux', 'arm64', 'musl'],
    'darwin-x64': ['darwin', 'x64', undefined],
    'darwin-arm64': ['darwin', 'arm64', undefined],
    'win32-x64-msvc': ['win32', 'x64', undefined],
  }
  assert.deepEqual(TARGETS.map((t) => t.triple).sort(), Object.keys(expected).sort())
  for (const target of TARGETS) {
    const [os, cpu, libc] = expected[target.triple]
    const m = platformManifest(target)
    const addon = `vhd.${target.triple}.node`
    assert.equal(m.name, `vhd-${target.triple}`)
    assert.equal(m.version, MAIN.version, `${m.name}: the version of vhd itself`)
    assert.equal(m.main, addon)
    assert.deepEqual(m.files, [addon])
    assert.deepEqual(m.os, [os])
    assert.deepEqual(m.cpu, [cpu])
    assert.deepEqual(m.libc, libc && [libc])
    for (const key of ['license', 'repository', 'engines']) assert.deepEqual(m[key], MAIN[key], `${m.name}: ${key}`)
  }
  // The published vhd lists each of them at its own version; the one in git lists none, so
  // no install asks the registry for an unpublished package.
  assert.deepEqual(optionalDependencies(MAIN), Object.fromEntries(TARGETS.map((t) => [`vhd-${t.triple}`, MAIN.version])))
  assert.equal(MAIN.optionalDependencies, undefined)
  // The release workflow builds exactly these targets, and napi's own list agrees.
  const workflow = fs.readFileSync(path.join(ROOT, '.github', 'workflows', 'release.yml'), 'utf8')
  const built = [...workflow.matchAll(/^\s+- target: ([\w-]+)$/gm)].map((m) => m[1])
  assert.deepEqual(built.sort(), TARGETS.map((t) => t.rust).sort())
  assert.deepEqual([...MAIN.napi.targets].sort(), TARGETS.map((t) => t.rust).sort())
})

test('package.json: LICENSE, repository, bugs, homepage; one repository URL in package.json and Cargo.toml', () => {
  assert.equal(MAIN.license, 'MIT')
  const license = fs.readFileSync(path.join(ROOT, 'LICENSE'), 'utf8')
  assert.match(license, /^MIT License\n\nCopyright \(c\) /)
  assert.match(license, /Permission is hereby granted, free of charge/)
  assert.ok(packed.files.includes('LICENSE'), 'the tarball ships LICENSE')
  const url = MAIN.repository.url.replace(/^git\+/, '').replace(/\.git$/, '')
  assert.match(url, /^https:\/\/github\.com\/[\w.-]+\/[\w.-]+$/)
  assert.equal(MAIN.homepage, `${url}#readme`)
  assert.equal(MAIN.bugs.url, `${url}/issues`)
  const cargo = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8')
  assert.match(cargo, /^license = "MIT"$/m)
  assert.ok(cargo.includes(`repository = "${url}"`), 'Cargo.toml [workspace.package] repository')
})

test('npm install in a fresh clone changes no tracked file and warns of no engine', { timeout: 5 * MINUTE }, () => {
  const clone = path.join(tmp, 'clone')
  mustRun('git', ['clone', '-q', ROOT, clone])
  // Uncommitted changes of package.json and package-lock.json are what is being tested.
  for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(ROOT, f), path.join(clone, f))
  const before = mustRun('git', ['status', '--porcelain'], { cwd: clone }).stdout
  // --ignore-scripts: the addon build is the other tests' business.
  const res = mustRun('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: clone })
  assert.doesNotMatch(res.output, /EBADENGINE|Unsupported engine/, res.output)
  assert.doesNotMatch(res.output, /vhd-linux|404/, res.output)
  assert.equal(mustRun('git', ['status', '--porcelain'], { cwd: clone }).stdout, before, 'npm install changed tracked files')
})

test('the loader names what it tried and keeps the load error as cause', () => {
  const dir = path.join(tmp, 'bare-loader')
  fs.mkdirSync(path.join(dir, 'scripts'), { recursive: true })
  fs.copyFileSync(path.join(ROOT, 'binding.js'), path.join(dir, 'binding.js'))
  fs.copyFileSync(path.join(ROOT, 'scripts', 'platform.js'), path.join(dir, 'scripts', 'platform.js'))
  const got = nodeJson(
    dir,
    `try { require('./binding.js'); console.log('{"loaded":true}') } catch (e) {
      console.log(JSON.stringify({ code: e.code, message: e.message, cause: e.cause && e.cause.code }))
    }`,
    cleanEnv(),
  )
  assert.equal(got.code, 'ERR_VHD_NATIVE_NOT_FOUND')
  assert.ok(got.message.includes(path.join(fs.realpathSync(dir), ADDON)), got.message)
  assert.ok(got.message.includes(`package ${PLATFORM_PKG}: not installed`), got.message)
  assert.match(got.message, /npm rebuild vhd/)
  assert.match(got.message, /https:\/\/rustup\.rs/)
  assert.match(got.message, /No prebuilt package .* is published/)
  assert.equal(got.cause, 'MODULE_NOT_FOUND')

  // A corrupt local addon is reported with its own error as the cause.
  fs.writeFileSync(path.join(dir, ADDON), 'not a shared object')
  const corrupt = nodeJson(
    dir,
    `try { require('./binding.js') } catch (e) {
      console.log(JSON.stringify({ message: e.message, cause: e.cause && e.cause.code }))
    }`,
    cleanEnv(),
  )
  assert.equal(corrupt.cause, 'ERR_DLOPEN_FAILED')
  assert.match(corrupt.message, /not a shared object|invalid ELF header|too short/)
})
