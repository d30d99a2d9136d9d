//! When a CSR of certpair's signer may be deleted: kube-controller-manager's CSR cleaner
//! (`csrcleaner`), for certpair's signer. A CSR is a request, not the certificate: once it is
//! decided, the certificate lives on in whoever fetched it, and Events, metrics and the
//! Application's status keep the record; left alone, thousands of finished CSRs cost etcd and
//! every watcher memory.
//!
//! The rules are kube-controller-manager's, with its defaults: an issued CSR goes an hour after
//! its approval, a denied or failed one an hour after that condition, a pending one a day
//! after it was created, and an issued one whose certificate has expired at once.

use std::time::Duration;

/// How long decided and pending CSRs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// After the Approved (issued), Denied or Failed condition.
    pub finished: Duration,
    /// After creation, for a CSR nobody decided.
    pub pending: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            finished: Duration::from_secs(3600),
            pending: Duration::from_secs(86_400),
        }
    }
}

/// What a CSR shows about its age, as Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrState {
    /// Neither issued, denied nor failed. An approved CSR still waiting for its certificate
    /// counts as pending too (kube-controller-manager's rule).
    Pending { created: i64 },
    /// Has a certificate: `approved` is when the Approved condition was last updated, and
    /// `not_after` the certificate's end, when it could be read.
    Issued {
        approved: Option<i64>,
        not_after: Option<i64>,
    },
    /// Denied or Failed, with that condition's last update.
    Refused { at: Option<i64> },
}

/// Why a CSR is deleted: the metric label and log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cleanup {
    /// Issued, and its certificate has expired.
    Expired,
    /// Issued, denied or failed longer ago than the retention.
    Finished,
    /// Undecided for longer than the pending retention.
    Pending,
}

impl Cleanup {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Finished => "finished",
            Self::Pending => "pending",
        }
    }
}

/// Whether a CSR in `state` may be deleted at `now` (Unix seconds), and why. A decided CSR
/// without the time of its decision is kept: the rule cannot be applied, and keeping is the
/// side that loses nothing.
pub fn cleanup(state: CsrState, now: i64, retention: Retention) -> Option<Cleanup> {
    let older = |at: i64, keep: Duration| {
        now.saturating_sub(at) > i64::try_from(keep.as_secs()).unwrap_or(i64::MAX)
    };
    match state {
        CsrState::Issued { not_after, .. } if not_after.is_some_and(|end| end < now) => {
            Some(Cleanup::Expired)
        }
        CsrState::Issued {
            approved: Some(at), ..
        }
        | CsrState::Refused { at: Some(at) }
            if older(at, retention.finished) =>
        {
            Some(Cleanup::Finished)
        }
        CsrState::Pending { created } if older(created, retention.pending) => {
            Some(Cleanup::Pending)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn kube_controller_managers_rules_with_its_defaults() {
        let r = Retention::default();
        let issued = |approved: i64, not_after: i64| CsrState::Issued {
            approved: Some(approved),
            not_after: Some(not_after),
        };
        // Issued: kept for an hour after the approval, unless the certificate expired first.
        assert_eq!(cleanup(issued(NOW - 3599, NOW + 60), NOW, r), None);
        assert_eq!(
            cleanup(issued(NOW - 3601, NOW + 60), NOW, r),
            Some(Cleanup::Finished)
        );
        assert_eq!(
            cleanup(issued(NOW - 10, NOW - 1), NOW, r),
            Some(Cleanup::Expired)
        );
        // Denied or failed: an hour after that condition.
        assert_eq!(
            cleanup(
                CsrState::Refused {
                    at: Some(NOW - 3599)
                },
                NOW,
                r
            ),
            None
        );
        assert_eq!(
            cleanup(
                CsrState::Refused {
                    at: Some(NOW - 3601)
                },
                NOW,
                r
            ),
            Some(Cleanup::Finished)
        );
        // Pending: a day after creation.
        assert_eq!(
            cleanup(
                CsrState::Pending {
                    created: NOW - 86_399
                },
                NOW,
                r
            ),
            None
        );
        assert_eq!(
            cleanup(
                CsrState::Pending {
                    created: NOW - 86_401
                },
                NOW,
                r
            ),
            Some(Cleanup::Pending)
        );
    }

    #[test]
    fn without_the_time_of_a_decision_a_csr_is_kept() {
        let r = Retention::default();
        assert_eq!(cleanup(CsrState::Refused { at: None }, NOW, r), None);
        assert_eq!(
            cleanup(
                CsrState::Issued {
                    approved: None,
                    not_after: None
                },
                NOW,
                r
            ),
            None
        );
        // A clock far off in either direction never panics.
        assert_eq!(
            cleanup(CsrState::Pending { created: i64::MIN }, i64::MAX, r),
            Some(Cleanup::Pending)
        );
        assert_eq!(
            cleanup(CsrState::Pending { created: i64::MAX }, i64::MIN, r),
            None
        );
    }

    #[test]
    fn short_retentions_apply_as_given() {
        let r = Retention {
            finished: Duration::from_secs(5),
            pending: Duration::from_secs(8),
        };
        assert_eq!(
            cleanup(CsrState::Refused { at: Some(NOW - 6) }, NOW, r),
            Some(Cleanup::Finished)
        );
        assert_eq!(
            cleanup(CsrState::Pending { created: NOW - 7 }, NOW, r),
            None
        );
        assert_eq!(
            cleanup(CsrState::Pending { created: NOW - 9 }, NOW, r),
            Some(Cleanup::Pending)
        );
    }
}
