//! The application client certificate profile (kube-controller-manager's rules): subject
//! copied from the request after policy accepted it, no requested extension copied, EKU
//! clientAuth, and the lifetime: `spec.expirationSeconds` (or a default) at least 600 s, cut
//! to the maximum, never past the CA's NotAfter (see [`super::window`]).

use std::time::Duration;

use x509_cert::der::oid::{ObjectIdentifier, db::rfc5280};

/// Shortest `spec.expirationSeconds` a CSR may ask for (the API server's own floor).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Shortest lifetime an Application may set as its default or maximum. A signer may issue
/// shorter than the 600 s a requester may ask for: an Application that wants 2-minute
/// certificates (and clients that renew them) says so itself.
pub const MIN_APPLICATION_LIFETIME_SECONDS: i64 = 60;
/// Longest certificate lifetime an Application may allow: five years.
pub const MAX_EXPIRATION_SECONDS: i64 = 5 * 365 * 24 * 3600;

/// Lifetime to issue for: the requested `expirationSeconds` (at least 600 s) or the default
/// when absent, cut to the maximum. Default and maximum are the Application's (at least 60 s)
/// or the controller's.
pub fn lifetime(requested: Option<i64>, default: Duration, maximum: Duration) -> Duration {
    let floor = Duration::from_secs(MIN_EXPIRATION_SECONDS.unsigned_abs());
    let least = Duration::from_secs(MIN_APPLICATION_LIFETIME_SECONDS.unsigned_abs());
    let wanted = match requested {
        Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()).max(floor),
        Some(_) => floor,
        None => default,
    };
    wanted.min(maximum).max(least)
}

/// The extended key usage of a client certificate: clientAuth.
pub const EXTENDED_KEY_USAGE: ObjectIdentifier = rfc5280::ID_KP_CLIENT_AUTH;

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
                lifetime(*requested, default, max),
                *expected,
                "{requested:?}"
            );
        }
        // A default above the maximum is cut to the maximum.
        assert_eq!(lifetime(None, d(100 * H), max), max);
        // An Application's short maximum (or default) wins over the requester's 600 s floor;
        // nothing is shorter than a minute.
        assert_eq!(lifetime(Some(3600), default, d(120)), d(120));
        assert_eq!(lifetime(None, d(120), max), d(120));
        assert_eq!(lifetime(Some(3600), default, d(10)), d(60));
    }
}
