//! Fault injection over any [`Storage`]: failed writes, syncs and truncations, a process
//! that dies after its Nth change, and the power cut that may lose any of the changes made
//! since the last completed sync.
//!
//! It is public so that the crate's own tests, its fuzz targets and programs built on it
//! share one model of what a crash leaves (instead of one fake file per test), and so that a
//! program can test its own use of an image the same way.
//!
//! ```
//! use vhd_core::storage::{Fate, FaultStorage, Storage};
//!
//! let file = FaultStorage::in_memory(vec![1; 4]);
//! file.write_all_at(&[2], 0)?;
//! file.sync()?; // durable from here on
//! file.write_all_at(&[3], 1)?; // pending: a power cut may lose it
//! file.die_after(2); // two changes completed: the process is dead
//! assert!(file.write_all_at(&[4], 2).is_err());
//! assert_eq!(file.after_death()?, [2, 3, 1, 1]);
//! assert_eq!(file.after_power_cut(|_| Fate::Lost)?, [2, 1, 1, 1]);
//! # Ok::<(), std::io::Error>(())
//! ```

use super::{MemoryStorage, Storage};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// A [`Storage`] that passes everything to the one it wraps, counting, failing and dying as
/// told. Clones share the wrapped storage and the counts.
///
/// *Changes* are writes and truncations ([`Storage::set_len`]): each completed one counts
/// once, and stays *pending* until the next completed [`Storage::sync`]. What a crash
/// leaves:
/// - a process death ([`die_after`](FaultStorage::die_after)): every completed change is in
///   the file ([`after_death`](FaultStorage::after_death)); nothing after it happens, not
///   even a sync;
/// - a power cut ([`after_power_cut`](FaultStorage::after_power_cut)): what was synced stays;
///   each pending change is kept or lost as the caller decides, in any combination.
#[derive(Debug)]
pub struct FaultStorage<S: Storage = MemoryStorage> {
    inner: Arc<S>,
    state: Arc<Mutex<State>>,
}

impl<S: Storage> Clone for FaultStorage<S> {
    fn clone(&self) -> Self {
        FaultStorage {
            inner: Arc::clone(&self.inner),
            state: Arc::clone(&self.state),
        }
    }
}

/// What a power cut does to one pending change (see [`FaultStorage::after_power_cut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The change reached the disk.
    Kept,
    /// The change is lost.
    Lost,
    /// A write is lost, but the file's new length reached the disk: where it extended the
    /// file, its range reads as zeros. (For a truncation, the same as `Lost`.)
    LostButSized,
}

#[derive(Debug, Default)]
struct State {
    /// Changes since the last completed sync, in order, each with what it replaced.
    pending: Vec<Pending>,
    /// Changes that completed.
    changes: usize,
    /// Syncs that completed.
    syncs: usize,
    /// Change attempts, completed or not, and the one to fail.
    change_attempts: Attempts,
    /// Sync attempts, completed or not, and the one to fail.
    sync_attempts: Attempts,
    /// Reads asked for (a gapped read counts one per part).
    reads: usize,
    /// The process dies once this many changes have completed.
    die_after: Option<usize>,
    dead: bool,
    /// Reads that must not wait answer `Unsupported`, as from a storage that cannot tell.
    cannot_tell: bool,
}

/// Attempts of one kind of operation: how many were made, and the number (from 0) of the
/// one that fails, once, doing nothing.
#[derive(Debug, Default)]
struct Attempts {
    made: usize,
    fail: Option<usize>,
}

impl Attempts {
    /// Counts an attempt; whether it is the one to fail.
    fn fails(&mut self) -> bool {
        let this = self.made;
        self.made += 1;
        if self.fail == Some(this) {
            self.fail = None;
            return true;
        }
        false
    }
}

/// A change not yet made durable, with what undoes it: the file's length before it, and the
/// bytes it overwrote or cut off (from `old_at`).
#[derive(Debug)]
struct Pending {
    change: Change,
    old_len: u64,
    old_at: u64,
    old_bytes: Vec<u8>,
}

