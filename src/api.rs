//! The `certpair.dev/v1alpha1` custom resources and the well-known names that every part of
//! certpair (controller, webhook, manifests, tests) must agree on. This is an edge: the CRD
//! types are converted here into the plain domain types `policy` decides on.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use crate::pki::profile::client::{MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS};
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
    #[schemars(range(min = MIN_EXPIRATION_SECONDS, max = MAX_EXPIRATION_SECONDS))]
    pub default_expiration_seconds: Option<i64>,

    /// Longest lifetime a certificate may get; a longer spec.expirationSeconds is shortened to
    /// this. Unset: the controller's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_EXPIRATION_SECONDS, max = MAX_EXPIRATION_SECONDS))]
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

/// The CRD manifest as committed under `manifests/crd/`, generated from the Rust types.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let body = serde_yaml::to_string(&Application::crd())?;
    Ok(format!(
        "# Generated by `certpair crd` from src/api.rs; do not edit by hand.\n{body}"
    ))
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
        assert!(json.contains(r#""minimum":600"#), "{json}");
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
