//! The `certpair.dev/v1alpha1` custom resources and the well-known names that every part of
//! certpair (controller, webhook, manifests, tests) must agree on. This is an edge: the CRD
//! types are converted here into the plain domain types `policy` decides on.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use crate::pki::profile::client::{
    MAX_EXPIRATION_SECONDS, MIN_APPLICATION_LIFETIME_SECONDS, MIN_EXPIRATION_SECONDS,
};
use crate::policy;

/// API group of certpair's custom resources.
pub const GROUP: &str = "certpair.dev";
/// Served and stored version of the custom resources.
pub const VERSION: &str = "v1alpha1";
/// Default `spec.signerName` that certpair approves and signs for.
pub const DEFAULT_SIGNER_NAME: &str = "certpair.dev/application";
/// Default namespace for certpair's own objects (CA Secrets, Lease, trust bundle).
pub const DEFAULT_NAMESPACE: &str = "certpair-system";
/// Field manager used for every write, server-side apply and patch certpair makes.
pub const FIELD_MANAGER: &str = "certpair";
/// Label every object certpair creates carries (`app.kubernetes.io/name=certpair`).
pub const NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "certpair");

/// Name of the leader Lease in certpair's namespace.
pub const LEADER_LEASE: &str = "certpair-controller";
/// The signing CA: `tls.crt` (chain) and `tls.key`.
pub const SIGNING_CA_SECRET: &str = "certpair-signing-ca";
/// The published trust bundle of the signing CA, key [`CA_BUNDLE_KEY`].
pub const CA_BUNDLE_CONFIGMAP: &str = "certpair-ca-bundle";
pub const CA_BUNDLE_KEY: &str = "ca.crt";
/// Keys of a `kubernetes.io/tls` Secret, and of a CA Secret certpair keeps for itself.
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
/// The webhook's own CA (`ca.crt`, `ca.key`) and serving certificate (`tls.crt`, `tls.key`).
pub const WEBHOOK_CA_SECRET: &str = "certpair-webhook-ca";
pub const WEBHOOK_TLS_SECRET: &str = "certpair-webhook-tls";
/// The connector's own CA (`ca.crt`, `ca.key`) and serving certificate (`tls.crt`, `tls.key`),
/// when certpair manages them.
pub const CONNECTOR_CA_SECRET: &str = "certpair-connector-ca";
pub const CONNECTOR_TLS_SECRET: &str = "certpair-connector-tls";
/// The connector's serving CA bundle (key [`CA_CERT_KEY`]): what clients pin
/// (`TokenRequest.status.caCertHash`) and may trust.
pub const CONNECTOR_CA_CONFIGMAP: &str = "certpair-connector-ca";
/// The signing CA's certificate revocation list: `crl.pem` in `data`, `crl.der` in
/// `binaryData`, published by the leader and served by every connector replica.
pub const CRL_CONFIGMAP: &str = "certpair-crl";
pub const CRL_PEM_KEY: &str = "crl.pem";
pub const CRL_DER_KEY: &str = "crl.der";
/// Annotations on a CSR the connector creates: which TokenRequest (`namespace/name`) or which
/// certificate (serial, hex) it renews.
pub const TOKEN_REQUEST_ANNOTATION: &str = "certpair.dev/token-request";
pub const RENEWS_ANNOTATION: &str = "certpair.dev/renews-serial";
/// Label on every CSR the connector creates (its watch selects on it).
pub const CONNECTOR_CSR_LABEL: (&str, &str) =
    ("app.kubernetes.io/managed-by", "certpair-connector");

/// RSA key sizes an Application may demand as its minimum (the schema's bounds).
pub const MIN_RSA_BITS: i32 = policy::MIN_RSA_BITS as i32;
pub const MAX_RSA_BITS: i32 = policy::MAX_RSA_BITS as i32;

