//! The cluster-locks port: named locks that keep a piece of work to one holder across every
//! node on the same database (a garbage collection, a running build).
//!
//! Contract for every backend:
//! - `try_hold` never waits: it takes the lock when nobody holds it and answers `None`
//!   when another holder does, in this process or another.
//! - The hold ends when the returned value is dropped, or when the holding process dies
//!   (a `kill -9` frees it): a node that finds a lock free knows its last holder can no
//!   longer act on what the lock guards.

use super::meta::MetaError;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// A held lock: dropping it frees the lock.
pub type LockHold = Box<dyn std::any::Any + Send + Sync>;

/// The lock a garbage collection holds for its whole run.
pub const COLLECTION_LOCK: &str = "collection";

/// The lock the node running build `id` holds until the build is final.
pub fn build_lock(id: i64) -> String {
    format!("build:{id}")
}

#[async_trait::async_trait]
pub trait ClusterLocks: Send + Sync {
    /// Takes the lock named `name` if it is free; see the module contract.
    async fn try_hold(&self, name: &str) -> Result<Option<LockHold>, MetaError>;
}

/// Locks held within this process: a correct [`ClusterLocks`] wherever one process alone
/// uses the store (SQLite, whose data directory the server locks), and a process's death
/// frees them with it.
#[derive(Debug, Clone, Default)]
pub struct ProcessLocks {
    held: Arc<Mutex<HashSet<String>>>,
}

struct ProcessHold {
    held: Arc<Mutex<HashSet<String>>>,
    name: String,
}

impl Drop for ProcessHold {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.name);
    }
}

#[async_trait::async_trait]
impl ClusterLocks for ProcessLocks {
    async fn try_hold(&self, name: &str) -> Result<Option<LockHold>, MetaError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if !held.insert(name.to_owned()) {
            return Ok(None);
        }
        Ok(Some(Box::new(ProcessHold {
            held: self.held.clone(),
            name: name.to_owned(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_lock_has_one_holder_until_it_is_dropped() {
        let locks = ProcessLocks::default();
        let first = locks.try_hold(COLLECTION_LOCK).await.unwrap();
        assert!(first.is_some());
        assert!(locks.try_hold(COLLECTION_LOCK).await.unwrap().is_none());
        assert!(locks.try_hold(&build_lock(7)).await.unwrap().is_some());
        drop(first);
        assert!(locks.try_hold(COLLECTION_LOCK).await.unwrap().is_some());
    }
}
