//! The repair property (see `testkit/src/repair_property.rs`, which the `repair` fuzz target runs on
//! fuzzer input) on seeded damage, bounded to a few seconds: every bit of the fields
//! repair relies on flipped (every bit of the current size, table offset, entry count and
//! block size; two bits of each byte, a different pair from byte to byte, of the footer's
//! and its copy's data offset, original size, disk type and checksum, the header's
//! checksum and the first BAT entries), then random damage (bytes changed among the structures and
//! anywhere, files cut or grown, up to six at once), on a fixed, a dynamic and a
//! differencing image with its parent.

use vhd_testkit::repair_property::{self as property, Damage, Images, KINDS};
use vhd_testkit::*;

/// The bytes of a sparse image whose bits are flipped: (start, end) offsets from the start
/// of the file (negative: from its end), and whether every bit of each byte is flipped in
/// turn (the fields whose value repair weighs against the rest) or two.
const FIELDS: [(i64, i64, bool); 10] = [
    // The footer copy: data offset; original and current size; disk type and checksum.
    (16, 24, false),
    (40, 56, false),
    (60, 68, false),
    // The dynamic header: table offset; entry count and block size; checksum.
    (512 + 16, 512 + 24, true),
    (512 + 28, 512 + 36, true),
    (512 + 36, 512 + 40, false),
    // The first BAT entries (our images put the BAT right after the header).
    (1536, 1536 + 32, false),
    // The footer at the end: original size, current size, disk type and checksum.
    (-512 + 40, -512 + 48, false),
    (-512 + 48, -512 + 56, true),
    (-512 + 60, -512 + 68, false),
];

#[test]
fn bits_of_the_fields_repair_relies_on_flipped_in_turn() {
    let dir = TempDir::new("repair-property-bits");
    let images = Images::new(dir.path());
    let mut failures = Vec::new();
    let mut cases = 0;
    for kind in 0..KINDS.len() {
        let len = images.base(kind).len() as i64;
        for (start, end, all_bits) in FIELDS {
            if kind == 0 && start >= 0 {
                continue; // a fixed image has only its footer
            }
            let at = |o: i64| if o < 0 { len + o } else { o } as u64;
            for offset in at(start)..at(end) {
                let bits = if all_bits {
                    (0..8).collect()
                } else {
                    vec![offset % 8, (offset + 4) % 8]
                };
                for bit in bits {
                    cases += 1;
                    let damage = [Damage::Xor {
                        offset,
                        mask: 1 << bit,
                    }];
                    if let Err(e) = images.check_repair(kind, &damage) {
                        failures.push(e);
                    }
                }
            }
        }
    }
    assert!(cases > 400, "{cases}");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed; the first:\n{}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn random_damage_is_repaired_without_loss_or_refused_untouched() {
    let dir = TempDir::new("repair-property-random");
    let images = Images::new(dir.path());
    // A fixed seed: the same damage on every run.
    let mut rng = Rng::from_seed(0x5EED_0013);
    let mut failures = Vec::new();
    let rounds = 200;
    for _ in 0..rounds {
        let count = 1 + rng.below(6) as usize;
        let input = rng.bytes(1 + 4 * count);
        let (kind, damage) =
            property::decode(&input, |kind| images.base(kind).len() as u64).unwrap();
        if let Err(e) = images.check_repair(kind, &damage) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {rounds} cases failed; the first:\n{}",
        failures.len(),
        failures[0]
    );
}
