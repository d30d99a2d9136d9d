//! Pure decisions over certificate requests. The webhook, the approver and the signer call the
//! same functions, so the webhook can never admit what the controller cannot read, and every
//! denial carries a reason from one closed set.
//!
//! The rules come in three steps, each decided once per request:
//! - [`check_request`] (`request.rs`): what the request alone shows; returns a
//!   [`CheckedRequest`] carrying its CN, or a [`Denial`];
//! - [`decide`] (`approval.rs`): approve, deny or leave pending, given the Application and the
//!   SubjectAccessReview answer;
//! - [`may_sign`] (`signing.rs`): what still holds at signing time, whoever approved, and the
//!   lifetime to sign for;
//! - `pairing`: what the connector announces (subject, key algorithm) and its checks of a
//!   request redeemed with a token and of a client certificate presented over mTLS.
//!
//! Policy sees plain domain types ([`ApplicationRules`], [`SubjectRules`], [`KeyRules`]):
//! the CRD types in `api` are converted at the edge, so nothing here depends on Kubernetes,
//! HTTP or the command line (`tests::no_layer_leaks` checks the imports of `pki` and `policy`).

mod approval;
pub mod cleanup;
pub mod pairing;
mod request;
mod signing;

use std::{fmt, time::Duration};

pub use approval::{Decision, Facts, decide};
pub use request::{ALLOWED_USAGES, CheckedRequest, RequestSpec, check_request, unreadable};
pub use signing::{Signing, may_sign};

/// Smallest RSA modulus certpair accepts, and the floor of an Application's `minRsaBits`.
pub const MIN_RSA_BITS: u32 = 2048;
/// Largest RSA modulus certpair accepts (verification cost grows with the size).
pub const MAX_RSA_BITS: u32 = 8192;

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

    /// The one wording of "this Application takes no new certificates", for the approver and
    /// the signer alike.
    fn disabled(cn: &str) -> Self {
        Self::new(
            DenyReason::ApplicationDisabled,
            format!("Application {cn:?} is disabled (spec.disabled: true)"),
        )
    }
}

/// `Reason: message`, as admission refusals, Failed conditions and warnings show it.
impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// What happens to a well-formed request naming no registered Application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    Deny,
    /// Leave it for a person or pipeline (`kubectl certificate approve`).
    Pending,
}

/// The controller-wide settings decisions depend on (from flags).
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Subject fields required when an Application leaves them unset.
    pub subject: SubjectRules,
    /// Lifetime when neither the CSR nor the Application sets one.
    pub default_lifetime: Duration,
    /// Longest lifetime when the Application sets no maximum.
    pub max_lifetime: Duration,
    pub unmatched: Unmatched,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            subject: SubjectRules::default(),
            default_lifetime: Duration::from_secs(24 * 3600),
            max_lifetime: Duration::from_secs(30 * 24 * 3600),
            unmatched: Unmatched::Deny,
        }
    }
}

/// Required values of subject attributes besides the CN, each compared exactly. `None`: the
/// attribute falls back to the controller's default (or, there, must be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectRules {
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub locality: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
}

impl SubjectRules {
    /// What each attribute besides CN must be: this rule, else `defaults`' (None: absent), in
    /// Kyma's order O, OU, L, ST, C.
    pub fn required<'a>(
        &'a self,
        defaults: &'a SubjectRules,
    ) -> [(crate::pki::csr::AttributeKind, Option<&'a str>); 5] {
        use crate::pki::csr::AttributeKind;
        let pick = |f: fn(&SubjectRules) -> &Option<String>| -> Option<&'a str> {
            f(self).as_deref().or(f(defaults).as_deref())
        };
        [
            (AttributeKind::Organization, pick(|s| &s.organization)),
            (
                AttributeKind::OrganizationalUnit,
                pick(|s| &s.organizational_unit),
            ),
            (AttributeKind::Locality, pick(|s| &s.locality)),
            (AttributeKind::Province, pick(|s| &s.province)),
            (AttributeKind::Country, pick(|s| &s.country)),
        ]
    }
}

/// Public key algorithms a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Rsa,
    EcdsaP256,
    EcdsaP384,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 3] = [Self::Rsa, Self::EcdsaP256, Self::EcdsaP384];

    /// The name an Application's `spec.keys.allowedAlgorithms` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::EcdsaP256 => "ECDSA-P256",
            Self::EcdsaP384 => "ECDSA-P384",
        }
    }
}

/// Which keys an Application accepts, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRules {
    pub allowed: Vec<KeyAlgorithm>,
    pub min_rsa_bits: u32,
}

impl Default for KeyRules {
    fn default() -> Self {
        Self {
            allowed: KeyAlgorithm::ALL.to_vec(),
            min_rsa_bits: MIN_RSA_BITS,
        }
    }
}

/// What an Application allows, as policy reads it (converted from the CRD in `api`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplicationRules {
    pub disabled: bool,
    pub subject: SubjectRules,
    pub keys: KeyRules,
    /// Lifetime when the request sets none; `None`: the controller's default.
    pub default_lifetime: Option<Duration>,
    /// Longest lifetime; `None`: the controller's maximum.
    pub max_lifetime: Option<Duration>,
}

#[cfg(test)]
mod tests;
