// Type-level checks of index.d.ts (never run; only compiled by __test__/types.test.js with
// the devDependencies typescript and @types/node).

import VHD = require('..')

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
function expectType<T>(_value: T): void {}
function assertEqual<A, B>(_proof: Equal<A, B>): void {}

async function promises(): Promise<void> {
  const disk = new VHD.Dynamic('disk.vhd', { readOnly: false, ignoreChecksums: true })
  const opened = await disk.open()
  assertEqual<typeof opened, VHD.Dynamic>(true)

  const { bytesRead, buffer } = await disk.read(0, 512)
  expectType<number>(bytesRead)
  expectType<Buffer>(buffer)
  await disk.read(10n, 20n)

  const bytes = new Uint8Array(4)
  const written = await disk.write(bytes, 1024)
  assertEqual<typeof written.buffer, typeof bytes>(true) // the same buffer type comes back
  const sync = disk.writeSync(Buffer.alloc(1), 0n)
  expectType<Buffer>(sync.buffer)
  expectType<VHD.ReadResult>(disk.readSync(0, 1))

  await disk.flush()
  await disk.close()

  expectType<number | undefined>(disk.size)
  expectType<'end' | 'end511' | 'copy' | undefined>(disk.footerSource)
  const footer = disk.footer
  if (footer) {
    expectType<bigint>(footer.currentSize)
    expectType<number>(footer.diskGeometry.sectors)
    expectType<Buffer>(footer.uuid)
  }
  const locators = disk.header?.parentLocators
  expectType<VHD.ParentLocator[] | undefined>(locators)

  const fixed = await VHD.create('f.vhd', { type: 'fixed', size: 1 << 20 })
  assertEqual<typeof fixed, VHD.OpenFixed>(true)
  const dynamic = await VHD.create('d.vhd', { type: VHD.TYPE.DYNAMIC, size: 1n << 30n, blockSize: 1 << 19, overwrite: true })
  assertEqual<typeof dynamic, VHD.OpenDynamic>(true)
  const any = await VHD.open(new URL('file:///images/x.vhd'))
  assertEqual<typeof any, VHD.OpenDisk>(true)
  assertEqual<VHD.OpenDisk, VHD.OpenFixed | VHD.OpenDynamic | VHD.OpenDifferencing>(true)
  assertEqual<VHD.AnyDisk, VHD.Fixed | VHD.Dynamic | VHD.Differencing>(true)
  if (any instanceof VHD.Differencing) expectType<string[] | undefined>(any.chain)
  expectType<2>(VHD.TYPE.FIXED)
  expectType<string>(VHD.version)
}

function callbacks(): void {
  const disk = new VHD.Fixed('disk.vhd')
  const nothing: void = disk.open((error) => {
    if (error) expectType<VHD.ErrorCode>(error.code)
  })
  expectType<void>(nothing)
  disk.read(0, 10, (error, bytesRead, buffer) => {
    expectType<VHD.VhdError | null>(error)
    expectType<number>(bytesRead)
    expectType<Buffer>(buffer)
  })
  disk.write(new DataView(new ArrayBuffer(8)), 0, (_error, bytesWritten, buffer) => {
    expectType<number>(bytesWritten)
    expectType<DataView>(buffer)
  })
  disk.flush(() => {})
  disk.close(() => {})
  VHD.open('x.vhd', (_error, opened) => expectType<VHD.OpenDisk>(opened))
  VHD.open('x.vhd', { readOnly: true }, () => {})
  VHD.create('y.vhd', { type: 'dynamic', size: 512 }, (_error, created) => expectType<VHD.Dynamic>(created))
}

