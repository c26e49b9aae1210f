//! Helpers shared by the integration tests of `vhd-core` (and the CLI): oracle detection,
//! the corpus folder, temporary folders, a seeded PRNG, hashing with `sha256sum`, and the
//! format's layout written independently of the library. Not published.
//!
//! Oracles (qemu-img, vhdiinfo, pyvhdi, sha256sum, gzip, bzip2) and the corpus are optional on
//! a developer's machine: a test that needs a missing one prints `SKIPPED: …` and returns.
//! When the environment variable `CI` is set, a missing oracle fails the test instead: CI must
//! never skip silently.
//!
//! Environment variables:
//! - `CI`: missing oracles or corpus make tests fail instead of skip.
//! - `VHD_CORPUS_DIR`: the corpus folder (default: `shared/corpus` beside the repository).
//! - `VHD_TEST_SEED`: replay a randomized test with this seed (decimal or `0x` hex).
//! - `VHD_TEST_PYTHON`: the Python interpreter that has `pyvhdi` (default: Debian's
//!   `/usr/bin/python3`, because another `python3` may come first on `PATH`).
//!
//! Every item is re-exported at the root (a test says `use vhd_testkit::*;`), except the
//! repair property ([`repair_property`]), which the `repair` fuzz target shares.

mod corpus;
mod format;
mod images;
mod oracles;
pub mod partition_tables;
pub mod repair_property;
mod rng;
mod skip;
mod table;
mod temp;
mod tools;

pub use corpus::*;
pub use format::*;
pub use images::*;
pub use oracles::*;
pub use rng::*;
pub use skip::*;
pub use table::*;
pub use temp::*;
pub use tools::*;
