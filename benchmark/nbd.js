'use strict'

// The NBD scenarios of `npm run bench` (benchmark/index.js lists them after its own): `vhd
// serve` (run as users run it, `node bin/vhd.js serve`, on a Unix socket) against qemu-nbd
// serving the same bytes, each client run as a whole process:
//
// - nbd-copy-read: `nbdcopy` of the served dynamic image to /dev/null, against `qemu-nbd -f
//   vpc` serving the same file (target ≥ 1.0×) and `qemu-nbd -f raw` serving the raw file of
//   the same contents (≥ 0.8×).
// - nbd-fio-randread: fio's nbd engine, random 4 KiB reads, 32 in flight, against `qemu-nbd
//   -f vpc` on the same image (≥ 1.0×).
// - nbd-copy-write: `nbdcopy --flush` of the raw file into a new, empty dynamic image served
//   read-write, against the same into `qemu-nbd -f vpc` serving a new dynamic image made by
//   `qemu-img create` (≥ 1.0×). The images are made anew (untimed) before each trial.
//
// Both servers are started before a scenario's trials and stopped after (SIGTERM); qemu-nbd
// runs with --shared=8 and --persistent, so that it too takes several connections and one
// after another. Without nbdcopy, qemu-nbd, qemu-img or fio these scenarios are left out
// (said once on stderr).

const fs = require('node:fs')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { now, seconds } = require('./workload.js')

const MiB = 1024 * 1024
const ROOT = path.join(__dirname, '..')
const VHD_JS = path.join(ROOT, 'bin', 'vhd.js')


