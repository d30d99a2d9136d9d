//! `certpair controller`: connects to the cluster, checks that certpair's CRD is installed,
//! keeps a cache of Applications, and serves probes and metrics until SIGTERM.

use std::sync::Arc;

use futures::StreamExt;
use kube::{
    Api, Client,
    api::ListParams,
    runtime::{WatchStreamExt, reflector, watcher},
};
use tracing::{info, warn};

use crate::{
    api::Application,
    cli::ControllerArgs,
    error::{Error, Result, root_cause},
    server::{self, HttpState, Readiness},
    telemetry::{self, Metrics},
};

/// Readiness check passed once the Application cache has its first full list.
const APPLICATIONS_CACHE: &str = "applications-cache";

pub async fn run(args: ControllerArgs) -> Result<()> {
    let ControllerArgs { http_addr, log } = args;
    telemetry::init_logging(&log)?;

    let client = connect().await?;

    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    readiness.register(APPLICATIONS_CACHE);
    let http = server::serve_http(
        http_addr,
        Arc::new(HttpState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        }),
    )?;
    let http_handle = http.handle();
    let http_task = tokio::spawn(http);
    info!(%http_addr, "serving /healthz, /readyz and /metrics");

    let outcome = tokio::select! {
        signal = shutdown_signal() => signal,
        () = watch_applications(client, metrics, readiness) => Ok(()),
        served = http_task => match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Server(e)),
            Err(e) => Err(Error::Server(std::io::Error::other(e))),
        },
    };
    // Graceful: finish in-flight probe and scrape requests before exiting.
    http_handle.stop(true).await;
    info!("stopped");
    outcome
}

/// Builds a client with the usual rules (KUBECONFIG, ~/.kube/config, in-cluster) and proves
/// that the API server answers and serves `applications.certpair.dev`, so a misconfigured
/// deployment fails at once with one line instead of retrying forever.
pub async fn connect() -> Result<Client> {
    let config = kube::Config::infer().await.map_err(Error::Config)?;
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

/// Mirrors every Application into a local cache (the approver reads it) and keeps the
/// `certpair_applications` gauge current. Watch errors are retried with backoff forever.
async fn watch_applications(client: Client, metrics: Arc<Metrics>, readiness: Arc<Readiness>) {
    let api: Api<Application> = Api::all(client);
    let (reader, writer) = reflector::store();
    let cache = reader.clone();
    tokio::spawn(async move {
        if cache.wait_until_ready().await.is_ok() {
            readiness.set(APPLICATIONS_CACHE, true);
            info!(applications = cache.len(), "Application cache synced");
        }
    });
    reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .for_each(|event| {
            match event {
                Ok(_) => {
                    metrics.applications.set(reader.len() as i64);
                }
                Err(e) => warn!(error = %e, "watching Applications failed; retrying"),
            }
            futures::future::ready(())
        })
        .await;
}

async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received; shutting down"),
        _ = int.recv() => info!("SIGINT received; shutting down"),
    }
    Ok(())
}