async function differencing(unknown: VHD.CreateOptions): Promise<void> {
  const child = await VHD.create('c.vhd', { type: 'differencing', parent: 'base.vhd' })
  assertEqual<typeof child, VHD.OpenDifferencing>(true)
  // A parent says the type.
  const implied = await VHD.create('c3.vhd', { parent: 'base.vhd' })
  assertEqual<typeof implied, VHD.OpenDifferencing>(true)
  const bigger = await VHD.create(new URL('file:///c2.vhd'), {
    type: VHD.TYPE.DIFF,
    parent: new URL('file:///base.vhd'),
    size: 1n << 30n,
    overwrite: true,
    creatorApplication: 'test',
  })
  assertEqual<typeof bigger, VHD.OpenDifferencing>(true)
  const anyDisk = await VHD.create('u.vhd', unknown)
  assertEqual<typeof anyDisk, VHD.OpenDisk>(true)
  VHD.create('c3.vhd', { type: 'differencing', parent: 'p.vhd' }, (_error, created) => expectType<VHD.Differencing>(created))

  const disk = new VHD.Differencing('c.vhd', {
    readOnly: true,
    parents: ['mid.vhd', new URL('file:///base.vhd'), { path: 'base.img', raw: true }],
    ignoreParentTimestamp: true,
  })
  new VHD.Differencing('c.vhd', { parent: { path: new URL('file:///base.img'), raw: true } })
  await VHD.open('c.vhd', { parent: 'base.vhd' })
  const opened = await disk.open()
  assertEqual<typeof opened, VHD.Differencing>(true)
  expectType<VHD.Disk>(opened)
  const parent = disk.parent
  assertEqual<typeof parent, VHD.ParentInfo | undefined>(true)
  if (parent) {
    expectType<string>(parent.path)
    expectType<2 | 3 | 4 | null>(parent.type)
    expectType<number>(parent.size)
    expectType<Buffer | null>(parent.uuid)
    expectType<boolean>(parent.raw)
    expectType<VHD.ParentInfo | null>(parent.parent)
  }
  expectType<string[] | undefined>(disk.chain)
  const header = disk.header
  if (header) {
    expectType<Buffer>(header.parentId)
    expectType<number>(header.parentTimestamp)
    expectType<string>(header.parentName)
  }
  const codes: VHD.ErrorCode[] = [
    'ERR_VHD_PARENT_NOT_FOUND',
    'ERR_VHD_PARENT_MISMATCH',
    'ERR_VHD_PARENT_MODIFIED',
    'ERR_VHD_PARENT_LOOP',
    'ERR_VHD_CHAIN_TOO_DEEP',
  ]
  void codes
}

// Locking and parentRoot: in the open options of every class, of VHD.open, VHD.Image and the streams.
async function locking(): Promise<void> {
  const unlocked = await VHD.open('d.vhd', { lock: false, readOnly: true })
  expectType<VHD.AnyDisk>(unlocked)
  new VHD.Fixed('f.vhd', { lock: true })
  new VHD.Dynamic(new URL('file:///d.vhd'), { lock: false })
  const child = new VHD.Differencing('c.vhd', { parentRoot: '/images', readOnly: true })
  new VHD.Differencing('c.vhd', { parentRoot: new URL('file:///images/'), lock: false })
  await child.open()
  VHD.open('c.vhd', { parentRoot: '/images' }, (error) => {
    if (error && (error.code === 'ERR_VHD_LOCKED' || error.code === 'ERR_VHD_PARENT_OUTSIDE_ROOT')) {
      expectType<string>(error.message)
    }
  })
  const image = new VHD.Image({ path: 'd.vhd', flags: 'r', lock: false, parentRoot: '/images' })
  await image.open()
  new VHD.ReadStream({ path: 'd.vhd', lock: false, parentRoot: '/images' }).resume()
  new VHD.WriteStream({ path: 'd.vhd', lock: true }).end()
  const options: VHD.OpenOptions = { lock: false, parentRoot: '/images' }
  const imageOptions: VHD.ImageOptions = { fd: 3, lock: true, parentRoot: new URL('file:///images/') }
  const streamOptions: VHD.ReadStreamOptions = { path: 'd.vhd', lock: false }
  void [options, imageOptions, streamOptions]
  const codes: VHD.VhdErrorCode[] = ['ERR_VHD_LOCKED', 'ERR_VHD_PARENT_OUTSIDE_ROOT', 'ERR_VHD_BAT_OVERLAP', 'ERR_VHD_FILE_TYPE', 'ERR_VHD_REPAIR_REFUSED']
  void codes
  // @ts-expect-error: lock is a boolean
  new VHD.Dynamic('d.vhd', { lock: 'no' })
  // @ts-expect-error: parentRoot is a path
  void VHD.open('c.vhd', { parentRoot: 42 })
  // @ts-expect-error: lock is a boolean in the Image options too
  new VHD.Image({ path: 'd.vhd', lock: 1 })
  // @ts-expect-error: not an error code
  const wrong: VHD.VhdErrorCode = 'ERR_VHD_LOCK'
  void wrong
}

