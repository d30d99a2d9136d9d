//! Pure decisions over certificate requests. The webhook and the approver call the same
//! functions, so the webhook can never admit what the controller cannot read, and every
//! denial carries a reason from one closed set.

use std::{fmt, time::Duration};

use crate::{
    api::{
        ApplicationSpec, KeyAlgorithm, KeyRequirements, MAX_EXPIRATION_SECONDS,
        MIN_EXPIRATION_SECONDS, SubjectRequirements,
    },
    pki::{
        csr::{AttributeKind, CsrError, Curve, KeyInfo, ParsedRequest},
        profile::clamp_duration,
    },
};

/// Why a request was denied. The names are the CSR condition reasons, Event reasons and metric
/// label values, so the set is closed and small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    InvalidRequest,
    UnknownApplication,
    ApplicationDisabled,
    RequesterNotAuthorized,
    SubjectMismatch,
    KeyTooWeak,
    UnsupportedKeyAlgorithm,
    DisallowedUsages,
    DisallowedExtensions,
    InvalidExpiration,
}

impl DenyReason {
    pub const ALL: [DenyReason; 10] = [
        Self::InvalidRequest,
        Self::UnknownApplication,
        Self::ApplicationDisabled,
        Self::RequesterNotAuthorized,
        Self::SubjectMismatch,
        Self::KeyTooWeak,
        Self::UnsupportedKeyAlgorithm,
        Self::DisallowedUsages,
        Self::DisallowedExtensions,
        Self::InvalidExpiration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequest",
            Self::UnknownApplication => "UnknownApplication",
            Self::ApplicationDisabled => "ApplicationDisabled",
            Self::RequesterNotAuthorized => "RequesterNotAuthorized",
            Self::SubjectMismatch => "SubjectMismatch",
            Self::KeyTooWeak => "KeyTooWeak",
            Self::UnsupportedKeyAlgorithm => "UnsupportedKeyAlgorithm",
            Self::DisallowedUsages => "DisallowedUsages",
            Self::DisallowedExtensions => "DisallowedExtensions",
            Self::InvalidExpiration => "InvalidExpiration",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the reason and a message that names the field, what was found and what is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
    pub message: String,
}

impl Denial {
    fn new(reason: DenyReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

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

/// What happens to a well-formed request naming no registered Application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Unmatched {
    Deny,
    Pending,
}

/// The controller-wide settings decisions depend on (from flags).
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Subject fields required when an Application leaves them unset.
    pub subject: SubjectRequirements,
    /// Lifetime when neither the CSR nor the Application sets one.
    pub default_lifetime: Duration,
    /// Longest lifetime when the Application sets no maximum.
    pub max_lifetime: Duration,
    pub unmatched: Unmatched,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            subject: SubjectRequirements::default(),
            default_lifetime: Duration::from_secs(24 * 3600),
            max_lifetime: Duration::from_secs(30 * 24 * 3600),
            unmatched: Unmatched::Deny,
        }
    }
}

/// Usages a client certificate may list in `spec.usages`; "client auth" must be among them.
pub const ALLOWED_USAGES: [&str; 3] = ["digital signature", "key encipherment", "client auth"];

/// What the CSR object says besides its PEM.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpec<'a> {
    pub usages: &'a [String],
    pub expiration_seconds: Option<i32>,
}

