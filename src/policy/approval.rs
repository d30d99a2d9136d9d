//! The approver's decision on a checked request: approve, deny with a reason, or leave it
//! pending for a person or pipeline.

use super::{
    ApplicationRules, CheckedRequest, Defaults, Denial, DenyReason, KeyAlgorithm, KeyRules,
    SubjectRules, Unmatched,
};
use crate::pki::csr::{Curve, KeyInfo, ParsedRequest};

/// What the approver does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve {
        message: String,
    },
    Deny(Denial),
    /// Leave it for a person or pipeline (`kubectl certificate approve`).
    Pending {
        message: String,
    },
}

/// What the approver knows about a checked request besides the request itself.
pub struct Facts<'a> {
    /// The Application named by the request's CN, if one exists.
    pub application: Option<&'a ApplicationRules>,
    /// Whether the requester may `request` that Application (SubjectAccessReview).
    pub requester_authorized: bool,
    pub requester: &'a str,
}

/// The approver's decision for one request that passed [`super::check_request`].
pub fn decide(req: &CheckedRequest<'_>, facts: &Facts<'_>, defaults: &Defaults) -> Decision {
    use DenyReason::*;
    let cn = req.cn;
    let Some(app) = facts.application else {
        let message = unknown_application(cn);
        return match defaults.unmatched {
            Unmatched::Deny => Decision::Deny(Denial::new(UnknownApplication, message)),
            Unmatched::Pending => Decision::Pending { message },
        };
    };
    if !facts.requester_authorized {
        return Decision::Deny(Denial::new(
            RequesterNotAuthorized,
            format!(
                "{:?} may not request certificates for Application {cn:?}; it needs verb \"request\" on applications.certpair.dev named {cn:?}",
                facts.requester
            ),
        ));
    }
    if app.disabled {
        return Decision::Deny(Denial::disabled(cn));
    }
    match fits_application(req, app, defaults) {
        Ok(()) => Decision::Approve {
            message: format!("approved by certpair for Application {cn:?}"),
        },
        Err(d) => Decision::Deny(d),
    }
}

/// The request fits its Application's profile: a key it allows, the subject it requires.
pub(super) fn fits_application(
    req: &CheckedRequest<'_>,
    app: &ApplicationRules,
    defaults: &Defaults,
) -> Result<(), Denial> {
    check_key(req.parsed, &app.keys, req.cn)?;
    check_subject(req.parsed, &app.subject, &defaults.subject, req.cn)
}

/// "Names no registered Application", in the approver's and the signer's words.
pub(super) fn unknown_application(cn: &str) -> String {
    format!("subject CN {cn:?} names no registered Application; create Application {cn:?} first")
}

/// The key's algorithm is one the Application allows, and an RSA key is big enough for it.
fn check_key(req: &ParsedRequest, keys: &KeyRules, cn: &str) -> Result<(), Denial> {
    let algorithm = match req.key {
        KeyInfo::Rsa { .. } => KeyAlgorithm::Rsa,
        KeyInfo::Ecdsa { curve: Curve::P256 } => KeyAlgorithm::EcdsaP256,
        KeyInfo::Ecdsa { curve: Curve::P384 } => KeyAlgorithm::EcdsaP384,
        // check_request has refused every other key already.
        _ => {
            return Err(Denial::new(
                DenyReason::UnsupportedKeyAlgorithm,
                format!("spec.request: {} key", req.key),
            ));
        }
    };
    if !keys.allowed.contains(&algorithm) {
        let names: Vec<&str> = keys.allowed.iter().map(|a| a.as_str()).collect();
        return Err(Denial::new(
            DenyReason::UnsupportedKeyAlgorithm,
            format!(
                "spec.request: {} key; Application {cn:?} allows {}",
                req.key,
                names.join(", ")
            ),
        ));
    }
    if let KeyInfo::Rsa { bits } = req.key {
        let min = keys.min_rsa_bits;
        if bits < min {
            return Err(Denial::new(
                DenyReason::KeyTooWeak,
                format!(
                    "spec.request: RSA key of {bits} bits; Application {cn:?} requires at least {min}"
                ),
            ));
        }
    }
    Ok(())
}

/// Each of O, OU, L, ST, C must equal what the Application (or else the controller default)
/// requires, and be absent when neither requires it.
fn check_subject(
    req: &ParsedRequest,
    app: &SubjectRules,
    defaults: &SubjectRules,
    cn: &str,
) -> Result<(), Denial> {
    for (kind, want) in app.required(defaults) {
        let found = req.values(&kind).first().copied();
        if found == want {
            continue;
        }
        let message = match (found, want) {
            (None, Some(w)) => {
                format!("subject: {kind} is missing; Application {cn:?} requires {kind}={w:?}")
            }
            (Some(f), Some(w)) => {
                format!("subject: {kind}={f:?}; Application {cn:?} requires {kind}={w:?}")
            }
            (Some(f), None) => format!(
                "subject: {kind}={f:?} is not allowed; Application {cn:?} requires no {kind}"
            ),
            (None, None) => continue,
        };
        return Err(Denial::new(DenyReason::SubjectMismatch, message));
    }
    Ok(())
}
