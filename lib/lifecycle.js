'use strict'

// The open/close lifecycle of one image, written once: its state, the `open` in progress,
// the native operations in flight, and the waits built on them (`flush` waits for what was
// started before it, `close` for everything). A `Disk` (lib/disk.js) owns one; `VHD.Image`
// (lib/image.js) is an adapter over a `Disk`, so it has the same lifecycle, not a copy.
//
// Operations in flight are counted in batches: every operation joins the current batch when
// it starts and leaves it when it settles. A wait for "everything started so far" closes the
// current batch (later operations join a new one) and waits for the closed batches to
// empty; new work never delays it. That costs an increment and a decrement per operation.

const { stateError } = require('./args.js')

/**
 * @typedef {import('../binding.js').NativeImage} NativeImage
 * @typedef {import('../binding.js').ImageInfo} ImageInfo
 * @typedef {ReturnType<NativeImage['handle']['valueOf']>} Handle
 * @typedef {'new' | 'opening' | 'open' | 'closing' | 'closed'} State
 * @typedef {{ native: NativeImage, release?: (() => Promise<void>) | null }} Opened
 *   What an opener gives: the native image, and what to release after it is closed (the
 *   descriptor `VHD.Image` opened).
 */

/** Operations started between two waits. */
class Batch {
  constructor() {
    this.count = 0
    /** @type {(() => void) | null} resolves `emptied` */
    this.resolve = null
    /** @type {Promise<void> | null} */
    this.emptied = null
  }
}

class Lifecycle {
  /** @param {string} name the image as messages name it (its path, or 'fd N') */
  constructor(name) {
    this.name = name
    /** @type {State} */
    this.state = 'new'
    /** @type {Promise<void> | null} the `open` in progress */
    this.opening = null
    /** @type {Promise<void> | null} the `close` in progress, or the last one */
    this.closing = null
    /** @type {NativeImage | null} */
    this.native = null
    /** @type {NativeImage['handle'] | null} what reads and writes go through (lib/io.js) */
    this.handle = null
    /** @type {ImageInfo | null} */
    this.info = null
    /** @type {(() => Promise<void>) | null} */
    this.release = null
    /** The batch operations that start now join. */
    this.batch = new Batch()
    /** @type {Set<Batch>} closed batches someone waits for, not empty yet */
    this.closedBatches = new Set()
    /**
     * Counts writes started and settled (and every other change of the image): what a copy
     * of the block allocation table was read at tells whether it may be stale.
     */
    this.changes = 0
    /**
     * The NBD servers serving this image (lib/serve.js), each with a `close()`: `close`
     * closes them first (their clients' requests in flight finish and are flushed), so that
     * no client is left writing into an image that is gone.
     * @type {Set<{ close(): Promise<void> }>}
     */
    this.servers = new Set()
  }

  /**
   * Opens with `opener` (called with `self` as `this`; it resolves to an `Opened`) unless
   * the image is open or being opened already (ERR_VHD_ALREADY_OPEN), and resolves to
   * `result`. A failed open leaves the state as it was. (A method and its object rather
   * than a closure, and no more reactions than needed: the first open of a process
   * compiles every function it runs, at 5-50 µs each; see docs/performance.md.)
   * @template T
   * @param {(this: any) => Promise<Opened>} opener
   * @param {unknown} self
   * @param {T} result
   * @returns {Promise<T>}
   */
  open(opener, self, result) {
    const state = this.state
    if (state !== 'new' && state !== 'closed') {
      throw stateError('ERR_VHD_ALREADY_OPEN', `${this.name}: the image is already ${state === 'open' ? 'open' : state}`)
    }
    this.state = 'opening'
    let opened
    try {
      opened = opener.call(self)
    } catch (error) {
      // An opener that throws before it has a promise (a bad argument) fails the open too.
      this.state = state
      throw error
    }
    // No second open can start before these run (the state is 'opening' until they do),
    // so `opening` is still this open's.
    const opening = opened.then(
      ({ native, release }) => {
        this.attach(native, release)
        this.opening = null
        return result
      },
      (error) => {
        this.state = state
        this.opening = null
        throw error
      },
    )
    this.opening = opening
    return opening
  }

  /**
   * @param {NativeImage} native
   * @param {(() => Promise<void>) | null} [release]
   */
  attach(native, release = null) {
    this.native = native
    this.handle = native.handle
    this.info = native.info
    this.release = release
    this.state = 'open'
    // A copy of the BAT from an earlier open is stale now (the file may have changed since).
    this.changes++
  }