#[derive(Debug)]
enum Change {
    Write(u64, Vec<u8>),
    /// The file cut (or extended with zeros) to this length.
    SetLen(u64),
}

impl FaultStorage<MemoryStorage> {
    /// A writable file in memory holding `bytes`, with nothing pending.
    pub fn in_memory(bytes: Vec<u8>) -> FaultStorage<MemoryStorage> {
        FaultStorage::new(MemoryStorage::new(bytes))
    }
}

impl<S: Storage> FaultStorage<S> {
    /// Wraps `inner`; what it holds now counts as durable. Nothing fails until told to.
    pub fn new(inner: S) -> FaultStorage<S> {
        FaultStorage {
            inner: Arc::new(inner),
            state: Arc::default(),
        }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The process dies once `changes` changes have completed (counting those already
    /// made): every later change and sync fails and does nothing. Reads still work.
    pub fn die_after(&self, changes: usize) {
        self.state().die_after = Some(changes);
    }

    /// The change attempt numbered `attempt` (from 0, counting every write and truncation
    /// asked for) fails once, changing nothing; later ones work.
    pub fn fail_change(&self, attempt: usize) {
        self.state().change_attempts.fail = Some(attempt);
    }

    /// The sync attempt numbered `attempt` (from 0) fails once, making nothing durable;
    /// later ones work.
    pub fn fail_sync(&self, attempt: usize) {
        self.state().sync_attempts.fail = Some(attempt);
    }

    /// From now on, reads that must not wait ([`Storage::read_exact_now`]) answer
    /// `Unsupported`, as from a storage that can never tell whether a read would wait.
    pub fn cannot_tell(&self) {
        self.state().cannot_tell = true;
    }

    /// How many changes (writes and truncations) completed.
    pub fn changes(&self) -> usize {
        self.state().changes
    }

    /// How many syncs completed.
    pub fn syncs(&self) -> usize {
        self.state().syncs
    }

    /// How many changes are pending: made since the last completed sync.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }

    /// How many reads were asked for; a gapped read counts one per part.
    pub fn reads(&self) -> usize {
        self.state().reads
    }

    /// The file as a process death leaves it: every completed change is there.
    pub fn after_death(&self) -> io::Result<Vec<u8>> {
        read_whole(&*self.inner)
    }

    /// The file after a power cut that does `fate(i)` to the i-th pending change (from 0, in
    /// the order they were made); what the last completed sync covered stays.
    pub fn after_power_cut(&self, fate: impl Fn(usize) -> Fate) -> io::Result<Vec<u8>> {
        let state = self.state();
        let mut bytes = read_whole(&*self.inner)?;
        for pending in state.pending.iter().rev() {
            pending.undo(&mut bytes)?;
        }
        for (i, pending) in state.pending.iter().enumerate() {
            match (fate(i), &pending.change) {
                (Fate::Kept, change) => change.apply(&mut bytes)?,
                (Fate::Lost, _) | (Fate::LostButSized, Change::SetLen(_)) => {}
                (Fate::LostButSized, Change::Write(offset, data)) => {
                    let end = index(*offset)?.saturating_add(data.len());
                    if bytes.len() < end {
                        bytes.resize(end, 0);
                    }
                }
            }
        }
        Ok(bytes)
    }

    /// Makes `change` unless the process is dead or this attempt is the one to fail,
    /// remembering what it replaced.
    fn change(&self, change: Change) -> io::Result<()> {
        let mut state = self.state();
        state.begin(|state| &mut state.change_attempts, "change")?;
        let old_len = self.inner.file_size()?;
        let (old_at, replaced_end) = match change {
            Change::Write(offset, ref data) => (
                offset,
                offset.saturating_add(data.len() as u64).min(old_len),
            ),
            Change::SetLen(len) => (len, old_len),
        };
        let mut old_bytes = vec![0; index(replaced_end.saturating_sub(old_at))?];
        if !old_bytes.is_empty() {
            self.inner.read_exact_at(&mut old_bytes, old_at)?;
        }
        match change {
            Change::Write(offset, ref data) => self.inner.write_all_at(data, offset)?,
            Change::SetLen(len) => self.inner.set_len(len)?,
        }
        state.pending.push(Pending {
            change,
            old_len,
            old_at,
            old_bytes,
        });
        state.changes += 1;
        Ok(())
    }

    fn count_reads(&self, parts: usize) {
        self.state().reads += parts;
    }
}

impl State {
    /// Starts a change or a sync: fails, doing nothing, when the process is dead (or dies
    /// now: it has made its last change) or when this attempt of `attempts` is the one to
    /// fail.
    fn begin(
        &mut self,
        attempts: impl FnOnce(&mut State) -> &mut Attempts,
        what: &str,
    ) -> io::Result<()> {
        if self.die_after.is_some_and(|n| self.changes >= n) {
            self.dead = true;
        }
        if self.dead {
            return Err(io::Error::other("the process died (fault injection)"));
        }
        if attempts(self).fails() {
            return Err(io::Error::other(format!(
                "injected {what} failure (fault injection)"
            )));
        }
        Ok(())
    }
}

impl Change {
    fn apply(&self, bytes: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Change::Write(offset, data) => {
                let start = index(*offset)?;
                let end = start.saturating_add(data.len());
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[start..end].copy_from_slice(data);
            }
            Change::SetLen(len) => bytes.resize(index(*len)?, 0),
        }
        Ok(())
    }
}

impl Pending {
    /// Turns `bytes`, the file just after this change, into the file just before it.
    fn undo(&self, bytes: &mut Vec<u8>) -> io::Result<()> {
        let old_len = index(self.old_len)?;
        if bytes.len() < old_len {
            bytes.resize(old_len, 0);
        }
        let at = index(self.old_at)?;
        bytes[at..at + self.old_bytes.len()].copy_from_slice(&self.old_bytes);
        bytes.truncate(old_len);
        Ok(())
    }
}

fn index(offset: u64) -> io::Result<usize> {
    usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// Every byte of `storage`.
fn read_whole(storage: &(impl Storage + ?Sized)) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; index(storage.file_size()?)?];
    storage.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

impl<S: Storage> Storage for FaultStorage<S> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.count_reads(1);
        self.inner.read_exact_at(buf, offset)
    }

    fn read_exact_gapped_at(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> io::Result<()> {
        self.count_reads(parts.len());
        self.inner.read_exact_gapped_at(parts, gap, offset)
    }

    fn read_exact_gapped_now(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> io::Result<()> {
        if self.state().cannot_tell {
            return Err(io::ErrorKind::Unsupported.into());
        }
        self.count_reads(parts.len());
        self.inner.read_exact_gapped_now(parts, gap, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.change(Change::Write(offset, buf.to_vec()))
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.state();
        state.begin(|state| &mut state.sync_attempts, "sync")?;
        self.inner.sync()?;
        state.pending.clear();
        state.syncs += 1;
        Ok(())
    }

    fn file_size(&self) -> io::Result<u64> {
        self.inner.file_size()
    }

    fn set_len(&self, size: u64) -> io::Result<()> {
        self.change(Change::SetLen(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_dies_and_loses_power_as_documented() {
        let file = FaultStorage::in_memory(vec![1; 8]);
        file.write_all_at(&[2, 2], 0).unwrap();
        file.sync().unwrap();
        file.write_all_at(&[3, 3], 6).unwrap(); // pending 0
        file.write_all_at(&[4, 4], 10).unwrap(); // pending 1: extends the file
        file.die_after(3);
        assert!(file.write_all_at(&[5], 0).is_err());
        assert!(file.sync().is_err(), "a dead process does not sync");
        assert_eq!(file.changes(), 3);
        assert_eq!(file.syncs(), 1);
        assert_eq!(file.pending(), 2);
        let after_death = vec![2, 2, 1, 1, 1, 1, 3, 3, 0, 0, 4, 4];
        assert_eq!(file.after_death().unwrap(), after_death);
        let cut = |fate: &dyn Fn(usize) -> Fate| file.after_power_cut(fate).unwrap();
        assert_eq!(cut(&|_| Fate::Lost), vec![2, 2, 1, 1, 1, 1, 1, 1]);
        assert_eq!(cut(&|_| Fate::Kept), after_death);
        assert_eq!(
            cut(&|i| if i == 0 { Fate::Lost } else { Fate::Kept }),
            vec![2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 4, 4]
        );
        assert_eq!(
            cut(&|i| if i == 0 {
                Fate::Kept
            } else {
                Fate::LostButSized
            }),
            vec![2, 2, 1, 1, 1, 1, 3, 3, 0, 0, 0, 0]
        );
        // The cut changes nothing in the file itself.
        assert_eq!(file.after_death().unwrap(), after_death);
    }

    #[test]
    fn a_truncation_is_a_change_like_a_write() {
        let file = FaultStorage::in_memory(vec![1; 8]);
        file.write_all_at(&[2], 0).unwrap();
        file.set_len(4).unwrap();
        assert_eq!(file.after_death().unwrap(), vec![2, 1, 1, 1]);
        assert_eq!(
            file.after_power_cut(|i| if i == 0 { Fate::Lost } else { Fate::Kept })
                .unwrap(),
            vec![1, 1, 1, 1]
        );
        assert_eq!(
            file.after_power_cut(|i| if i == 0 { Fate::Kept } else { Fate::Lost })
                .unwrap(),
            vec![2, 1, 1, 1, 1, 1, 1, 1]
        );
        assert_eq!(
            file.after_power_cut(|_| Fate::LostButSized).unwrap(),
            vec![1; 8]
        );
        // Extended, then written past the old end, then cut again: undone in order.
        file.set_len(6).unwrap();
        file.write_all_at(&[7, 7, 7], 5).unwrap();
        file.set_len(7).unwrap();
        assert_eq!(file.after_death().unwrap(), vec![2, 1, 1, 1, 0, 7, 7]);
        assert_eq!(file.after_power_cut(|_| Fate::Lost).unwrap(), vec![1; 8]);
        assert_eq!(
            file.after_power_cut(|i| if i < 3 { Fate::Kept } else { Fate::Lost })
                .unwrap(),
            vec![2, 1, 1, 1, 0, 0]
        );
        file.sync().unwrap();
        file.die_after(5);
        assert!(file.set_len(1).is_err(), "a dead process does not truncate");
        assert_eq!(
            file.after_power_cut(|_| Fate::Lost).unwrap(),
            vec![2, 1, 1, 1, 0, 7, 7]
        );
    }

    #[test]
    fn the_nth_change_or_sync_fails_once() {
        let file = FaultStorage::in_memory(vec![0; 4]);
        file.fail_change(1);
        file.write_all_at(&[1], 0).unwrap();
        assert!(file.write_all_at(&[2], 1).is_err());
        file.write_all_at(&[3], 2).unwrap();
        assert_eq!(file.after_death().unwrap(), vec![1, 0, 3, 0]);
        assert_eq!(file.changes(), 2);

        file.fail_sync(0);
        assert!(file.sync().is_err());
        assert_eq!(file.pending(), 2, "a failed sync makes nothing durable");
        file.sync().unwrap();
        assert_eq!((file.pending(), file.syncs()), (0, 1));
        file.fail_change(3); // attempts 0 to 2 were made
        assert!(file.set_len(0).is_err());
        assert_eq!(file.after_death().unwrap(), vec![1, 0, 3, 0]);
    }

    #[test]
    fn reads_are_counted_and_may_not_tell() {
        let file = FaultStorage::in_memory((0..16).collect());
        let mut a = [0; 2];
        let mut b = [0; 2];
        file.read_exact_gapped_at(&mut [&mut a, &mut b], 4, 1)
            .unwrap();
        assert_eq!((a, b), ([1, 2], [7, 8]));
        file.read_exact_now(&mut a, 0).unwrap();
        assert_eq!(file.reads(), 3);
        file.cannot_tell();
        let error = file.read_exact_now(&mut a, 0).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        file.read_exact_at(&mut a, 14).unwrap();
        assert_eq!((a, file.reads()), ([14, 15], 4));
    }
}
