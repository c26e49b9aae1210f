//! Creating new fixed, dynamic and differencing images.

use crate::bat::{BAT_ENTRY_SIZE, UNALLOCATED};
use crate::dynamic_header::{DynamicHeader, DEFAULT_BLOCK_SIZE, DYNAMIC_HEADER_SIZE};
use crate::error::{Error, Result};
use crate::files::{FileId, FileKind, Use};
use crate::footer::{
    vhd_timestamp_now, DiskType, Footer, FEATURE_RESERVED, FOOTER_SIZE, FORMAT_VERSION,
    HOST_OS_WINDOWS, NO_DATA_OFFSET,
};
use crate::geometry::Geometry;
use crate::image::{
    file_url, windows_relative_path, Image, LockedFile, OpenOptions, ParentPath, VirtualDisk,
};
use crate::new_file::{NewFile, Replace};
use crate::parent_locator::{platform, ParentLocator};
use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// Largest dynamic (and differencing) disk the specification allows: 2040 GiB.
pub const MAX_DYNAMIC_SIZE: u64 = 2040 * 1024 * 1024 * 1024;
/// Largest fixed disk we create: 64 TiB (Azure data disks go to 32 TiB).
pub const MAX_FIXED_SIZE: u64 = 64 * 1024 * 1024 * 1024 * 1024;
/// Smallest and largest block sizes we create.
pub const BLOCK_SIZE_RANGE: std::ops::RangeInclusive<u32> = 4096..=256 * 1024 * 1024;
/// Most BAT entries we create: 16 Mi entries (a 64 MiB table). 2040 GiB in 2 MiB blocks
/// needs about 1 Mi; the limit only stops tiny blocks from making huge tables.
pub const MAX_CREATED_TABLE_ENTRIES: u64 = 1 << 24;
/// Creator application written by default. Every reader takes `win ` images at their
/// current size; qemu before 10.0 sizes images from creators it does not know by their
/// CHS geometry, which would cut off the end of most sizes.
pub const DEFAULT_CREATOR_APPLICATION: [u8; 4] = *b"win ";
/// Offset of the dynamic header in the images we create (right after the footer copy).
const HEADER_OFFSET: u64 = FOOTER_SIZE as u64;
/// Offset of the BAT in the images we create (right after the header).
pub(crate) const TABLE_OFFSET: u64 = HEADER_OFFSET + DYNAMIC_HEADER_SIZE as u64;

/// How to create an image.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Fixed, dynamic or differencing.
    pub disk_type: DiskType,
    /// Virtual size in bytes; a multiple of 512. It is used exactly, never rounded to a
    /// CHS geometry. For a differencing image, 0 means the parent's size (a child may also
    /// be larger than its parent).
    pub size: u64,
    /// Block size of dynamic images, a power of two (default 2 MiB). A differencing image
    /// takes its parent's block size (or this one over a fixed parent).
    pub block_size: u32,
    /// The parent of a differencing image. Its whole chain must open; the child records its
    /// unique id, modification time and name, and locates it by absolute path (`W2ku`),
    /// path relative to the child (`W2ru`) and file URL (`MacX`).
    pub parent: Option<PathBuf>,
    /// Creator application field (default `win `).
    pub creator_application: [u8; 4],
    /// Replace an existing file instead of failing with [`Error::AlreadyExists`].
    pub overwrite: bool,
    /// Unique id; a random (version 4) one when `None`.
    pub unique_id: Option<[u8; 16]>,
    /// Time stamp in seconds since 2000-01-01; now when `None`.
    pub timestamp: Option<u32>,
    /// How to open [`parent`](CreateOptions::parent) and the chain below it, as
    /// [`Image::open`] would open the parent: [`OpenOptions::parent_root`] (the parent named
    /// here is trusted; the images below it, found through its locators, must lie in the
    /// folder), `lock`, `ignore_checksums`, `ignore_parent_timestamp`, and in `parents` the
    /// levels below the parent (entry 0 is the parent's own parent). The parent is always
    /// opened read-only: `read_only` and `expected_type` are ignored. The new child is
    /// returned open over that same chain. Unused for fixed and dynamic images.
    pub parent_open: OpenOptions,
}

