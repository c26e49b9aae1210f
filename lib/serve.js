'use strict'

// `VHD.serve(pathOrDisk, options)`: an NBD (Network Block Device) server for an image or a
// chain, and `VHD.NbdServer`, the running server. The server itself is the crate vhd-nbd
// (nbd/), run by the binding (src/serve.rs) on native threads: starting it (binding the
// socket) and closing it (finishing the clients' requests, flushing) go to the thread pool,
// and no JavaScript runs on the server's threads. Log lines reach `options.log` on the
// JavaScript thread (through a threadsafe function).
//
// Given a path, the server opens the image itself (with the open options of `VHD.open`) and
// closes it when it closes. Given an open disk, it serves that very image (the same lock,
// the same writes: what a client writes, the disk reads, and the other way round); the disk
// stays the caller's, and `disk.close()` closes the servers serving it first (their
// requests in flight finish and are flushed). A running server keeps the process alive, as
// a listening `net.Server` does, until `close()`.

const net = require('node:net')
const native = require('../binding.js')
const { Disk, open, kLife } = require('./disk.js')
const {
  invalidArgType,
  invalidArgValue,
  toIndex,
  toPath,
  optionalBoolean,
  toOpenOptions,
  withCode,
  call,
} = require('./args.js')
const { inspectCustom, inspectAs, disposable } = require('./protocol.js')

const kNative = Symbol('native')
const kDisk = Symbol('disk')
const kOwned = Symbol('owned')
const kClosing = Symbol('closing')
const kInit = Symbol('init')
const kClose = Symbol('close')

/**
 * The servers not closed yet: a running server is never garbage-collected (its clients
 * would be cut off) even when the caller keeps no reference to it.
 * @type {Set<NbdServer>}
 */
const running = new Set()

/** The options of `VHD.open`, meaningless for a disk that is open already. */
const OPEN_OPTIONS = ['parent', 'parents', 'parentRoot', 'lock', 'ignoreChecksums', 'ignoreParentTimestamp', 'allowRemoteParents']

/**
 * The checked options: the native server's arguments, `log`, and (for a path) the open
 * options.
 * @param {boolean} forDisk whether an open disk is served (no open options then)
 */
function toServeArgs(options, forDisk) {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
  /** @type {import('../binding.js').ServeArgs} */
  const args = {}
  const hasSocket = options.socket !== undefined
  const hasPort = options.port !== undefined
  if (hasSocket === hasPort) {
    throw invalidArgValue('options', `must have either socket (a Unix socket path) or port (TCP), ${hasSocket ? 'not both' : 'found neither'}`)
  }
  if (hasSocket) {
    if (options.host !== undefined) throw invalidArgValue('options.host', 'is for TCP (with port); a Unix socket has no host')
    if (options.allowRemote !== undefined) optionalBoolean(options, 'allowRemote')
    args.socket = toPath(options.socket, 'options.socket')
    if (args.socket === '') throw invalidArgValue('options.socket', 'must not be empty')
  } else {
    args.port = toIndex(options.port, 'options.port', 65535)
    let host = options.host === undefined ? '127.0.0.1' : options.host
    if (typeof host !== 'string') throw invalidArgType('options.host', 'of type string', host)
    if (host === 'localhost') host = '127.0.0.1'
    if (net.isIP(host) === 0) {
      throw invalidArgValue('options.host', `must be an IP address (or 'localhost'). Received '${host}'`)
    }
    // Whether the host may be other than a loopback address is the native layer's rule
    // (vhd-nbd's check_address, also the CLI's): a RangeError, ERR_VHD_INVALID_ARGUMENT.
    args.allowRemote = optionalBoolean(options, 'allowRemote')
    args.host = host
  }
  if (options.exportName !== undefined) {
    if (typeof options.exportName !== 'string') throw invalidArgType('options.exportName', 'of type string', options.exportName)
    if (options.exportName.includes('\u0000')) throw invalidArgValue('options.exportName', 'must be a string without null bytes')
    args.exportName = options.exportName
  }
  args.readOnly = optionalBoolean(options, 'readOnly')
  const log = options.log
  if (log !== undefined && typeof log !== 'function') throw invalidArgType('options.log', 'of type function', log)
  args.log = log !== undefined
  if (forDisk) {
    const given = OPEN_OPTIONS.find((key) => options[key] !== undefined)
    if (given !== undefined) {
      throw invalidArgValue(`options.${given}`, 'is an open option: the disk is open already (pass a path to have the server open the image)')
    }
    return { args, log, open: null }
  }
  return { args, log, open: toOpenOptions(options) }
}

/** The image to serve: an open disk, or a path (a string or a `file:` URL). */
function toTarget(image) {
  if (image instanceof Disk) return image
  if (typeof image === 'string' || image instanceof URL) return toPath(image, 'image')
  throw invalidArgType('image', 'of type string, an instance of URL, or an instance of VHD.Disk (from VHD.open)', image)
}