/// An application that may obtain X.509 client certificates from certpair.
///
/// The object's name is the application's identity: a CertificateSigningRequest for
/// certpair's signer is approved only when its subject common name (CN) equals the name of an
/// Application and its other subject fields match the ones required here.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "certpair.dev",
    version = "v1alpha1",
    kind = "Application",
    status = "ApplicationStatus",
    shortname = "capp",
    category = "certpair",
    derive = "PartialEq",
    derive = "Default",
    // The name becomes the certificate's CN, and X.520 limits a common name to 64 characters.
    validation = Rule::new("size(self.metadata.name) <= 64")
        .message("metadata.name is the certificate's common name and must be at most 64 characters"),
    printcolumn(name = "Disabled", type_ = "boolean", json_path = ".spec.disabled"),
    printcolumn(name = "Issued", type_ = "integer", json_path = ".status.issuedCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new(
    "!has(self.defaultExpirationSeconds) || !has(self.maxExpirationSeconds) || self.defaultExpirationSeconds <= self.maxExpirationSeconds"
).message("spec.defaultExpirationSeconds must not exceed spec.maxExpirationSeconds"))]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// Stop issuing certificates for this application. Requests are denied with reason
    /// ApplicationDisabled; certificates already issued stay valid until they expire.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,

    /// Subject fields the request must carry besides CN=<name>. A field left unset here falls
    /// back to the controller's default for it (flags `--default-organization` and friends); a
    /// field set by neither must be absent from the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectRequirements>,

    /// Which public keys a request may carry. Unset: RSA (at least 2048 bits), ECDSA P-256 and
    /// ECDSA P-384.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeyRequirements>,

    /// Lifetime of a certificate whose request does not set spec.expirationSeconds. Unset: the
    /// controller's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_APPLICATION_LIFETIME_SECONDS, max = MAX_EXPIRATION_SECONDS))]
    pub default_expiration_seconds: Option<i64>,

    /// Longest lifetime a certificate may get; a longer spec.expirationSeconds is shortened to
    /// this. Unset: the controller's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_APPLICATION_LIFETIME_SECONDS, max = MAX_EXPIRATION_SECONDS))]
    pub max_expiration_seconds: Option<i64>,
}

/// Required values of subject attributes, each compared exactly (case-sensitive).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRequirements {
    /// Organization (O).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub organization: Option<String>,
    /// Organizational unit (OU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub organizational_unit: Option<String>,
    /// Locality (L).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub locality: Option<String>,
    /// State or province (ST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub province: Option<String>,
    /// Country (C): two upper-case letters, ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    pub country: Option<String>,
}

/// Public key algorithms a certificate request may use.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    #[serde(rename = "RSA")]
    Rsa,
    #[serde(rename = "ECDSA-P256")]
    EcdsaP256,
    #[serde(rename = "ECDSA-P384")]
    EcdsaP384,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 3] = [Self::Rsa, Self::EcdsaP256, Self::EcdsaP384];
}

/// Key requirements of an Application.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyRequirements {
    /// Allowed algorithms. Unset: all of RSA, ECDSA-P256, ECDSA-P384.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 3))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, a == b))")
        .message("spec.keys.allowedAlgorithms must not repeat an algorithm"))]
    pub allowed_algorithms: Option<Vec<KeyAlgorithm>>,
    /// Smallest RSA modulus accepted, in bits. Unset: 2048.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_RSA_BITS, max = MAX_RSA_BITS))]
    pub min_rsa_bits: Option<i32>,
}

impl KeyRequirements {
    /// Algorithms this Application accepts, with the documented default applied.
    pub fn allowed(&self) -> &[KeyAlgorithm] {
        self.allowed_algorithms
            .as_deref()
            .unwrap_or(&KeyAlgorithm::ALL)
    }

    /// Minimum RSA size in bits, with the documented default applied.
    pub fn min_rsa_bits(&self) -> i32 {
        self.min_rsa_bits.unwrap_or(MIN_RSA_BITS)
    }
}

/// Observed state of an Application, written by the controller only.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions. Reserved: the controller sets none yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Number of certificates issued for this application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_count: Option<i64>,
    /// Serial number (hex) of the most recently issued certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_issued_serial: Option<String>,
    /// NotAfter of the most recently issued certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_issued_not_after: Option<Time>,
    /// When the application last called the connector's `management/info` (its heartbeat),
    /// to about a minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
}

impl From<KeyAlgorithm> for policy::KeyAlgorithm {
    fn from(a: KeyAlgorithm) -> Self {
        match a {
            KeyAlgorithm::Rsa => Self::Rsa,
            KeyAlgorithm::EcdsaP256 => Self::EcdsaP256,
            KeyAlgorithm::EcdsaP384 => Self::EcdsaP384,
        }
    }
}

impl From<&SubjectRequirements> for policy::SubjectRules {
    fn from(s: &SubjectRequirements) -> Self {
        let SubjectRequirements {
            organization,
            organizational_unit,
            locality,
            province,
            country,
        } = s.clone();
        Self {
            organization,
            organizational_unit,
            locality,
            province,
            country,
        }
    }
}

impl From<&KeyRequirements> for policy::KeyRules {
    fn from(k: &KeyRequirements) -> Self {
        Self {
            allowed: k.allowed().iter().map(|a| (*a).into()).collect(),
            min_rsa_bits: u32::try_from(k.min_rsa_bits()).unwrap_or(policy::MIN_RSA_BITS),
        }
    }
}

