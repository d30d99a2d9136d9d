//! A TLS listener's PKI that certpair manages itself: a CA and a serving certificate kept in two
//! Secrets, and the CA bundle injected where the listener's clients read it. The leader keeps
//! them right ([`run_leader`]: observe → [`plan_serving`] → apply); every replica serves what
//! the serving Secret holds ([`load_serving_secret`]). The admission webhook uses it
//! (`webhook::certificates`); the connector's own TLS certificate will too.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::ValidatingWebhookConfiguration,
        core::v1::{ConfigMap, ObjectReference, Secret},
    },
};
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt, watcher},
};
use openssl::{nid::Nid, x509::X509};
use tracing::{info, warn};

use crate::{
    api::{CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY},
    k8s::{
        events::{Kind, Publisher},
        owned_meta, post_params, put_secret, secret_value, watch_named,
    },
    pki::{
        authority::{Authority, AuthorityError, unix},
        generate_p256,
        identity::ServingIdentity,
        lifecycle::{Found, Repair, plan_ca, plan_serving},
        now_unix,
        profile::serving::ServingSpec,
        signed_by,
    },
    server::Readiness,
    telemetry::{ErrorLabels, TlsMetrics},
    tls::CertSlot,
    webhook::configuration::{Shipped, WEBHOOK_NAME, drift},
};

/// Where the listener's clients read the CA bundle from.
#[derive(Debug, Clone)]
pub enum TrustTarget {
    /// `caBundle` of every webhook in this ValidatingWebhookConfiguration; with `shipped`, the
    /// name of the ConfigMap (in the pair's namespace) that says how certpair ships the rest
    /// of it, which is then kept so too (see `webhook::configuration`).
    WebhookConfiguration {
        name: String,
        shipped: Option<&'static str>,
    },
    /// Key `ca.crt` of this ConfigMap in the pair's namespace (the connector's CA, which
    /// clients pin and may trust).
    ConfigMap { name: &'static str },
}

impl TrustTarget {
    fn shipped_configmap(&self) -> Option<&'static str> {
        match self {
            Self::WebhookConfiguration { shipped, .. } => *shipped,
            Self::ConfigMap { .. } => None,
        }
    }

    /// Watch events of the target object, for the leader's triggers.
    fn changes(&self, client: &Client, namespace: &str) -> futures::stream::BoxStream<'static, ()> {
        match self {
            Self::WebhookConfiguration { name, .. } => {
                let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
                watch_named(api, name).map(|_| ()).boxed()
            }
            Self::ConfigMap { name } => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                watch_named(api, name).map(|_| ()).boxed()
            }
        }
    }

    /// The target object, for Events about it.
    async fn object_ref(&self, client: &Client, namespace: &str) -> Option<ObjectReference> {
        match self {
            Self::WebhookConfiguration { name, .. } => {
                let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
                api.get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .map(|c| c.object_ref(&()))
            }
            Self::ConfigMap { name } => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                api.get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .map(|c| c.object_ref(&()))
            }
        }
    }
}

/// One managed CA + serving certificate pair.
#[derive(Debug, Clone)]
pub struct ManagedTls {
    /// Which listener, in logs and Events (`webhook`, `connector`).
    pub label: &'static str,
    pub namespace: String,
    /// Secret with `ca.crt` and `ca.key`.
    pub ca_secret: &'static str,
    /// Secret with `tls.crt` and `tls.key` (type `kubernetes.io/tls`).
    pub tls_secret: &'static str,
    /// Common name of every CA generated for this listener; earlier ones are recognised by it
    /// and kept in the bundle while they are valid.
    pub ca_name: &'static str,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub ca_validity: Duration,
    pub serving_validity: Duration,
    /// Renew what expires within this window.
    pub look_ahead: Duration,
    pub trust: TrustTarget,
}

impl ManagedTls {
    /// The serving certificate's CN: its first DNS name, or a fixed one for an IP-only
    /// certificate.
    fn common_name(&self) -> &str {
        self.dns_names
            .first()
            .map(String::as_str)
            .unwrap_or("certpair-webhook")
    }

