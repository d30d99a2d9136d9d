//! `certpair controller`: connects to the cluster, checks that certpair's CRD is installed,
//! keeps a cache of Applications, serves probes and metrics, and — while it holds the leader
//! Lease — approves and signs CSRs of its signer.

pub mod app_status;
pub mod csr;
pub mod events;
pub mod signing_ca;
pub mod webhook_tls;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{
    Api, Client,
    api::ListParams,
    runtime::{
        Controller, WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use crate::{
    api::{Application, FIELD_MANAGER},
    cli::ControllerArgs,
    error::{Error, Result, root_cause},
    policy::Defaults,
    server::{self, HttpState, Readiness},
    telemetry::{self, Metrics},
};

/// Readiness check passed once the Application cache has its first full list.
const APPLICATIONS_CACHE: &str = "applications-cache";
/// Name of the leader Lease in the controller's namespace.
pub const LEADER_LEASE: &str = "certpair-controller";

/// What the leader needs to do its work; cheap to clone per term.
#[derive(Clone)]
struct LeaderSettings {
    client: Client,
    namespace: String,
    signer_name: String,
    defaults: Defaults,
    generate_ca: bool,
    ca_validity: Duration,
    workers: u16,
    identity: String,
    metrics: Arc<Metrics>,
    apps: Store<Application>,
    /// True once the Application cache has its first full list.
    apps_synced: watch::Receiver<bool>,
    app_changes: watch::Receiver<()>,
    /// Webhook certificate settings and check interval, when the webhook is on.
    webhook: Option<(webhook_tls::Settings, Duration)>,
}

/// The webhook's configuration, checked once at start-up.
struct WebhookPlan {
    addr: std::net::SocketAddr,
    settings: (webhook_tls::Settings, Duration),
    drain_window: Duration,
}

impl WebhookPlan {
    fn from_args(args: crate::cli::WebhookArgs, namespace: &str) -> Result<Option<Self>> {
        let crate::cli::WebhookArgs {
            webhook_addr,
            webhook_config_name,
            webhook_dns_names,
            webhook_ips,
            webhook_ca_validity_seconds,
            webhook_serving_validity_seconds,
            webhook_look_ahead_seconds,
            webhook_check_interval_seconds,
            webhook_drain_seconds,
        } = args;
        let Some(addr) = webhook_addr else {
            return Ok(None);
        };
        // A look-ahead as long as a validity would renew that certificate on every check.
        if webhook_look_ahead_seconds >= webhook_serving_validity_seconds
            || webhook_look_ahead_seconds >= webhook_ca_validity_seconds
        {
            return Err(Error::Config(format!(
                "--webhook-look-ahead-seconds ({webhook_look_ahead_seconds}) must be shorter than --webhook-serving-validity-seconds ({webhook_serving_validity_seconds}) and --webhook-ca-validity-seconds ({webhook_ca_validity_seconds})"
            )));
        }
        let dns_names: Vec<String> = webhook_dns_names
            .into_iter()
            .filter(|d| !d.is_empty())
            .collect();
        if dns_names.is_empty() && webhook_ips.is_empty() {
            return Err(Error::Config("the webhook serving certificate needs at least one of --webhook-dns-names or --webhook-ips".into()));
        }
        Ok(Some(Self {
            addr,
            settings: (
                webhook_tls::Settings {
                    namespace: namespace.to_owned(),
                    config_name: webhook_config_name,
                    dns_names,
                    ips: webhook_ips,
                    ca_validity: Duration::from_secs(webhook_ca_validity_seconds),
                    serving_validity: Duration::from_secs(webhook_serving_validity_seconds),
                    look_ahead: Duration::from_secs(webhook_look_ahead_seconds),
                },
                Duration::from_secs(webhook_check_interval_seconds),
            ),
            drain_window: Duration::from_secs(webhook_drain_seconds),
        }))
    }
}

/// Binds the TLS listener for admission reviews and starts loading its certificate.
fn serve_webhook(
    plan: &WebhookPlan,
    client: Client,
    signer_name: &str,
    defaults: &Defaults,
    apps: Store<Application>,
    readiness: Arc<Readiness>,
) -> Result<WebhookServer> {
    use kube::runtime::reflector::ObjectRef;
    readiness.register(webhook_tls::WEBHOOK_CERTIFICATE);
    let slot = Arc::new(crate::tls::CertSlot::default());
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(webhook_tls::serve_from_secret(
        client,
        plan.settings.0.namespace.clone(),
        plan.settings.0.config_name.clone(),
        slot.clone(),
        readiness,
    ));
    let state = actix_web::web::Data::new(crate::webhook::WebhookState {
        signer_name: signer_name.to_owned(),
        defaults: defaults.clone(),
        applications: Arc::new(move |name: &str| {
            apps.get(&ObjectRef::new(name)).map(|a| a.spec.clone())
        }),
        draining: draining.clone(),
    });
    let acceptor =
        crate::tls::acceptor(slot).map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?;
    let addr = plan.addr;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    let server = crate::webhook::https_server(state, acceptor, listener)
        .map_err(|source| Error::Bind { addr, source })?;
    info!(%addr, "serving the admission webhook over TLS");
    Ok(WebhookServer {
        handle: server.handle(),
        task: tokio::spawn(server),
        draining,
        drain_window: plan.drain_window,
    })
}

/// The running webhook listener and what its graceful stop needs.
struct WebhookServer {
    handle: actix_web::dev::ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
    draining: Arc<std::sync::atomic::AtomicBool>,
    drain_window: Duration,
}

impl WebhookServer {
    /// Graceful stop in two steps. For `drain_window` it keeps serving, but every answer
    /// closes its connection: an apiserver connection that is in use ends cleanly after a
    /// response. (Cutting a kept-alive connection can race a request the apiserver is just
    /// writing; Go does not retry a POST, so that admission call would fail.) Then it stops
    /// accepting, finishes the reviews in flight (actix closes idle connections and answers
    /// in-flight ones with `Connection: close`), and returns; bounded by the server's shutdown
    /// timeout.
    async fn drain(self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        info!(window = ?self.drain_window, "webhook: draining; answers now close their connection");
        tokio::time::sleep(self.drain_window).await;
        info!("webhook: no longer accepting connections; finishing in-flight reviews");
        self.handle.stop(true).await;
        self.task.abort();
    }
}

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
        workers,
        log,
    } = args;
    telemetry::init_logging(&log)?;
    let webhook = WebhookPlan::from_args(webhook, &namespace)?;

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

