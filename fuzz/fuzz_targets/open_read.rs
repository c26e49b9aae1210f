//! Arbitrary bytes opened as a VHD image (from memory, read-only, parents confined to one
//! folder) and read: see `vhd_core_fuzz::open_and_read`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vhd_core_fuzz::open_and_read(data);
});
