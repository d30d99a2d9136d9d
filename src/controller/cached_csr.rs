//! The CSR as the controller reads it from the API: a `CertificateSigningRequest` decoded
//! without what reconciliation never reads.
//!
//! Every CSR arrives whole three times per certificate (the create, the approval and the
//! certificate come back through the watch) and twice more as the answers to the controller's
//! own patches. Decoded as k8s-openapi's type, each copy builds its managedFields (a tree of
//! JSON maps, one per field manager), annotations and labels, and base64-decodes the
//! certificate chain, only for [`super::csr::slim`] to drop them again. Decoded as this type,
//! those fields are skipped by the JSON parser without allocating, and the certificate is only
//! checked for being non-empty: that is all reconciliation asks of it ("is there a
//! certificate"), and a certificate is never replaced.

use std::ops::{Deref, DerefMut};

use k8s_openapi::{
    ByteString,
    api::certificates::v1::{
        CertificateSigningRequest, CertificateSigningRequestCondition,
        CertificateSigningRequestSpec, CertificateSigningRequestStatus,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use serde::{Deserialize, Deserializer, de};

/// Stand-in for a certificate the controller did not decode: non-empty, so "has a
/// certificate" holds.
pub const DROPPED: &[u8] = b"-";

/// A `CertificateSigningRequest` holding only what reconciliation reads: name, uid,
/// resourceVersion and creation time of its metadata, its spec, its conditions, and whether it
/// has a certificate (the certificate itself is [`DROPPED`]). The same resource to the API (its
/// kind, group and path are the CSR's), so `Api<CachedCsr>` watches and patches CSRs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CachedCsr(pub CertificateSigningRequest);

impl Deref for CachedCsr {
    type Target = CertificateSigningRequest;
    fn deref(&self) -> &CertificateSigningRequest {
        &self.0
    }
}

impl DerefMut for CachedCsr {
    fn deref_mut(&mut self) -> &mut CertificateSigningRequest {
        &mut self.0
    }
}

/// Makes a partial view of a CSR the same resource to the API as the CSR itself (kind, group,
/// version, path), so `Api<$view>` lists, watches, patches and deletes CSRs and decodes them as
/// `$view`. `$($meta).+` is the path to the view's `ObjectMeta`.
macro_rules! csr_view {
    ($view:ty, $($meta:tt).+) => {
        impl k8s_openapi::Resource for $view {
            const API_VERSION: &'static str =
                <CertificateSigningRequest as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <CertificateSigningRequest as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <CertificateSigningRequest as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str =
                <CertificateSigningRequest as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <CertificateSigningRequest as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <CertificateSigningRequest as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::Metadata for $view {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.$($meta).+
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.$($meta).+
            }
        }
    };
}
pub(crate) use csr_view;

csr_view!(CachedCsr, 0.metadata);

/// The JSON object, with only the fields read; serde skips the others (managedFields,
/// annotations, labels, ...) without building them.
#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    metadata: WireMeta,
    #[serde(default)]
    spec: CertificateSigningRequestSpec,
    #[serde(default)]
    status: Option<WireStatus>,
}

/// The metadata a partial view of a CSR keeps: name, uid, resourceVersion, creation time.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
}

impl From<WireMeta> for ObjectMeta {
    fn from(m: WireMeta) -> Self {
        ObjectMeta {
            name: m.name,
            uid: m.uid,
            resource_version: m.resource_version,
            creation_timestamp: m.creation_timestamp,
            ..Default::default()
        }
    }
}

#[derive(Deserialize)]
struct WireStatus {
    #[serde(default)]
    conditions: Option<Vec<CertificateSigningRequestCondition>>,
    #[serde(default)]
    certificate: Option<Presence>,
}

/// Whether a string is non-empty, read without copying or decoding it.
struct Presence(bool);