impl CreateOptions {
    /// Options for an image of `disk_type` and `size` bytes, with every default.
    pub fn new(disk_type: DiskType, size: u64) -> Self {
        CreateOptions {
            disk_type,
            size,
            block_size: DEFAULT_BLOCK_SIZE,
            creator_application: DEFAULT_CREATOR_APPLICATION,
            overwrite: false,
            unique_id: None,
            timestamp: None,
            parent: None,
            parent_open: OpenOptions::default(),
        }
    }

    /// Options for a differencing image over `parent`, of the parent's size.
    pub fn differencing(parent: impl Into<PathBuf>) -> Self {
        CreateOptions {
            parent: Some(parent.into()),
            ..CreateOptions::new(DiskType::Differencing, 0)
        }
    }
}

/// Creates an image at `path` and returns it open for reading and writing, holding the
/// exclusive lock on the file that it took before writing it (see [`OpenOptions::lock`]).
///
/// An existing file is refused with [`Error::AlreadyExists`] unless `options.overwrite`;
/// a directory, FIFO, socket or device at `path` with [`Error::FileType`] whatever
/// `overwrite` says (a new image is a regular file), without waiting on a FIFO.
///
/// Crash safety: the image is written into a new file in the same folder (without a name
/// where the file system allows; see `new_file`), made durable, then given its name
/// (replacing an existing file atomically, by rename, with `overwrite`), and the folder
/// is made durable. A crash leaves no image or the old file, or the new image whole;
/// an image being replaced is never emptied in place. The file replaced keeps nothing
/// but its owner, group, permissions and extended attributes, which the new one takes
/// (refused, before anything is written, when they cannot be given: another user's
/// file, without being root). A symbolic link at `path` is followed: the file it names
/// is replaced. Other hard links to a replaced file keep the old file.
pub fn create(path: impl AsRef<Path>, options: &CreateOptions) -> Result<Image> {
    let path = path.as_ref();
    create_unnamed(path, options).map_err(|e| e.in_file(path))
}

/// [`create`], whose I/O errors may not name the file yet.
fn create_unnamed(path: impl AsRef<Path>, options: &CreateOptions) -> Result<Image> {
    let path = path.as_ref();
    // Everything is worked out (and the parent opened) before the file is touched.
    let contents = match options.disk_type {
        DiskType::Fixed => {
            validate(DiskType::Fixed, options.size, options.block_size)?;
            None
        }
        DiskType::Dynamic => {
            validate(DiskType::Dynamic, options.size, options.block_size)?;
            let footer = new_footer(options, options.size);
            let header = new_header(options.size, options.block_size);
            Some(sparse_file(&footer, header, &[]))
        }
        DiskType::Differencing => Some(differencing_file(path, options)?),
    };
    // An image being replaced is locked first (exclusively), so that one open elsewhere is
    // refused (`Error::Locked`), not replaced; it stays locked until the new file has
    // taken its name. A new image is a regular file: a FIFO, a device or a directory at
    // `path` is refused (see `files`), even with `overwrite`, without waiting on a FIFO.
    let Destination {
        path: destination,
        replaced,
        replace,
    } = destination(path, options.overwrite)?;
    let new = NewFile::create(&destination, "create")?;
    if let Some((_, metadata)) = &replaced {
        // What the old file had beside its contents (owner, permissions, ACLs) the new
        // one keeps, as an overwrite in place did.
        new.take_attributes_of(&destination, metadata)?;
    }
    let io = |e| new.io_error("write", "writing the new image", e);
    let file = new.file();
    match contents {
        // A fixed image is its data, then the footer; the data starts as a hole of zeros.
        None => {
            let footer = new_footer(options, options.size);
            file.set_len(options.size).map_err(io)?;
            crate::storage::Storage::write_all_at(file, &footer.to_bytes(), options.size)
                .map_err(io)?;
        }
        Some(bytes) => crate::storage::Storage::write_all_at(file, &bytes, 0).map_err(io)?,
    }
    // Durable, then named (atomically replacing the old file), then the folder durable:
    // a crash leaves the old file or the new one, whole.
    // Windows cannot replace a file that is open (without delete sharing, as std opens
    // files): let go of the old one just before. Unix keeps the lock to the end.
    #[cfg(not(unix))]
    drop(replaced);
    let file = new.persist(replace)?;
    #[cfg(unix)]
    drop(replaced);
    crate::image::open_locked_file(file, path, &reopen_options(options))
}