// parentRoot in every entry point that opens a chain (the operations take it through ChainOptions).
async function parentRootEverywhere(): Promise<void> {
  const parentRoot = '/images'
  expectType<VHD.Differencing>(await VHD.create('c.vhd', { type: 'differencing', parent: 'b.vhd', parentRoot }))
  expectType<VHD.Dynamic>(await VHD.create('d.vhd', { type: 'dynamic', size: 1 << 20, parentRoot: new URL('file:///images/') }))
  expectType<VHD.Differencing>(await VHD.snapshot('b.vhd', 'c.vhd', { parentRoot, lock: false }))
  VHD.snapshot('b.vhd', 'c.vhd', { parentRoot }, (error, disk) => void [error, disk.chain])
  await VHD.rebase('c.vhd', 'b.vhd', { parentRoot, ignoreParentTimestamp: true })
  await VHD.convert('c.vhd', 'o.raw', { to: 'raw', parentRoot })
  await VHD.createVhdStream('c.vhd', { type: 'fixed', parentRoot })
  await VHD.check('c.vhd', { parentRoot })
  await VHD.info('c.vhd', { parentRoot })
  await VHD.compact('c.vhd', { parentRoot })
  await VHD.commit('c.vhd', { parentRoot })
  await VHD.resize('c.vhd', 1 << 20, { parentRoot })
  new VHD.WriteStream({ path: 'c.vhd', parentRoot }).end()
  // @ts-expect-error: rebase's new parent is its second argument
  await VHD.rebase('c.vhd', 'b.vhd', { parents: ['a.vhd'] })
  // @ts-expect-error: parentRoot is a path
  await VHD.snapshot('b.vhd', 'c.vhd', { parentRoot: 1 })
}

function mistakes(disk: VHD.Dynamic): void {
  // @ts-expect-error: offsets are numbers or bigints
  void disk.read('0', 1)
  // @ts-expect-error: strings are not bytes
  void disk.write('text', 0)
  // @ts-expect-error: the base class is abstract
  new VHD.Disk('x.vhd')
  // @ts-expect-error: size is required
  void VHD.create('x.vhd', { type: 'fixed' })
  // @ts-expect-error: no such type
  void VHD.create('x.vhd', { type: 'sparse', size: 512 })
  // @ts-expect-error: a differencing image needs a parent
  void VHD.create('x.vhd', { type: 'differencing', size: 512 })
  // @ts-expect-error: only differencing images have a parent
  void VHD.create('x.vhd', { type: 'dynamic', size: 512, parent: 'p.vhd' })
  // @ts-expect-error: parents are paths or { path, raw }
  new VHD.Differencing('x.vhd', { parents: [42] })
  // @ts-expect-error: raw is a boolean
  new VHD.Differencing('x.vhd', { parent: { path: 'p.img', raw: 'yes' } })
  // @ts-expect-error: fixed and dynamic images have no parent property
  void disk.parent
}

