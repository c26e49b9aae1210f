//! A valid image of each kind (fixed, dynamic, differencing with its parent) damaged as the
//! input says, then repaired: see `vhd_core_fuzz::repair` for the property that must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vhd_core_fuzz::repair::{decode, Images};

fuzz_target!(|data: &[u8]| {
    // One folder per fuzzing process (the damaged image is written there for each input).
    static IMAGES: OnceLock<Images> = OnceLock::new();
    let images = IMAGES.get_or_init(|| {
        let folder =
            std::env::temp_dir().join(format!("vhd-core-fuzz-repair-{}", std::process::id()));
        Images::new(&folder)
    });
    if let Some((kind, damage)) = decode(data, |kind| images.base(kind).len() as u64) {
        if let Err(problem) = images.check_repair(kind, &damage) {
            panic!("{problem}");
        }
    }
});