/// The Application as policy reads it: defaults applied, lifetimes as durations.
impl From<&ApplicationSpec> for policy::ApplicationRules {
    fn from(spec: &ApplicationSpec) -> Self {
        let seconds = |s: i64| Duration::from_secs(s.max(0).unsigned_abs());
        Self {
            disabled: spec.disabled,
            subject: spec.subject.as_ref().map(Into::into).unwrap_or_default(),
            keys: spec.keys.as_ref().map(Into::into).unwrap_or_default(),
            default_lifetime: spec.default_expiration_seconds.map(seconds),
            max_lifetime: spec.max_expiration_seconds.map(seconds),
        }
    }
}

/// Shortest and longest lifetime of a pairing token, in seconds.
pub const MIN_TOKEN_TTL_SECONDS: i64 = 30;
pub const MAX_TOKEN_TTL_SECONDS: i64 = 86_400;
/// Token lifetime when `spec.ttlSeconds` is unset (Kyma's five minutes).
pub const DEFAULT_TOKEN_TTL_SECONDS: i64 = 300;

fn default_token_ttl() -> i64 {
    DEFAULT_TOKEN_TTL_SECONDS
}

/// A one-time pairing token for an Application: whoever holds it may obtain one client
/// certificate for that Application from the connector.
///
/// Creating one delegates a right the creator has: the admission webhook refuses the
/// TokenRequest unless its creator may `request` the Application. The controller fills the
/// status with the token, the URL to start pairing at and the pin of the connector's CA.
// Several print columns share a type; clippy reads the repeated `type_` as a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "certpair.dev",
    version = "v1alpha1",
    kind = "TokenRequest",
    namespaced,
    status = "TokenRequestStatus",
    shortname = "ctr",
    category = "certpair",
    derive = "PartialEq",
    printcolumn(
        name = "Application",
        type_ = "string",
        json_path = ".spec.application"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expireAfter"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf")
    .message("spec is immutable; create a new TokenRequest"))]
#[serde(rename_all = "camelCase")]
pub struct TokenRequestSpec {
    /// Name of the Application the token pairs.
    #[schemars(length(min = 1, max = 64))]
    pub application: String,
    /// How long each token of this request stays good, in seconds (the first one from when
    /// the controller issues it, the certificate token from when the first one is used).
    #[serde(default = "default_token_ttl")]
    #[schemars(range(min = MIN_TOKEN_TTL_SECONDS, max = MAX_TOKEN_TTL_SECONDS))]
    pub ttl_seconds: i64,
}

/// Where a TokenRequest is in its life.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// A token is good: `status.token` (first step) or the one the connector handed out.
    Ready,
    /// The certificate was issued; nothing more can be done with this request.
    Used,
    /// No token was used in time.
    Expired,
    /// The request cannot be served (e.g. the CSR was denied); `message` says why.
    Error,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Used => "Used",
            Self::Expired => "Expired",
            Self::Error => "Error",
        }
    }
}

/// What the current token is good for.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStep {
    /// `signingRequests/info` (Compass: the `configuration` query).
    Info,
    /// `certificates` (Compass: `signCertificateSigningRequest`).
    Certificate,
}

/// Observed state of a TokenRequest, written by the controller and the connector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TokenState>,
    /// What happened last, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The one-time token (64 random bytes, base64url). Cleared once used or expired; the
    /// connector never reads it, only `tokenHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// SHA-256 (hex) of the current token (kept once the request ends, so a late use of
    /// the token is told why it no longer works).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    /// SHA-256 (hex) of the token `signingRequests/info` redeemed. Until a CSR is claimed,
    /// a retry with it is answered again with a fresh certificate token: the first answer
    /// may have been lost on the way (a connector replica that died before the client read
    /// it), and the certificate token existed only in that answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_token_hash: Option<String>,
    /// What the current token is good for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<TokenStep>,
    /// Where pairing starts: the connector's `signingRequests/info` URL with `?token=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When the current token stops being good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<Time>,
    /// Pin of the connector's serving CA, `sha256:<hex of its SubjectPublicKeyInfo>` (as
    /// kubeadm's discovery hash): a client sends the token only to a server that matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_hash: Option<String>,
    /// The CertificateSigningRequest the connector created with the certificate token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_signing_request: Option<String>,
    /// Serial number (hex) of the certificate issued with this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// When the request reached Used, Expired or Error; it is deleted the controller's
    /// `--token-retention-seconds` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
}