// The vhd@0.5.0 surface: Image, streams, structures, helpers and constants.
async function compat(): Promise<void> {
  const image = new VHD.Image({ path: 'disk.vhd', flags: 'r+' })
  const opened = await image.open()
  assertEqual<typeof opened, VHD.Image>(true)
  const buffer = Buffer.alloc(4096)
  const { bytesRead } = await image.read(buffer, 0, 4096, 0)
  expectType<number>(bytesRead)
  const { bytesWritten } = await image.write(buffer, 0, 512, 1024n)
  expectType<number>(bytesWritten)
  image.read(buffer, 0, 512, 0, function (error, bytesRead, buffer) {
    expectType<VHD.Image>(this)
    expectType<VHD.VhdError | null>(error)
    expectType<number>(bytesRead)
    expectType<Buffer>(buffer)
  })
  expectType<number | null>(image.type)
  expectType<bigint | number | null>(image.size)
  expectType<number>(image.sectorSize)
  expectType<number>(image.blocksPerSector)
  expectType<number>(image.bitmapBlocks)
  expectType<Buffer | null>(image.bat)
  expectType<VHD.FooterStructure | null>(image.footer)
  const { footer } = await image.readFooter(0)
  expectType<bigint>(footer.currentSize)
  await image.readHeader(512)
  expectType<Buffer>(await image.readAllocationTable(1536, 16))
  expectType<boolean>(image.sectorNeedsAllocation(image.sectorNumber(0)))
  await image.flush()

  const read: VHD.ReadStream = image.createReadStream({ start: 0, end: 4096, highWaterMark: 1 << 20 })
  const write: VHD.WriteStream = new VHD.WriteStream({ image, start: 512 })
  read.pipe(write)
  const disk = await VHD.open('disk.vhd')
  disk.createReadStream().pipe(disk.createWriteStream({ start: 0 }))
  new VHD.ReadStream({ path: 'disk.vhd' }).resume()
  await image.close()
  image.close((error) => expectType<VHD.VhdError | null>(error))

  const parsed = VHD.Footer.parse(Buffer.alloc(512), 0)
  expectType<bigint>(parsed.dataOffset)
  expectType<number>(parsed.diskGeometry.cylinders)
  expectType<Buffer>(parsed.write())
  const header = VHD.Header.parse(Buffer.alloc(1024), 0)
  expectType<VHD.LocatorStructure[]>(header.parentLocators)
  expectType<Buffer>(new VHD.Header().write())
  expectType<Buffer>(VHD.Locator.parse(Buffer.alloc(24)).write(Buffer.alloc(48), 24))
  expectType<number>(VHD.checksum(Buffer.alloc(512), 0, 512))
  expectType<VHD.DiskGeometry>(VHD.getDiskGeometry(20480))
  expectType<number>(VHD.PLATFORM.W2RU)
  expectType<bigint>(VHD.NULL_OFFSET)
  expectType<string>(VHD.CREATOR_APPLICATION)
  expectType<number>(VHD.CREATOR_VERSION.major)
  expectType<number>(VHD.MAX_DYNAMIC_SIZE + VHD.SECTOR_SIZE + VHD.BLOCK_SIZE + VHD.EPOCH)
  void [VHD.ACCESS, VHD.ATTACH, VHD.COMPACT, VHD.CREATE, VHD.DEPENDENCY, VHD.DETACH, VHD.EXPAND]
  void [VHD.GETINFO, VHD.MERGE, VHD.MIRROR, VHD.OPEN, VHD.RESIZE, VHD.SETINFO, VHD.STORAGE]
  void [VHD.VENDOR, VHD.VERSION, VHD.FEATURES, VHD.SECTOR, VHD.MIN_SIZE, VHD.TABLE_ENTRY_SIZE]
  void [VHD.HEADER_SIZE, VHD.FOOTER_SIZE, VHD.TYPE.DIFF]
  // @ts-expect-error: Image takes an options object, not a path
  new VHD.Image('disk.vhd')
}

async function readInto(disk: VHD.Fixed): Promise<void> {
  const target = new Uint16Array(8)
  const { bytesRead, buffer } = await disk.readInto(target, 0, 16, 0)
  expectType<number>(bytesRead)
  expectType<Uint16Array>(buffer)
  disk.readInto(Buffer.alloc(4), 0, 4, 10n, (error, n, b) => {
    expectType<VHD.VhdError | null>(error)
    expectType<number>(n)
    expectType<Buffer>(b)
  })
  expectType<number>(disk.readIntoSync(Buffer.alloc(4), 0, 4, 0))
  // @ts-expect-error: the buffer comes first
  void disk.readInto(0, Buffer.alloc(4), 4, 0)
}

