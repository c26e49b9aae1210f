//! Arbitrary bytes laid out as a disk, its partition table read and checked: see
//! `vhd_core_fuzz::partitions`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vhd_core_fuzz::partitions::read_partition_table(data);
});