    let (apps, apps_writer) = reflector::store();
    let defaults = Defaults {
        subject: subject.into_requirements(),
        default_lifetime: Duration::from_secs(default_expiration_seconds),
        max_lifetime: Duration::from_secs(max_expiration_seconds),
        unmatched,
    };
    // The admission webhook: every replica serves it with the certificate in its Secret.
    let webhook_server = match &webhook {
        Some(plan) => Some(serve_webhook(
            plan,
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
    let settings = LeaderSettings {
        client: client.clone(),
        namespace: namespace.clone(),
        signer_name,
        defaults,
        generate_ca,
        ca_validity: Duration::from_secs(ca_validity_days * 86_400),
        workers,
        identity: identity.clone(),
        metrics: metrics.clone(),
        apps: apps.clone(),
        apps_synced,
        app_changes,
        webhook: webhook.map(|p| p.settings),
    };

    let outcome = tokio::select! {
        signal = shutdown_signal() => signal,
        () = watch_applications(client.clone(), apps_writer, apps, app_changed, apps_synced_tx, metrics.clone(), readiness) => Ok(()),
        elected = elect_and_lead(settings, lease_duration_seconds) => elected,
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
            release_lease(&client, &namespace, &identity),
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

/// Mirrors every Application into the shared cache, keeps the `certpair_applications` gauge
/// current and signals changes (pending CSRs are re-evaluated when an Application appears).
async fn watch_applications(
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

async fn elect_and_lead(settings: LeaderSettings, lease_seconds: u64) -> Result<()> {
    let manager = LeaseManagerBuilder::new(settings.client.clone(), LEADER_LEASE)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(lease_seconds)
        // Keep in step with lease_check_interval.
        .with_grace((lease_seconds / 3).max(1))
        // The default field manager embeds the identity: the crate relies on server-side
        // apply conflicts between distinct managers so two replicas cannot both lock.
        .build()
        .await
        .map_err(|e| Error::Lease(e.to_string()))?;
    let (mut is_leader, manager_task) = manager.watch().await;
    // Both handles abort their task when dropped: when this future is dropped at shutdown the
    // leader's work must stop before the Lease is released, or a standby and this replica
    // would both act for a moment.
    let _manager_task = AbortOnDrop(manager_task);
    let (confirmed_tx, mut confirmed) = watch::channel(false);
    let check_now = Arc::new(tokio::sync::Notify::new());
    let _confirm_task = AbortOnDrop(tokio::spawn(confirm_lease(
        settings.client.clone(),
        settings.namespace.clone(),
        settings.identity.clone(),
        // A renewal counts as fresh until one check before expiry, so this replica stops by
        // the time the Lease expires (and a standby could take it). The manager renews `grace`
        // before expiry; checking at most every half grace leaves a check of slack for the
        // renewal's round trip, so a healthy leader never reads its own Lease as stale.
        lease_check_interval(lease_seconds),
        check_now.clone(),
        confirmed_tx,
    )));
    let mut term: Option<AbortOnDrop<()>> = None;
    loop {
        let holds = *is_leader.borrow_and_update();
        let leading = holds && *confirmed.borrow_and_update();
        if holds && !leading {
            // Just acquired: confirm now rather than at the next tick.
            check_now.notify_one();
        }
        match (leading, term.is_some()) {
            (true, false) => {
                info!(identity = %settings.identity, "became leader");
                settings.metrics.leader.set(1);
                term = Some(AbortOnDrop(tokio::spawn(lead(settings.clone()))));
            }
            (false, true) => {
                warn!(identity = %settings.identity, lease_manager_says_held = holds, "lost leadership (or cannot confirm it); stopping approval and signing");
                settings.metrics.leader.set(0);
                term = None;
            }
            _ => {}
        }
        tokio::select! {
            changed = is_leader.changed() => {
                if changed.is_err() {
                    return Err(Error::Lease("the lease manager stopped".into()));
                }
            }
            changed = confirmed.changed() => {
                if changed.is_err() {
                    return Err(Error::Lease("the lease check stopped".into()));
                }
            }
            // The leader's work never ends by itself; if it did (a panic), holding the Lease
            // without doing the work would stall every CSR. Exit so the pod restarts.
            ended = async { match term.as_mut() { Some(t) => (&mut t.0).await, None => std::future::pending().await } } => {
                let why = match ended {
                    Err(e) if e.is_panic() => "panicked",
                    _ => "ended",
                };
                return Err(Error::Lease(format!("the leader's work {why} unexpectedly")));
            }
        }
    }
}

/// Publishes whether the apiserver shows this replica holding a current Lease.
///
/// The lease manager reports a change of holder, but not a renewal that keeps failing: while
/// its API calls fail (an overloaded apiserver, a revoked permission) it keeps saying "leader",
/// and after the lease duration a standby takes the expired Lease, so both would act. This
/// check reads the Lease every `every`: held and renewed less than `duration - every` ago
/// confirms; another holder or an older renewal denies at once; failed reads deny once the
/// last confirmation is that old. So this replica stops acting by the time its Lease expires.
async fn confirm_lease(
    client: Client,
    namespace: String,
    identity: String,
    every: Duration,
    check_now: Arc<tokio::sync::Notify>,
    confirmed: watch::Sender<bool>,
) {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(client, &namespace);
    let mut last_confirmed: Option<(tokio::time::Instant, Duration)> = None;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = check_now.notified() => {}
        }
        let now = tokio::time::Instant::now();
        // Bounded: a read hung on a dead connection must end in "not confirmed" in time.
        let read = tokio::time::timeout(every, leases.get_opt(LEADER_LEASE))
            .await
            .unwrap_or_else(|_| Err(kube::Error::Service("reading the Lease timed out".into())));
        let held = match read {
            Ok(lease) => {
                let spec = lease.and_then(|l| l.spec).unwrap_or_default();
                let duration = Duration::from_secs(
                    u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
                );
                // How long ago the Lease was renewed. The holder's clock wrote renewTime, so
                // for our own Lease a negative age is only clock noise (or another replica's
                // stray write): count it as just renewed.
                let age = spec.renew_time.as_ref().map(|t| {
                    let age = k8s_openapi::jiff::Timestamp::now().duration_since(t.0);
                    if age.is_negative() {
                        Duration::ZERO
                    } else {
                        age.unsigned_abs()
                    }
                });
                let ours = spec.holder_identity.as_deref() == Some(identity.as_str());
                match age {
                    Some(age) if ours && age < duration.saturating_sub(every) => {
                        last_confirmed = Some((now.checked_sub(age).unwrap_or(now), duration));
                        true
                    }
                    _ => {
                        // Denied by what the apiserver shows: a later failed read must not
                        // fall back on an older confirmation.
                        last_confirmed = None;
                        false
                    }
                }
            }
            Err(e) => {
                let still = last_confirmed.is_some_and(|(renewed, duration)| {
                    now - renewed < duration.saturating_sub(every)
                });
                debug!(error = %e, still_confirmed = still, "reading the leader Lease failed");
                still
            }
        };
        confirmed.send_if_modified(|c| std::mem::replace(c, held) != held);
    }
}

/// How often the holder reads its Lease: six times per duration, and at least twice per
/// grace period (the manager renews a third of the duration before expiry, at least 1 s).
fn lease_check_interval(lease_seconds: u64) -> Duration {
    let grace_ms = (lease_seconds / 3).max(1) * 1000;
    Duration::from_millis((lease_seconds * 1000 / 6).min(grace_ms / 2).max(250))
}

/// A task handle that aborts its task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The leader's work: the signing CA, the CSR approver/signer and Application status.
async fn lead(s: LeaderSettings) {
    // Decide nothing before every Application is known: with an empty cache a fresh leader
    // would deny pending requests as UnknownApplication.
    let mut synced = s.apps_synced.clone();
    if synced.wait_for(|ready| *ready).await.is_err() {
        warn!("the Application cache went away before it synced");
        return;
    }
    let ca = Arc::new(signing_ca::SigningCa::default());
    let ca_task = signing_ca::run(
        s.client.clone(),
        signing_ca::Settings {
            namespace: s.namespace.clone(),
            generate: s.generate_ca,
            validity: s.ca_validity,
        },
        ca.clone(),
        s.metrics.clone(),
    );
    // Part of this term's work, so it stops with the term (a spawned task would outlive it).
    let webhook_client = s.client.clone();
    let webhook_metrics = s.metrics.clone();
    let webhook_events = events::Publisher::new(s.client.clone(), s.identity.clone());
    let webhook_task = async move {
        match s.webhook.clone() {
            Some((settings, interval)) => {
                webhook_tls::run_leader(
                    webhook_client,
                    settings,
                    interval,
                    webhook_metrics,
                    webhook_events,
                )
                .await
            }
            None => std::future::pending().await,
        }
    };
    let (issued_tx, issued_rx) = tokio::sync::mpsc::unbounded_channel();
    let status_task = app_status::run(s.client.clone(), s.apps.clone(), issued_rx);
    let ctx = Arc::new(csr::Context {
        client: s.client.clone(),
        events: events::Publisher::new(s.client.clone(), s.identity.clone()),
        metrics: s.metrics.clone(),
        apps: s.apps.clone(),
        ca,
        defaults: s.defaults.clone(),
        signer_name: s.signer_name.clone(),
        issued: issued_tx,
        retries: csr::Retries::default(),
    });
    let csrs: Api<CertificateSigningRequest> = Api::all(s.client.clone());
    let only_ours =
        watcher::Config::default().fields(&format!("spec.signerName={}", s.signer_name));
    let app_changes = futures::stream::unfold(s.app_changes.clone(), |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    });
    // Our own cache, slimmed: with thousands of finished CSRs the full objects (request PEM,
    // certificate chain, kubectl's last-applied copy, managedFields) dominate memory.
    let (cache, cache_writer) = reflector::store();
    let stream = watcher(csrs, only_ours)
        .default_backoff()
        .modify(csr::slim)
        .reflect(cache_writer)
        .touched_objects();
    let controller = Controller::for_stream(stream, cache)
        .with_config(kube::runtime::controller::Config::default().concurrency(s.workers))
        .reconcile_all_on(app_changes)
        .run(csr::reconcile, csr::error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                debug!(error = %e, "CSR controller event");
            }
            futures::future::ready(())
        });
    info!(signer = %s.signer_name, "approving and signing");
    tokio::join!(ca_task, status_task, controller, webhook_task);
}

/// Clears the Lease's holder if it is still us, so a standby need not wait for expiry.
async fn release_lease(client: &Client, namespace: &str, identity: &str) {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let Ok(mut lease) = leases.get(LEADER_LEASE).await else {
        return;
    };
    let ours = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .is_some_and(|h| h == identity);
    if !ours {
        return;
    }
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
    }
    let pp = kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match leases.replace(LEADER_LEASE, &pp, &lease).await {
        Ok(_) => info!("released the leader Lease"),
        Err(e) => debug!(error = %e, "releasing the leader Lease failed; it will expire"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// For every lease duration the CLI accepts, the holder reads its Lease at least twice
    /// between the manager's renewal and the point it counts as stale, and at least six
    /// times per duration.
    #[test]
    fn lease_checks_leave_slack_for_the_renewal() {
        for seconds in 2..=300u64 {
            let every = lease_check_interval(seconds);
            let grace = Duration::from_secs((seconds / 3).max(1));
            assert!(
                every * 2 <= grace,
                "{seconds} s: every {every:?}, grace {grace:?}"
            );
            assert!(every * 6 <= Duration::from_secs(seconds), "{seconds} s");
            assert!(every >= Duration::from_millis(250), "{seconds} s");
        }
        assert_eq!(lease_check_interval(15), Duration::from_millis(2500));
        assert_eq!(lease_check_interval(6), Duration::from_millis(1000));
    }
}