void readInto
void promises
void callbacks
void differencing
void locking
void mistakes
void compat

// The maintenance operations (lib/ops.js).
async function operations(disk: VHD.Dynamic): Promise<void> {
  const controller = new AbortController()
  const onProgress = ({ bytesDone, bytesTotal }: VHD.Progress): void => void (bytesDone / bytesTotal)
  const converted = await VHD.convert('in.raw', 'out.vhd', { to: 'dynamic', onProgress, signal: controller.signal })
  expectType<number>(converted.virtualSize + converted.fileSize + converted.allocatedBlocks + converted.sourceSize)
  expectType<'raw' | 'vhd'>(converted.detected.format)
  expectType<string>(converted.detected.reason)
  expectType<string[]>(converted.warnings)
  await VHD.convert(new URL('file:///in.vhd'), 'out.vhd', { azure: true, uniqueId: Buffer.alloc(16), timestamp: new Date() })
  VHD.convert('in.raw', 'out.raw', { to: 'raw', sourceFormat: 'raw' }, (error, report) => {
    expectType<VHD.VhdError | VHD.AbortError | null>(error)
    expectType<number>(report.fileSize)
  })
  const stream = await VHD.createVhdStream('in.raw', { type: 'fixed', blockSize: 1n << 21n })
  expectType<'raw' | 'vhd'>(stream.detected.format)
  expectType<readonly string[]>(stream.warnings)
  // @ts-expect-error: read-only
  stream.warnings.push('x')
  expectType<number>(stream.length)
  stream.pipe(process.stdout)

  const report = await VHD.check('disk.vhd', { repair: true, parents: ['base.vhd'] })
  expectType<0 | 2 | 3 | 4>(report.exitCode)
  expectType<number>(report.leaks)
  expectType<number>(report.corruptions)
  expectType<boolean>(report.parentLinkBroken)
  expectType<'info' | 'leak' | 'corrupt'>(report.findings[0].severity)
  expectType<number | undefined>(report.findings[0].offset)
  expectType<number | undefined>(report.findings[0].omitted)
  expectType<VHD.CheckRepair[] | undefined>(report.repairs)
  expectType<number | undefined>(report.repairs?.[0].omitted)
  expectType<number | undefined>(report.lostOmitted)
  expectType<string[] | undefined>(report.forced)
  VHD.check('disk.vhd', (error, r) => expectType<boolean>(r.clean))
  expectType<VHD.CheckReport>(await VHD.check('disk.vhd', { repair: true, force: true }))

  expectType<VHD.CompactReport>(await VHD.compact('disk.vhd', { onProgress }))
  expectType<VHD.ResizeReport>(await VHD.resize('disk.vhd', 64n << 20n, { force: true, signal: controller.signal }))
  expectType<VHD.CommitReport>(await VHD.commit('child.vhd'))
  expectType<void>(await VHD.rebase('child.vhd', 'moved/base.vhd', { ignoreParentTimestamp: true }))
  const child = await VHD.snapshot('base.vhd', 'child.vhd')
  expectType<VHD.Differencing>(child)
  const info = await VHD.info('disk.vhd')
  expectType<number | null>(info.blockSize)
  expectType<string | null>(info.parent && info.parent.path)
  expectType<string>(info.creator.application)
  expectType<number | null>(info.footer.dataOffset)
  expectType<boolean | undefined>(info.checksums.header?.valid)

  await disk.discard(0, 1 << 20)
  const ranges = await disk.getAllocatedRanges()
  expectType<number | null>(ranges[0].fileOffset)
  disk.getAllocatedRanges((error, r) => expectType<VHD.AllocatedRange[]>(r))
  for await (const range of disk.allocatedRanges()) expectType<VHD.AllocatedRange>(range)

  // @ts-expect-error: convert needs its options
  void VHD.convert('in.raw', 'out.vhd')
  // @ts-expect-error: no such output format
  void VHD.convert('in.raw', 'out.vhdx', { to: 'vhdx' })
  // @ts-expect-error: a stream is a VHD
  void VHD.createVhdStream('in.raw', { type: 'raw' })
  // @ts-expect-error: the size is a number or a bigint
  void VHD.resize('disk.vhd', '64M')
}

