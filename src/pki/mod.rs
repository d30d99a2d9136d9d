//! All X.509 work. No Kubernetes types here: the controller and the webhook hand in bytes and
//! get back typed facts, so everything in this module is tested with plain unit tests.

pub mod authority;
pub mod bundle;
pub mod csr;
pub mod profile;

/// Seconds since the Unix epoch, from the system clock.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
#[cfg(test)]
pub mod testing;
