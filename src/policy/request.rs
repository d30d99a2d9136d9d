//! Checks that depend on the request alone: what can never become valid whatever Applications
//! exist. The webhook refuses on these; the approver denies; the signer marks such a request
//! Failed. Each part of a request has its own check: subject shape, key, requested
//! extensions, usages and expiration.

use super::{Denial, DenyReason::*, MAX_RSA_BITS, MIN_RSA_BITS};
use crate::pki::{
    csr::{AttributeKind, CsrError, Curve, KeyInfo, ParsedRequest, RequestedExtensions},
    profile::client::{MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS},
};

/// Usages a client certificate may list in `spec.usages`; "client auth" must be among them.
pub const ALLOWED_USAGES: [&str; 3] = ["digital signature", "key encipherment", "client auth"];

/// What the CSR object says besides its PEM.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpec<'a> {
    pub usages: &'a [String],
    pub expiration_seconds: Option<i32>,
}

/// A request that passed [`check_request`]: the later steps decide on it without checking
/// again.
#[derive(Debug, Clone, Copy)]
pub struct CheckedRequest<'r> {
    pub parsed: &'r ParsedRequest,
    pub spec: RequestSpec<'r>,
    /// The subject's one CN: the name of the Application asked for.
    pub cn: &'r str,
}

/// Every request-only check, in the order a person would fix them.
pub fn check_request<'r>(
    req: &'r ParsedRequest,
    spec: RequestSpec<'r>,
) -> Result<CheckedRequest<'r>, Denial> {
    let cn = check_subject_shape(req)?;
    check_key_type(&req.key)?;
    check_extensions(&req.extensions)?;
    check_usages(spec.usages)?;
    check_expiration(spec.expiration_seconds)?;
    Ok(CheckedRequest {
        parsed: req,
        spec,
        cn,
    })
}

/// The denial for a request that cannot be parsed or verified, or whose RSA key is unsafe.
pub fn unreadable(err: &CsrError) -> Denial {
    let reason = match err {
        CsrError::UnsafeRsaKey(_) => KeyTooWeak,
        _ => InvalidRequest,
    };
    Denial::new(reason, err.to_string())
}

/// Exactly one non-empty CN; at most one each of O, OU, L, ST, C; nothing else; each value
/// within X.520's bounds. Returns the CN.
fn check_subject_shape(req: &ParsedRequest) -> Result<&str, Denial> {
    if req.multi_valued_rdn {
        return Err(Denial::new(
            InvalidRequest,
            "subject: multi-valued RDNs (e.g. CN=a+O=b) are not accepted; put each attribute in its own RDN",
        ));
    }
    for attr in &req.subject {
        if attr.kind.nid().is_none() {
            return Err(Denial::new(
                SubjectMismatch,
                format!(
                    "subject: attribute {} is not allowed; only CN, O, OU, L, ST and C are",
                    attr.kind
                ),
            ));
        }
    }
    // Kubernetes reserves the `system:` prefix for its own identities (`O=system:masters` is
    // cluster-admin to an apiserver that trusts this CA for clients); no certpair certificate
    // carries it, whoever approves.
    if let Some(attr) = req.subject.iter().find(|a| a.value.starts_with("system:")) {
        return Err(Denial::new(
            SubjectMismatch,
            format!(
                "subject: {}={:?} is reserved; values starting with \"system:\" name Kubernetes identities and are never certified",
                attr.kind, attr.value
            ),
        ));
    }
    let cns = req.values(&AttributeKind::CommonName);
    let cn = match cns.as_slice() {
        [cn] if !cn.trim().is_empty() => *cn,
        [] => {
            return Err(Denial::new(
                InvalidRequest,
                "subject: no CN; the CN must be the name of the Application",
            ));
        }
        [_] => return Err(Denial::new(InvalidRequest, "subject: the CN is empty")),
        many => {
            return Err(Denial::new(
                InvalidRequest,
                format!("subject: {} CNs found; exactly one is required", many.len()),
            ));
        }
    };
    for kind in [
        AttributeKind::Organization,
        AttributeKind::OrganizationalUnit,
        AttributeKind::Locality,
        AttributeKind::Province,
        AttributeKind::Country,
    ] {
        let n = req.values(&kind).len();
        if n > 1 {
            return Err(Denial::new(
                SubjectMismatch,
                format!("subject: {n} {kind} attributes found; at most one is allowed"),
            ));
        }
    }

    // X.520 upper bounds, which OpenSSL enforces when it builds the certificate's subject: a
    // request past them could be approved and then never signed.
    for attr in &req.subject {
        let kind = &attr.kind;
        let chars = attr.value.chars().count();
        let max = match kind {
            AttributeKind::Locality | AttributeKind::Province => 128,
            _ => 64,
        };
        if attr.value.trim().is_empty() {
            return Err(Denial::new(
                InvalidRequest,
                format!("subject: {kind} is empty"),
            ));
        }
        if *kind == AttributeKind::Country {
            if chars != 2 || !attr.value.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(Denial::new(
                    InvalidRequest,
                    format!(
                        "subject: C={:?}; a country is two letters (ISO 3166-1 alpha-2)",
                        attr.value
                    ),
                ));
            }
        } else if chars > max {
            return Err(Denial::new(
                InvalidRequest,
                format!("subject: {kind} is {chars} characters long; at most {max} are allowed"),
            ));
        }
    }
    Ok(cn)
}

