//! Leader election and the leader term. Only the holder of Lease `certpair-controller` writes
//! (approves, signs, repairs certificates); every replica serves. Besides kube-lease-manager,
//! the holder confirms its Lease itself ([`confirm_lease`]), because the manager keeps saying
//! "leader" while renewals fail. The term's work is one task that is aborted the moment
//! leadership is lost or cannot be confirmed ([`AbortOnDrop`]).

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client, api::PatchParams, runtime::reflector::Store};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use super::{app_status, crl, csr, csr_cleanup, signing_ca, tokens};
use crate::{
    api::{Application, FIELD_MANAGER, LEADER_LEASE},
    error::{Error, Result},
    k8s::{events::Publisher, fence::Fence, post_params},
    managed_tls::{self, ManagedTls},
    policy::Defaults,
    telemetry::Metrics,
};

/// What the leader needs to do its work; cheap to clone per term.
#[derive(Clone)]
pub struct LeaderContext {
    pub client: Client,
    pub namespace: String,
    pub signer_name: String,
    pub defaults: Defaults,
    pub generate_ca: bool,
    pub ca_validity: Duration,
    pub workers: u16,
    /// Initial list of CSRs as a stream (WatchList) rather than in pages.
    pub streaming_lists: bool,
    /// A Normal Event per certificate issued.
    pub issued_events: bool,
    /// Deletion of finished and stale CSRs (`--csr-cleanup`), when on.
    pub cleanup: Option<csr_cleanup::Settings>,
    pub identity: String,
    pub lease_seconds: u64,
    pub metrics: Arc<Metrics>,
    pub apps: Store<Application>,
    /// True once the Application cache has its first full list.
    pub apps_synced: watch::Receiver<bool>,
    pub app_changes: watch::Receiver<()>,
    /// The webhook's certificates, when the webhook is on.
    pub webhook_tls: Option<ManagedTls>,
    /// How often the leader checks the managed certificates besides reacting to changes.
    pub tls_check_interval: Duration,
    /// The connector's certificates, when certpair manages them.
    pub connector_tls: Option<ManagedTls>,
    /// TokenRequests are served when the connector's URL is known.
    pub tokens: Option<tokens::Settings>,
    pub crl_validity: Duration,
}