    fn spec(&self) -> ServingSpec<'_> {
        ServingSpec {
            dns_names: &self.dns_names,
            ips: &self.ips,
            look_ahead: self.look_ahead,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("certificate work failed: {0}")]
    Pki(#[from] AuthorityError),
    #[error("OpenSSL failed: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// What a pass did and the resulting expiry times.
#[derive(Debug, Default)]
pub struct Pass {
    pub repairs: Vec<Repair>,
    /// Fields of the trust target restored to how certpair ships them.
    pub drifted: Vec<&'static str>,
    pub ca_not_after: i64,
    pub serving_not_after: Option<i64>,
}

/// Leader: brings the CA Secret, the serving Secret and the injected bundle to a good state,
/// changing only what is wrong. A drifted bundle is re-injected without touching any key.
/// Order: the CA, then the bundle, then the serving certificate (read only now, so a failure
/// to read it never holds up the CA or the bundle), so clients already trust whatever the
/// replicas load next.
pub async fn reconcile(client: &Client, m: &ManagedTls) -> Result<Pass, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &m.namespace);
    let now = now_unix();
    let mut repairs = Vec::new();

    // 1. The CA: observe, plan, apply.
    let existing_ca = secrets.get_opt(m.ca_secret).await?;
    let loaded = existing_ca.as_ref().map(|s| {
        pair(s, CA_CERT_KEY, CA_KEY_KEY, |c, k| {
            Authority::from_pem(c, k).ok()
        })
    });
    let ca = match (plan_ca(found(&loaded), m.look_ahead, now), loaded) {
        (None, Some(Some(ca))) => ca,
        (cause, _) => {
            repairs.extend(cause);
            let ca = Authority::generate(m.ca_name, m.ca_validity, now)?;
            let data = BTreeMap::from([
                (CA_CERT_KEY.to_string(), ByteString(ca.chain_pem()?)),
                (CA_KEY_KEY.to_string(), ByteString(ca.key_pem()?)),
            ]);
            put_secret(&secrets, m.ca_secret, existing_ca, None, data).await?;
            ca
        }
    };

    // 2. The bundle (and the configuration it is part of).
    let injected = inject(client, m, ca.certificate(), now).await?;
    if injected.bundle {
        repairs.push(Repair::BundleInjected);
    }

    // 3. The serving certificate, against the CA in force.
    let existing_tls = secrets.get_opt(m.tls_secret).await?;
    let serving = existing_tls.as_ref().map(|s| {
        pair(s, TLS_CERT_KEY, TLS_KEY_KEY, |c, k| {
            ServingIdentity::from_pem(c, k).ok()
        })
    });
    let mut serving_not_after = existing_tls
        .as_ref()
        .and_then(|secret| secret_value(secret, TLS_CERT_KEY))
        .and_then(|crt| X509::from_pem(crt).ok())
        .and_then(|leaf| unix(leaf.not_after()).ok());
    if let Some(cause) = plan_serving(found(&serving), &ca, &m.spec(), now) {
        repairs.push(cause);
        let key = generate_p256()?;
        let issued = ca.issue_server(
            m.common_name(),
            &m.dns_names,
            &m.ips,
            &key,
            m.serving_validity,
            now,
        )?;
        serving_not_after = Some(issued.not_after);
        let data = BTreeMap::from([
            (TLS_CERT_KEY.to_string(), ByteString(issued.chain_pem)),
            (
                TLS_KEY_KEY.to_string(),
                ByteString(key.private_key_to_pem_pkcs8()?),
            ),
        ]);
        put_secret(
            &secrets,
            m.tls_secret,
            existing_tls,
            Some("kubernetes.io/tls"),
            data,
        )
        .await?;
    }
    Ok(Pass {
        repairs,
        drifted: injected.drifted,
        ca_not_after: ca.window().not_after,
        serving_not_after,
    })
}

/// `None`: no Secret; `Some(None)`: a Secret without both keys, or whose pair does not load.
fn pair<T>(
    secret: &Secret,
    crt: &str,
    key: &str,
    load: impl FnOnce(&[u8], &[u8]) -> Option<T>,
) -> Option<T> {
    match (secret_value(secret, crt), secret_value(secret, key)) {
        (Some(crt), Some(key)) => load(crt, key),
        _ => None,
    }
}

fn found<T>(observed: &Option<Option<T>>) -> Found<&T> {
    match observed {
        None => Found::Missing,
        Some(None) => Found::Unusable,
        Some(Some(t)) => Found::Usable(t),
    }
}

