//! Deletes CSRs of certpair's signer that are done with (`policy::cleanup`: issued, denied or
//! failed ones after a retention, undecided ones after a longer one, issued ones whose
//! certificate expired): kube-controller-manager's CSR cleaner, for certpair's signer only.
//! Leader only. Each pass lists the signer's CSRs in small pages (a page's body is what it
//! holds at once; the CSRs are decoded without their request, annotations or managedFields) and deletes each
//! candidate with its uid and resourceVersion as preconditions, so a CSR that changed since it
//! was listed (approved meanwhile, or replaced under the same name) is left for the next pass.
//! The Application's status counts issuances as they happen, so deleting CSRs changes none.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    ByteString,
    api::certificates::v1::CertificateSigningRequest,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Preconditions},
};
use openssl::{asn1::Asn1Time, x509::X509};
use serde::Deserialize;
use tracing::{info, warn};

use super::cached_csr::{WireMeta, csr_view};
use crate::{
    k8s::fence::Fence,
    policy::cleanup::{Cleanup, CsrState, Retention, cleanup},
    telemetry::{Metrics, ReasonLabels},
};

/// CSRs listed per page. A page's response body is held whole while it is decoded, and anyone
/// who may create CSRs can give each 256 KiB of annotations (the apiserver's cap): 25 of them
/// are at most about 6 MiB, a hundred were 25 MiB.
const PAGE: u32 = 25;

#[derive(Debug, Clone)]
pub struct Settings {
    pub signer_name: String,
    pub retention: Retention,
    pub interval: Duration,
}

/// A CSR as the cleanup reads it: its identity, creation, conditions and certificate.
#[derive(Clone, Debug, Default)]
pub struct ListedCsr {
    metadata: ObjectMeta,
    conditions: Vec<Condition>,
    certificate: Option<ByteString>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    #[serde(default)]
    last_update_time: Option<Time>,
}

csr_view!(ListedCsr, metadata);

impl<'de> Deserialize<'de> for ListedCsr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: WireMeta,
            #[serde(default)]
            status: Option<Status>,
        }
        #[derive(Deserialize)]
        struct Status {
            #[serde(default)]
            conditions: Option<Vec<Condition>>,
            #[serde(default)]
            certificate: Option<ByteString>,
        }
        let Wire { metadata, status } = Wire::deserialize(deserializer)?;
        let (conditions, certificate) = status
            .map(|s| (s.conditions.unwrap_or_default(), s.certificate))
            .unwrap_or_default();
        Ok(Self {
            metadata: metadata.into(),
            conditions,
            certificate,
        })
    }
}

impl ListedCsr {
    /// The state `policy::cleanup` decides on.
    fn state(&self) -> CsrState {
        let seconds = |t: &Time| t.0.as_second();
        let condition = |type_: &str| {
            self.conditions
                .iter()
                .find(|c| c.type_ == type_ && c.status == "True")
        };
        if let Some(pem) = self.certificate.as_ref().filter(|c| !c.0.is_empty()) {
            return CsrState::Issued {
                approved: condition("Approved")
                    .and_then(|c| c.last_update_time.as_ref())
                    .map(seconds),
                not_after: not_after(&pem.0),
            };
        }
        if let Some(refused) = condition("Denied").or_else(|| condition("Failed")) {
            return CsrState::Refused {
                at: refused.last_update_time.as_ref().map(seconds),
            };
        }
        CsrState::Pending {
            created: self
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(i64::MAX, seconds),
        }
    }
}