/// Checks that depend on the request alone: what can never become valid whatever
/// Applications exist. Returns the application name (the CN) on success. The webhook rejects
/// on these; the signer marks such a request Failed.
pub fn check_request<'r>(req: &'r ParsedRequest, spec: RequestSpec<'_>) -> Result<&'r str, Denial> {
    use DenyReason::*;
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

    match req.key {
        KeyInfo::Rsa { bits } if bits < 2048 => {
            return Err(Denial::new(
                KeyTooWeak,
                format!("spec.request: RSA key of {bits} bits; at least 2048 are required"),
            ));
        }
        KeyInfo::Rsa { bits } if bits > crate::api::MAX_RSA_BITS as u32 => {
            return Err(Denial::new(
                UnsupportedKeyAlgorithm,
                format!("spec.request: RSA key of {bits} bits; at most 8192 are accepted"),
            ));
        }
        KeyInfo::Rsa { .. }
        | KeyInfo::Ecdsa {
            curve: Curve::P256 | Curve::P384,
        } => {}
        ref other => {
            return Err(Denial::new(
                UnsupportedKeyAlgorithm,
                format!(
                    "spec.request: {other} key; RSA (2048+ bits), ECDSA P-256 or ECDSA P-384 is required"
                ),
            ));
        }
    }

    let ext = &req.extensions;
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

    if !spec.usages.iter().any(|u| u == "client auth") {
        return Err(Denial::new(
            DisallowedUsages,
            format!(
                "spec.usages: {:?} lacks \"client auth\", which is required",
                spec.usages
            ),
        ));
    }
    if let Some(u) = spec
        .usages
        .iter()
        .find(|u| !ALLOWED_USAGES.contains(&u.as_str()))
    {
        return Err(Denial::new(
            DisallowedUsages,
            format!("spec.usages: {u:?} is not allowed; allowed are {ALLOWED_USAGES:?}"),
        ));
    }

    if let Some(s) = spec.expiration_seconds {
        let s = i64::from(s);
        if !(MIN_EXPIRATION_SECONDS..=MAX_EXPIRATION_SECONDS).contains(&s) {
            return Err(Denial::new(
                InvalidExpiration,
                format!(
                    "spec.expirationSeconds: {s}; it must be between {MIN_EXPIRATION_SECONDS} and {MAX_EXPIRATION_SECONDS}"
                ),
            ));
        }
    }
    Ok(cn)
}

/// The denial for a request that cannot be parsed or verified.
pub fn unreadable(err: &CsrError) -> Denial {
    Denial::new(DenyReason::InvalidRequest, err.to_string())
}

/// Everything the approver knows about one CSR.
pub struct Facts<'a> {
    pub request: Result<&'a ParsedRequest, &'a CsrError>,
    pub spec: RequestSpec<'a>,
    /// The Application named by the request's CN, if one exists.
    pub application: Option<&'a ApplicationSpec>,
    /// Whether the requester may `request` that Application (SubjectAccessReview).
    pub requester_authorized: bool,
    pub requester: &'a str,
}

/// The approver's decision for one CSR.
pub fn decide(facts: &Facts<'_>, defaults: &Defaults) -> Decision {
    use DenyReason::*;
    let req = match facts.request {
        Ok(req) => req,
        Err(e) => return Decision::Deny(unreadable(e)),
    };
    let cn = match check_request(req, facts.spec) {
        Ok(cn) => cn,
        Err(d) => return Decision::Deny(d),
    };
    let Some(app) = facts.application else {
        let message = format!(
            "subject CN {cn:?} names no registered Application; create Application {cn:?} first"
        );
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
        return Decision::Deny(Denial::new(
            ApplicationDisabled,
            format!("Application {cn:?} is disabled (spec.disabled: true)"),
        ));
    }
    if let Err(d) = check_key(
        req,
        app.keys.as_ref().unwrap_or(&KeyRequirements::default()),
        cn,
    ) {
        return Decision::Deny(d);
    }
    if let Err(d) = check_subject(req, app.subject.as_ref(), &defaults.subject, cn) {
        return Decision::Deny(d);
    }
    Decision::Approve {
        message: format!("approved by certpair for Application {cn:?}"),
    }
}

