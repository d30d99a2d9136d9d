//! The signing CA: Secret `certpair-signing-ca` (`tls.crt` = chain, `tls.key`), generated when
//! absent (if allowed: [`plan_missing_signing_ca`]), reloaded whenever the Secret changes
//! (bring your own CA without a restart), and published as the trust bundle ConfigMap
//! `certpair-ca-bundle` (`ca.crt`).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
};
use kube::{Api, Client, Resource, api::Patch, runtime::watcher};
use openssl::x509::X509;
use tracing::{error, info, warn};

use crate::{
    api::{CA_BUNDLE_CONFIGMAP, CA_BUNDLE_KEY, SIGNING_CA_SECRET, TLS_CERT_KEY, TLS_KEY_KEY},
    k8s::{
        apply_params,
        events::{Kind, Publisher},
        owned_meta, post_params, watch_named,
    },
    pki::{
        authority::{Authority, AuthorityError},
        lifecycle::{BundleSeen, MissingCaPlan, plan_missing_signing_ca},
        now_unix,
    },
    slot::Slot,
    telemetry::{Metrics, ReasonLabels},
};

/// The currently loaded CA, shared with the signer. Empty until a valid CA is loaded.
pub type SigningCa = Slot<Authority>;

pub struct Settings {
    pub namespace: String,
    pub generate: bool,
    pub validity: Duration,
}

/// Reasons the signing CA Secret cannot be used: the label values of
/// `certpair_signing_ca_problem`. `missing`: no Secret (and none generated); the rest are
/// [`AuthorityError::kind`]s, or `missing_keys` for a Secret without tls.crt or tls.key.
const PROBLEMS: [&str; 9] = [
    "missing",
    "missing_keys",
    "certificate_unreadable",
    "key_unreadable",
    "key_mismatch",
    "not_a_ca",
    "expired",
    "not_yet_valid",
    "openssl",
];

/// Sets `certpair_signing_ca_problem{reason}` to 1 for `problem` and 0 for every other reason.
fn set_problem(metrics: &Metrics, problem: Option<&'static str>) {
    for reason in PROBLEMS {
        metrics
            .signing_ca_problem
            .get_or_create(&ReasonLabels { reason })
            .set(i64::from(problem == Some(reason)));
    }
}

/// Keeps `handle` in step with the Secret until the task is dropped.
pub async fn run(
    client: Client,
    settings: Settings,
    handle: Arc<SigningCa>,
    metrics: Arc<Metrics>,
    reporter: Publisher,
) {
    set_problem(&metrics, None);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let mut seen = false;
    let mut events = watch_named(secrets, SIGNING_CA_SECRET).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => seen = false,
            Ok(watcher::Event::InitApply(secret) | watcher::Event::Apply(secret)) => {
                seen = true;
                load(&client, &settings, &secret, &handle, &metrics, &reporter).await;
            }
            Ok(watcher::Event::InitDone) if !seen => {
                handle.clear();
                set_problem(&metrics, Some("missing"));
                ensure(&client, &settings).await;
            }
            Ok(watcher::Event::InitDone) => {}
            Ok(watcher::Event::Delete(_)) => {
                // Deleting the CA is how an operator revokes it: stop signing with it at once.
                warn!(
                    secret = SIGNING_CA_SECRET,
                    "signing CA Secret deleted; signing stops until a CA is available"
                );
                handle.clear();
                set_problem(&metrics, Some("missing"));
                ensure(&client, &settings).await;
            }
            Err(e) => warn!(error = %e, "watching the signing CA Secret failed; retrying"),
        }
    }
}

/// Creates the CA Secret when it is missing and [`plan_missing_signing_ca`] allows it (first
/// install only). Two replicas may race: creation is atomic, so the loser's create fails with
/// AlreadyExists and the watch delivers the winner's Secret to both.
async fn ensure(client: &Client, settings: &Settings) {
    // The bundle is read only when it can matter.
    let bundle = if settings.generate {
        let bundles: Api<ConfigMap> = Api::namespaced(client.clone(), &settings.namespace);
        match bundles.get_opt(CA_BUNDLE_CONFIGMAP).await {
            Ok(None) => BundleSeen::Absent,
            Ok(Some(_)) => BundleSeen::Present,
            Err(e) => {
                error!(error = %e, "reading the trust bundle failed; not generating a CA");
                BundleSeen::Unknown
            }
        }
    } else {
        BundleSeen::Unknown
    };
    match plan_missing_signing_ca(settings.generate, bundle) {
        MissingCaPlan::Generate => {}
        MissingCaPlan::RefuseBundleExists => {
            return error!(
                secret = SIGNING_CA_SECRET,
                "signing CA Secret is missing but the trust bundle {CA_BUNDLE_CONFIGMAP} exists, so certificates were issued with a CA that is gone; not generating a new one. Restore the Secret, create a new one, or delete ConfigMap {CA_BUNDLE_CONFIGMAP} to let certpair generate a CA"
            );
        }
        // Said above, with the error.
        MissingCaPlan::RefuseBundleUnknown => return,
        MissingCaPlan::RefuseGenerationOff => {
            return error!(
                secret = SIGNING_CA_SECRET,
                namespace = %settings.namespace,
                "signing CA Secret is missing and --generate-ca=false; create it with `kubectl create secret tls {SIGNING_CA_SECRET} --cert=ca.crt --key=ca.key`"
            );
        }
    }
    let ca = match Authority::generate("certpair signing CA", settings.validity, now_unix()) {
        Ok(ca) => ca,
        Err(e) => return error!(error = %e, "generating the signing CA failed"),
    };
    let (Ok(crt), Ok(key)) = (ca.chain_pem(), ca.key_pem()) else {
        return error!("encoding the generated signing CA failed");
    };
    let secret = Secret {
        metadata: owned_meta(SIGNING_CA_SECRET),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (TLS_CERT_KEY.into(), ByteString(crt)),
            (TLS_KEY_KEY.into(), ByteString(key)),
        ])),
        ..Default::default()
    };
    match Api::<Secret>::namespaced(client.clone(), &settings.namespace)
        .create(&post_params(), &secret)
        .await
    {
        Ok(_) => {
            info!(secret = SIGNING_CA_SECRET, subject = %ca.subject_line(), "generated a new signing CA")
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            info!("another replica created the signing CA first; using it")
        }
        Err(e) => error!(error = %e, "creating the signing CA Secret failed"),
    }
}