/// The bundle to inject: the current CA first, then every earlier CA of this listener (by
/// name) found in the bundle now injected that is still valid. Keeping those is what makes a
/// CA change safe: replicas still serving a certificate from the old CA stay trusted until it
/// expires. Anything unparsable or expired (e.g. garbage written into caBundle) is dropped.
fn desired_bundle(
    ca_name: &str,
    current_ca: &X509,
    injected: Option<&[u8]>,
    now: i64,
) -> Result<Vec<u8>, Error> {
    let ours = |cert: &X509| {
        cert.subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .any(|e| e.data().as_slice() == ca_name.as_bytes())
    };
    Ok(crate::pki::bundle::merge(
        std::slice::from_ref(current_ca),
        injected,
        now,
        ours,
    )?)
}

/// What [`inject`] changed at the trust target.
#[derive(Debug, Default)]
struct Injected {
    bundle: bool,
    /// Fields restored to the shipped configuration.
    drifted: Vec<&'static str>,
}

/// Brings the trust target's bundle to [`desired_bundle`] and, where the target says how it
/// ships, every other field back to that. One write, so what certpair may write (see the
/// ValidatingAdmissionPolicy in `manifests/`) is always a configuration as shipped. A missing
/// target is not an error: there is nothing to inject into yet.
async fn inject(client: &Client, m: &ManagedTls, ca: &X509, now: i64) -> Result<Injected, Error> {
    let name = match &m.trust {
        TrustTarget::WebhookConfiguration { name, .. } => name.as_str(),
        TrustTarget::ConfigMap { name } => return inject_configmap(client, m, name, ca, now).await,
    };
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Some(mut config) = configs.get_opt(name).await? else {
        warn!(config = %name, "ValidatingWebhookConfiguration not found; nothing to inject into");
        return Ok(Injected::default());
    };
    let mut injected = Injected::default();
    if let Some(shipped) = shipped(client, m).await? {
        let desired = shipped.webhooks();
        let observed = config.webhooks.clone().unwrap_or_default();
        injected.drifted = drift(&observed, &desired);
        if !injected.drifted.is_empty() {
            // Keep what was injected (the bundle merge below keeps earlier CAs from it).
            let bundle = observed
                .iter()
                .find(|w| w.name == WEBHOOK_NAME)
                .and_then(|w| w.client_config.ca_bundle.clone());
            let mut desired = desired;
            for w in &mut desired {
                w.client_config.ca_bundle = bundle.clone();
            }
            config.webhooks = Some(desired);
        }
    }
    for webhook in config.webhooks.iter_mut().flatten() {
        let current = webhook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice());
        let desired = desired_bundle(m.ca_name, ca, current, now)?;
        if current != Some(desired.as_slice()) {
            webhook.client_config.ca_bundle = Some(ByteString(desired));
            injected.bundle = true;
        }
    }
    if injected.bundle || !injected.drifted.is_empty() {
        configs.replace(name, &post_params(), &config).await?;
    }
    Ok(injected)
}

/// [`inject`] into a ConfigMap: key `ca.crt`, the current CA first, earlier ones kept while
/// valid. Created when missing.
async fn inject_configmap(
    client: &Client,
    m: &ManagedTls,
    name: &'static str,
    ca: &X509,
    now: i64,
) -> Result<Injected, Error> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &m.namespace);
    let existing = maps.get_opt(name).await?;
    let current = existing
        .as_ref()
        .and_then(|map| map.data.as_ref())
        .and_then(|d| d.get(CA_CERT_KEY))
        .map(|v| v.as_bytes().to_vec());
    let desired = desired_bundle(m.ca_name, ca, current.as_deref(), now)?;
    if current.as_deref() == Some(desired.as_slice()) {
        return Ok(Injected::default());
    }
    let bundle = String::from_utf8_lossy(&desired).into_owned();
    match existing {
        Some(mut map) => {
            map.data
                .get_or_insert_default()
                .insert(CA_CERT_KEY.to_owned(), bundle);
            maps.replace(name, &post_params(), &map).await?;
        }
        None => {
            let map = ConfigMap {
                metadata: owned_meta(name),
                data: Some(BTreeMap::from([(CA_CERT_KEY.to_owned(), bundle)])),
                ..Default::default()
            };
            maps.create(&post_params(), &map).await?;
        }
    }
    Ok(Injected {
        bundle: true,
        drifted: Vec::new(),
    })
}