/// Where a new image goes (see [`destination`]).
struct Destination {
    path: PathBuf,
    /// The file it replaces, locked, and its metadata.
    replaced: Option<(LockedFile, Metadata)>,
    /// Whether the name may be taken from what holds it.
    replace: Replace,
}

/// Where the new image goes, the file it replaces (locked, with its metadata) if any, and
/// whether the name may be taken from what holds it. A symbolic link to a file is followed
/// (the file it names is replaced, the link stays, as when the file was overwritten in
/// place); a dangling one is replaced by the image with `overwrite` (nothing is created
/// where it points). An existing file (or link) without `overwrite` is
/// [`Error::AlreadyExists`]; anything but a regular file is [`Error::FileType`].
fn destination(path: &Path, overwrite: bool) -> Result<Destination> {
    const WHAT: &str = "a new image";
    let Ok(metadata) = std::fs::metadata(path) else {
        // Nothing there, or a dangling link: taking the name fails if something took it,
        // unless `overwrite`.
        let replace = match overwrite {
            true => Replace::Yes,
            false => Replace::No,
        };
        return Ok(Destination {
            path: path.to_path_buf(),
            replaced: None,
            replace,
        });
    };
    crate::files::accept(FileKind::of(&metadata), path, Use::WriteFile, WHAT)?;
    if !overwrite {
        return Err(Error::AlreadyExists(path.to_path_buf()));
    }
    // Opened for writing: only a file the caller may write is replaced.
    let (file, _) = crate::files::open(
        path,
        std::fs::OpenOptions::new().read(true).write(true),
        Use::WriteFile,
        WHAT,
        |e| Error::io_at(path, "open", "opening the file to replace", e),
    )?;
    let file = LockedFile::new(file, path, false, true)?;
    let metadata = file
        .metadata()
        .map_err(|e| Error::io_at(path, "stat", "reading the metadata", e))?;
    let target = path
        .canonicalize()
        .map_err(|e| Error::io_at(path, "realpath", "resolving", e))?;
    Ok(Destination {
        path: target,
        replaced: Some((file, metadata)),
        replace: Replace::Yes,
    })
}

/// How the new image is opened once written. A differencing image is opened over the
/// parent the caller named (trusted, as [`OpenOptions::parents`] are), not through the
/// locators just written, so that a [`parent_root`](OpenOptions::parent_root) applies to
/// the levels below it only, as it did when the parent was opened to make the child.
fn reopen_options(options: &CreateOptions) -> OpenOptions {
    match (&options.parent, options.disk_type) {
        (Some(parent), DiskType::Differencing) => {
            let below = options.parent_open.parents.iter().cloned();
            OpenOptions {
                read_only: false,
                expected_type: None,
                parents: std::iter::once(ParentPath::Vhd(parent.clone()))
                    .chain(below)
                    .collect(),
                ..options.parent_open.clone()
            }
        }
        _ => OpenOptions::default(),
    }
}