void operations

// The public structure types (index.d.ts, written for users) and the native layer's
// (binding.d.ts, generated from src/types.rs) describe the same objects: a field that one
// changes and the other does not fails here.
import type * as Native from '../binding'
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const footerFieldsAgree: Same<VHD.FooterFields, Native.FooterFields> = true
const locatorFieldsAgree: Same<VHD.LocatorFields, Native.LocatorFields> = true
const geometryAgrees: Same<VHD.DiskGeometry, Native.DiskGeometry> = true
const versionAgrees: Same<VHD.Version, Native.Version> = true
void [footerFieldsAgree, locatorFieldsAgree, geometryAgrees, versionAgrees]

// What `open` and `create` resolve to is open: no `undefined` to rule out with `!` under
// --strict, and `type` a literal that narrows the union.
async function openTypes(): Promise<void> {
  const disk = await VHD.open('x.vhd')
  expectType<number>(disk.size)
  expectType<number>(disk.geometrySize)
  expectType<boolean>(disk.readOnly)
  expectType<string | null>(disk.readOnlyReason)
  expectType<'end' | 'end511' | 'copy'>(disk.footerSource)
  expectType<bigint>(disk.footer.currentSize)
  assertEqual<typeof disk.type, 2 | 3 | 4>(true)
  if (disk.type === VHD.TYPE.DIFF) {
    assertEqual<typeof disk, VHD.OpenDifferencing>(true)
    expectType<string>(disk.parent.path)
    expectType<string[]>(disk.chain)
    expectType<number>(disk.blockSize)
    expectType<VHD.ParentLocator[]>(disk.header.parentLocators)
  } else if (disk.type === VHD.TYPE.DYNAMIC) {
    assertEqual<typeof disk, VHD.OpenDynamic>(true)
    expectType<number>(disk.allocatedBlocks)
  } else {
    assertEqual<typeof disk, VHD.OpenFixed>(true)
    assertEqual<typeof disk.blockSize, undefined>(true)
  }
  // An open disk is still a disk of its class.
  const asClass: VHD.Differencing = await VHD.create('c.vhd', { type: 'differencing', parent: 'x.vhd' })
  expectType<ParentInfoOrUndefined>(asClass.parent)
  const dyn = await VHD.create('d.vhd', { type: 'dynamic', size: 512 })
  expectType<number>(dyn.blockSize)
  expectType<VHD.DiskHeader>(dyn.header)
  // `new` + `open()`: the class's own types (its accessors may be undefined).
  const later = await new VHD.Dynamic('d.vhd').open()
  expectType<number | undefined>(later.size)
}
type ParentInfoOrUndefined = VHD.ParentInfo | undefined

// `await using` closes the disk at the end of the block (Symbol.asyncDispose).
async function disposal(): Promise<void> {
  expectType<() => Promise<void>>((await VHD.open('x.vhd'))[Symbol.asyncDispose])
  expectType<() => Promise<void>>(new VHD.Image({ path: 'x.vhd' })[Symbol.asyncDispose])
  const code: VHD.ErrorCode = 'ERR_VHD_CANCELLED'
  const others: VHD.ErrorCode[] = ['ABORT_ERR', 'ERR_VHD_NATIVE_NOT_FOUND', 'ERR_BUFFER_OUT_OF_BOUNDS', code]
  expectType<VHD.ErrorCode[]>(others)
}

