//! What the signer re-checks at signing time, whoever approved the request (a person with
//! `kubectl certificate approve`, a pipeline, or certpair itself), and the lifetime it signs
//! for. The signer holds no rule of its own: it calls [`may_sign`].

use std::time::Duration;

use super::{ApplicationRules, CheckedRequest, Defaults, Denial};
use crate::pki::profile::client;

/// How to sign a request that may be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signing {
    pub lifetime: Duration,
}

/// Sign-time rules for an approved, checked request. "Disabled" means no new certificates,
/// whoever approved the request and however long signing was delayed after approval.
pub fn may_sign(
    req: &CheckedRequest<'_>,
    application: Option<&ApplicationRules>,
    defaults: &Defaults,
) -> Result<Signing, Denial> {
    if application.is_some_and(|a| a.disabled) {
        return Err(Denial::disabled(req.cn));
    }
    Ok(Signing {
        lifetime: lifetime(req.spec.expiration_seconds, application, defaults),
    })
}

/// `spec.expirationSeconds` (or the Application's / controller's default) clamped by the
/// client profile to [600 s, the Application's / controller's maximum].
pub(super) fn lifetime(
    expiration_seconds: Option<i32>,
    app: Option<&ApplicationRules>,
    defaults: &Defaults,
) -> Duration {
    let max = app
        .and_then(|a| a.max_lifetime)
        .unwrap_or(defaults.max_lifetime);
    let default = app
        .and_then(|a| a.default_lifetime)
        .unwrap_or(defaults.default_lifetime);
    client::lifetime(expiration_seconds.map(i64::from), default, max)
}