pub(crate) fn validate(disk_type: DiskType, size: u64, block_size: u32) -> Result<()> {
    let invalid = |reason: String| {
        Err(Error::InvalidArgument {
            name: "size",
            reason,
        })
    };
    if size == 0 || !size.is_multiple_of(512) {
        return invalid(format!(
            "{size} bytes: the size must be a positive multiple of 512"
        ));
    }
    let max = match disk_type {
        DiskType::Fixed => MAX_FIXED_SIZE,
        _ => MAX_DYNAMIC_SIZE,
    };
    if size > max {
        return invalid(format!(
            "{size} bytes: a {} image holds at most {max} bytes",
            disk_type.name()
        ));
    }
    if disk_type == DiskType::Fixed {
        return Ok(());
    }
    if !block_size.is_power_of_two() || !BLOCK_SIZE_RANGE.contains(&block_size) {
        return Err(Error::InvalidArgument {
            name: "block size",
            reason: format!(
                "{block_size} bytes: must be a power of two from {} to {}",
                BLOCK_SIZE_RANGE.start(),
                BLOCK_SIZE_RANGE.end()
            ),
        });
    }
    let entries = size.div_ceil(u64::from(block_size));
    if entries > MAX_CREATED_TABLE_ENTRIES {
        return Err(Error::InvalidArgument {
            name: "block size",
            reason: format!(
                "{block_size}-byte blocks would need {entries} BAT entries for {size} bytes; \
                 at most {MAX_CREATED_TABLE_ENTRIES} are allowed: use larger blocks"
            ),
        });
    }
    Ok(())
}

/// The whole file of a new differencing image over `options.parent`.
fn differencing_file(path: &Path, options: &CreateOptions) -> Result<Vec<u8>> {
    let parent_path = options
        .parent
        .as_deref()
        .ok_or_else(|| Error::InvalidArgument {
            name: "parent",
            reason: "a differencing image needs a parent".into(),
        })?;
    let parent = Image::open(
        parent_path,
        &OpenOptions {
            read_only: true,
            expected_type: None,
            ..options.parent_open.clone()
        },
    )?;
    let size = if options.size == 0 {
        parent.size()
    } else {
        options.size
    };
    let block_size = parent.header().map_or(options.block_size, |h| h.block_size);
    validate(DiskType::Differencing, size, block_size)?;

    let canonical = |p: &Path, what: &str| {
        p.canonicalize()
            .map_err(|e| Error::io(format!("resolving the {what} {}", p.display()), e))
    };
    let parent_abs = canonical(parent_path, "parent")?;
    // With `overwrite`, creating the child over its own parent (or any image below it)
    // would replace that image, and the new one could not open as its own ancestor: refuse
    // before the file is touched. The same file is the same device and inode, whatever
    // path reaches it (a hard link too, which canonical paths do not see).
    if let Some(target) = FileId::of_path(path) {
        let chain = parent.chain();
        // The parent itself (`snapshot a.vhd a.vhd`, or another spelling of it): say so.
        if FileId::of_path(parent_path).as_ref() == Some(&target) {
            return Err(Error::OutputIsInput {
                output: path.to_path_buf(),
                input: parent_path.to_path_buf(),
                what: "a new differencing image cannot be its own parent",
            });
        }
        if chain
            .iter()
            .any(|p| FileId::of_path(p).as_ref() == Some(&target))
        {
            let shown = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
            return Err(Error::ParentLoop {
                chain: std::iter::once(shown(path))
                    .chain(chain.iter().map(|p| shown(p)))
                    .collect(),
            });
        }
    }
    // Likewise a child one level too deep was written, then failed to open, and stayed
    // behind. The parent's chain ends in a non-differencing base, so its length is the
    // number of differencing images the new child's chain will hold.
    if parent.chain().len() > crate::image::MAX_CHAIN_DEPTH {
        return Err(Error::ChainTooDeep {
            path: path.to_path_buf(),
            limit: crate::image::MAX_CHAIN_DEPTH,
        });
    }
    let child_folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => canonical(folder, "folder of")?,
        _ => canonical(Path::new("."), "current folder")?,
    };

    let mut header = new_header(size, block_size);
    header.parent_unique_id = parent.footer().unique_id;
    header.parent_timestamp = crate::files::modification_timestamp(&parent_abs)?;
    let name = parent_abs.file_name().unwrap_or_default().to_string_lossy();
    header.set_parent_name(&name)?;
    let locators = parent_locator_payloads(&child_folder, &parent_abs);
    let footer = new_footer(options, size);
    Ok(sparse_file(&footer, header, &locators))
}

