//! The webhook's own PKI: Secrets `certpair-webhook-ca` (`ca.crt`, `ca.key`) and
//! `certpair-webhook-tls` (`tls.crt`, `tls.key`), and the `caBundle` injected into the
//! ValidatingWebhookConfiguration. The leader repairs them; every replica serves whatever
//! `certpair-webhook-tls` holds (see [`serve_from_secret`]).
//!

use std::{collections::BTreeMap, net::IpAddr, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::{admissionregistration::v1::ValidatingWebhookConfiguration, core::v1::Secret},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use openssl::{
    ec::{EcGroup, EcKey},
    nid::Nid,
    pkey::PKey,
    x509::X509,
};
use tracing::{info, warn};

use crate::{
    api::FIELD_MANAGER,
    pki::{authority::Authority, now_unix},
    server::Readiness,
    tls::{CertSlot, ServingIdentity},
};

pub const WEBHOOK_CA_SECRET: &str = "certpair-webhook-ca";
pub const WEBHOOK_TLS_SECRET: &str = "certpair-webhook-tls";
/// Common name of every webhook CA certpair generates; earlier ones are recognised by it.
const WEBHOOK_CA_NAME: &str = "certpair webhook CA";
/// Readiness check: a serving certificate is loaded and the injected bundle trusts it.
pub const WEBHOOK_CERTIFICATE: &str = "webhook-certificate";

#[derive(Debug, Clone)]
pub struct Settings {
    pub namespace: String,
    pub config_name: String,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub ca_validity: Duration,
    pub serving_validity: Duration,
    /// Renew what expires within this window.
    pub look_ahead: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("certificate work failed: {0}")]
    Pki(#[from] crate::pki::authority::AuthorityError),
    #[error("OpenSSL failed: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// Why the leader changed something: log field, metric label and Event note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    CaMissing,
    CaUnusable,
    CaExpiring,
    ServingMissing,
    ServingUnusable,
    ServingForeignCa,
    ServingWrongNames,
    ServingExpiring,
    BundleInjected,
}

impl Repair {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaMissing => "ca_missing",
            Self::CaUnusable => "ca_unusable",
            Self::CaExpiring => "ca_expiring",
            Self::ServingMissing => "serving_missing",
            Self::ServingUnusable => "serving_unusable",
            Self::ServingForeignCa => "serving_foreign_ca",
            Self::ServingWrongNames => "serving_wrong_names",
            Self::ServingExpiring => "serving_expiring",
            Self::BundleInjected => "bundle_injected",
        }
    }
}

/// What a pass did and the resulting expiry times.
#[derive(Debug, Default)]
pub struct Pass {
    pub repairs: Vec<Repair>,
    pub ca_not_after: i64,
    pub serving_not_after: Option<i64>,
}

fn secret_value<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret.data.as_ref()?.get(key).map(|v| v.0.as_slice())
}

fn within(not_after: i64, look_ahead: Duration, now: i64) -> bool {
    not_after - now <= look_ahead.as_secs() as i64
}