/**
 * A running NBD server: made by `VHD.serve`, not constructible.
 */
class NbdServer {
  constructor() {
    throw withCode(new TypeError('VHD.NbdServer is made by VHD.serve(pathOrDisk, options)'), 'ERR_ILLEGAL_CONSTRUCTOR')
  }

  /** Where it listens: `{ socket }` (the path as given) or `{ host, port }` (the port bound). */
  get address() {
    return shapeAddress(this[kNative].address)
  }

  /** The export's NBD URI, as nbdinfo, nbdcopy, nbdfuse, qemu-img and qemu-io take it. */
  get uri() {
    return this[kNative].uri
  }

  /** Clients connected now (0 once closed). */
  get connections() {
    return this[kNative].connections
  }

  /** True until `close()` is called. */
  get listening() {
    return this[kClosing] === null
  }

  /**
   * Stops accepting, finishes the requests in flight, flushes, closes the connections (and
   * removes the Unix socket); then, when the server opened the image itself, closes it.
   * Resolves once all that is done; closing again returns the same promise.
   * @param {(error: Error | null) => void} [callback]
   */
  close(callback) {
    return call(callback, null, () => this[kClose](), null)
  }

  /**
   * Sets up a server the binding started.
   * @param {import('../binding.js').NativeNbdServer} nativeServer
   * @param {Disk} disk the disk it serves
   * @param {boolean} owned whether it closes the disk when it closes (it opened it)
   */
  [kInit](nativeServer, disk, owned) {
    this[kNative] = nativeServer
    this[kDisk] = disk
    this[kOwned] = owned
    /** @type {Promise<void> | null} */
    this[kClosing] = null
  }

  /** `close` (once: later calls get the same promise). */
  [kClose]() {
    if (this[kClosing] !== null) return this[kClosing]
    const disk = this[kDisk]
    const life = disk[kLife]
    this[kClosing] = this[kNative].close().then(
      () => null,
      (error) => error,
    ).then(async (failure) => {
      life.servers.delete(this)
      running.delete(this)
      if (this[kOwned]) {
        await disk.close().catch((error) => {
          failure = failure ?? error
        })
      }
      if (failure) throw failure
    })
    return this[kClosing]
  }

  [inspectCustom](depth, options, inspect) {
    /** @type {Record<string, unknown>} */
    const shown = { ...this.address, uri: this.uri, connections: this.connections }
    if (this[kClosing] !== null) shown.state = 'closed'
    return inspectAs(this, shown, depth, options, inspect)
  }
}

// `await using server = await VHD.serve(...)` closes it when the block ends.
disposable(NbdServer)

function shapeAddress(address) {
  return address.socket != null ? { socket: address.socket } : { host: address.host, port: address.port }
}

const noop = () => {}

/**
 * Starts the server for `disk` (open); resolves to the `NbdServer`. The start counts as an
 * operation in flight of the disk, so that a `close` of the disk meanwhile waits for it
 * (and then closes the new server first).
 * @param {Disk} disk
 * @param {boolean} owned whether the server closes the disk when it closes
 */
function startOn(disk, owned, args, log) {
  const life = disk[kLife]
  life.current()
  // A read-only disk gives a read-only export: the server's own rule (vhd-nbd's Export).
  const deliver = log === undefined ? noop : (line) => log(line)
  return life.track(native.serve(/** @type {any} */ (life.handle), args, deliver), (nativeServer) => {
    /** @type {NbdServer} */
    const server = Object.create(NbdServer.prototype)
    server[kInit](nativeServer, disk, owned)
    life.servers.add(server)
    running.add(server)
    return server
  }).catch((error) => {
    // Like Node's net errors: where it could not listen.
    if (error && (error.code === 'EADDRINUSE' || error.code === 'EADDRNOTAVAIL' || error.code === 'EACCES') && args.port !== undefined) {
      error.address = args.host
      error.port = args.port
    }
    throw error
  })
}

/**
 * Serves an image (a path: opened here, closed with the server) or an open disk over NBD.
 * @param {string | URL | Disk} image
 * @param {object} options
 * @param {(error: Error | null, server?: NbdServer) => void} [callback]
 */
function serve(image, options, callback) {
  return call(
    callback,
    () => {
      const target = toTarget(image)
      return { target, ...toServeArgs(options, typeof target !== 'string') }
    },
    async ({ target, args, log, open: openOptions }) => {
      if (typeof target !== 'string') return startOn(target, false, args, log)
      const disk = await open(target, openOptions)
      try {
        return await startOn(disk, true, args, log)
      } catch (error) {
        await disk.close().catch(noop)
        throw error
      }
    },
    (server) => [server],
  )
}

module.exports = { serve, NbdServer }