fn check_key(req: &ParsedRequest, keys: &KeyRequirements, cn: &str) -> Result<(), Denial> {
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
    let allowed = keys.allowed();
    if !allowed.contains(&algorithm) {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| {
                serde_json::to_value(a)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
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
        let min = keys.min_rsa_bits();
        if i64::from(bits) < i64::from(min) {
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
    app: Option<&SubjectRequirements>,
    defaults: &SubjectRequirements,
    cn: &str,
) -> Result<(), Denial> {
    let pick = |f: fn(&SubjectRequirements) -> &Option<String>| -> Option<&str> {
        app.and_then(|a| f(a).as_deref()).or(f(defaults).as_deref())
    };
    let required = [
        (AttributeKind::Organization, pick(|s| &s.organization)),
        (
            AttributeKind::OrganizationalUnit,
            pick(|s| &s.organizational_unit),
        ),
        (AttributeKind::Locality, pick(|s| &s.locality)),
        (AttributeKind::Province, pick(|s| &s.province)),
        (AttributeKind::Country, pick(|s| &s.country)),
    ];
    for (kind, want) in required {
        let found = req.values(&kind).first().copied();
        let ok = found == want;
        if !ok {
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
    }
    Ok(())
}

/// Lifetime of the certificate: `spec.expirationSeconds` (or the Application's / controller's
/// default) clamped to [600 s, the Application's / controller's maximum].
pub fn lifetime(
    expiration_seconds: Option<i32>,
    app: Option<&ApplicationSpec>,
    defaults: &Defaults,
) -> Duration {
    let secs = |s: i64| Duration::from_secs(s.max(0).unsigned_abs());
    let max = app
        .and_then(|a| a.max_expiration_seconds)
        .map_or(defaults.max_lifetime, secs);
    let default = app
        .and_then(|a| a.default_expiration_seconds)
        .map_or(defaults.default_lifetime, secs);
    clamp_duration(expiration_seconds.map(i64::from), default, max)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use openssl::{
        nid::Nid,
        pkey::{PKey, Private},
    };

    use super::*;
    use crate::{
        api::{KeyAlgorithm, KeyRequirements},
        pki::{
            csr::parse_pem,
            testing::{Req, ec, p256, rsa, tampered},
        },
    };

    // Key generation dominates test time; share one key of each kind.
    fn rsa2048() -> &'static PKey<Private> {
        static K: OnceLock<PKey<Private>> = OnceLock::new();
        K.get_or_init(|| rsa(2048))
    }
    fn rsa1024() -> &'static PKey<Private> {
        static K: OnceLock<PKey<Private>> = OnceLock::new();
        K.get_or_init(|| rsa(1024))
    }
    fn rsa3072() -> &'static PKey<Private> {
        static K: OnceLock<PKey<Private>> = OnceLock::new();
        K.get_or_init(|| rsa(3072))
    }
    fn ec256() -> &'static PKey<Private> {
        static K: OnceLock<PKey<Private>> = OnceLock::new();
        K.get_or_init(p256)
    }

    fn acme(cn: &str) -> Req {
        Req::cn(cn).with(Nid::ORGANIZATIONNAME, "Acme")
    }

    fn app() -> ApplicationSpec {
        ApplicationSpec {
            subject: Some(SubjectRequirements {
                organization: Some("Acme".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn client_usages() -> Vec<String> {
        vec!["digital signature".into(), "client auth".into()]
    }

    enum Expect {
        Approve,
        Pending,
        Deny(DenyReason, &'static str),
    }

    struct Case {
        name: &'static str,
        pem: Vec<u8>,
        usages: Vec<String>,
        expiration: Option<i32>,
        app: Option<ApplicationSpec>,
        authorized: bool,
        unmatched: Unmatched,
        expect: Expect,
    }

    fn case(name: &'static str, pem: Vec<u8>, expect: Expect) -> Case {
        Case {
            name,
            pem,
            usages: client_usages(),
            expiration: Some(3600),
            app: Some(app()),
            authorized: true,
            unmatched: Unmatched::Deny,
            expect,
        }
    }

    #[test]
    fn decision_table() {
        use DenyReason::*;
        use Expect::*;
        let good = acme("billing").pem(ec256());
        let with_keys = |keys: KeyRequirements| ApplicationSpec {
            keys: Some(keys),
            ..app()
        };
        let cases = vec![
            case("ECDSA P-256, matching subject", good.clone(), Approve),
            case(
                "RSA-2048, matching subject",
                acme("billing").pem(rsa2048()),
                Approve,
            ),
            case(
                "ECDSA P-384",
                acme("billing").pem(&ec(Nid::SECP384R1)),
                Approve,
            ),
            Case {
                expiration: None,
                ..case("no expirationSeconds", good.clone(), Approve)
            },
            Case {
                usages: vec!["client auth".into(), "key encipherment".into()],
                ..case(
                    "key encipherment usage",
                    acme("billing").pem(rsa2048()),
                    Approve,
                )
            },
            case(
                "RSA-1024",
                acme("billing").pem(rsa1024()),
                Deny(KeyTooWeak, "RSA key of 1024 bits"),
            ),
            case(
                "ECDSA P-521",
                acme("billing").pem(&ec(Nid::SECP521R1)),
                Deny(UnsupportedKeyAlgorithm, "P-521"),
            ),
            case(
                "secp256k1",
                acme("billing").pem(&ec(Nid::SECP256K1)),
                Deny(UnsupportedKeyAlgorithm, "unsupported curve"),
            ),
            case(
                "Ed25519",
                acme("billing").pem(&PKey::generate_ed25519().expect("ed25519")),
                Deny(UnsupportedKeyAlgorithm, "Ed25519 key"),
            ),
            case(
                "no CN",
                Req {
                    subject: vec![(Nid::ORGANIZATIONNAME, "Acme".into())],
                    ..Default::default()
                }
                .pem(ec256()),
                Deny(InvalidRequest, "no CN"),
            ),
            case(
                "two CNs",
                acme("billing").with(Nid::COMMONNAME, "other").pem(ec256()),
                Deny(InvalidRequest, "2 CNs"),
            ),
            case(
                "missing O",
                Req::cn("billing").pem(ec256()),
                Deny(SubjectMismatch, "O is missing"),
            ),
            case(
                "wrong O",
                Req::cn("billing")
                    .with(Nid::ORGANIZATIONNAME, "Evil")
                    .pem(ec256()),
                Deny(SubjectMismatch, "O=\"Evil\""),
            ),
            case(
                "two O",
                acme("billing")
                    .with(Nid::ORGANIZATIONNAME, "Acme")
                    .pem(ec256()),
                Deny(SubjectMismatch, "2 O attributes"),
            ),
            case(
                "unexpected OU",
                acme("billing")
                    .with(Nid::ORGANIZATIONALUNITNAME, "x")
                    .pem(ec256()),
                Deny(SubjectMismatch, "OU=\"x\" is not allowed"),
            ),
            case(
                "email in subject",
                acme("billing")
                    .with(Nid::PKCS9_EMAILADDRESS, "a@b.c")
                    .pem(ec256()),
                Deny(SubjectMismatch, "not allowed"),
            ),
            case(
                "CA:TRUE",
                Req {
                    ca: true,
                    ..acme("billing")
                }
                .pem(ec256()),
                Deny(DisallowedExtensions, "CA:TRUE"),
            ),
            case(
                "SAN",
                Req {
                    sans: vec!["evil.example".into()],
                    ..acme("billing")
                }
                .pem(ec256()),
                Deny(DisallowedExtensions, "DNS:evil.example"),
            ),
            case(
                "keyCertSign",
                Req {
                    key_cert_sign: true,
                    ..acme("billing")
                }
                .pem(ec256()),
                Deny(DisallowedExtensions, "keyCertSign"),
            ),
            case(
                "serverAuth EKU",
                Req {
                    server_auth: true,
                    ..acme("billing")
                }
                .pem(ec256()),
                Deny(DisallowedExtensions, "serverAuth"),
            ),
            case(
                "tampered signature",
                tampered(&good, "billing"),
                Deny(InvalidRequest, "signature does not verify"),
            ),
            case(
                "not PEM",
                b"hello".to_vec(),
                Deny(InvalidRequest, "not PEM"),
            ),
            case("empty", Vec::new(), Deny(InvalidRequest, "empty")),
            case(
                "two PEM blocks",
                [good.clone(), good.clone()].concat(),
                Deny(InvalidRequest, "2 PEM blocks"),
            ),
            case(
                "certificate instead of request",
                String::from_utf8_lossy(&good)
                    .replace("CERTIFICATE REQUEST", "CERTIFICATE")
                    .into_bytes(),
                Deny(InvalidRequest, "\"CERTIFICATE\""),
            ),
            case(
                "garbage inside PEM",
                b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
                    .to_vec(),
                Deny(InvalidRequest, "not a valid PKCS#10"),
            ),
            Case {
                usages: vec!["digital signature".into()],
                ..case(
                    "no client auth usage",
                    good.clone(),
                    Deny(DisallowedUsages, "lacks \"client auth\""),
                )
            },
            Case {
                usages: vec!["client auth".into(), "server auth".into()],
                ..case(
                    "server auth usage",
                    good.clone(),
                    Deny(DisallowedUsages, "\"server auth\""),
                )
            },
            Case {
                expiration: Some(60),
                ..case(
                    "expiration too short",
                    good.clone(),
                    Deny(InvalidExpiration, "60"),
                )
            },
            Case {
                app: None,
                ..case(
                    "unknown application, deny",
                    good.clone(),
                    Deny(UnknownApplication, "names no registered Application"),
                )
            },
            Case {
                app: None,
                unmatched: Unmatched::Pending,
                ..case("unknown application, pending", good.clone(), Pending)
            },
            Case {
                authorized: false,
                ..case(
                    "requester not authorized",
                    good.clone(),
                    Deny(RequesterNotAuthorized, "verb \"request\""),
                )
            },
            Case {
                app: Some(ApplicationSpec {
                    disabled: true,
                    ..app()
                }),
                ..case(
                    "disabled",
                    good.clone(),
                    Deny(ApplicationDisabled, "disabled"),
                )
            },
            Case {
                app: Some(with_keys(KeyRequirements {
                    allowed_algorithms: Some(vec![KeyAlgorithm::Rsa]),
                    min_rsa_bits: None,
                })),
                ..case(
                    "algorithm not allowed by the Application",
                    good.clone(),
                    Deny(UnsupportedKeyAlgorithm, "allows RSA"),
                )
            },
            Case {
                app: Some(with_keys(KeyRequirements {
                    allowed_algorithms: None,
                    min_rsa_bits: Some(3072),
                })),
                ..case(
                    "RSA below the Application's minimum",
                    acme("billing").pem(rsa2048()),
                    Deny(KeyTooWeak, "requires at least 3072"),
                )
            },
            Case {
                app: Some(with_keys(KeyRequirements {
                    allowed_algorithms: None,
                    min_rsa_bits: Some(3072),
                })),
                ..case(
                    "RSA at the Application's minimum",
                    acme("billing").pem(rsa3072()),
                    Approve,
                )
            },
        ];
        assert!(cases.len() >= 25);
        for c in cases {
            let parsed = parse_pem(&c.pem);
            let facts = Facts {
                request: parsed.as_ref(),
                spec: RequestSpec {
                    usages: &c.usages,
                    expiration_seconds: c.expiration,
                },
                application: c.app.as_ref(),
                requester_authorized: c.authorized,
                requester: "alice",
            };
            let defaults = Defaults {
                unmatched: c.unmatched,
                ..Defaults::default()
            };
            let got = decide(&facts, &defaults);
            match (&c.expect, &got) {
                (Expect::Approve, Decision::Approve { .. })
                | (Expect::Pending, Decision::Pending { .. }) => {}
                (Expect::Deny(reason, needle), Decision::Deny(d)) => {
                    assert_eq!(d.reason, *reason, "{}: {}", c.name, d.message);
                    assert!(
                        d.message.contains(needle),
                        "{}: {:?} lacks {needle:?}",
                        c.name,
                        d.message
                    );
                }
                _ => panic!("{}: got {got:?}", c.name),
            }
        }
    }

    /// OpenSSL refuses to even build such names, so other tools' requests are simulated by
    /// editing a parsed one.
    #[test]
    fn subject_values_beyond_x520_bounds_are_refused() {
        use crate::pki::csr::SubjectAttribute;
        let base = parse_pem(&acme("billing").pem(ec256())).expect("parses");
        let usages = client_usages();
        let spec = RequestSpec {
            usages: &usages,
            expiration_seconds: None,
        };
        let cases = [
            (
                AttributeKind::CommonName,
                "a".repeat(65),
                "65 characters long; at most 64",
            ),
            (AttributeKind::Organization, "o".repeat(65), "at most 64"),
            (AttributeKind::Locality, "l".repeat(129), "at most 128"),
            (AttributeKind::Country, "DEU".to_string(), "two letters"),
            (AttributeKind::Country, "D1".to_string(), "two letters"),
            (AttributeKind::Organization, "  ".to_string(), "is empty"),
        ];
        for (kind, value, needle) in cases {
            let mut req = base.clone();
            req.subject.retain(|a| a.kind != kind);
            req.subject.push(SubjectAttribute {
                kind: kind.clone(),
                value,
            });
            let denial = check_request(&req, spec).expect_err("must refuse");
            assert_eq!(denial.reason, DenyReason::InvalidRequest, "{kind}");
            assert!(
                denial.message.contains(needle),
                "{kind}: {}",
                denial.message
            );
        }
        let mut req = base.clone();
        req.subject.push(SubjectAttribute {
            kind: AttributeKind::Locality,
            value: "l".repeat(128),
        });
        assert!(
            check_request(&req, spec).is_ok(),
            "128 characters of L are fine"
        );
    }

    #[test]
    fn controller_defaults_fill_unset_subject_fields() {
        let pem = Req::cn("billing")
            .with(Nid::ORGANIZATIONNAME, "Acme")
            .with(Nid::COUNTRYNAME, "DE")
            .pem(ec256());
        let parsed = parse_pem(&pem).expect("parses");
        let app = ApplicationSpec::default(); // requires nothing itself
        let usages = client_usages();
        let facts = Facts {
            request: Ok(&parsed),
            spec: RequestSpec {
                usages: &usages,
                expiration_seconds: None,
            },
            application: Some(&app),
            requester_authorized: true,
            requester: "alice",
        };
        let mut defaults = Defaults::default();
        defaults.subject.organization = Some("Acme".into());
        defaults.subject.country = Some("DE".into());
        assert!(matches!(
            decide(&facts, &defaults),
            Decision::Approve { .. }
        ));
        defaults.subject.country = Some("FR".into());
        match decide(&facts, &defaults) {
            Decision::Deny(d) => assert!(d.message.contains("requires C=\"FR\""), "{}", d.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lifetime_uses_application_then_controller_bounds() {
        let d = Duration::from_secs;
        let defaults = Defaults {
            default_lifetime: d(7200),
            max_lifetime: d(86400),
            ..Defaults::default()
        };
        assert_eq!(lifetime(None, None, &defaults), d(7200));
        assert_eq!(lifetime(Some(100_000), None, &defaults), d(86400));
        let app = ApplicationSpec {
            default_expiration_seconds: Some(1800),
            max_expiration_seconds: Some(3600),
            ..Default::default()
        };
        assert_eq!(lifetime(None, Some(&app), &defaults), d(1800));
        assert_eq!(lifetime(Some(7200), Some(&app), &defaults), d(3600));
        assert_eq!(lifetime(Some(900), Some(&app), &defaults), d(900));
    }

    #[test]
    fn reasons_are_distinct_strings() {
        let mut names: Vec<&str> = DenyReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DenyReason::ALL.len());
    }
}