/// Leader: brings the CA Secret, the serving Secret and the injected bundle to a good state,
/// changing only what is wrong. A drifted bundle is re-injected without touching any key.
pub async fn reconcile(client: &Client, s: &Settings) -> Result<Pass, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let now = now_unix();
    let mut repairs = Vec::new();

    // 1. The CA.
    let existing_ca = secrets.get_opt(WEBHOOK_CA_SECRET).await?;
    let loaded = existing_ca.as_ref().map(|secret| {
        match (
            secret_value(secret, "ca.crt"),
            secret_value(secret, "ca.key"),
        ) {
            (Some(crt), Some(key)) => Authority::from_pem(crt, key).ok(),
            _ => None,
        }
    });
    let ca = match loaded {
        Some(Some(ca)) if !within(ca.window().not_after, s.look_ahead, now) => ca,
        other => {
            repairs.push(match other {
                None => Repair::CaMissing,
                Some(None) => Repair::CaUnusable,
                Some(Some(_)) => Repair::CaExpiring,
            });
            let ca = Authority::generate(WEBHOOK_CA_NAME, s.ca_validity, now)?;
            let data = BTreeMap::from([
                ("ca.crt".to_string(), ByteString(ca.chain_pem()?)),
                ("ca.key".to_string(), ByteString(ca.key_pem()?)),
            ]);
            write_secret(&secrets, WEBHOOK_CA_SECRET, existing_ca, None, data).await?;
            ca
        }
    };
    // 2. The bundle, before any new serving certificate is written, so that the apiserver
    //    already trusts whatever the replicas load next.
    if inject(client, &s.config_name, ca.certificate(), now).await? {
        repairs.push(Repair::BundleInjected);
    }

    // 3. The serving certificate.
    let existing_tls = secrets.get_opt(WEBHOOK_TLS_SECRET).await?;
    let verdict = match &existing_tls {
        None => Some(Repair::ServingMissing),
        Some(secret) => serving_problem(secret, &ca, s, now),
    };
    let mut serving_not_after = existing_tls
        .as_ref()
        .and_then(|secret| secret_value(secret, "tls.crt"))
        .and_then(|crt| X509::from_pem(crt).ok())
        .and_then(|leaf| crate::pki::authority::unix(leaf.not_after()).ok());
    if let Some(problem) = verdict {
        repairs.push(problem);
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let cn = s
            .dns_names
            .first()
            .map(String::as_str)
            .unwrap_or("certpair-webhook");
        let issued = ca.issue_server(cn, &s.dns_names, &s.ips, &key, s.serving_validity, now)?;
        serving_not_after = Some(issued.not_after);
        let data = BTreeMap::from([
            ("tls.crt".to_string(), ByteString(issued.chain_pem)),
            (
                "tls.key".to_string(),
                ByteString(key.private_key_to_pem_pkcs8()?),
            ),
        ]);
        write_secret(
            &secrets,
            WEBHOOK_TLS_SECRET,
            existing_tls,
            Some("kubernetes.io/tls"),
            data,
        )
        .await?;
    }
    Ok(Pass {
        repairs,
        ca_not_after: ca.window().not_after,
        serving_not_after,
    })
}

/// What is wrong with a serving Secret, if anything.
fn serving_problem(secret: &Secret, ca: &Authority, s: &Settings, now: i64) -> Option<Repair> {
    let (Some(crt), Some(key)) = (
        secret_value(secret, "tls.crt"),
        secret_value(secret, "tls.key"),
    ) else {
        return Some(Repair::ServingUnusable);
    };
    let Ok(identity) = ServingIdentity::from_pem(crt, key) else {
        return Some(Repair::ServingUnusable);
    };
    let leaf = identity.leaf();
    let signed_by_ca = ca
        .certificate()
        .public_key()
        .ok()
        .and_then(|k| crate::pki::openssl_check(|| leaf.verify(&k).ok()))
        .unwrap_or(false);
    if !signed_by_ca {
        return Some(Repair::ServingForeignCa);
    }
    if !names_match(leaf, s) {
        return Some(Repair::ServingWrongNames);
    }
    match crate::pki::authority::unix(leaf.not_after()) {
        Ok(not_after) if !within(not_after, s.look_ahead, now) => None,
        _ => Some(Repair::ServingExpiring),
    }
}

fn names_match(leaf: &X509, s: &Settings) -> bool {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in leaf.subject_alt_names().into_iter().flatten() {
        if let Some(d) = name.dnsname() {
            dns.push(d.to_owned());
        } else if let Some(ip) = name.ipaddress() {
            match ip.len() {
                4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(ip).unwrap_or_default())),
                16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(ip).unwrap_or_default())),
                _ => return false,
            }
        }
    }
    let mut want_dns = s.dns_names.clone();
    let mut want_ips = s.ips.clone();
    dns.sort();
    ips.sort();
    want_dns.sort();
    want_ips.sort();
    dns == want_dns && ips == want_ips
}

async fn write_secret(
    secrets: &Api<Secret>,
    name: &str,
    existing: Option<Secret>,
    type_: Option<&str>,
    data: BTreeMap<String, ByteString>,
) -> Result<(), kube::Error> {
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match existing {
        // Replace with the resourceVersion read above: a concurrent writer makes this conflict
        // instead of being overwritten; the next pass sees their version.
        Some(mut secret) => {
            secret.data = Some(data);
            secret.string_data = None;
            secrets.replace(name, &pp, &secret).await?;
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/name".into(),
                        "certpair".into(),
                    )])),
                    ..Default::default()
                },
                type_: type_.map(str::to_owned),
                data: Some(data),
                ..Default::default()
            };
            secrets.create(&pp, &secret).await?;
        }
    }
    Ok(())
}

