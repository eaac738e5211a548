//! Single-flight: concurrent callers asking for the same missing thing share one fetch.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Fetches under way, by key. The first caller runs the fetch; the others wait for its
/// result. A caller that goes away mid-fetch hands the fetch on to one still waiting
/// (`OnceCell` runs the next waiter's future), so nobody waits for an abandoned one.
pub(crate) struct Flights<K, V> {
    running: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    /// The result of `fetch` for `key`, run once for every caller that arrives while it runs.
    pub(crate) async fn run<F>(&self, key: K, fetch: F) -> V
    where
        F: std::future::Future<Output = V>,
    {
        let cell = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.entry(key.clone()).or_default().clone()
        };
        let value = cell.get_or_init(|| fetch).await.clone();
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            running.remove(&key);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let flights: Arc<Flights<&'static str, usize>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut waiting = Vec::new();
        for _ in 0..20 {
            let (flights, calls, gate) = (flights.clone(), calls.clone(), gate.clone());
            waiting.push(tokio::spawn(async move {
                flights
                    .run("k", async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        7
                    })
                    .await
            }));
        }
        // Let every task reach the flight before the fetch ends.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for task in waiting {
            assert_eq!(task.await.unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Done flights are forgotten: the next caller fetches again.
        assert_eq!(flights.run("k", async { 8 }).await, 8);
    }
}