/// A revoked certificate of certpair's signing CA. The connector refuses it on every path at
/// once, and the leader lists it in the CRL (ConfigMap `certpair-crl`, served at `/v1/crl`)
/// until it expires; then the controller deletes this object.
///
/// Name it after what it revokes (`certpair revoke` and the connector use
/// `serial-<hex>` or `sha256-<hex>`), so revoking twice is one object.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "certpair.dev",
    version = "v1alpha1",
    kind = "Revocation",
    shortname = "crev",
    category = "certpair",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Serial", type_ = "string", json_path = ".spec.serialNumber"),
    printcolumn(
        name = "Application",
        type_ = "string",
        json_path = ".spec.application"
    ),
    printcolumn(name = "Not-After", type_ = "string", json_path = ".spec.notAfter"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.serialNumber) || has(self.sha256)")
    .message("a Revocation names the certificate by spec.serialNumber or spec.sha256 (or both)"))]
#[serde(rename_all = "camelCase")]
pub struct RevocationSpec {
    /// Serial number of the revoked certificate, hex (any case, no separators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9A-Fa-f]{1,40}$"))]
    pub serial_number: Option<String>,
    /// SHA-256 of the certificate's DER, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9A-Fa-f]{64}$"))]
    pub sha256: Option<String>,
    /// The Application the certificate was issued to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub application: Option<String>,
    /// The certificate's NotAfter: the entry is pruned after it. Unset: pruned once the
    /// longest lifetime certpair issues has passed since the revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub reason: Option<String>,
}

/// The CRD manifests as committed in `manifests/crd/certpair.dev.yaml`, generated from the
/// Rust types.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let mut out =
        String::from("# Generated by `certpair crd` from src/api.rs; do not edit by hand.\n");
    for (i, crd) in [Application::crd(), TokenRequest::crd(), Revocation::crd()]
        .iter()
        .enumerate()
    {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::{CustomResourceExt, Resource};

    #[test]
    fn crd_is_cluster_scoped_with_status_subresource() {
        let crd = Application::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.group, GROUP);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, VERSION);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        assert_eq!(Application::api_version(&()), "certpair.dev/v1alpha1");
    }

    #[test]
    fn crd_carries_cel_rules_and_bounds() {
        let json = serde_json::to_string(&Application::crd()).expect("serializable CRD");
        assert!(json.contains("self.defaultExpirationSeconds <= self.maxExpirationSeconds"));
        assert!(json.contains("size(self.metadata.name) <= 64"));
        assert!(json.contains(r#""minimum":60"#), "{json}");
        assert!(json.contains(r#"^[A-Z]{2}$"#));
    }

    #[test]
    fn key_defaults_apply_when_unset() {
        let keys = KeyRequirements::default();
        assert_eq!(keys.allowed(), &KeyAlgorithm::ALL);
        assert_eq!(keys.min_rsa_bits(), 2048);
    }

    #[test]
    fn converts_to_policy_rules_with_defaults_applied() {
        let rules = policy::ApplicationRules::from(&ApplicationSpec {
            disabled: true,
            subject: Some(SubjectRequirements {
                organization: Some("Acme".into()),
                ..Default::default()
            }),
            keys: Some(KeyRequirements {
                allowed_algorithms: Some(vec![KeyAlgorithm::EcdsaP384]),
                min_rsa_bits: None,
            }),
            default_expiration_seconds: Some(1800),
            max_expiration_seconds: None,
        });
        assert!(rules.disabled);
        assert_eq!(rules.subject.organization.as_deref(), Some("Acme"));
        assert_eq!(rules.keys.allowed, [policy::KeyAlgorithm::EcdsaP384]);
        assert_eq!(rules.keys.min_rsa_bits, 2048);
        assert_eq!(rules.default_lifetime, Some(Duration::from_secs(1800)));
        assert_eq!(rules.max_lifetime, None);
        assert_eq!(
            policy::ApplicationRules::from(&ApplicationSpec::default()),
            policy::ApplicationRules::default()
        );
        for a in KeyAlgorithm::ALL {
            let name = serde_json::to_value(a).expect("json");
            assert_eq!(name, policy::KeyAlgorithm::from(a).as_str(), "same names");
        }
    }

    #[test]
    fn spec_round_trips_in_camel_case() {
        let spec: ApplicationSpec = serde_json::from_value(serde_json::json!({
            "disabled": true,
            "subject": {"organization": "Acme", "country": "DE"},
            "keys": {"allowedAlgorithms": ["ECDSA-P256"], "minRsaBits": 3072},
            "maxExpirationSeconds": 86400
        }))
        .expect("valid spec");
        assert!(spec.disabled);
        assert_eq!(
            spec.keys.as_ref().map(|k| k.allowed()),
            Some(&[KeyAlgorithm::EcdsaP256][..])
        );
        let back = serde_json::to_value(&spec).expect("serializable");
        assert_eq!(back["maxExpirationSeconds"], 86400);
        assert!(back.get("defaultExpirationSeconds").is_none());
    }
}