/// RSA of 2048..=8192 bits, ECDSA P-256 or P-384.
fn check_key_type(key: &KeyInfo) -> Result<(), Denial> {
    match key {
        KeyInfo::Rsa { bits } if *bits < MIN_RSA_BITS => Err(Denial::new(
            KeyTooWeak,
            format!("spec.request: RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"),
        )),
        KeyInfo::Rsa { bits } if *bits > MAX_RSA_BITS => Err(Denial::new(
            UnsupportedKeyAlgorithm,
            format!("spec.request: RSA key of {bits} bits; at most {MAX_RSA_BITS} are accepted"),
        )),
        KeyInfo::Rsa { .. }
        | KeyInfo::Ecdsa {
            curve: Curve::P256 | Curve::P384,
        } => Ok(()),
        other => Err(Denial::new(
            UnsupportedKeyAlgorithm,
            format!(
                "spec.request: {other} key; RSA (2048+ bits), ECDSA P-256 or ECDSA P-384 is required"
            ),
        )),
    }
}

/// Nothing a client certificate must not carry: CA:TRUE, SANs, key usages beyond
/// digitalSignature/keyEncipherment, EKUs beyond clientAuth, or any other extension.
fn check_extensions(ext: &RequestedExtensions) -> Result<(), Denial> {
    if ext.basic_constraints_ca == Some(true) {
        return Err(Denial::new(
            DisallowedExtensions,
            "spec.request: asks for basicConstraints CA:TRUE; application certificates are never CAs",
        ));
    }
    if let Some(san) = ext.sans.first() {
        return Err(Denial::new(
            DisallowedExtensions,
            format!(
                "spec.request: asks for subject alternative names ({san}{}); application client certificates carry none",
                if ext.sans.len() > 1 { ", ..." } else { "" }
            ),
        ));
    }
    if let Some(ku) = ext
        .key_usages
        .iter()
        .find(|u| !matches!(**u, "digitalSignature" | "keyEncipherment"))
    {
        return Err(Denial::new(
            DisallowedExtensions,
            format!(
                "spec.request: asks for key usage {ku}; only digitalSignature and keyEncipherment are allowed"
            ),
        ));
    }
    if let Some(eku) = ext
        .extended_key_usages
        .iter()
        .find(|u| u.as_str() != "clientAuth")
    {
        return Err(Denial::new(
            DisallowedExtensions,
            format!("spec.request: asks for extended key usage {eku}; only clientAuth is allowed"),
        ));
    }
    if let Some(other) = ext.other.first() {
        return Err(Denial::new(
            DisallowedExtensions,
            format!("spec.request: asks for extension {other}, which certpair does not issue"),
        ));
    }
    Ok(())
}

/// `spec.usages` lists "client auth" and nothing beyond [`ALLOWED_USAGES`].
fn check_usages(usages: &[String]) -> Result<(), Denial> {
    if !usages.iter().any(|u| u == "client auth") {
        return Err(Denial::new(
            DisallowedUsages,
            format!("spec.usages: {usages:?} lacks \"client auth\", which is required"),
        ));
    }
    if let Some(u) = usages
        .iter()
        .find(|u| !ALLOWED_USAGES.contains(&u.as_str()))
    {
        return Err(Denial::new(
            DisallowedUsages,
            format!("spec.usages: {u:?} is not allowed; allowed are {ALLOWED_USAGES:?}"),
        ));
    }
    Ok(())
}

/// `spec.expirationSeconds`, when set, within the bounds of the client profile.
fn check_expiration(expiration_seconds: Option<i32>) -> Result<(), Denial> {
    let Some(s) = expiration_seconds else {
        return Ok(());
    };
    let s = i64::from(s);
    if (MIN_EXPIRATION_SECONDS..=MAX_EXPIRATION_SECONDS).contains(&s) {
        return Ok(());
    }
    Err(Denial::new(
        InvalidExpiration,
        format!(
            "spec.expirationSeconds: {s}; it must be between {MIN_EXPIRATION_SECONDS} and {MAX_EXPIRATION_SECONDS}"
        ),
    ))
}
