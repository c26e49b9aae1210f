//! The write path's bounds and the layout's rules, on images made for the test.

use crate::{create, CreateOptions, DiskType, DynamicHeader, Error, Image, VirtualDisk};

/// The write path's own bound: a write that would leave the block's extent (here, into
/// the bytes past the last sector of the disk, where a crafted image could keep its
/// footer) is refused and writes nothing.
#[test]
fn writes_outside_a_block_extent_are_refused() {
    let dir = std::env::temp_dir().join(format!("vhd-sparse-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("d.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, 4096 + 1024);
    options.block_size = 4096;
    let mut image = create(&path, &options).unwrap();
    image.write_at(&[7; 512], 4096).unwrap();
    image.flush().unwrap();
    let Image::Dynamic(dynamic) = &image else {
        unreachable!()
    };
    let sparse = dynamic.sparse();
    let sector = sparse.bat().get(1).unwrap();
    let before = std::fs::read(&path).unwrap();
    // Block 1 holds the disk's last 1024 bytes: two sectors.
    sparse.write_data(1, sector, 512, &[1; 512]).unwrap();
    let error = sparse.write_data(1, sector, 513, &[1; 512]).unwrap_err();
    assert!(
        matches!(error, Error::BatEntryOutOfRange { index: 1, .. }),
        "{error:?}"
    );
    assert!(sparse.zero_data(1, sector, 0..4096).is_err());
    assert!(sparse.write_data(1, sector, u64::MAX - 2, &[1; 4]).is_err());
    let after = std::fs::read(&path).unwrap();
    let data = sparse.data_offset(sector) as usize;
    assert_eq!(after[data + 512..data + 1024], [1; 512]);
    assert_eq!(after[..data + 512], before[..data + 512]);
    assert_eq!(after[data + 1024..], before[data + 1024..]);
    drop(image);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Parent locator data that starts in front of the footer and runs past it lies where
/// new blocks go. Such an image was writable (only data wholly past the footer made it
/// read-only): a write put a block over the locator's data, and the next open refused
/// the image as a block overlapping it. Now, data a reader reads (at most 64 KiB) makes
/// the image read-only wherever it runs past the footer, and longer data, which names
/// nothing, is not protected: blocks may go over it, and the image still opens.
#[test]
fn locator_data_running_past_the_footer() {
    let dir = std::env::temp_dir().join(format!("vhd-sparse-locator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("base.vhd");
    // 32 blocks: written whole, they move the footer past the end of the longer data.
    const SIZE: usize = 128 << 10;
    let mut options = CreateOptions::new(DiskType::Dynamic, SIZE as u64);
    options.block_size = 4096;
    drop(create(&base, &options).unwrap());
    let read_only = crate::OpenOptions {
        read_only: true,
        ..crate::OpenOptions::default()
    };
    // Data space 0 (nothing reserved); then a length past what a reader reads.
    for (space, length) in [(0u32, 1024u32), (128 << 10, 128 << 10)] {
        let child = dir.join("child.vhd");
        let _ = std::fs::remove_file(&child);
        drop(create(&child, &CreateOptions::differencing(&base)).unwrap());
        let mut bytes = std::fs::read(&child).unwrap();
        let footer_offset = bytes.len() as u64 - 512;
        let header_bytes: [u8; 1024] = bytes[512..1536].try_into().unwrap();
        let mut header = DynamicHeader::parse(&header_bytes, 512).unwrap();
        header.parent_locators[7] = crate::ParentLocator {
            platform_code: crate::parent_locator::platform::W2KU,
            platform_data_space: space,
            platform_data_length: length,
            reserved: 0,
            platform_data_offset: footer_offset - 512,
        };
        header.update_checksum();
        bytes[512..1536].copy_from_slice(&header.to_bytes());
        std::fs::write(&child, &bytes).unwrap();

        let mut image = Image::open(&child, &crate::OpenOptions::default()).unwrap();
        let reason = image.read_only_reason().map(str::to_string);
        let written = image.write_at(&[0xAB; SIZE], 0);
        drop(image);
        let reason_expected = length <= crate::parent_locator::MAX_LOCATOR_BYTES;
        if reason_expected {
            let reason = reason.unwrap_or_default();
            assert!(
                reason.contains("parent locator 7") && reason.contains("runs past the footer"),
                "{reason:?}"
            );
            assert!(
                matches!(written, Err(Error::ReadOnly { .. })),
                "{written:?}"
            );
            assert!(std::fs::read(&child).unwrap() == bytes, "the file changed");
        } else {
            assert_eq!(reason, None);
            written.unwrap();
        }
        let image = Image::open(&child, &read_only).unwrap();
        let mut read = vec![0u8; SIZE];
        image.read_at(&mut read, 0).unwrap();
        let expected = if reason_expected { 0 } else { 0xAB };
        assert!(read.iter().all(|&b| b == expected));
        let report = crate::check(&child, &crate::CheckOptions::default()).unwrap();
        assert_eq!(report.count_of(crate::FindingKind::Overlap), 0, "{report}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
