//! The sign-in throttle's shared failures on SQLite: kept in this process, which owns the
//! data (a second server on it is refused), and handed to every throttle over this store.

use super::SqliteMeta;
use berth_core::ports::{
    MetaError, ReceivedSignInFailure, SignInFailure, SignInFailures, SIGN_IN_FAILURE_BACKLOG,
};
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Failures remembered for throttles that start later, at most this many.
const MAX_REMEMBERED: usize = 10_000;

#[derive(Debug)]
pub(super) struct InProcessFailures {
    sender: broadcast::Sender<ReceivedSignInFailure>,
    /// Oldest first, each until its `keep` runs out.
    recent: Mutex<VecDeque<(ReceivedSignInFailure, Instant)>>,
}

impl Default for InProcessFailures {
    fn default() -> Self {
        InProcessFailures {
            sender: broadcast::channel(SIGN_IN_FAILURE_BACKLOG).0,
            recent: Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl SignInFailures for SqliteMeta {
    async fn share_sign_in_failure(
        &self,
        failure: &SignInFailure,
        keep: Duration,
    ) -> Result<(), MetaError> {
        let now = Instant::now();
        let received = ReceivedSignInFailure {
            failure: failure.clone(),
            failed_at: now,
        };
        {
            let mut recent = self
                .sign_in_failures
                .recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while recent
                .front()
                .is_some_and(|(_, until)| *until <= now || recent.len() >= MAX_REMEMBERED)
            {
                recent.pop_front();
            }
            recent.push_back((received.clone(), now + keep));
        }
        // No throttle listening is no error: nobody is left to slow down.
        let _ = self.sign_in_failures.sender.send(received);
        Ok(())
    }

    fn subscribe_sign_in_failures(&self) -> broadcast::Receiver<ReceivedSignInFailure> {
        self.sign_in_failures.sender.subscribe()
    }

    async fn recent_sign_in_failures(
        &self,
        within: Duration,
    ) -> Result<Vec<ReceivedSignInFailure>, MetaError> {
        let now = Instant::now();
        let recent = self
            .sign_in_failures
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(recent
            .iter()
            .filter(|(received, until)| {
                *until > now && now.saturating_duration_since(received.failed_at) < within
            })
            .map(|(received, _)| received.clone())
            .collect())
    }
}