function missingTools() {
  return ['nbdcopy', 'qemu-nbd', 'qemu-img', 'fio'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
}

const uriOf = (socket) => `nbd+unix:///?socket=${socket}`

/** Waits until something listens on the Unix socket `socket` (nbdinfo --size answers). */
async function listening(socket, child) {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server on ${socket} exited (${child.exitCode})`)
    if (fs.existsSync(socket) && spawnSync('nbdinfo', ['--size', uriOf(socket)], { stdio: 'ignore' }).status === 0) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Every server started, stopped when this process exits however it exits (a trial that throws skips the teardown). */
const running = new Set()
process.on('exit', () => {
  for (const child of running) child.kill('SIGTERM')
})

/** Starts a server process serving on `socket`; resolves once it answers. */
async function startServer(program, args, socket) {
  fs.rmSync(socket, { force: true })
  const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr += d
    if (stderr.length > 65536) stderr = stderr.slice(-32768)
  })
  child.stderrText = () => stderr
  await listening(socket, child)
  return child
}

/** Stops a server (SIGTERM) and waits for it to exit. */
async function stopServer(child) {
  if (!child || child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

const vhdServe = (file, socket, extra = []) => startServer(process.execPath, [VHD_JS, 'serve', '--socket', socket, ...extra, file], socket)
const qemuNbd = (format, file, socket, extra = []) =>
  startServer('qemu-nbd', ['-f', format, '--socket', socket, '--persistent', '--shared=8', ...extra, file], socket)

function run(program, args) {
  const result = spawnSync(program, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * MiB })
  if (result.status !== 0) throw new Error(`${program} ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

/** The scenarios, in benchmark/index.js's shape; none without the tools. */
function nbdScenarios({ files, size, quick, work }) {
  const missing = missingTools()
  if (missing.length > 0) {
    process.stderr.write(`NBD scenarios left out: ${missing.join(', ')} missing\n`)
    return []
  }
  const dir = path.join(work, 'nbd')
  const socket = (name) => path.join(dir, `${name}.sock`)
  const list = []

  // -- nbdcopy of the served image to /dev/null --------------------------------------------
  {
    const servers = {}
    const copy = (id, label) => ({
      id,
      label,
      async trial() {
        const t0 = now()
        run('nbdcopy', [uriOf(socket(id)), 'null:'])
        return size / MiB / seconds(t0)
      },
    })
    list.push({
      name: 'nbd-copy-read',
      title: 'nbdcopy of the served dynamic image to null: (whole disk, default connections)',
      unit: 'MiB/s',
      async setup() {
        fs.mkdirSync(dir, { recursive: true })
        servers.ours = await vhdServe(files.dynamic, socket('ours'), ['--read-only'])
        servers.vpc = await qemuNbd('vpc', files.dynamic, socket('vpc'), ['--read-only'])
        servers.raw = await qemuNbd('raw', files.raw, socket('raw'), ['--read-only'])
      },
      async teardown() {
        for (const child of Object.values(servers)) await stopServer(child)
      },
      variants: [
        copy('ours', 'vhd serve (dynamic image)'),
        copy('vpc', 'qemu-nbd -f vpc (the same dynamic image)'),
        copy('raw', 'qemu-nbd -f raw (the raw file)'),
      ],
      comparisons: [
        { ours: 'ours', base: 'vpc', min: 1.0 },
        { ours: 'ours', base: 'raw', min: 0.8 },
      ],
    })
  }

  // -- fio random 4 KiB reads, 32 in flight -----------------------------------------------
  {
    const servers = {}
    const reads = quick ? 20000 : 200000
    const fio = (id, label) => ({
      id,
      label,
      async trial() {
        const out = run('fio', [
          '--name=randread',
          '--ioengine=nbd',
          `--uri=${uriOf(socket(id))}`,
          '--rw=randread',
          '--bs=4k',
          '--iodepth=32',
          `--number_ios=${reads}`,
          `--size=${size}`,
          '--randrepeat=1',
          '--output-format=json',
        ])
        // fio's nbd engine says "fio: connected to NBD server" before the JSON.
        const text = out.toString()
        const job = JSON.parse(text.slice(text.indexOf('{'))).jobs[0]
        return job.read.iops / 1000
      },
    })
    list.push({
      name: 'nbd-fio-randread',
      title: `fio nbd engine, random 4 KiB reads of the served dynamic image at iodepth 32 (${reads} reads)`,
      unit: 'kIOPS',
      async setup() {
        fs.mkdirSync(dir, { recursive: true })
        servers.ours = await vhdServe(files.dynamic, socket('ours-fio'), ['--read-only'])
        servers.vpc = await qemuNbd('vpc', files.dynamic, socket('vpc-fio'), ['--read-only'])
      },
      async teardown() {
        for (const child of Object.values(servers)) await stopServer(child)
      },
      variants: [fio('ours-fio', 'vhd serve (dynamic image)'), fio('vpc-fio', 'qemu-nbd -f vpc (the same image)')],
      comparisons: [{ ours: 'ours-fio', base: 'vpc-fio', min: 1.0 }],
    })
  }

  // -- nbdcopy of the raw file into a served new dynamic image, then flush ----------------
  {
    const servers = {}
    const image = (id) => path.join(dir, `write-${id}.vhd`)
    const write = (id, label, start) => ({
      id,
      label,
      async before() {
        await stopServer(servers[id])
        fs.rmSync(image(id), { force: true })
        servers[id] = await start(id)
      },
      async trial() {
        const t0 = now()
        run('nbdcopy', ['--flush', files.raw, uriOf(socket(id))])
        return size / MiB / seconds(t0)
      },
    })
    const start = async (id) => {
      if (id === 'ours-write') {
        run(process.execPath, [VHD_JS, 'create', '--type', 'dynamic', image(id), String(size)])
        return vhdServe(image(id), socket(id))
      }
      run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic,force_size=on', image(id), String(size)])
      return qemuNbd('vpc', image(id), socket(id))
    }
    list.push({
      name: 'nbd-copy-write',
      title: 'nbdcopy --flush of the raw file into a served new dynamic image',
      unit: 'MiB/s',
      setup: () => fs.mkdirSync(dir, { recursive: true }),
      async teardown() {
        for (const child of Object.values(servers)) await stopServer(child)
        for (const id of ['ours-write', 'vpc-write']) fs.rmSync(image(id), { force: true })
      },
      variants: [write('ours-write', 'vhd serve (new dynamic image)', start), write('vpc-write', 'qemu-nbd -f vpc (new dynamic image)', start)],
      comparisons: [{ ours: 'ours-write', base: 'vpc-write', min: 1.0 }],
    })
  }
  return list
}

module.exports = { nbdScenarios }