/// The configuration as shipped, when the target names where that is kept and it is readable.
async fn shipped(client: &Client, m: &ManagedTls) -> Result<Option<Shipped>, Error> {
    let Some(configmap) = m.trust.shipped_configmap() else {
        return Ok(None);
    };
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &m.namespace);
    let Some(map) = maps.get_opt(configmap).await? else {
        warn!(
            configmap,
            "ConfigMap describing the shipped webhook configuration not found; only the caBundle is kept"
        );
        return Ok(None);
    };
    match Shipped::from_data(&map.data.unwrap_or_default()) {
        Ok(shipped) => Ok(Some(shipped)),
        Err(e) => {
            warn!(error = %e, "the shipped webhook configuration cannot be read; only the caBundle is kept");
            Ok(None)
        }
    }
}

/// Leader loop: reconcile at start, on every change to the two Secrets or the trust target,
/// and every `interval`; count and report what was repaired.
pub async fn run_leader(
    client: Client,
    m: ManagedTls,
    interval: Duration,
    metrics: &TlsMetrics,
    events: Publisher,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &m.namespace);
    let ticks = futures::stream::unfold(tokio::time::interval(interval), |mut i| async move {
        i.tick().await;
        Some(((), i))
    });
    let mut triggers = futures::stream::select_all([
        watch_named(secrets.clone(), m.ca_secret)
            .map(|_| ())
            .boxed(),
        watch_named(secrets, m.tls_secret).map(|_| ()).boxed(),
        m.trust.changes(&client, &m.namespace),
        ticks.boxed(),
    ]);
    while triggers.next().await.is_some() {
        match reconcile(&client, &m).await {
            Ok(pass) => {
                metrics.ca_not_after.set(pass.ca_not_after);
                if let Some(t) = pass.serving_not_after {
                    metrics.serving_not_after.set(t);
                }
                if !pass.drifted.is_empty() {
                    info!(fields = ?pass.drifted, "webhook configuration restored as shipped");
                    metrics
                        .repairs
                        .get_or_create(&ErrorLabels {
                            kind: "configuration_drift",
                        })
                        .inc();
                    report_drift(&client, &events, &m, &pass.drifted).await;
                }
                if pass.repairs.is_empty() {
                    continue;
                }
                let causes: Vec<&str> = pass.repairs.iter().map(|r| r.as_str()).collect();
                info!(?causes, listener = m.label, "certificates repaired");
                for cause in &causes {
                    metrics
                        .repairs
                        .get_or_create(&ErrorLabels { kind: cause })
                        .inc();
                }
                report(&client, &events, &m, &pass.repairs).await;
            }
            Err(e) => {
                warn!(error = %e, listener = m.label, "reconciling certificates failed; retrying on the next trigger")
            }
        }
    }
}

/// An Event on the trust target naming what was repaired.
async fn report(client: &Client, events: &Publisher, m: &ManagedTls, repairs: &[Repair]) {
    let Some(regarding) = m.trust.object_ref(client, &m.namespace).await else {
        return;
    };
    let reason = if repairs.iter().any(|r| r.replaces_ca()) {
        "CARotated"
    } else if repairs.iter().any(|r| *r != Repair::BundleInjected) {
        "ServingCertificateIssued"
    } else {
        "CABundleInjected"
    };
    let causes: Vec<&str> = repairs.iter().map(|r| r.as_str()).collect();
    let note = format!(
        "certpair repaired its {} certificates: {}",
        m.label,
        causes.join(", ")
    );
    events
        .report(regarding, Kind::Normal, reason, "Reconcile", &note)
        .await;
}

/// An Event on the trust target naming the fields restored.
async fn report_drift(client: &Client, events: &Publisher, m: &ManagedTls, fields: &[&str]) {
    let Some(regarding) = m.trust.object_ref(client, &m.namespace).await else {
        return;
    };
    let note = format!(
        "certpair restored its webhook configuration as shipped; these fields had changed: {}",
        fields.join(", ")
    );
    events
        .report(
            regarding,
            Kind::Warning,
            "WebhookConfigurationRestored",
            "Reconcile",
            &note,
        )
        .await;
}