/// NotAfter of the first certificate in `pem` (the leaf), in Unix seconds.
fn not_after(pem: &[u8]) -> Option<i64> {
    let leaf = X509::from_pem(pem).ok()?;
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(leaf.not_after()).ok()?;
    Some(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// Runs a cleanup pass every `settings.interval` until dropped.
pub async fn run(client: Client, settings: Settings, metrics: Arc<Metrics>, fence: Fence) {
    let api: Api<ListedCsr> = Api::all(client);
    // The first pass one interval after the term starts, not at once: a new leader lists and
    // reconciles every CSR of the signer first.
    let first = tokio::time::Instant::now() + settings.interval;
    let mut ticks = tokio::time::interval_at(first, settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = pass(&api, &settings, &metrics, &fence).await {
            warn!(error = %e, "CSR cleanup pass failed; trying again at the next interval");
        }
    }
}

/// One pass over the signer's CSRs; logs one line when it deleted any.
async fn pass(
    api: &Api<ListedCsr>,
    settings: &Settings,
    metrics: &Metrics,
    fence: &Fence,
) -> Result<(), kube::Error> {
    let now = crate::pki::now_unix();
    let mut params = ListParams::default()
        .fields(&format!("spec.signerName={}", settings.signer_name))
        .limit(PAGE);
    let mut deleted: BTreeMap<&'static str, u64> = BTreeMap::new();
    loop {
        let page = api.list(&params).await?;
        for csr in &page.items {
            let Some(reason) = cleanup(csr.state(), now, settings.retention) else {
                continue;
            };
            fence
                .check()
                .map_err(|e| kube::Error::Service(Box::new(e)))?;
            if delete(api, csr).await? {
                *deleted.entry(reason.as_str()).or_default() += 1;
                metrics
                    .csrs_deleted
                    .get_or_create(&ReasonLabels {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    if !deleted.is_empty() {
        let count = |r: Cleanup| deleted.get(r.as_str()).copied().unwrap_or(0);
        info!(
            expired = count(Cleanup::Expired),
            finished = count(Cleanup::Finished),
            pending = count(Cleanup::Pending),
            "deleted CSRs past their retention"
        );
    }
    Ok(())
}

/// Deletes `csr` as it was listed. False when it is gone already or changed since (404, 409).
async fn delete(api: &Api<ListedCsr>, csr: &ListedCsr) -> Result<bool, kube::Error> {
    let Some(name) = csr.metadata.name.as_deref() else {
        return Ok(false);
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: csr.metadata.uid.clone(),
            resource_version: csr.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_state_the_rules_need() {
        let ca = crate::pki::authority::Authority::generate(
            "cleanup test",
            Duration::from_secs(86_400),
            crate::pki::now_unix(),
        )
        .expect("CA");
        let pem = ca.chain_pem().expect("pem");
        let leaf_end = not_after(&pem).expect("notAfter");
        assert!((leaf_end - crate::pki::now_unix() - 86_400).abs() < 600);

        let issued = serde_json::json!({
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "7",
                         "creationTimestamp": "2026-12-02T07:00:00Z",
                         "annotations": {"big": "x"}},
            "spec": {"request": "not even base64", "signerName": "s"},
            "status": {"conditions": [{"type": "Approved", "status": "True",
                                        "lastUpdateTime": "2026-12-02T07:00:01Z"}],
                       "certificate": openssl::base64::encode_block(&pem)}
        });
        let listed: ListedCsr = serde_json::from_value(issued).expect("decode");
        assert_eq!(
            listed.state(),
            CsrState::Issued {
                approved: Some(1_796_194_801),
                not_after: Some(leaf_end)
            }
        );
        assert_eq!(listed.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(listed.metadata.annotations, None);

        let denied = serde_json::json!({
            "metadata": {"name": "b", "creationTimestamp": "2026-12-02T07:00:00Z"},
            "status": {"conditions": [{"type": "Denied", "status": "True",
                                        "lastUpdateTime": "2026-12-02T07:00:02Z"}]}
        });
        let listed: ListedCsr = serde_json::from_value(denied).expect("decode");
        assert_eq!(
            listed.state(),
            CsrState::Refused {
                at: Some(1_796_194_802)
            }
        );

        // Approved but not yet issued counts as pending, from its creation.
        let approved = serde_json::json!({
            "metadata": {"name": "c", "creationTimestamp": "2026-12-02T07:00:00Z"},
            "status": {"conditions": [{"type": "Approved", "status": "True"}]}
        });
        let listed: ListedCsr = serde_json::from_value(approved).expect("decode");
        assert_eq!(
            listed.state(),
            CsrState::Pending {
                created: 1_796_194_800
            }
        );
        // Without a creation time nothing is ever old enough.
        let bare: ListedCsr =
            serde_json::from_value(serde_json::json!({"metadata": {}})).expect("decode");
        assert_eq!(bare.state(), CsrState::Pending { created: i64::MAX });
    }
}
