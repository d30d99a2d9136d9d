//! `certpair controller`: the process. Connects to the cluster, checks that certpair's CRD is
//! installed, serves probes and metrics, keeps the Application cache, serves the admission
//! webhook on every replica and, while it holds the leader Lease, approves and signs CSRs of
//! its signer. This file only wires those together:
//! - `applications`: the Application cache;
//! - `leader`: leader election and the leader term;
//! - `csr`: the approver and signer (`retries`: its per-request backoff); `signing_ca`: the
//!   signing CA and its trust bundle;
//!   `app_status`: coalesced Application status writes;
//! - for the connector: `tokens` (TokenRequests: first token, expiry, retention), `crl`
//!   (the CRL and pruning of Revocations), and its certificates through `crate::managed_tls`;
//! - the webhook lives in `crate::webhook`, its certificates in `crate::managed_tls`.

pub mod app_status;
pub mod applications;
pub mod cached_csr;
pub mod crl;
pub mod csr;
pub mod csr_cleanup;
pub mod leader;
pub mod retries;
pub mod signing_ca;
pub mod tokens;

use std::{sync::Arc, time::Duration};

use kube::{Api, Client, api::ListParams, runtime::reflector};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    api::Application,
    cli::ControllerArgs,
    error::{Error, Result, root_cause},
    policy::Defaults,
    server::{self, HttpState, Readiness},
    telemetry::Metrics,
    webhook::{self, WebhookConfig},
};

pub async fn run(args: ControllerArgs) -> Result<()> {
    let ControllerArgs {
        http_addr,
        namespace,
        signer_name,
        unmatched,
        subject,
        default_expiration_seconds,
        max_expiration_seconds,
        generate_ca,
        ca_validity_days,
        identity,
        lease_duration_seconds,
        webhook,
        connector,
        streaming_lists,
        issued_events,
        cleanup,
        workers,
        log,
    } = args;
    log.init()?;
    let connector_tls = connector_tls(&connector, &namespace, &webhook)?;
    let tokens = match connector.connector_url {
        Some(url) if url.starts_with("https://") => Some(tokens::Settings {
            connector_url: url.trim_end_matches('/').to_owned(),
            retention: Duration::from_secs(connector.token_retention_seconds),
        }),
        Some(url) => {
            return Err(Error::Config(format!(
                "--connector-url {url:?} must be an https:// URL"
            )));
        }
        None => None,
    };
    // The leader checks every managed certificate this often (the webhook's and the
    // connector's), besides reacting to changes.
    let tls_check_interval = Duration::from_secs(webhook.webhook_check_interval_seconds);
    let webhook = WebhookConfig::from_args(webhook, &namespace)?;

    let client = connect().await?;

    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    readiness.register(applications::APPLICATIONS_CACHE);
    let (http_handle, http_task) = server::start_http(
        http_addr,
        Arc::new(HttpState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        }),
    )?;

    let (apps, apps_writer) = reflector::store();
    let defaults = Defaults {
        subject: subject.into_requirements(),
        default_lifetime: Duration::from_secs(default_expiration_seconds),
        max_lifetime: Duration::from_secs(max_expiration_seconds),
        unmatched: unmatched.into(),
    };
    // The admission webhook: every replica serves it with the certificate in its Secret.
    let webhook_server = match &webhook {
        Some(config) => Some(webhook::server::serve(
            config,
            client.clone(),
            &signer_name,
            &defaults,
            apps.clone(),
            readiness.clone(),
        )?),
        None => None,
    };
    let (app_changed, app_changes) = watch::channel(());
    let (apps_synced_tx, apps_synced) = watch::channel(false);
    let identity = identity.unwrap_or_else(default_identity);
    let webhook_tls = webhook.map(|config| config.tls);
    let cleanup_settings = cleanup.csr_cleanup.then(|| csr_cleanup::Settings {
        signer_name: signer_name.clone(),
        retention: crate::policy::cleanup::Retention {
            finished: Duration::from_secs(cleanup.csr_finished_retention_seconds),
            pending: Duration::from_secs(cleanup.csr_pending_retention_seconds),
        },
        interval: Duration::from_secs(cleanup.csr_cleanup_interval_seconds),
    });
    let ctx = leader::LeaderContext {
        client: client.clone(),
        namespace: namespace.clone(),
        signer_name,
        defaults,
        generate_ca,
        ca_validity: Duration::from_secs(ca_validity_days * 86_400),
        workers,
        streaming_lists,
        issued_events,
        cleanup: cleanup_settings,
        identity: identity.clone(),
        lease_seconds: lease_duration_seconds,
        metrics: metrics.clone(),
        apps: apps.clone(),
        apps_synced,
        app_changes,
        webhook_tls,
        tls_check_interval,
        connector_tls,
        tokens,
        crl_validity: Duration::from_secs(connector.crl_validity_seconds),
    };

    let outcome = tokio::select! {
        signal = shutdown_signal() => signal,
        () = applications::watch_applications(client.clone(), apps_writer, apps, app_changed, apps_synced_tx, metrics.clone(), readiness) => Ok(()),
        elected = leader::elect_and_lead(ctx) => elected,
        served = http_task => match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Server(e)),
            Err(e) => Err(Error::Server(std::io::Error::other(e))),
        },
    };
    // Dropping elect_and_lead's future aborted the leader's work; give the Lease back so a
    // standby takes over now rather than after the lease duration. Bounded, and alongside the
    // webhook's drain: a slow apiserver must not keep this replica from stopping in time.
    let release = async {
        if tokio::time::timeout(
            Duration::from_secs(3),
            leader::release_lease(&client, &namespace, &identity),
        )
        .await
        .is_err()
        {
            warn!("releasing the leader Lease timed out; it will expire");
        }
    };
    let drain = async {
        if let Some(server) = webhook_server {
            server.drain().await;
        }
    };
    tokio::join!(release, drain);
    http_handle.stop(true).await;
    info!("stopped");
    outcome
}