  /** Resolves once the image is open (now, or when the `open` in progress succeeds). */
  whenOpen() {
    if (this.state === 'opening' && this.opening) return this.opening.then(() => this.whenOpen())
    try {
      this.current()
      return Promise.resolve()
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** The native image, or throws ERR_VHD_CLOSED. */
  current() {
    switch (this.state) {
      case 'open':
        return /** @type {NativeImage} */ (this.native)
      case 'new':
      case 'opening':
        throw stateError('ERR_VHD_CLOSED', `${this.name}: the image is not open (call open() first)`)
      default:
        throw stateError('ERR_VHD_CLOSED', `${this.name}: the image is closed`)
    }
  }

  /** The handle reads and writes go through, or throws ERR_VHD_CLOSED. */
  io() {
    this.current()
    return /** @type {NativeImage['handle']} */ (this.handle)
  }

  /**
   * An operation starts (lib/io.js calls this for its reads and writes). Returns the batch
   * it joined, which `settled` takes back.
   * @param {boolean} change whether it changes the image (a write, a discard)
   */
  started(change) {
    if (change) this.changes++
    const batch = this.batch
    batch.count++
    return batch
  }

  /**
   * The operation that joined `batch` settled.
   * @param {Batch} batch
   * @param {boolean} change
   */
  settled(batch, change) {
    if (change) this.changes++
    if (--batch.count === 0 && batch.resolve !== null) {
      this.closedBatches.delete(batch)
      batch.resolve()
    }
  }

  /**
   * Counts `result`, a native operation other than a read or a write, as in flight until
   * it settles, and resolves to `map(value)`.
   * @template T, U
   * @param {Promise<T>} result
   * @param {(value: T) => U} map
   * @param {boolean} [change]
   * @returns {Promise<U>}
   */
  track(result, map, change = false) {
    const batch = this.started(change)
    return result.then(
      (value) => {
        this.settled(batch, change)
        return map(value)
      },
      (error) => {
        this.settled(batch, change)
        throw error
      },
    )
  }

  /** Resolves once every operation started before this call has settled. */
  whenSettled() {
    const batch = this.batch
    if (batch.count > 0) {
      batch.emptied = new Promise((resolve) => {
        batch.resolve = resolve
      })
      this.closedBatches.add(batch)
      this.batch = new Batch()
    }
    if (this.closedBatches.size === 0) return Promise.resolve()
    return Promise.all([...this.closedBatches].map((b) => b.emptied)).then(() => undefined)
  }

  /**
   * Makes every write started before this call durable: waits for the operations in flight
   * (a write that has not reached the native image cannot be flushed), then flushes. The
   * flush itself is in flight meanwhile, so that `close` waits for it.
   * @returns {Promise<void>}
   */
  flush() {
    const native = this.current()
    const before = this.whenSettled()
    return this.track(before.then(() => native.flush()), () => undefined)
  }

  /**
   * Waits for every operation already started (new ones fail with ERR_VHD_CLOSED), closes
   * the NBD servers serving the image (`servers`), runs `beforeClose`, closes the native
   * image (which flushes), then releases what the opener asked to. Closed even when one of these fails: the first failure is reported.
   *
   * Like `FileHandle.close()`, closing what is not open is not an error: a `close` while one
   * is in progress returns that one's promise (so it settles the same way), and a `close`
   * of an image that is closed, was never opened or failed to open resolves at once. A
   * `close` during `open` waits for it, then closes what it opened.
   * @param {() => void} [beforeClose]
   * @returns {Promise<void>}
   */
  close(beforeClose) {
    switch (this.state) {
      case 'new':
      case 'closed':
        return Promise.resolve()
      case 'closing':
        return /** @type {Promise<void>} */ (this.closing)
      case 'opening':
        return /** @type {Promise<void>} */ (this.opening).then(
          () => this.close(beforeClose),
          () => undefined, // the open failed: nothing to close (its caller gets that error)
        )
      default:
    }
    const native = this.current()
    this.state = 'closing'
    const closing = this.whenSettled().then(async () => {
      const release = this.release
      /** @type {unknown} */
      let failure = null
      try {
        // The servers stop before the image goes: each finishes its clients' requests in
        // flight and flushes. A failure (the flush) is reported; the image still closes.
        const servers = [...this.servers]
        for (const result of await Promise.allSettled(servers.map((server) => server.close()))) {
          if (result.status === 'rejected') failure = failure ?? result.reason
        }
        if (beforeClose) beforeClose()
        await native.close().catch((error) => {
          failure = failure ?? error
        })
        if (release) {
          await release().catch((error) => {
            failure = failure ?? error
          })
        }
      } finally {
        this.state = 'closed'
        this.native = null
        this.handle = null
        this.info = null
        this.release = null
      }
      if (failure) throw failure
    })
    this.closing = closing
    return closing
  }
}

module.exports = { Lifecycle }
