//! The leader's write fence: until when this replica may still write as leader.
//!
//! The leader term is aborted when the Lease check ([`crate::controller::leader`]) stops
//! confirming the Lease, but that check is a task like any other. A process that was frozen
//! (SIGSTOP, a paused VM, a node under memory pressure) past its Lease resumes with its workers
//! ready to run, and they run before the check has read the Lease again: a worker that was
//! between an approval and its certificate would write at once, while a standby leads. So each
//! leader write first asks the fence, which needs no API call: the monotonic clock keeps
//! running while a process is stopped, so a stale confirmation has expired by the time it
//! resumes.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

/// Shared by the Lease check (which moves the deadline) and every leader write (which checks
/// it). Cheap to clone. A new fence is closed.
#[derive(Clone, Debug, Default)]
pub struct Fence(Arc<Mutex<Option<Instant>>>);

/// A write refused by the fence.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "not writing: this replica's leadership is not confirmed (lost, expired, or not yet checked)"
)]
pub struct NotLeading;

impl Fence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes are allowed until `deadline`.
    pub fn open_until(&self, deadline: Instant) {
        *self.lock() = Some(deadline);
    }

    /// No write from now on, until the next [`Self::open_until`].
    pub fn close(&self) {
        *self.lock() = None;
    }

    /// Ok while a write may go out now. Call it right before each write, after any work that
    /// may have waited.
    pub fn check(&self) -> Result<(), NotLeading> {
        match *self.lock() {
            Some(deadline) if Instant::now() < deadline => Ok(()),
            _ => Err(NotLeading),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn closed_until_opened_and_shut_at_the_deadline() {
        let fence = Fence::default();
        assert!(fence.check().is_err(), "a new fence is closed");
        fence.open_until(Instant::now() + Duration::from_secs(60));
        assert!(fence.check().is_ok());
        fence.clone().close();
        assert!(fence.check().is_err(), "clones share the deadline");
        fence.open_until(Instant::now() - Duration::from_millis(1));
        assert!(fence.check().is_err(), "past its deadline");
    }
}
