'use strict'

// `VHD.Image` and its streams side by side with vhd@0.5.0 (the dev dependency `vhd-js`): the
// same scenarios run through both modules, on images from the corpus of images made by other
// software and on images made here. Results must be identical wherever 0.5.0 works. Where
// 0.5.0 fails or is wrong, the test title says so ("beyond 0.5.0: …" or "fixes 0.5.0: …")
// and ours is checked against the right answer instead.
//
// The corpus is `shared/corpus` beside the repository (or VHD_CORPUS_DIR). Without it, its
// cases are skipped, except under CI (CI set), where that is a failure.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const zlib = require('node:zlib')
const OLD = require('vhd-js')
const NEW = require('..')
const { KiB, MiB, tempDir, pattern, sha256File, createWithModel } = require('./helpers.js')

const CORPUS = process.env.VHD_CORPUS_DIR || path.join(__dirname, '..', '..', 'shared', 'corpus')
const haveCorpus = fs.existsSync(path.join(CORPUS, 'README.md'))
const MISSING = `the VHD corpus is not installed (no README.md in ${CORPUS}; set VHD_CORPUS_DIR)`
const skipCorpus = !haveCorpus && !process.env.CI ? `${MISSING}; skipping the corpus cases` : false

/**
 * Corpus images 0.5.0 opens, with the SHA-256 of the whole virtual disk that libvhdi and
 * qemu-img agree on (the corpus README).
 */
const CORPUS_IMAGES = [
  { file: 'node-vhd/fixed.vhd.gz', sha256: 'fa0490edf13cf9699ac7ead2b2024f2ec7921f583ff824039bca0529055e409d' },
  { file: 'node-vhd/dynamic.vhd.gz', sha256: 'c461afded0b54cc1cfb5441e08f4d7f9d699d2eff7d9526d1cf6ad227da26683' },
  { file: 'dissect-hypervisor/fixed.vhd.gz', sha256: '459325ab1fcd1d5ec9854cba790ee26378317cda177ffc1072008a1df88e6463' },
  { file: 'dissect-hypervisor/dynamic.vhd.gz', sha256: 'ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784' },
  { file: 'rdisk/du.vhd', sha256: 'bbd05cf6097ac9b1f89ea29d2542c1b7b67ee46848393895f5a9e43fa1f621e5' },
  { file: 'rdisk/vhd_dynamic_small.vhd', sha256: '8fe72dbeebd3f1cb9d3ad92c9f5835043ef31648a90c7db4fe4e3f143167416a' },
  { file: 'rdisk/vhd_dynamic_small_gpt.vhd', sha256: '880a946985d434ff2af370cab4d29d945fb87276c460a8f250809364c7a69cc2' },
  { file: 'rdisk/vhd_fixed_small.vhd', sha256: '0d75b4c53a0f40b4518cc20282b9901d76fdee0e205ac9925243861c775bba51' },
  { file: 'rdisk/win7dyn.vhd.gz', sha256: '3ac5dc41804dcf5f89f6b110abfa9a5a9b808ae281a7ca3bbb44bf65ecf422c2' },
]

/** 0.5.0's field names. */
const FOOTER_FIELDS = [
  'signature', 'features', 'formatVersion', 'dataOffset', 'timestamp', 'creatorApplication',
  'creatorVersion', 'creatorHostOS', 'originalSize', 'currentSize', 'diskGeometry', 'diskType',
  'checksum', 'uuid', 'savedState', 'reserved',
]
const HEADER_FIELDS = [
  'signature', 'dataOffset', 'tableOffset', 'headerVersion', 'maxTableEntries', 'sectorSize',
  'checksum', 'parentId', 'parentTimestamp', 'reserved1', 'parentName', 'parentLocators', 'reserved2',
]

let tmp
before(() => {
  tmp = tempDir('vhd-compat-')
})
after(() => tmp.cleanup())

// ---------------------------------------------------------------------------------------
// Both modules through the same calls

/** Calls `fn(callback)`; resolves to `{ error, results, self }` (a synchronous throw is the error). */
function settle(fn) {
  return new Promise((resolve) => {
    try {
      fn(function (error, ...results) {
        resolve({ error: error ?? null, results, self: this })
      })
    } catch (error) {
      resolve({ error, results: [], self: undefined })
    }
  })
}

async function openImage(VHD, file, flags = 'r') {
  const image = new VHD.Image({ path: file, flags })
  const { error } = await settle((cb) => image.open(cb))
  if (error) throw error
  return image
}

async function closeImage(image) {
  const { error } = await settle((cb) => image.close(cb))
  assert.ifError(error)
}