async fn load(
    client: &Client,
    settings: &Settings,
    secret: &Secret,
    handle: &SigningCa,
    metrics: &Metrics,
    events: &Publisher,
) {
    let data = secret.data.clone().unwrap_or_default();
    let loaded = match (data.get(TLS_CERT_KEY), data.get(TLS_KEY_KEY)) {
        (Some(crt), Some(key)) => Authority::from_pem(&crt.0, &key.0)
            .and_then(|ca| ca.check_valid_at(now_unix()).map(|()| ca))
            .map_err(|e| (e.kind(), e.to_string())),
        // Never overwrite a Secret someone else made: they may be mid-way through filling it.
        _ => Err(("missing_keys", "it lacks tls.crt or tls.key".to_owned())),
    };
    let ca = match loaded {
        Ok(ca) => ca,
        Err((problem, why)) => {
            return refuse(secret, handle, metrics, events, problem, &why).await;
        }
    };
    set_problem(metrics, None);
    metrics.ca_not_after.set(ca.window().not_after);
    info!(subject = %ca.subject_line(), not_after = ca.window().not_after, "signing CA loaded");
    if let Err(e) = publish_bundle(client, &settings.namespace, &ca).await {
        warn!(error = %e, "publishing the CA bundle failed; will retry on the next change");
    }
    handle.set(ca);
}

/// An unusable CA Secret: keep signing with the previous CA (if any), and say so where an
/// operator looks: a log line, a Warning Event on the Secret, and a metric to alert on.
async fn refuse(
    secret: &Secret,
    handle: &SigningCa,
    metrics: &Metrics,
    events: &Publisher,
    problem: &'static str,
    why: &str,
) {
    set_problem(metrics, Some(problem));
    let kept = match handle.get() {
        Some(previous) => format!(
            "still signing with the previous CA ({})",
            previous.subject_line()
        ),
        None => "no CA is loaded, so nothing is signed".to_owned(),
    };
    error!(secret = SIGNING_CA_SECRET, problem, reason = %why, "signing CA Secret is unusable; {kept}");
    let note =
        format!("signing CA Secret {SIGNING_CA_SECRET} is unusable ({problem}: {why}); {kept}");
    events
        .report(
            secret.object_ref(&()),
            Kind::Warning,
            "SigningCAUnusable",
            "Load",
            &note,
        )
        .await;
}

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("encoding the CA chain: {0}")]
    Pki(#[from] AuthorityError),
}

/// Publishes the trust bundle: the CA's chain, then every CA already in the bundle that is
/// still valid. After a CA is replaced, the certificates the old one issued (for up to five
/// years) keep verifying against the bundle until the old CA expires; an operator who wants
/// one gone sooner deletes it from the ConfigMap, and certpair keeps only what it finds there.
/// Certificates are published as parsed and re-encoded: a tls.crt that also holds a private
/// key (cert and key concatenated by mistake) must not leak the key into a public ConfigMap.
async fn publish_bundle(
    client: &Client,
    namespace: &str,
    ca: &Authority,
) -> Result<(), PublishError> {
    let api = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    let published = api.get_opt(CA_BUNDLE_CONFIGMAP).await?.and_then(|cm| {
        cm.data
            .and_then(|mut d| d.remove(CA_BUNDLE_KEY))
            .map(String::into_bytes)
    });
    let chain = X509::stack_from_pem(&ca.chain_pem()?).map_err(AuthorityError::from)?;
    let pem = crate::pki::bundle::merge(&chain, published.as_deref(), now_unix(), |_| true)
        .map_err(AuthorityError::from)?;
    let bundle = ConfigMap {
        metadata: owned_meta(CA_BUNDLE_CONFIGMAP),
        data: Some(BTreeMap::from([(
            CA_BUNDLE_KEY.into(),
            String::from_utf8_lossy(&pem).into_owned(),
        )])),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&bundle).map_err(kube::Error::SerdeError)?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "ConfigMap".into();
    api.patch(
        CA_BUNDLE_CONFIGMAP,
        &apply_params().force(),
        &Patch::Apply(value),
    )
    .await?;
    Ok(())
}