/// The bundle to inject: the current CA first, then every earlier certpair webhook CA found
/// in the bundle now injected that is still valid. Keeping those is what makes a CA change
/// safe: replicas still serving a certificate from the old CA stay trusted until it expires.
/// Anything unparsable or expired (e.g. garbage written into caBundle) is dropped.
fn desired_bundle(current_ca: &X509, injected: Option<&[u8]>, now: i64) -> Result<Vec<u8>, Error> {
    let ours = |cert: &X509| {
        cert.subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .any(|e| e.data().as_slice() == WEBHOOK_CA_NAME.as_bytes())
    };
    Ok(crate::pki::bundle::merge(
        std::slice::from_ref(current_ca),
        injected,
        now,
        ours,
    )?)
}

/// Sets `caBundle` on every webhook of the configuration; returns whether anything changed.
/// A missing configuration is not an error: there is nothing to inject into yet.
async fn inject(client: &Client, config_name: &str, ca: &X509, now: i64) -> Result<bool, Error> {
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Some(mut config) = configs.get_opt(config_name).await? else {
        warn!(config = %config_name, "ValidatingWebhookConfiguration not found; nothing to inject into");
        return Ok(false);
    };
    let mut changed = false;
    for webhook in config.webhooks.iter_mut().flatten() {
        let injected = webhook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice());
        let desired = desired_bundle(ca, injected, now)?;
        if injected != Some(desired.as_slice()) {
            webhook.client_config.ca_bundle = Some(ByteString(desired));
            changed = true;
        }
    }
    if changed {
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        configs.replace(config_name, &pp, &config).await?;
    }
    Ok(changed)
}

/// Leader loop: reconcile at start, on every change to the two Secrets or the webhook
/// configuration, and every `interval`.
pub async fn run_leader(
    client: Client,
    s: Settings,
    interval: Duration,
    metrics: Arc<crate::telemetry::Metrics>,
    events: super::events::Publisher,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &s.namespace);
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let ca_events = watcher(
        secrets.clone(),
        watcher::Config::default().fields(&format!("metadata.name={WEBHOOK_CA_SECRET}")),
    )
    .default_backoff()
    .map(|_| ());
    let tls_events = watcher(
        secrets,
        watcher::Config::default().fields(&format!("metadata.name={WEBHOOK_TLS_SECRET}")),
    )
    .default_backoff()
    .map(|_| ());
    let config_events = watcher(
        configs,
        watcher::Config::default().fields(&format!("metadata.name={}", s.config_name)),
    )
    .default_backoff()
    .map(|_| ());
    let ticks = futures::stream::unfold(tokio::time::interval(interval), |mut i| async move {
        i.tick().await;
        Some(((), i))
    });
    let mut triggers = futures::stream::select_all([
        ca_events.boxed(),
        tls_events.boxed(),
        config_events.boxed(),
        ticks.boxed(),
    ]);
    while triggers.next().await.is_some() {
        match reconcile(&client, &s).await {
            Ok(pass) => {
                metrics.webhook_ca_not_after.set(pass.ca_not_after);
                if let Some(t) = pass.serving_not_after {
                    metrics.webhook_serving_not_after.set(t);
                }
                if pass.repairs.is_empty() {
                    continue;
                }
                let causes: Vec<&str> = pass.repairs.iter().map(|r| r.as_str()).collect();
                info!(?causes, "webhook certificates repaired");
                for cause in &causes {
                    metrics
                        .webhook_repairs
                        .get_or_create(&crate::telemetry::ErrorLabels { kind: cause })
                        .inc();
                }
                report(&client, &events, &s.config_name, &causes).await;
            }
            Err(e) => {
                warn!(error = %e, "reconciling webhook certificates failed; retrying on the next trigger")
            }
        }
    }
}

/// An Event on the webhook configuration naming what was repaired.
async fn report(
    client: &Client,
    events: &super::events::Publisher,
    config_name: &str,
    causes: &[&str],
) {
    use kube::Resource;
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Ok(Some(config)) = configs.get_opt(config_name).await else {
        return;
    };
    let reason = if causes.iter().any(|c| c.starts_with("ca_")) {
        "CARotated"
    } else if causes.iter().any(|c| c.starts_with("serving_")) {
        "ServingCertificateIssued"
    } else {
        "CABundleInjected"
    };
    let note = format!(
        "certpair repaired its webhook certificates: {}",
        causes.join(", ")
    );
    if let Err(e) = events
        .publish(
            config.object_ref(&()),
            super::events::Kind::Normal,
            reason,
            "Reconcile",
            &note,
        )
        .await
    {
        warn!(error = %e, "publishing an Event failed");
    }
}