/// Loads a `kubernetes.io/tls` Secret into `slot`; an unusable one leaves the slot as it is.
fn load_identity(secret: &Secret, slot: &CertSlot) {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    match (
        secret_value(secret, TLS_CERT_KEY),
        secret_value(secret, TLS_KEY_KEY),
    ) {
        (Some(crt), Some(key)) => match ServingIdentity::from_pem(crt, key) {
            Ok(identity) => {
                slot.set(identity);
                info!(secret = %name, "serving certificate loaded");
            }
            Err(e) => {
                warn!(secret = %name, error = %e, "serving Secret is unusable; keeping the current certificate")
            }
        },
        _ => warn!(secret = %name, "serving Secret lacks tls.crt or tls.key"),
    }
}

/// Every replica of a listener whose certificate someone else keeps (the connector: the
/// controller's leader, or cert-manager): load Secret `name` into `slot` whenever it changes;
/// `ready_check` holds once a certificate is loaded.
pub async fn load_secret(
    client: Client,
    namespace: String,
    name: String,
    slot: Arc<CertSlot>,
    readiness: Arc<Readiness>,
    ready_check: &'static str,
) {
    let secrets: Api<Secret> = Api::namespaced(client, &namespace);
    let mut changes = watch_named(secrets, &name).applied_objects().boxed();
    while let Some(change) = changes.next().await {
        match change {
            Ok(secret) => load_identity(&secret, &slot),
            Err(e) => {
                warn!(secret = %name, error = %e, "watching the serving Secret failed; retrying")
            }
        }
        readiness.set(ready_check, slot.get().is_some());
    }
}

/// Every replica: load the serving Secret into `slot` whenever it changes. The readiness
/// check `ready_check` holds only while the loaded certificate is trusted by the bundle at the
/// trust target, i.e. while clients can actually reach this replica.
pub async fn load_serving_secret(
    client: Client,
    m: Arc<ManagedTls>,
    slot: Arc<CertSlot>,
    readiness: Arc<Readiness>,
    ready_check: &'static str,
) {
    enum Change {
        Serving(Result<Secret, watcher::Error>),
        Config(Result<ValidatingWebhookConfiguration, watcher::Error>),
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &m.namespace);
    let TrustTarget::WebhookConfiguration {
        name: config_name, ..
    } = &m.trust
    else {
        warn!(
            listener = m.label,
            "only a webhook's serving Secret is loaded this way"
        );
        return;
    };
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let serving = watch_named(secrets, m.tls_secret)
        .applied_objects()
        .map(Change::Serving);
    let config = watch_named(configs, config_name)
        .applied_objects()
        .map(Change::Config);
    let mut changes = futures::stream::select(serving.boxed(), config.boxed());
    let mut bundle: Vec<X509> = Vec::new();
    while let Some(change) = changes.next().await {
        match change {
            Change::Serving(Ok(secret)) => load_identity(&secret, &slot),
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
        let trusted = slot
            .get()
            .is_some_and(|identity| bundle.iter().any(|ca| signed_by(identity.leaf(), ca)));
        readiness.set(ready_check, trusted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_NAME: &str = "certpair webhook CA";

    fn ca(name: &str, validity: u64, now: i64) -> X509 {
        Authority::generate(name, Duration::from_secs(validity), now)
            .expect("CA")
            .certificate()
            .clone()
    }

    #[test]
    fn bundle_keeps_earlier_valid_cas_of_this_listener_and_drops_the_rest() {
        let now = now_unix();
        let current = ca(CA_NAME, 3600, now);
        let earlier = ca(CA_NAME, 3600, now - 60);
        let expired = ca(CA_NAME, 100, now - 1000);
        let foreign = ca("someone else", 3600, now);
        let count = |pem: &[u8]| X509::stack_from_pem(pem).expect("pem").len();
        let desired = |injected| desired_bundle(CA_NAME, &current, injected, now);

        // From nothing, and from garbage: just the current CA.
        assert_eq!(
            desired(None).expect("bundle"),
            current.to_pem().expect("pem")
        );
        assert_eq!(count(&desired(Some(b"garbage")).expect("bundle")), 1);

        // After a change of CA the earlier one stays while valid; expired and foreign ones go.
        let injected: Vec<u8> = [&earlier, &expired, &foreign, &current]
            .iter()
            .flat_map(|c| c.to_pem().expect("pem"))
            .collect();
        let bundle = desired(Some(&injected)).expect("bundle");
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