impl<'de> Deserialize<'de> for Presence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Presence;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Presence, E> {
                Ok(Presence(!v.is_empty()))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl<'de> Deserialize<'de> for CachedCsr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Wire {
            metadata,
            spec,
            status,
        } = Wire::deserialize(deserializer)?;
        let status = status.map(|s| CertificateSigningRequestStatus {
            conditions: s.conditions,
            certificate: match s.certificate {
                Some(Presence(true)) => Some(ByteString(DROPPED.to_vec())),
                Some(Presence(false)) => Some(ByteString(Vec::new())),
                None => None,
            },
        });
        Ok(CachedCsr(CertificateSigningRequest {
            metadata: metadata.into(),
            spec,
            status,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An issued CSR as the apiserver sends it (managedFields of three managers, labels,
    /// annotations, the certificate).
    const ISSUED: &str = r#"{"kind":"CertificateSigningRequest","apiVersion":"certificates.k8s.io/v1","metadata":{"name":"billing-1","uid":"0b6f1c3e-5a8f-4d9e-9b1a-2c3d4e5f6a7b","resourceVersion":"4242","creationTimestamp":"2026-12-02T07:00:00Z","labels":{"team":"billing"},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"x\":1}"},"managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"certificates.k8s.io/v1","time":"2026-12-02T07:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:request":{},"f:signerName":{}}}},{"manager":"certpair","operation":"Update","apiVersion":"certificates.k8s.io/v1","time":"2026-12-02T07:00:01Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:certificate":{}}},"subresource":"status"}]},"spec":{"request":"TUlJ","signerName":"certpair.dev/application","expirationSeconds":3600,"usages":["client auth"],"username":"alice","uid":"u-1","groups":["devs","system:authenticated"],"extra":{"scopes":["a"]}},"status":{"conditions":[{"type":"Approved","status":"True","reason":"AutoApproved","message":"ok","lastUpdateTime":"2026-12-02T07:00:01Z","lastTransitionTime":"2026-12-02T07:00:01Z"}],"certificate":"LS0tLS1CRUdJTg=="}}"#;

    #[test]
    fn reads_what_reconciliation_reads_and_nothing_else() {
        let full: CertificateSigningRequest = serde_json::from_str(ISSUED).expect("full");
        let cached: CachedCsr = serde_json::from_str(ISSUED).expect("cached");
        // Everything reconciliation reads is as k8s-openapi decodes it...
        assert_eq!(cached.spec, full.spec);
        assert_eq!(cached.metadata.name, full.metadata.name);
        assert_eq!(cached.metadata.uid, full.metadata.uid);
        assert_eq!(
            cached.metadata.resource_version,
            full.metadata.resource_version
        );
        assert_eq!(
            cached.metadata.creation_timestamp,
            full.metadata.creation_timestamp
        );
        let status = cached.status.as_ref().expect("status");
        assert_eq!(
            status.conditions,
            full.status.as_ref().expect("status").conditions
        );
        // ... the certificate is only known to be there, and the rest is not kept.
        assert_eq!(status.certificate, Some(ByteString(DROPPED.to_vec())));
        assert_eq!(cached.metadata.managed_fields, None);
        assert_eq!(cached.metadata.annotations, None);
        assert_eq!(cached.metadata.labels, None);
    }

    #[test]
    fn an_empty_or_absent_certificate_is_no_certificate() {
        let pending = r#"{"metadata":{"name":"p"},"spec":{"request":"TUlJ","signerName":"s"},"status":{"certificate":""}}"#;
        let cached: CachedCsr = serde_json::from_str(pending).expect("cached");
        assert_eq!(
            cached.status.as_ref().and_then(|s| s.certificate.clone()),
            Some(ByteString(Vec::new()))
        );
        let bare = r#"{"metadata":{"name":"p"},"spec":{"request":"TUlJ","signerName":"s"}}"#;
        let cached: CachedCsr = serde_json::from_str(bare).expect("cached");
        assert_eq!(cached.status, None);
    }

    #[test]
    fn malformed_fields_are_errors_not_guesses() {
        // A certificate that is not a string, or a request that is not base64, fails the
        // decode (the watcher reports it) instead of passing as "no certificate".
        for bad in [
            r#"{"metadata":{},"spec":{"request":"TUlJ","signerName":"s"},"status":{"certificate":7}}"#,
            r#"{"metadata":{},"spec":{"request":"***","signerName":"s"}}"#,
        ] {
            assert!(serde_json::from_str::<CachedCsr>(bad).is_err(), "{bad}");
        }
    }
}