/// The connector's managed CA and serving certificate, when its names are given.
fn connector_tls(
    args: &crate::cli::ConnectorSideArgs,
    namespace: &str,
    webhook: &crate::cli::WebhookArgs,
) -> Result<Option<crate::managed_tls::ManagedTls>> {
    use crate::{
        api::{CONNECTOR_CA_CONFIGMAP, CONNECTOR_CA_SECRET, CONNECTOR_TLS_SECRET},
        managed_tls::{ManagedTls, TrustTarget},
    };
    let dns_names: Vec<String> = args
        .connector_dns_names
        .iter()
        .filter(|d| !d.is_empty())
        .cloned()
        .collect();
    if dns_names.is_empty() && args.connector_ips.is_empty() {
        return Ok(None);
    }
    let look_ahead = args.connector_look_ahead_seconds;
    if look_ahead >= args.connector_serving_validity_seconds
        || look_ahead >= webhook.webhook_ca_validity_seconds
    {
        return Err(Error::Config(format!(
            "--connector-look-ahead-seconds ({look_ahead}) must be shorter than --connector-serving-validity-seconds ({}) and --webhook-ca-validity-seconds ({})",
            args.connector_serving_validity_seconds, webhook.webhook_ca_validity_seconds
        )));
    }
    Ok(Some(ManagedTls {
        label: "connector",
        namespace: namespace.to_owned(),
        ca_secret: CONNECTOR_CA_SECRET,
        tls_secret: CONNECTOR_TLS_SECRET,
        ca_name: "certpair connector CA",
        dns_names,
        ips: args.connector_ips.clone(),
        ca_validity: Duration::from_secs(webhook.webhook_ca_validity_seconds),
        serving_validity: Duration::from_secs(args.connector_serving_validity_seconds),
        look_ahead: Duration::from_secs(look_ahead),
        trust: TrustTarget::ConfigMap {
            name: CONNECTOR_CA_CONFIGMAP,
        },
    }))
}

/// Builds a client with the usual rules (KUBECONFIG, ~/.kube/config, in-cluster) and proves
/// that the API server answers and serves `applications.certpair.dev`, so a misconfigured
/// deployment fails at once with one line instead of retrying forever.
pub async fn connect() -> Result<Client> {
    let config = kube::Config::infer().await.map_err(Error::KubeConfig)?;
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(Error::Client)?;
    let api: Api<Application> = Api::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => {
            info!(%url, "connected; Application CRD is installed");
            Ok(client)
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::CrdMissing { url }),
        Err(kube::Error::Api(status)) => Err(Error::ApiRefused {
            url,
            what: "listing applications.certpair.dev",
            message: status.message.clone(),
            code: status.code,
        }),
        Err(e) => Err(Error::Unreachable {
            url,
            reason: root_cause(&e),
        }),
    }
}

/// Host name plus a random suffix: two processes on one host must never share an identity,
/// or both would believe they hold the Lease.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| "certpair".into());
    let mut bytes = [0u8; 4];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        bytes = std::process::id().to_be_bytes();
    }
    format!("{host}-{:08x}", u32::from_be_bytes(bytes))
}

pub async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received; shutting down"),
        _ = int.recv() => info!("SIGINT received; shutting down"),
    }
    Ok(())
}