/** `length` bytes at `position` through `image.read`: `{ error, bytesRead, buffer }`. */
async function readAt(image, position, length) {
  const { error, results } = await settle((cb) => image.read(Buffer.alloc(length), 0, length, position, cb))
  return { error, bytesRead: results[0], buffer: results[1] }
}

/**
 * What 0.5.0 reads at `position`, one read per block: it reads within a block correctly,
 * but fails reads that cross from an allocated block into the next.
 */
async function readPerBlock(image, position, length, blockSize) {
  const out = Buffer.alloc(length)
  let done = 0
  while (done < length) {
    const at = position + done
    const part = Math.min(length - done, blockSize - (at % blockSize))
    const { error, bytesRead, buffer } = await readAt(image, at, part)
    assert.ifError(error)
    assert.equal(bytesRead, part)
    buffer.copy(out, done)
    done += part
  }
  return out
}

async function writeAt(image, buffer, position) {
  const { error, results } = await settle((cb) => image.write(buffer, 0, buffer.length, position, cb))
  return { error, bytesWritten: results[0] }
}

/** Consumes a readable stream: the SHA-256 of its bytes, its length and its chunk sizes. */
function drain(stream) {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256')
    const chunks = []
    stream.on('data', (chunk) => {
      hash.update(chunk)
      chunks.push(chunk.length)
    })
    stream.on('error', reject)
    stream.on('end', () => resolve({ sha256: hash.digest('hex'), length: chunks.reduce((a, b) => a + b, 0), chunks }))
  })
}

function sha256(buffer) {
  return crypto.createHash('sha256').update(buffer).digest('hex')
}

function pick(object, fields) {
  const out = {}
  for (const field of fields) out[field] = object[field]
  // A deep copy: 0.5.0's footers share one creatorVersion object, which the next parse changes.
  return structuredClone(out)
}

/** Reads that cover the interesting cases: aligned, unaligned, across blocks, the last sector. */
function readsFor(size, blockSize) {
  const reads = [
    [0, 512],
    [512, 4096],
    [1, 511],
    [12_345, 6789],
    [64 * KiB, 64 * KiB],
    [blockSize - 100, 300],
    [blockSize - 1, 2],
    [blockSize, 512],
    [2 * blockSize - 4096, 8192],
    [3 * blockSize - 77, blockSize + 1000],
    [Math.floor(size / 3), 100_000],
    [size - 512, 512],
    [size - 1, 1],
  ]
  return reads.filter(([position, length]) => position >= 0 && length > 0 && position + length <= size)
}

function spansBlocks(position, length, blockSize) {
  return Math.floor(position / blockSize) !== Math.floor((position + length - 1) / blockSize)
}

// ---------------------------------------------------------------------------------------
// The images

/** A copy of `file` (to write to) in the temporary folder. */
function copyOf(file, name = 'copy') {
  const copy = tmp.file(name)
  fs.copyFileSync(file, copy)
  fs.chmodSync(copy, 0o644)
  return copy
}

/** Corpus images, decompressed into the temporary folder on first use. */
const corpusFiles = new Map()
function corpusImage(name) {
  if (!corpusFiles.has(name)) {
    assert.ok(haveCorpus, `${MISSING}, and CI requires the corpus`)
    const source = path.join(CORPUS, name)
    const target = tmp.file(name.replace(/[/.]/g, '-'))
    const bytes = fs.readFileSync(source)
    fs.writeFileSync(target, name.endsWith('.gz') ? zlib.gunzipSync(bytes) : bytes)
    corpusFiles.set(name, target)
  }
  return corpusFiles.get(name)
}

/**
 * Images made here, each with the bytes it should read as: a fixed image, a dynamic image
 * (2 MiB blocks, some allocated), one with 512 KiB blocks whose size is not a whole number
 * of blocks, and a differencing image over a copy of the dynamic one.
 */
const made = {}
before(async () => {
  async function make(name, options, writes, parentModel) {
    const file = tmp.file(name)
    const model = await createWithModel(file, options, writes, parentModel)
    return { file, model, blockSize: options.blockSize ?? 2 * MiB }
  }
  made.fixed = await make('fixed', { type: 'fixed', size: 6 * MiB }, [
    [0, pattern(4096, 1)],
    [2 * MiB - 1000, pattern(3000, 2)],
    [6 * MiB - 700, pattern(700, 3)],
  ])
  made.dynamic = await make('dynamic', { type: 'dynamic', size: 12 * MiB }, [
    [0, pattern(5000, 4)],
    [2 * MiB - 300, pattern(600, 5)], // blocks 0 and 1
    [8 * MiB + 12_345, pattern(2 * MiB, 6)], // blocks 4 and 5
    [12 * MiB - 512, pattern(512, 7)],
  ])
  made.smallBlocks = await make('small-blocks', { type: 'dynamic', size: 5 * MiB + 512, blockSize: 512 * KiB }, [
    [700 * KiB, pattern(100 * KiB, 8)],
    [5 * MiB - 100, pattern(612, 9)], // the last, partly covered block
  ])
  const parent = copyOf(made.dynamic.file, 'parent')
  made.diff = await make('diff', { type: 'differencing', parent }, [
    [2 * MiB - 50, pattern(100, 10)],
    [6 * MiB, pattern(3000, 11)],
  ], made.dynamic.model)
})

