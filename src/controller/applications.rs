//! The Application cache every replica keeps: the webhook and the leader read it, and a
//! change that can alter a decision wakes the leader's pending CSRs.

use std::sync::Arc;

use futures::StreamExt;
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{api::Application, server::Readiness, telemetry::Metrics};

/// Readiness check passed once the Application cache has its first full list.
pub const APPLICATIONS_CACHE: &str = "applications-cache";

/// Mirrors every Application into the shared cache, keeps the `certpair_applications` gauge
/// current and signals changes (pending CSRs are re-evaluated when an Application appears).
pub async fn watch_applications(
    client: Client,
    writer: reflector::store::Writer<Application>,
    reader: Store<Application>,
    changed: watch::Sender<()>,
    synced: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) {
    let api: Api<Application> = Api::all(client);
    let cache = reader.clone();
    // The only waiter on the store: kube-runtime's Store::wait_until_ready keeps a single
    // waker, so a second concurrent waiter would silently never wake. Everyone else watches
    // `synced`.
    tokio::spawn(async move {
        if cache.wait_until_ready().await.is_ok() {
            readiness.set(APPLICATIONS_CACHE, true);
            synced.send_replace(true);
            info!(applications = cache.len(), "Application cache synced");
        }
    });
    // Only a new, changed (generation) or deleted Application can change a decision; our own
    // status writes must not re-run every pending CSR.
    let mut generations: std::collections::HashMap<String, Option<i64>> = Default::default();
    reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .for_each(|event| {
            let decisions_may_change = match &event {
                Ok(watcher::Event::Apply(app) | watcher::Event::InitApply(app)) => {
                    let name = app.metadata.name.clone().unwrap_or_default();
                    generations.insert(name, app.metadata.generation)
                        != Some(app.metadata.generation)
                }
                Ok(watcher::Event::Delete(app)) => {
                    generations.remove(app.metadata.name.as_deref().unwrap_or_default());
                    true
                }
                Ok(watcher::Event::InitDone) => true,
                Ok(watcher::Event::Init) => false,
                Err(e) => {
                    warn!(error = %e, "watching Applications failed; retrying");
                    false
                }
            };
            metrics.applications.set(reader.len() as i64);
            if decisions_may_change {
                changed.send_replace(());
            }
            futures::future::ready(())
        })
        .await;
}