/// Every replica: load `certpair-webhook-tls` into `slot` whenever it changes. Ready only
/// while the loaded certificate is trusted by the bundle injected into the webhook
/// configuration, i.e. while the apiserver can actually call this replica.
pub async fn serve_from_secret(
    client: Client,
    namespace: String,
    config_name: String,
    slot: Arc<CertSlot>,
    readiness: Arc<Readiness>,
) {
    enum Change {
        Serving(Result<Secret, watcher::Error>),
        Config(Result<ValidatingWebhookConfiguration, watcher::Error>),
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let serving = watcher(
        secrets,
        watcher::Config::default().fields(&format!("metadata.name={WEBHOOK_TLS_SECRET}")),
    )
    .default_backoff()
    .applied_objects()
    .map(Change::Serving);
    let config = watcher(
        configs,
        watcher::Config::default().fields(&format!("metadata.name={config_name}")),
    )
    .default_backoff()
    .applied_objects()
    .map(Change::Config);
    let mut changes = futures::stream::select(serving.boxed(), config.boxed());
    let mut bundle: Vec<X509> = Vec::new();
    while let Some(change) = changes.next().await {
        match change {
            Change::Serving(Ok(secret)) => match (
                secret_value(&secret, "tls.crt"),
                secret_value(&secret, "tls.key"),
            ) {
                (Some(crt), Some(key)) => match ServingIdentity::from_pem(crt, key) {
                    Ok(identity) => {
                        slot.set(identity);
                        info!("webhook serving certificate loaded");
                    }
                    Err(e) => {
                        warn!(error = %e, "webhook serving Secret is unusable; keeping the current certificate")
                    }
                },
                _ => warn!("webhook serving Secret lacks tls.crt or tls.key"),
            },
            Change::Config(Ok(config)) => {
                bundle = config
                    .webhooks
                    .iter()
                    .flatten()
                    .filter_map(|w| w.client_config.ca_bundle.as_ref())
                    .flat_map(|b| X509::stack_from_pem(&b.0).unwrap_or_default())
                    .collect();
            }
            Change::Serving(Err(e)) | Change::Config(Err(e)) => {
                warn!(error = %e, "watching the webhook Secret or configuration failed; retrying");
            }
        }
        let trusted = slot.get().is_some_and(|identity| {
            bundle.iter().any(|ca| {
                ca.public_key()
                    .ok()
                    .and_then(|k| crate::pki::openssl_check(|| identity.leaf().verify(&k).ok()))
                    .unwrap_or(false)
            })
        });
        readiness.set(WEBHOOK_CERTIFICATE, trusted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(name: &str, validity: u64, now: i64) -> X509 {
        Authority::generate(name, Duration::from_secs(validity), now)
            .expect("CA")
            .certificate()
            .clone()
    }

    #[test]
    fn bundle_keeps_earlier_valid_webhook_cas_and_drops_the_rest() {
        let now = now_unix();
        let current = ca(WEBHOOK_CA_NAME, 3600, now);
        let earlier = ca(WEBHOOK_CA_NAME, 3600, now - 60);
        let expired = ca(WEBHOOK_CA_NAME, 100, now - 1000);
        let foreign = ca("someone else", 3600, now);
        let count = |pem: &[u8]| X509::stack_from_pem(pem).expect("pem").len();

        // From nothing, and from garbage: just the current CA.
        assert_eq!(
            desired_bundle(&current, None, now).expect("bundle"),
            current.to_pem().expect("pem")
        );
        assert_eq!(
            count(&desired_bundle(&current, Some(b"garbage"), now).expect("bundle")),
            1
        );

        // After a change of CA the earlier one stays while valid; expired and foreign ones go.
        let injected: Vec<u8> = [&earlier, &expired, &foreign, &current]
            .iter()
            .flat_map(|c| c.to_pem().expect("pem"))
            .collect();
        let bundle = desired_bundle(&current, Some(&injected), now).expect("bundle");
        let certs = X509::stack_from_pem(&bundle).expect("pem");
        assert_eq!(certs.len(), 2, "current + earlier");
        assert_eq!(
            certs[0].to_der().expect("der"),
            current.to_der().expect("der"),
            "current first"
        );
        assert_eq!(
            certs[1].to_der().expect("der"),
            earlier.to_der().expect("der")
        );
    }
}