// Partitions and the views the Node disk tools take (docs/partitions.md).
async function partitions(): Promise<void> {
  const disk = await VHD.open('disk.vhd', { readOnly: true })
  const table = await disk.getPartitions()
  assertEqual<typeof table.type, 'gpt' | 'mbr' | 'none'>(true)
  for (const p of table.partitions) {
    expectType<number>(p.index)
    expectType<number>(p.offset)
    expectType<number | string>(p.type)
    expectType<string | undefined>(p.guid)
    expectType<bigint>(p.attributes)
    expectType<number>(p.lastLBA)
  }
  expectType<VHD.PartitionFinding[]>(table.findings)
  disk.getPartitions((error, result) => {
    expectType<VHD.VhdError | null>(error)
    expectType<VHD.PartitionTable>(result)
  })

  const partition = await disk.partition(2)
  assertEqual<typeof partition, VHD.Partition>(true)
  disk.partition(1n, (error, p) => expectType<VHD.Partition>(p))
  expectType<VHD.AnyDisk>(partition.disk)
  expectType<number>(partition.size)
  expectType<VHD.PartitionEntry>(partition.entry)
  expectType<VHD.ReadResult>(await partition.read(0, 512))
  expectType<number>(partition.readIntoSync(new Uint8Array(8), 0, 8, 0))
  const bytes = new Uint8Array(4)
  const written = await partition.write(bytes, 0)
  assertEqual<typeof written.buffer, typeof bytes>(true)
  await partition.discard(0, 4096)
  await partition.flush()
  expectType<VHD.ReadStream>(partition.createReadStream({ start: 0, end: 1024 }))
  expectType<VHD.WriteStream>(partition.createWriteStream())
  // @ts-expect-error: made by disk.partition(index), not constructed
  new VHD.Partition()

  const device = partition.toBlockDevice()
  expectType<number>(device.blockSize)
  const { buffer, bytesRead } = await device.readBlocks(0, 1)
  expectType<Buffer>(buffer)
  expectType<number>(bytesRead)
  device.readBlocks(0, 1, function (error, block, count) {
    expectType<Buffer>(block)
    expectType<number>(count)
  })
  device.readBlocks(0, 4, Buffer.alloc(2048), (error, block) => expectType<Buffer>(block))
  expectType<number>((await device.writeBlocks(0, Buffer.alloc(512))).bytesWritten)
  device.writeBlocks(0, Buffer.alloc(512), (error, count) => expectType<number>(count))
  const part = disk.toBlockDevice().partition({ firstLBA: 2048, lastLBA: 4096 })
  expectType<number>(part.sectors)
  expectType<VHD.BlockDevice>(part.device)
  await part.readBlocks(0, 8)

  const fileDisk = disk.toFileDisk()
  expectType<number>(await fileDisk.getCapacity())
  expectType<{ bytesRead: number; buffer: Buffer }>(await fileDisk.read(Buffer.alloc(512), 0, 512, 0))
  expectType<boolean>(partition.toFileDisk().recordWrites)
  const missing: VHD.ErrorCode = 'ERR_VHD_MISSING_PEER'
  expectType<VHD.ErrorCode>(missing)
}

// NBD (docs/nbd.md).
async function nbd(disk: VHD.Dynamic): Promise<void> {
  const server = await VHD.serve('chain.vhd', { socket: '/tmp/x.sock', parentRoot: '/images', readOnly: true })
  expectType<string>(server.uri)
  expectType<number>(server.connections)
  expectType<boolean>(server.listening)
  const address = server.address
  if ('socket' in address) expectType<string>(address.socket)
  else expectType<number>(address.port)
  await server.close()
  const tcp = await VHD.serve(disk, { port: 0, host: '::1', exportName: 'disk', log: (line) => expectType<string>(line) })
  tcp.close((error) => expectType<VHD.VhdError | null>(error))
  VHD.serve(disk, { port: 10809 }, (error, server) => expectType<VHD.NbdServer>(server))
  const taken: VHD.ErrorCode = 'EADDRINUSE'
  expectType<VHD.ErrorCode>(taken)
  // @ts-expect-error: a socket or a port, not both
  await VHD.serve(disk, { socket: 'x.sock', port: 1 })
  // @ts-expect-error: an open disk takes no open options
  await VHD.serve(disk, { port: 0, parentRoot: '/images' })
}
