//! Certificate profiles: lifetimes and validity windows, as pure arithmetic on seconds so the
//! rules are testable without clocks or keys.

use std::time::Duration;

use crate::api::MIN_EXPIRATION_SECONDS;

/// How far NotBefore is set in the past, to tolerate clock skew between certpair and clients.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Lifetime to issue for: the requested `expirationSeconds` (or the default when absent),
/// clamped to [600 s, maximum]. The maximum itself is never below the floor.
pub fn clamp_duration(requested: Option<i64>, default: Duration, maximum: Duration) -> Duration {
    let floor = Duration::from_secs(MIN_EXPIRATION_SECONDS.unsigned_abs());
    let maximum = maximum.max(floor);
    let wanted = match requested {
        Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()),
        Some(_) => floor,
        None => default,
    };
    wanted.clamp(floor, maximum)
}

/// A validity window in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub not_before: i64,
    pub not_after: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("the signing CA expired at {ca_not_after} (Unix time); it cannot sign")]
    CaExpired { ca_not_after: i64 },
    #[error("the signing CA is not valid before {ca_not_before} (Unix time); it cannot sign yet")]
    CaNotYetValid { ca_not_before: i64 },
}

/// NotBefore = now − 5 min but never before the CA's NotBefore; NotAfter = now + lifetime
/// truncated to the CA's NotAfter. A CA that is expired (or not yet valid) signs nothing.
pub fn window(now: i64, lifetime: Duration, ca: Window) -> Result<Window, WindowError> {
    if now >= ca.not_after {
        return Err(WindowError::CaExpired {
            ca_not_after: ca.not_after,
        });
    }
    if now < ca.not_before {
        return Err(WindowError::CaNotYetValid {
            ca_not_before: ca.not_before,
        });
    }
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let backdate = i64::try_from(BACKDATE.as_secs()).unwrap_or(0);
    Ok(Window {
        not_before: (now - backdate).max(ca.not_before),
        not_after: now.saturating_add(lifetime).min(ca.not_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn durations_are_clamped() {
        let d = Duration::from_secs;
        let default = d(24 * H);
        let max = d(48 * H);
        let cases: &[(Option<i64>, Duration)] = &[
            (None, default),
            (Some(3600), d(3600)),
            (Some(60), d(600)),      // below the floor
            (Some(0), d(600)),       // nonsense
            (Some(-5), d(600)),      // nonsense
            (Some(10 * 86400), max), // above the maximum
            (Some(i64::MAX), max),
        ];
        for (requested, expected) in cases {
            assert_eq!(
                clamp_duration(*requested, default, max),
                *expected,
                "{requested:?}"
            );
        }
        // A default above the maximum is cut to the maximum; a maximum under the floor is lifted.
        assert_eq!(clamp_duration(None, d(100 * H), max), max);
        assert_eq!(clamp_duration(Some(3600), default, d(10)), d(600));
    }

    #[test]
    fn window_backdates_and_truncates() {
        let ca = Window {
            not_before: 1_000,
            not_after: 100_000,
        };
        let w = window(50_000, Duration::from_secs(3600), ca).expect("valid");
        assert_eq!(
            w,
            Window {
                not_before: 49_700,
                not_after: 53_600
            }
        );
        // Never before the CA's own NotBefore.
        let w = window(1_100, Duration::from_secs(3600), ca).expect("valid");
        assert_eq!(w.not_before, 1_000);
        // Truncated to the CA's NotAfter.
        let w = window(99_000, Duration::from_secs(3600), ca).expect("valid");
        assert_eq!(w.not_after, 100_000);
    }

    #[test]
    fn expired_or_future_ca_refuses() {
        let ca = Window {
            not_before: 1_000,
            not_after: 2_000,
        };
        assert!(matches!(
            window(2_000, Duration::from_secs(600), ca),
            Err(WindowError::CaExpired { .. })
        ));
        assert!(matches!(
            window(999, Duration::from_secs(600), ca),
            Err(WindowError::CaNotYetValid { .. })
        ));
    }
}
