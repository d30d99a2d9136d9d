//! What the signer re-checks at signing time, whoever approved the request (a person with
//! `kubectl certificate approve`, a pipeline, or certpair itself), and the lifetime it signs
//! for. The signer holds no rule of its own: it calls [`may_sign`].
//!
//! certpair is the signer of its signer name and answers for what its CA signs. An approval
//! stands in for the requester authorization and the auto-approval mode (`--unmatched`); it
//! does not widen the certificate profile. So at signing time the request must still name an
//! existing, enabled Application and fit it (subject fields, key); the request-only checks
//! (no `system:` names, usages, extensions) have run in [`super::check_request`].

use std::time::Duration;

use super::{
    ApplicationRules, CheckedRequest, Defaults, Denial, DenyReason,
    approval::{fits_application, unknown_application},
};
use crate::pki::profile::client;

/// How to sign a request that may be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signing {
    pub lifetime: Duration,
}

/// Sign-time rules for an approved, checked request: its Application exists, is enabled
/// ("disabled" means no new certificates, however long signing was delayed after approval) and
/// the request fits it.
pub fn may_sign(
    req: &CheckedRequest<'_>,
    application: Option<&ApplicationRules>,
    defaults: &Defaults,
) -> Result<Signing, Denial> {
    let Some(app) = application else {
        return Err(Denial::new(
            DenyReason::UnknownApplication,
            unknown_application(req.cn),
        ));
    };
    if app.disabled {
        return Err(Denial::disabled(req.cn));
    }
    fits_application(req, app, defaults)?;
    Ok(Signing {
        lifetime: lifetime(req.spec.expiration_seconds, Some(app), defaults),
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
