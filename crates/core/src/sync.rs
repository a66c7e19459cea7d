//! The engine's one policy for poisoned locks.
//!
//! A `Mutex` or `RwLock` is poisoned only when a thread panicked while
//! holding it. That panic already ends the operation with an error: every
//! worker runs in a scoped thread or is joined, and a failed join is an
//! `Error::Internal` ("... panicked"), so no snapshot, index or deletion
//! follows it. The guarded value is therefore taken as it is: the error
//! lists, counters, caches and pending blobs it holds are still reported and
//! flushed, instead of being dropped silently (what `if let Ok(..) =
//! m.lock()` did) or turned into a second, misleading error. Every lock in
//! the engine is taken through this trait; nowhere may a poisoned lock mean
//! "skip this update".

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Lock, taking a poisoned value as it is (see the module's policy).
pub(crate) trait Locked<T> {
    /// The exclusive guard.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Read and write guards of an `RwLock`, under the same policy.
pub(crate) trait RwLocked<T> {
    /// A shared guard.
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    /// The exclusive guard.
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> RwLocked<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_keeps_its_value() {
        let m = Mutex::new(vec![1]);
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = m.lock().unwrap();
                g.push(2);
                panic!("poison it");
            })
            .join()
        });
        assert!(m.is_poisoned());
        assert_eq!(*m.locked(), vec![1, 2]);
        let r = RwLock::new(3);
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                let _g = r.write().unwrap();
                panic!("poison it");
            })
            .join()
        });
        assert!(r.is_poisoned());
        assert_eq!(*r.read_locked(), 3);
        *r.write_locked() = 4;
        assert_eq!(*r.read_locked(), 4);
    }
}