/// The parent locators (platform code, payload) of a differencing image in `child_folder`
/// over `parent_abs` (both absolute and canonical): `W2ku` absolute path, `W2ru` path
/// relative to the child's folder (when they share a root), `MacX` file URL.
pub(crate) fn parent_locator_payloads(
    child_folder: &Path,
    parent_abs: &Path,
) -> Vec<(u32, Vec<u8>)> {
    let absolute = parent_abs.to_string_lossy().into_owned();
    let mut locators = vec![(platform::W2KU, utf16le(&absolute))];
    if let Some(relative) = windows_relative_path(child_folder, parent_abs) {
        locators.push((platform::W2RU, utf16le(&relative)));
    }
    locators.push((platform::MACX, file_url(parent_abs).into_bytes()));
    locators
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

pub(crate) fn new_header(size: u64, block_size: u32) -> DynamicHeader {
    let entries = size.div_ceil(u64::from(block_size)) as u32;
    DynamicHeader::new(TABLE_OFFSET, entries, block_size)
}

/// Footer copy, dynamic header, BAT (padded to a sector with 0xFF, as Hyper-V does), the
/// parent locators' payloads (each padded to whole sectors), and the footer: the whole file
/// of an empty dynamic or differencing image. Locator data space is recorded in bytes, as
/// Windows does.
pub(crate) fn sparse_file(
    footer: &Footer,
    mut header: DynamicHeader,
    locators: &[(u32, Vec<u8>)],
) -> Vec<u8> {
    let bat_space = (u64::from(header.max_table_entries) * BAT_ENTRY_SIZE).next_multiple_of(512);
    let mut payloads = Vec::new();
    let mut offset = TABLE_OFFSET + bat_space;
    for (entry, (code, data)) in header.parent_locators.iter_mut().zip(locators) {
        let space = (data.len() as u64).next_multiple_of(512);
        *entry = ParentLocator {
            platform_code: *code,
            platform_data_space: space as u32,
            platform_data_length: data.len() as u32,
            reserved: 0,
            platform_data_offset: offset,
        };
        payloads.extend_from_slice(data);
        payloads.resize(payloads.len() + (space as usize - data.len()), 0);
        offset += space;
    }
    header.update_checksum();
    let mut file = Vec::with_capacity(offset as usize + FOOTER_SIZE);
    file.extend_from_slice(&footer.to_bytes());
    file.extend_from_slice(&header.to_bytes());
    file.extend(
        UNALLOCATED
            .to_be_bytes()
            .iter()
            .cycle()
            .take(bat_space as usize),
    );
    file.extend_from_slice(&payloads);
    file.extend_from_slice(&footer.to_bytes());
    file
}

pub(crate) fn new_footer(options: &CreateOptions, size: u64) -> Footer {
    let (major, minor) = crate_version();
    let mut footer = Footer {
        features: FEATURE_RESERVED,
        format_version: FORMAT_VERSION,
        data_offset: match options.disk_type {
            DiskType::Fixed => NO_DATA_OFFSET,
            _ => HEADER_OFFSET,
        },
        timestamp: options.timestamp.unwrap_or_else(vhd_timestamp_now),
        creator_application: options.creator_application,
        creator_version: (u32::from(major) << 16) | u32::from(minor),
        creator_host_os: HOST_OS_WINDOWS,
        original_size: size,
        current_size: size,
        geometry: Geometry::for_size(size),
        disk_type_code: options.disk_type.code(),
        checksum: 0,
        unique_id: options.unique_id.unwrap_or_else(random_unique_id),
        saved_state: 0,
        reserved: [0; 427],
    };
    footer.update_checksum();
    footer
}

/// Our version, written as the creator version of the images we make.
fn crate_version() -> (u16, u16) {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// A random version 4 UUID, from the OS's random source.
fn random_unique_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut id));
    if from_os.is_err() {
        // No /dev/urandom (Windows): the standard library's per-process random hash keys.
        use std::hash::{BuildHasher, Hasher};
        for half in id.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .elapsed()
                    .map_or(0, |d| d.as_nanos()),
            );
            half.copy_from_slice(&h.finish().to_ne_bytes());
        }
    }
    id[6] = (id[6] & 0x0F) | 0x40;
    id[8] = (id[8] & 0x3F) | 0x80;
    id
}