const FIXED = NEW.TYPE.FIXED

/**
 * The scenarios every image readable by 0.5.0 goes through. `image()` gives its path;
 * `expected` is the SHA-256 of its virtual disk (or a function giving it).
 */
function sameAs050(title, { image, expected, skip }) {
  describe(title, { skip }, () => {
    test('properties, footer and header are 0.5.0\'s', async () => {
      const file = image()
      const old = await openImage(OLD, file)
      const oldFooter = pick(old.footer, FOOTER_FIELDS)
      const oldHeader = old.header && pick(old.header, HEADER_FIELDS)
      const oldProps = pick(old, ['type', 'sectorSize', 'blocksPerSector', 'bitmapBlocks', 'bat', 'path', 'flags', 'mode'])
      const oldSize = old.size
      await closeImage(old)

      const ours = await openImage(NEW, file)
      assert.ok(ours instanceof NEW.Image)
      assert.deepEqual(pick(ours, ['type', 'sectorSize', 'blocksPerSector', 'bitmapBlocks', 'bat', 'path', 'flags', 'mode']), oldProps)
      assert.ok(ours.footer instanceof NEW.Footer)
      assert.deepEqual(pick(ours.footer, FOOTER_FIELDS), oldFooter)
      assert.equal(typeof ours.fd, 'number')
      if (ours.type === FIXED) {
        assert.equal(ours.header, null)
        assert.equal(oldHeader, null)
        assert.equal(ours.bat, null)
        // A BigInt, as 0.5.0 gives fixed images.
        assert.equal(ours.size, oldSize)
      } else {
        assert.ok(ours.header instanceof NEW.Header)
        assert.deepEqual(pick(ours.header, HEADER_FIELDS), oldHeader)
        assert.ok(Buffer.isBuffer(ours.bat))
        // A Number, as 0.5.0 gives dynamic images; the current size (see "fixes 0.5.0" below).
        assert.equal(ours.size, Number(ours.footer.currentSize))
      }
      await closeImage(ours)
    })

    test('reads at many offsets give 0.5.0\'s bytes (or the right ones where 0.5.0 fails)', async () => {
      const file = image()
      const old = await openImage(OLD, file)
      const ours = await openImage(NEW, file)
      const size = Number(ours.footer.currentSize)
      const blockSize = ours.sectorSize
      for (const [position, length] of readsFor(size, blockSize)) {
        const mine = await readAt(ours, position, length)
        assert.ifError(mine.error)
        assert.equal(mine.bytesRead, length)
        const theirs = await readAt(old, position, length)
        const reference = await readPerBlock(old, position, length, blockSize)
        assert.ok(mine.buffer.equals(reference), `${length} bytes at ${position}`)
        if (theirs.error === null) {
          assert.equal(theirs.bytesRead, length)
          assert.ok(theirs.buffer.equals(mine.buffer), `${length} bytes at ${position}, as 0.5.0 reads them`)
        } else {
          // 0.5.0's only failing reads are those that cross a block boundary.
          assert.ok(spansBlocks(position, length, blockSize), `0.5.0 failed ${length} bytes at ${position}: ${theirs.error}`)
        }
      }
      await closeImage(old)
      await closeImage(ours)
    })

    test('readFooter, readHeader and readAllocationTable give what 0.5.0\'s give', async () => {
      const file = image()
      const fileSize = fs.statSync(file).size
      const results = []
      for (const VHD of [OLD, NEW]) {
        const img = await openImage(VHD, file)
        const footer = await settle((cb) => img.readFooter(fileSize - 512, cb))
        assert.ifError(footer.error)
        const header = await settle((cb) => img.readHeader(Number(img.footer.dataOffset), cb))
        assert.ifError(header.error)
        let table = null
        if (img.header) {
          const length = img.header.maxTableEntries * 4
          const read = await settle((cb) => img.readAllocationTable(Number(img.header.tableOffset), length, cb))
          assert.ifError(read.error)
          table = read.results[0]
        }
        results.push({
          footer: pick(footer.results[0], FOOTER_FIELDS),
          footerChecksum: footer.results[1],
          header: header.results.length ? pick(header.results[0], HEADER_FIELDS) : null,
          headerChecksum: header.results[1],
          headerArgs: header.results.length,
          table,
        })
        await closeImage(img)
      }
      const [theirs, mine] = results
      assert.deepEqual(mine, theirs)
      assert.equal(mine.footerChecksum, mine.footer.checksum, 'the checksum the bytes call for is the stored one')
      // For fixed images, readHeader calls back with no header, as 0.5.0 does.
      if (mine.header === null) assert.equal(mine.headerArgs, 0)
    })

    test('whole-disk read streams give 0.5.0\'s bytes, and the ones libvhdi and qemu-img read', async () => {
      const file = image()
      const hashes = []
      for (const VHD of [OLD, NEW]) {
        const img = await openImage(VHD, file)
        const { sha256, length } = await drain(img.createReadStream())
        assert.equal(length, Number(img.footer.currentSize))
        hashes.push(sha256)
        await closeImage(img)
      }
      assert.equal(hashes[1], hashes[0])
      assert.equal(hashes[1], typeof expected === 'function' ? expected() : expected)
    })

    test('read streams with start, end and highWaterMark cut the disk as 0.5.0\'s do (start 0)', async () => {
      const file = image()
      const runs = []
      for (const VHD of [OLD, NEW]) {
        const img = await openImage(VHD, file)
        runs.push([
          await drain(img.createReadStream({ end: 3 * MiB + 100, highWaterMark: 64 * KiB })),
          await drain(new VHD.ReadStream({ image: img, end: 1000, highWaterMark: 300 })),
          await drain(img.createReadStream({ start: 0, highWaterMark: 256 * KiB })),
        ])
        await closeImage(img)
      }
      assert.deepEqual(runs[1], runs[0])
      assert.equal(runs[1][1].length, 1000, 'end is exclusive')
      assert.deepEqual(runs[1][1].chunks, [300, 300, 300, 100])
    })
  })
}

