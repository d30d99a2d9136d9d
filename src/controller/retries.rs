//! Per-request retry delays for the CSR controller.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// Per-request retry delays after unexpected errors: 5 s, then doubling up to 5 min, reset by
/// a reconcile that succeeds. A fixed delay would turn an apiserver outage into one request
/// every 5 s for every CSR in flight, just when the apiserver is struggling.
#[derive(Default)]
pub struct Retries(Mutex<HashMap<String, u32>>);

impl Retries {
    const FIRST: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(300);
    /// Failures remembered at most; beyond that (requests deleted while failing) start over.
    const CAPACITY: usize = 10_000;

    /// Records one more failure of `key` and returns how long to wait before the next try.
    pub fn failed(&self, key: &str) -> Duration {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::CAPACITY && !map.contains_key(key) {
            map.clear();
        }
        let failures = map.entry(key.to_owned()).or_insert(0);
        *failures = failures.saturating_add(1);
        Self::delay(*failures)
    }

    pub fn succeeded(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    fn delay(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        Self::FIRST.saturating_mul(1 << doublings).min(Self::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_per_request_and_reset_on_success() {
        let retries = Retries::default();
        let waits: Vec<u64> = (0..9).map(|_| retries.failed("a").as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(retries.failed("b").as_secs(), 5, "per request");
        retries.succeeded("a");
        assert_eq!(retries.failed("a").as_secs(), 5, "reset by a success");
        for _ in 0..100 {
            retries.failed("a");
        }
        assert_eq!(retries.failed("a").as_secs(), 300, "no overflow");
    }
}
