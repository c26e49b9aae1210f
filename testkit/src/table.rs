//! Table-driven tests: one row per case, named for what it proves.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `check` on every row of a table, each with the name that says what it proves; the
/// rows after a failing one still run. Fails naming every row that failed (each failure's
/// own message, printed as it happens, names its row too), and fails on an empty table or
/// two rows of one name (a table that checks nothing, or a row that hides another).
#[track_caller]
pub fn check_rows<N: Into<String>, T>(
    rows: impl IntoIterator<Item = (N, T)>,
    mut check: impl FnMut(&str, T),
) {
    let mut names = std::collections::BTreeSet::new();
    let mut failed = Vec::new();
    for (name, row) in rows {
        let name: String = name.into();
        assert!(names.insert(name.clone()), "two rows are named {name:?}");
        if catch_unwind(AssertUnwindSafe(|| check(&name, row))).is_err() {
            eprintln!("row {name:?} failed");
            failed.push(name);
        }
    }
    assert!(!names.is_empty(), "an empty table checks nothing");
    assert!(
        failed.is_empty(),
        "{} of {} rows failed: {failed:?}",
        failed.len(),
        names.len()
    );
}