sameAs050('a fixed image made here', { image: () => made.fixed.file, expected: () => sha256(made.fixed.model) })
sameAs050('a dynamic image made here', { image: () => made.dynamic.file, expected: () => sha256(made.dynamic.model) })
sameAs050('a dynamic image made here with 512 KiB blocks and a partly covered last block', {
  image: () => made.smallBlocks.file,
  expected: () => sha256(made.smallBlocks.model),
})
for (const { file, sha256: expected } of CORPUS_IMAGES) {
  sameAs050(`corpus: ${file}`, { image: () => corpusImage(file), expected, skip: skipCorpus })
}

// ---------------------------------------------------------------------------------------
// Writes

/** Writes that cover the interesting cases: unaligned, across blocks, up to the end. */
function writesFor(size) {
  return [
    [0, pattern(512, 21)],
    [1234, pattern(10_000, 22)],
    [2 * MiB - 3000, pattern(6000, 23)],
    [size - 700, pattern(700, 24)],
    [1234 + 5000, pattern(33, 25)],
  ]
}

describe('writes', () => {
  async function sameWritesOnFixed(source) {
    const copies = [copyOf(source, 'old'), copyOf(source, 'new')]
    for (const [VHD, file] of [[OLD, copies[0]], [NEW, copies[1]]]) {
      const img = await openImage(VHD, file, 'r+')
      for (const [position, data] of writesFor(Number(img.footer.currentSize))) {
        const { error, bytesWritten } = await writeAt(img, data, position)
        assert.ifError(error)
        assert.equal(bytesWritten, data.length)
      }
      await closeImage(img)
    }
    assert.equal(sha256File(copies[1]), sha256File(copies[0]), 'the same file bytes')
  }

  test('writes to a fixed image made here leave the file 0.5.0\'s writes leave', () => sameWritesOnFixed(made.fixed.file))

  test('writes to corpus fixed images leave the file 0.5.0\'s writes leave', { skip: skipCorpus }, async () => {
    await sameWritesOnFixed(corpusImage('node-vhd/fixed.vhd.gz'))
    await sameWritesOnFixed(corpusImage('rdisk/vhd_fixed_small.vhd'))
  })

  test('write streams into a fixed image leave the file 0.5.0\'s leave', async () => {
    const copies = [copyOf(made.fixed.file, 'old'), copyOf(made.fixed.file, 'new')]
    const data = pattern(300 * KiB + 17, 26)
    for (const [VHD, file] of [[OLD, copies[0]], [NEW, copies[1]]]) {
      const img = await openImage(VHD, file, 'r+')
      const stream = img.createWriteStream({ start: 2 * MiB - 1000 })
      await new Promise((resolve, reject) => {
        stream.on('error', reject)
        stream.on('finish', resolve)
        for (let at = 0; at < data.length; at += 4096) stream.write(data.subarray(at, at + 4096))
        stream.end()
      })
      await closeImage(img)
    }
    assert.equal(sha256File(copies[1]), sha256File(copies[0]))
  })

  test('beyond 0.5.0: writes to dynamic images (0.5.0 throws), which 0.5.0 then reads back', async () => {
    const file = copyOf(made.dynamic.file)
    const old = await openImage(OLD, file, 'r+')
    const refused = await writeAt(old, pattern(10, 1), 0)
    assert.ok(refused.error instanceof TypeError, '0.5.0 cannot write dynamic images')
    await closeImage(old)

    const model = Buffer.from(made.dynamic.model)
    const ours = await openImage(NEW, file, 'r+')
    const batBefore = Buffer.from(ours.bat)
    assert.equal(ours.sectorNeedsAllocation(3), true)
    // Block 3 is not allocated yet; the others written are.
    for (const [position, data] of [...writesFor(model.length), [6 * MiB + 100, pattern(1000, 28)]]) {
      const { error, bytesWritten } = await writeAt(ours, data, position)
      assert.ifError(error)
      assert.equal(bytesWritten, data.length)
      data.copy(model, position)
    }
    assert.ok(!ours.bat.equals(batBefore), 'bat shows the blocks the writes allocated')
    assert.ok(ours.sectorNeedsAllocation(3) === false && ours.getSectorAddress(3) !== NEW.SECTOR.FREE)
    await closeImage(ours)

    const reread = await openImage(OLD, file)
    const { sha256: got, length } = await drain(reread.createReadStream())
    assert.equal(length, model.length)
    assert.equal(got, sha256(model), '0.5.0 reads what was written')
    await closeImage(reread)
  })

  test('beyond 0.5.0: writes to differencing images', async () => {
    // The copy is beside the original, so its relative parent locator finds the same parent.
    const file = copyOf(made.diff.file)
    const ours = new NEW.Image({ path: file })
    await ours.open()
    const model = Buffer.from(made.diff.model)
    const data = pattern(3 * MiB, 27)
    await ours.write(data, 0, data.length, MiB + 5)
    data.copy(model, MiB + 5)
    const { buffer } = await ours.read(Buffer.alloc(model.length), 0, model.length, 0)
    assert.ok(buffer.equals(model))
    await ours.close()
  })

  test('fixes 0.5.0: a write past the end of a fixed image fails and leaves the footer alone (0.5.0 overwrites it)', async () => {
    const copies = [copyOf(made.fixed.file, 'old'), copyOf(made.fixed.file, 'new')]
    const before = fs.readFileSync(made.fixed.file)
    const size = made.fixed.model.length
    const old = await openImage(OLD, copies[0], 'r+')
    assert.ifError((await writeAt(old, Buffer.alloc(20, 0xee), size - 10)).error)
    await closeImage(old)
    assert.ok(!fs.readFileSync(copies[0]).equals(before), '0.5.0 wrote over the footer')

    const ours = await openImage(NEW, copies[1], 'r+')
    const { error } = await writeAt(ours, Buffer.alloc(20, 0xee), size - 10)
    assert.equal(error.code, 'ERR_VHD_OUT_OF_RANGE')
    await closeImage(ours)
    assert.ok(fs.readFileSync(copies[1]).equals(before), 'nothing written')
  })

  test('flags \'r\' refuses writes in both (0.5.0: EBADF; ours: ERR_VHD_READ_ONLY)', async () => {
    for (const [VHD, code] of [[OLD, 'EBADF'], [NEW, 'ERR_VHD_READ_ONLY']]) {
      const img = await openImage(VHD, copyOf(made.fixed.file), 'r')
      const { error } = await writeAt(img, Buffer.alloc(1), 0)
      assert.equal(error.code, code)
      await closeImage(img)
    }
  })
})