pub async fn elect_and_lead(ctx: LeaderContext) -> Result<()> {
    let lease_seconds = ctx.lease_seconds;
    clear_released_duration(&ctx.client, &ctx.namespace).await;
    let manager = LeaseManagerBuilder::new(ctx.client.clone(), LEADER_LEASE)
        .with_namespace(&ctx.namespace)
        .with_identity(&ctx.identity)
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
    let fence = Fence::default();
    let check_now = Arc::new(tokio::sync::Notify::new());
    let _confirm_task = AbortOnDrop(tokio::spawn(confirm_lease(
        ctx.client.clone(),
        ctx.namespace.clone(),
        ctx.identity.clone(),
        // A renewal counts as fresh until one check before expiry, so this replica stops by
        // the time the Lease expires (and a standby could take it). The manager renews `grace`
        // before expiry; checking at most every half grace leaves a check of slack for the
        // renewal's round trip, so a healthy leader never reads its own Lease as stale.
        lease_check_interval(lease_seconds),
        check_now.clone(),
        confirmed_tx,
        fence.clone(),
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
                info!(identity = %ctx.identity, "became leader");
                ctx.metrics.leader.set(1);
                term = Some(AbortOnDrop(tokio::spawn(lead(ctx.clone(), fence.clone()))));
            }
            (false, true) => {
                warn!(identity = %ctx.identity, lease_manager_says_held = holds, "lost leadership (or cannot confirm it); stopping approval and signing");
                ctx.metrics.leader.set(0);
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
/// The same deadline opens `fence`, which every leader write checks: a process frozen past it
/// resumes unable to write, before this check has run again.
async fn confirm_lease(
    client: Client,
    namespace: String,
    identity: String,
    every: Duration,
    check_now: Arc<tokio::sync::Notify>,
    confirmed: watch::Sender<bool>,
    fence: Fence,
) {
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
                        let renewed = now.checked_sub(age).unwrap_or(now);
                        last_confirmed = Some((renewed, duration));
                        // `now` was taken before the read: the deadline errs early.
                        fence.open_until((renewed + duration.saturating_sub(every)).into_std());
                        true
                    }
                    _ => {
                        // Denied by what the apiserver shows: a later failed read must not
                        // fall back on an older confirmation.
                        last_confirmed = None;
                        fence.close();
                        false
                    }
                }
            }
            Err(e) => {
                let still = last_confirmed.is_some_and(|(renewed, duration)| {
                    now - renewed < duration.saturating_sub(every)
                });
                debug!(error = %e, still_confirmed = still, "reading the leader Lease failed");
                // The fence keeps the last confirmation's deadline, which is exactly `still`.
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
async fn lead(s: LeaderContext, fence: Fence) {
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
        Publisher::new(s.client.clone(), s.identity.clone()).fenced(fence.clone()),
    );
    // Part of this term's work, so it stops with the term (a spawned task would outlive it).
    let webhook_task = async {
        match s.webhook_tls.clone() {
            Some(tls) => {
                managed_tls::run_leader(
                    s.client.clone(),
                    tls,
                    s.tls_check_interval,
                    &s.metrics.webhook_tls,
                    Publisher::new(s.client.clone(), s.identity.clone()).fenced(fence.clone()),
                )
                .await
            }
            None => std::future::pending().await,
        }
    };
    let connector_tls_task = async {
        match s.connector_tls.clone() {
            Some(tls) => {
                managed_tls::run_leader(
                    s.client.clone(),
                    tls,
                    s.tls_check_interval,
                    &s.metrics.connector_tls,
                    Publisher::new(s.client.clone(), s.identity.clone()).fenced(fence.clone()),
                )
                .await
            }
            None => std::future::pending().await,
        }
    };
    let tokens_task = async {
        match s.tokens.clone() {
            Some(settings) => {
                let pin = Arc::new(crate::slot::Slot::default());
                let ctx = Arc::new(tokens::Context {
                    client: s.client.clone(),
                    settings,
                    apps: s.apps.clone(),
                    pin: pin.clone(),
                });
                tokio::join!(
                    tokens::watch_pin(s.client.clone(), s.namespace.clone(), pin),
                    tokens::run(ctx)
                );
            }
            None => std::future::pending().await,
        }
    };
    let crl_task = crl::run(
        s.client.clone(),
        crl::Settings {
            namespace: s.namespace.clone(),
            validity: s.crl_validity,
            max_lifetime: Duration::from_secs(
                crate::pki::profile::client::MAX_EXPIRATION_SECONDS.unsigned_abs(),
            ),
        },
        ca.clone(),
    );
    let (issued_tx, issued_rx) = tokio::sync::mpsc::unbounded_channel();
    let status_task = app_status::run(s.client.clone(), s.apps.clone(), issued_rx);
    let ctx = Arc::new(csr::Context {
        client: s.client.clone(),
        events: Publisher::new(s.client.clone(), s.identity.clone()).fenced(fence.clone()),
        metrics: s.metrics.clone(),
        apps: s.apps.clone(),
        ca,
        defaults: s.defaults.clone(),
        signer_name: s.signer_name.clone(),
        issued: issued_tx,
        retries: super::retries::Retries::default(),
        finished: csr::Finished::default(),
        access: csr::AccessCache::default(),
        issued_events: s.issued_events,
        fence: fence.clone(),
    });
    let controller = csr::run(ctx, s.workers, s.streaming_lists, s.app_changes.clone());
    let cleanup_task = async {
        match s.cleanup.clone() {
            Some(settings) => {
                csr_cleanup::run(s.client.clone(), settings, s.metrics.clone(), fence.clone()).await
            }
            None => std::future::pending().await,
        }
    };
    info!(signer = %s.signer_name, "approving and signing");
    tokio::join!(
        cleanup_task,
        ca_task,
        status_task,
        controller,
        webhook_task,
        connector_tls_task,
        tokens_task,
        crl_task
    );
}

/// Removes the duration from a Lease nobody holds, as certpair before 2026-12-02 left it on
/// release: with it, taking the Lease with any other duration conflicts for ever (see
/// [`release_lease`]). Conditional on the Lease's resourceVersion, so a replica that takes the
/// Lease meanwhile is never disturbed; failures are left to the lease manager.
async fn clear_released_duration(client: &Client, namespace: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let Ok(Some(lease)) = leases.get_opt(LEADER_LEASE).await else {
        return;
    };
    let spec = lease.spec.unwrap_or_default();
    if spec.holder_identity.is_some() || spec.lease_duration_seconds.is_none() {
        return;
    }
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": lease.metadata.resource_version },
        "spec": { "leaseDurationSeconds": null },
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match leases
        .patch(LEADER_LEASE, &params, &kube::api::Patch::Merge(&patch))
        .await
    {
        Ok(_) => info!("cleared the duration a released leader Lease kept"),
        Err(e) => debug!(error = %e, "clearing a released leader Lease's duration failed"),
    }
}

/// Clears the Lease's holder if it is still us, so a standby need not wait for expiry.
pub async fn release_lease(client: &Client, namespace: &str, identity: &str) {
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
        // The duration goes too, as the lease manager's own release does: the next holder
        // takes the Lease with a server-side apply of its duration, which conflicts (409, for
        // ever) with a different duration another field manager left here. So a replica
        // started with another --lease-duration-seconds would never lead.
        spec.lease_duration_seconds = None;
    }
    match leases.replace(LEADER_LEASE, &post_params(), &lease).await {
        Ok(_) => info!("released the leader Lease"),
        Err(e) => debug!(error = %e, "releasing the leader Lease failed; it will expire"),
    }
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
