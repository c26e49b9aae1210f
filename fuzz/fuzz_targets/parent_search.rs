//! A folder of small images naming each other as parents, described by the input, written
//! and opened: see `vhd_core_fuzz::search_parents`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vhd_core_fuzz::search_parents(data);
});