// ---------------------------------------------------------------------------------------
// What 0.5.0 gets wrong or cannot do

describe('beyond and fixes', () => {
  test('beyond 0.5.0: reads that cross from an allocated block into the next (0.5.0 fails them)', async () => {
    const { file, model } = made.dynamic
    const old = await openImage(OLD, file)
    const ours = await openImage(NEW, file)
    for (const [position, length] of [[2 * MiB - 300, 600], [MiB, 3 * MiB], [0, 12 * MiB]]) {
      const theirs = await readAt(old, position, length)
      assert.ok(theirs.error, `0.5.0 fails ${length} bytes at ${position}`)
      const mine = await readAt(ours, position, length)
      assert.ifError(mine.error)
      assert.ok(mine.buffer.equals(model.subarray(position, position + length)))
    }
    await closeImage(old)
    await closeImage(ours)
  })

  test('beyond 0.5.0: differencing images (0.5.0 cannot read them)', async () => {
    const { file, model } = made.diff
    const old = await openImage(OLD, file)
    const theirs = await readAt(old, 0, 512)
    assert.match(String(theirs.error), /not implemented/)
    await closeImage(old)

    const ours = await openImage(NEW, file)
    assert.equal(ours.type, NEW.TYPE.DIFF)
    assert.equal(ours.size, model.length)
    assert.match(ours.header.parentName, /parent\.vhd$/)
    for (const [position, length] of readsFor(model.length, 2 * MiB)) {
      const { bytesRead, buffer } = await ours.read(Buffer.alloc(length), 0, length, position)
      assert.equal(bytesRead, length)
      assert.ok(buffer.equals(model.subarray(position, position + length)), `${length} bytes at ${position}`)
    }
    const { sha256: got } = await drain(ours.createReadStream())
    assert.equal(got, sha256(model))
    await ours.close()
  })

  test('fixes 0.5.0: size is the current size (0.5.0 gives dynamic images the size of their whole block table)', async () => {
    const cases = [made.smallBlocks.file]
    if (haveCorpus) cases.push(corpusImage('rdisk/du.vhd'), corpusImage('rdisk/vhd_dynamic_small.vhd'))
    for (const file of cases) {
      const old = await openImage(OLD, file)
      const ours = await openImage(NEW, file)
      const tableSize = old.header.maxTableEntries * old.header.sectorSize
      assert.equal(old.size, tableSize)
      assert.notEqual(tableSize, Number(old.footer.currentSize), `${file}: the block table covers more than the disk`)
      assert.equal(ours.size, Number(ours.footer.currentSize))
      assert.equal(typeof ours.size, 'number')
      await closeImage(old)
      await closeImage(ours)
    }
  })

  test('fixes 0.5.0: a read past the end of a fixed image is short, without footer bytes (0.5.0 reads the footer, then fails)', async () => {
    const { file, model } = made.fixed
    const old = await openImage(OLD, file)
    const theirs = await readAt(old, model.length - 100, 700)
    assert.ok(theirs.error)
    assert.equal(theirs.buffer.toString('latin1', 100, 108), 'conectix')
    await closeImage(old)

    const ours = await openImage(NEW, file)
    const target = Buffer.alloc(700, 0xaa)
    const { bytesRead, buffer } = await ours.read(target, 0, 700, model.length - 100)
    assert.equal(bytesRead, 100)
    assert.equal(buffer, target)
    assert.ok(buffer.subarray(0, 100).equals(model.subarray(-100)))
    assert.ok(buffer.subarray(100).every((b) => b === 0xaa), 'the rest of the buffer is left alone, as fs.read does')
    await closeImage(ours)
  })

  test('fixes 0.5.0: a read stream with start stops at end (0.5.0 reads `end` bytes from start)', async () => {
    const { file, model } = made.dynamic
    const lengths = []
    for (const VHD of [OLD, NEW]) {
      const img = await openImage(VHD, file)
      const { length, sha256: got } = await drain(img.createReadStream({ start: 1000, end: 5000 }))
      lengths.push(length)
      if (VHD === NEW) assert.equal(got, sha256(model.subarray(1000, 5000)))
      await closeImage(img)
    }
    assert.deepEqual(lengths, [5000, 4000])
  })

  test('beyond 0.5.0: opening from a file descriptor (0.5.0 ignores fd and fails)', async () => {
    const { file, model } = made.dynamic
    const oldFd = fs.openSync(file, 'r')
    const old = new OLD.Image({ fd: oldFd, flags: 'r' })
    assert.ok((await settle((cb) => old.open(cb))).error)
    fs.closeSync(oldFd)

    const fd = fs.openSync(file, 'r')
    const ours = new NEW.Image({ fd, flags: 'r' })
    await ours.open()
    assert.equal(ours.fd, fd)
    assert.equal(ours.path, null)
    const { buffer } = await ours.read(Buffer.alloc(4096), 0, 4096, 2 * MiB - 2048)
    assert.ok(buffer.equals(model.subarray(2 * MiB - 2048, 2 * MiB + 2048)))
    await ours.close()
    assert.equal(ours.fd, null)
    // close() closes the descriptor given, as 0.5.0's close does.
    assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' })
  })

  test('beyond 0.5.0: read and write streams opened from a path (0.5.0\'s cannot open)', async () => {
    const { file, model } = made.fixed
    assert.throws(() => new OLD.ReadStream({ path: file }).open(), ReferenceError)

    const reader = new NEW.ReadStream({ path: file, start: 10, end: 5000 })
    const { sha256: got } = await drain(reader)
    assert.equal(got, sha256(model.subarray(10, 5000)))
    await new Promise((resolve) => reader.once('close', resolve))
    assert.equal(reader.image.fd, null, 'the stream closed the image it opened')

    const copy = copyOf(file)
    const writer = new NEW.WriteStream({ path: copy, start: 100 })
    await new Promise((resolve, reject) => writer.on('error', reject).on('close', resolve).end(Buffer.from('hello')))
    const check = await openImage(NEW, copy)
    assert.equal((await check.read(Buffer.alloc(5), 0, 5, 100)).buffer.toString(), 'hello')
    await check.close()
  })
})

