//! The catalog cache: every repository name, sorted, kept while the database's repository
//! counter says nothing was added or removed, so a `_catalog` page costs one indexed read.
//! Shared by the metadata backends: the counter lives in the database, so every node of a
//! cluster sees another node's change at its next read and drops its copy.

use std::sync::Mutex;

/// Repository names as of one value of the database's repository counter. A backend reads
/// the counter, asks [`CatalogCache::page`], and on a miss reads every name and stores them
/// under the counter value it read first: a change committed in between only makes the
/// next read miss again.
#[derive(Debug, Default)]
pub struct CatalogCache {
    names: Mutex<Option<(i64, Vec<String>)>>,
}

impl CatalogCache {
    /// The page after `last` if the cache is at `version`.
    pub fn page(&self, version: i64, last: Option<&str>, limit: u32) -> Option<Vec<String>> {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        match names.as_ref() {
            Some((cached, all)) if *cached == version => Some(Self::slice(all, last, limit)),
            _ => None,
        }
    }

    pub fn store(&self, version: i64, all: Vec<String>) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        *names = Some((version, all));
    }

    /// At most `limit` names strictly after `last` from a sorted list.
    pub fn slice(all: &[String], last: Option<&str>, limit: u32) -> Vec<String> {
        let start = last.map_or(0, |last| all.partition_point(|name| name.as_str() <= last));
        all[start..].iter().take(limit as usize).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_last_and_versions() {
        let cache = CatalogCache::default();
        assert_eq!(cache.page(1, None, 10), None);
        cache.store(1, vec!["a".into(), "b/c".into(), "d".into()]);
        assert_eq!(cache.page(1, None, 2).unwrap(), ["a", "b/c"]);
        assert_eq!(cache.page(1, Some("a"), 10).unwrap(), ["b/c", "d"]);
        assert_eq!(cache.page(1, Some("b"), 10).unwrap(), ["b/c", "d"]);
        assert!(cache.page(1, Some("d"), 10).unwrap().is_empty());
        assert_eq!(cache.page(2, None, 10), None);
    }
}