// ---------------------------------------------------------------------------------------
// The API surface

describe('the Image API', () => {
  test('before open, the properties are 0.5.0\'s (except size: null where 0.5.0 throws)', () => {
    const old = new OLD.Image({ path: 'x.vhd' })
    const ours = new NEW.Image({ path: 'x.vhd' })
    const fields = ['fd', 'path', 'flags', 'mode', 'bat', 'header', 'footer', 'type', 'sectorSize', 'blocksPerSector', 'bitmapBlocks']
    assert.deepEqual(pick(ours, fields), pick(old, fields))
    assert.throws(() => old.size, TypeError)
    assert.equal(ours.size, null)
  })

  test('callbacks are called with the image as `this`, as in 0.5.0', async () => {
    for (const VHD of [OLD, NEW]) {
      const img = new VHD.Image({ path: made.fixed.file, flags: 'r' })
      assert.equal((await settle((cb) => img.open(cb))).self, img)
      assert.equal((await settle((cb) => img.read(Buffer.alloc(1), 0, 1, 0, cb))).self, img)
      assert.equal((await settle((cb) => img.readFooter(made.fixed.model.length, cb))).self, img)
      assert.equal((await settle((cb) => img.close(cb))).self, img)
    }
  })

  test('the promise forms (not in 0.5.0) give what the callbacks give', async () => {
    const { file, model } = made.dynamic
    const img = new NEW.Image({ path: copyOf(file) })
    assert.equal(await img.open(), img)
    const target = Buffer.alloc(1000)
    const read = await img.read(target, 10, 900, 2 * MiB - 450)
    assert.equal(read.bytesRead, 900)
    assert.equal(read.buffer, target)
    assert.ok(target.subarray(10, 910).equals(model.subarray(2 * MiB - 450, 2 * MiB + 450)))
    const data = pattern(100, 30)
    const written = await img.write(data, 0, 100, 5 * MiB)
    assert.deepEqual(written, { bytesWritten: 100, buffer: data })
    const fileSize = fs.statSync(img.path).size
    const { footer, checksum } = await img.readFooter(fileSize - 512)
    assert.ok(footer instanceof NEW.Footer)
    assert.equal(checksum, footer.checksum)
    const { header, checksum: headerChecksum } = await img.readHeader(Number(img.footer.dataOffset))
    assert.ok(header instanceof NEW.Header)
    assert.equal(headerChecksum, header.checksum)
    const table = await img.readAllocationTable(Number(header.tableOffset), header.maxTableEntries * 4)
    assert.ok(Buffer.isBuffer(table) && table.length === header.maxTableEntries * 4)
    await img.flush()
    assert.equal(await img.close(), undefined)

    const fixed = new NEW.Image({ path: made.fixed.file, flags: 'r' })
    await fixed.open()
    assert.deepEqual(await fixed.readHeader(0), { header: null, checksum: null })
    await fixed.close()
  })

  test('errors: a missing file, a file that is no image, use before open and after close', async () => {
    const missing = path.join(tmp.dir, 'missing.vhd')
    for (const VHD of [OLD, NEW]) {
      const { error } = await settle((cb) => new VHD.Image({ path: missing }).open(cb))
      assert.equal(error.code, 'ENOENT')
    }
    const junk = tmp.file('junk')
    fs.writeFileSync(junk, Buffer.alloc(4096, 1))
    for (const VHD of [OLD, NEW]) {
      const { error } = await settle((cb) => new VHD.Image({ path: junk }).open(cb))
      assert.match(error.message, /signature|cookie/i)
    }
    const img = new NEW.Image({ path: made.fixed.file, flags: 'r' })
    await assert.rejects(img.read(Buffer.alloc(1), 0, 1, 0), { code: 'ERR_VHD_CLOSED' })
    await img.open()
    await assert.rejects(img.open(), { code: 'ERR_VHD_ALREADY_OPEN' })
    await img.close()
    await assert.rejects(img.read(Buffer.alloc(1), 0, 1, 0), { code: 'ERR_VHD_CLOSED' })
    await assert.rejects(img.readFooter(0), { code: 'ERR_VHD_CLOSED' })
    await img.close() // closing again resolves, as FileHandle.close() (0.5.0: EBADF)
    // The structures stay, as in 0.5.0.
    assert.equal(img.type, FIXED)
    // And it opens again.
    await img.open()
    await img.close()
  })

  test('arguments: flags, fd, buffers and offsets are checked', async () => {
    assert.throws(() => new NEW.Image(), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => new NEW.Image({}), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => new NEW.Image({ path: 'x', flags: 'bogus' }), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => new NEW.Image({ path: 'x', flags: 'wx+' }), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => new NEW.Image({ path: 'x', flags: fs.constants.O_RDWR | fs.constants.O_EXCL }), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => new NEW.Image({ fd: -1 }), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => new NEW.Image({ fd: '3' }), { code: 'ERR_INVALID_ARG_TYPE' })
    // 0.5.0's flags fail in fs.open.
    assert.throws(() => new OLD.Image({ path: made.fixed.file, flags: 'bogus' }).open(() => {}), { code: 'ERR_INVALID_ARG_VALUE' })

    const img = new NEW.Image({ path: made.fixed.file, flags: 'r' })
    await img.open()
    assert.throws(() => img.read(Buffer.alloc(10), 5, 6, 0, () => {}), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => img.read('nope', 0, 1, 0, () => {}), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => img.read(Buffer.alloc(1), 0, 1, -1, () => {}), { code: 'ERR_OUT_OF_RANGE' })
    await assert.rejects(img.write(Buffer.alloc(1), 2, 1, 0), { code: 'ERR_OUT_OF_RANGE' })
    await img.close()
  })

  test('flags: \'r+\', \'w+\', \'a\' and numbers open read-write; the image is neither truncated nor created', async () => {
    const file = copyOf(made.fixed.file)
    const before = sha256File(file)
    for (const flags of ['r+', 'w+', 'a', 'rs+', fs.constants.O_RDWR | fs.constants.O_TRUNC | fs.constants.O_CREAT]) {
      const img = new NEW.Image({ path: file, flags })
      await img.open()
      assert.equal(img.flags, flags)
      await img.write(Buffer.from('x'), 0, 1, 0)
      await img.write(made.fixed.model.subarray(0, 1), 0, 1, 0)
      await img.close()
      assert.equal(sha256File(file), before, String(flags))
    }
    for (const flags of ['r', 'rs', fs.constants.O_RDONLY]) {
      const img = new NEW.Image({ path: file, flags })
      await img.open()
      await assert.rejects(img.write(Buffer.from('x'), 0, 1, 0), { code: 'ERR_VHD_READ_ONLY' })
      await img.close()
    }
    await assert.rejects(new NEW.Image({ path: path.join(tmp.dir, 'new.vhd'), flags: 'w+' }).open(), { code: 'ENOENT' })
  })

  test('an image opened from a descriptor with a path finds a differencing image\'s parent beside it', async () => {
    const fd = fs.openSync(made.diff.file, 'r')
    const img = new NEW.Image({ fd, path: made.diff.file, flags: 'r' })
    await img.open()
    const { buffer } = await img.read(Buffer.alloc(made.diff.model.length), 0, made.diff.model.length, 0)
    assert.ok(buffer.equals(made.diff.model))
    await img.close()
  })

  test('a differencing image opened from a descriptor alone finds its parent by its absolute locator, or by `parent`', async () => {
    const { file, model } = made.diff
    const parent = path.join(path.dirname(file), fs.readdirSync(path.dirname(file)).find((name) => name.endsWith('-parent.vhd')))
    for (const options of [{}, { parent }]) {
      const fd = fs.openSync(file, 'r')
      const img = new NEW.Image({ fd, flags: 'r', ...options })
      await img.open()
      const { buffer } = await img.read(Buffer.alloc(model.length), 0, model.length, 0)
      assert.ok(buffer.equals(model))
      await img.close()
    }
  })

  test('VHD.Image, VHD.ReadStream and VHD.WriteStream are exported, as in 0.5.0', () => {
    for (const name of ['Image', 'ReadStream', 'WriteStream']) {
      assert.equal(typeof OLD[name], 'function')
      assert.equal(typeof NEW[name], 'function', name)
    }
    for (const method of ['open', 'read', 'write', 'close', 'readFooter', 'readHeader', 'readAllocationTable', 'createReadStream', 'createWriteStream', 'sectorNumber', 'blockInSector', 'getSectorAddress', 'sectorNeedsAllocation']) {
      assert.equal(typeof NEW.Image.prototype[method], 'function', method)
      assert.equal(NEW.Image.prototype[method].length, OLD.Image.prototype[method].length, `${method} takes 0.5.0's arguments`)
    }
  })
})
