//! The approver and signer for CSRs of certpair's signer. A thin shell: gather facts (parse,
//! Application cache, SubjectAccessReview), call `policy`, write the result through the
//! `/approval` and `/status` subresources, and report it (Event, log, metric).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::{
        authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
        certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, instrument, warn};

use super::{
    app_status::IssuedNote,
    cached_csr::{CachedCsr, DROPPED},
    retries::Retries,
    signing_ca::SigningCa,
};
use crate::{
    api::{Application, FIELD_MANAGER},
    k8s::{
        events::{Kind, Publisher},
        fence::{Fence, NotLeading},
    },
    pki::{authority::LeafRequest, csr::parse_pem, now_unix},
    policy::{
        self, ApplicationRules, CheckedRequest, Decision, Defaults, Denial, Facts, RequestSpec,
    },
    telemetry::Metrics,
};

pub struct Context {
    pub client: Client,
    pub events: Publisher,
    pub metrics: Arc<Metrics>,
    pub apps: Store<Application>,
    pub ca: Arc<SigningCa>,
    pub defaults: Defaults,
    pub signer_name: String,
    pub issued: mpsc::UnboundedSender<IssuedNote>,
    pub retries: Retries,
    pub finished: Finished,
    pub access: AccessCache,
    /// Publish an `Issued` Event per certificate (`--issued-events`).
    pub issued_events: bool,
    /// Checked right before each write: see [`Fence`].
    pub fence: Fence,
}

/// SubjectAccessReview answers that allowed a requester to `request` an Application, kept for
/// [`AccessCache::TTL`], as the apiserver's own webhook authorizer caches its answers (for
/// minutes): a burst of CSRs from one requester costs one review, not one each. Refusals are
/// not kept (a right just granted works at once); a right just revoked still approves for at
/// most the TTL. Keyed by the requester's whole identity (name, uid, groups, extra) and the
/// Application; bounded (emptied when full).
#[derive(Default)]
pub struct AccessCache(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl AccessCache {
    pub const TTL: Duration = Duration::from_secs(10);
    const MAX: usize = 4096;

    fn key(csr: &CertificateSigningRequest, application: &str) -> String {
        serde_json::json!([
            csr.spec.username,
            csr.spec.uid,
            csr.spec.groups,
            csr.spec.extra,
            application
        ])
        .to_string()
    }

    fn allowed(&self, key: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(at) if at.elapsed() < Self::TTL => true,
            Some(_) => {
                map.remove(key);
                false
            }
            None => false,
        }
    }

    fn remember(&self, key: String) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key, std::time::Instant::now());
    }
}

/// CSRs this leader term brought to a final state (a certificate, Denied, Failed) that its
/// cache may not show yet. The watch delivers our own writes back one by one: the approval's
/// event arrives while the certificate's is still on its way, and a reconcile of that cached
/// version would sign again and lose the write with a 409 (four CSRs in ten did, in a burst of
/// 500). Final states are never undone, so a CSR found here is done whatever the cache says.
/// An entry goes once the cache shows the final state; the set is bounded (emptied when
/// full: the worst case is the old conflict, never a wrong write).
#[derive(Default)]
pub struct Finished(std::sync::Mutex<std::collections::HashSet<String>>);

impl Finished {
    const MAX: usize = 65_536;

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mark(&self, csr: &CertificateSigningRequest) {
        let mut set = self.lock();
        if set.len() >= Self::MAX {
            set.clear();
        }
        set.insert(retry_key(csr));
    }

    /// Whether `csr` is known to be finished; forgotten once `cached_final` (the cache has
    /// caught up).
    fn known(&self, csr: &CertificateSigningRequest, cached_final: bool) -> bool {
        let mut set = self.lock();
        if cached_final {
            set.remove(&retry_key(csr));
            return false;
        }
        set.contains(&retry_key(csr))
    }
}

/// Identity of a CSR for retry bookkeeping: its uid, so a request deleted and created again
/// under the same name starts with a clean slate.
fn retry_key(csr: &CertificateSigningRequest) -> String {
    csr.metadata.uid.clone().unwrap_or_else(|| csr.name_any())
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the signing CA is not loaded yet")]
    NoCa,
    #[error("signing failed: {0}")]
    Sign(#[from] crate::pki::authority::AuthorityError),
    #[error("encoding the CSR failed: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the cached CSR has no resourceVersion to make the write conditional on")]
    NoResourceVersion,
    #[error(transparent)]
    NotLeading(#[from] NotLeading),
}

/// What kind of failure an [`Error`] is: how [`error_policy`] retries it, and its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A write lost to a newer version of the object: our cache was behind.
    Conflict,
    Api,
    NoCa,
    Sign,
    Encode,
    /// The write fence was closed: the term is ending.
    NotLeading,
}

impl ErrorKind {
    /// Static category for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conflict => "conflict",
            Self::Api => "api",
            Self::NoCa => "no_ca",
            Self::Sign => "sign",
            Self::Encode => "encode",
            Self::NotLeading => "not_leading",
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Kube(kube::Error::Api(s)) if s.code == 409 => ErrorKind::Conflict,
            Self::Kube(_) => ErrorKind::Api,
            Self::NoCa => ErrorKind::NoCa,
            Self::Sign(_) => ErrorKind::Sign,
            Self::Encode(_) | Self::NoResourceVersion => ErrorKind::Encode,
            Self::NotLeading(_) => ErrorKind::NotLeading,
        }
    }
}

fn condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

fn has_certificate(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// Shrinks a cached CSR to what reconciliation reads. Every CSR loses its metadata beyond
/// name, uid, resourceVersion and creation time: annotations (kubectl's last-applied copy, or
/// anything a requester puts there: up to 256 KiB each) and labels are never read, and writes
/// are patches that do not carry them ([`CachedCsr`] is decoded without them; a CSR decoded
/// whole loses them here). A finished CSR is never written again, so its request,
/// certificate, signer name, requester identity, creation time and everything in its
/// conditions but type and status go too (with 10,000 CSRs cached, about a third of the
/// controller's memory was finished CSRs).
pub fn slim(csr: &mut CertificateSigningRequest) {
    csr.metadata.managed_fields = None;
    csr.metadata.annotations = None;
    csr.metadata.labels = None;
    csr.metadata.owner_references = None;
    csr.metadata.finalizers = None;
    let finished = has_certificate(csr) || condition(csr, "Denied") || condition(csr, "Failed");
    if finished {
        csr.metadata.creation_timestamp = None;
        csr.spec.request = ByteString(Vec::new());
        csr.spec.signer_name = String::new();
        csr.spec.username = None;
        csr.spec.groups = None;
        csr.spec.extra = None;
        csr.spec.usages = None;
        csr.spec.uid = None;
        if let Some(status) = csr.status.as_mut() {
            if status.certificate.as_ref().is_some_and(|c| !c.0.is_empty()) {
                status.certificate = Some(ByteString(DROPPED.to_vec()));
            }
            for c in status.conditions.iter_mut().flatten() {
                c.message = None;
                c.reason = None;
                c.last_update_time = None;
                c.last_transition_time = None;
            }
        }
    }
}

/// The approver/signer for one leader term: a watch of the CSRs of certpair's signer (cached
/// slimmed), every CSR reconciled again when Applications change. Runs until dropped.
pub async fn run(
    ctx: Arc<Context>,
    workers: u16,
    streaming_lists: bool,
    app_changes: watch::Receiver<()>,
) {
    // Decoded without managedFields, annotations, labels or the certificate's bytes.
    let csrs: Api<CachedCsr> = Api::all(ctx.client.clone());
    // The initial list as a stream of single objects (WatchList, `sendInitialEvents`), each
    // slimmed as it arrives: a paged list holds whole pages of full objects at once, and CSRs
    // carry whatever annotations their creators gave them (hundreds of KiB each), so a restart
    // among many such CSRs would cost hundreds of MiB. Where the apiserver cannot stream,
    // small pages bound the same cost.
    let only_ours =
        watcher::Config::default().fields(&format!("spec.signerName={}", ctx.signer_name));
    let only_ours = if streaming_lists {
        only_ours.streaming_lists()
    } else {
        only_ours.page_size(50)
    };
    let app_changes = futures::stream::unfold(app_changes, |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    });
    // Our own cache, slimmed: with thousands of finished CSRs the full objects (request PEM,
    // certificate chain, kubectl's last-applied copy, managedFields) dominate memory.
    let (cache, cache_writer) = reflector::store();
    let stream = watcher(csrs, only_ours)
        .default_backoff()
        .modify(|csr| slim(csr))
        .reflect(cache_writer)
        .touched_objects();
    Controller::for_stream(stream, cache)
        .with_config(kube::runtime::controller::Config::default().concurrency(workers))
        .reconcile_all_on(app_changes)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                debug!(error = %e, "CSR controller event");
            }
            futures::future::ready(())
        })
        .await;
}

/// Reconciles one CSR; a success clears its retry backoff.
pub async fn reconcile(csr: Arc<CachedCsr>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = retry_key(&csr);
    let result = reconcile_once(csr, ctx.clone()).await;
    if result.is_ok() {
        ctx.retries.succeeded(&key);
    }
    result
}

#[instrument(skip_all, fields(csr = %csr.name_any(), requester = csr.spec.username.as_deref().unwrap_or("")))]
async fn reconcile_once(csr: Arc<CachedCsr>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Finished or refused requests are never touched again; a certificate is never replaced.
    let cached_final =
        has_certificate(&csr) || condition(&csr, "Denied") || condition(&csr, "Failed");
    // `known` first: it also forgets what the cache has caught up with.
    let known = ctx.finished.known(&csr, cached_final);
    if cached_final || known || csr.spec.signer_name != ctx.signer_name {
        return Ok(Action::await_change());
    }
    let approved = condition(&csr, "Approved");
    let parsed = parse_pem(&csr.spec.request.0);
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let spec = RequestSpec {
        usages: &usages,
        expiration_seconds: csr.spec.expiration_seconds,
    };
    // The request alone, checked once for this pass.
    let checked = parsed
        .as_ref()
        .map_err(policy::unreadable)
        .and_then(|p| policy::check_request(p, spec));
    let mut csr = csr.0.clone();
    let req = match checked {
        Ok(req) => req,
        // An approval by hand cannot make an unreadable or malformed request signable.
        Err(denial) if approved => return fail(&ctx, csr, denial, None).await,
        Err(denial) => return deny(&ctx, csr, denial).await,
    };
    let lookup = || -> Option<ApplicationRules> {
        ctx.apps
            .get(&ObjectRef::new(req.cn))
            .map(|a| (&a.spec).into())
    };
    let mut application = lookup();
    // An approval made here is reported with the outcome, in one Event (the Approved
    // condition on the CSR carries it too).
    let mut approved_here = None;

    if !approved {
        let authorized = match application {
            Some(_) => may_request(&ctx, &csr, req.cn).await?,
            None => false,
        };
        let facts = Facts {
            application: application.as_ref(),
            requester_authorized: authorized,
            requester: csr.spec.username.as_deref().unwrap_or(""),
        };
        match policy::decide(&req, &facts, &ctx.defaults) {
            Decision::Approve { message } => {
                csr = set_condition(&ctx, csr, "Approved", "AutoApproved", &message, "approval")
                    .await?;
                ctx.metrics.decision("approved", "AutoApproved");
                info!(%message, "approved");
                approved_here = Some(message);
                // Sign by the Application as it is now: it may have been disabled or changed
                // while the approval was being written.
                application = lookup();
            }
            Decision::Deny(denial) => return deny(&ctx, csr, denial).await,
            Decision::Pending { message } => {
                // Re-evaluated when Applications change (the controller's reconcile_all trigger).
                debug!(%message, "left pending");
                return Ok(Action::await_change());
            }
        }
    }

    let approval = approved_here.as_deref();
    match policy::may_sign(&req, application.as_ref(), &ctx.defaults) {
        Ok(signing) => {
            sign(
                &ctx,
                csr,
                &req,
                signing.lifetime,
                application.is_some(),
                approval,
            )
            .await
        }
        Err(denial) => fail(&ctx, csr, denial, approval).await,
    }
}

/// Denies a request through `/approval`, and reports it.
async fn deny(
    ctx: &Context,
    csr: CertificateSigningRequest,
    Denial { reason, message }: Denial,
) -> Result<Action, Error> {
    set_condition(
        ctx,
        csr.clone(),
        "Denied",
        reason.as_str(),
        &message,
        "approval",
    )
    .await?;
    ctx.finished.mark(&csr);
    ctx.metrics.decision("denied", reason.as_str());
    info!(%reason, %message, "denied");
    report(ctx, &csr, Kind::Warning, reason.as_str(), "Deny", &message).await;
    Ok(Action::await_change())
}

/// Marks an approved request that can never be signed Failed, and reports it.
async fn fail(
    ctx: &Context,
    csr: CertificateSigningRequest,
    denial: Denial,
    approval: Option<&str>,
) -> Result<Action, Error> {
    let message = denial.to_string();
    set_condition(
        ctx,
        csr.clone(),
        "Failed",
        "SignerValidationFailure",
        &message,
        "status",
    )
    .await?;
    ctx.finished.mark(&csr);
    ctx.metrics.decision("failed", "SignerValidationFailure");
    warn!(%message, "approved request cannot be signed");
    report(
        ctx,
        &csr,
        Kind::Warning,
        "SignerValidationFailure",
        "Sign",
        &with_approval(approval, &message),
    )
    .await;
    Ok(Action::await_change())
}

/// Signs an approved request that [`policy::may_sign`] allowed, and writes the certificate
/// through `/status`.
async fn sign(
    ctx: &Context,
    csr: CertificateSigningRequest,
    req: &CheckedRequest<'_>,
    lifetime: Duration,
    has_application: bool,
    approval: Option<&str>,
) -> Result<Action, Error> {
    let ca = ctx.ca.get().ok_or(Error::NoCa)?;
    let started = std::time::Instant::now();
    let issued = ca.issue_client(
        &LeafRequest {
            subject: &req.parsed.subject,
            public_key: &req.parsed.public_key,
            public_key_der: Some(&req.parsed.public_key_der),
            lifetime,
        },
        now_unix(),
    )?;
    ctx.metrics
        .signing_seconds
        .observe(started.elapsed().as_secs_f64());

    // With the cached resourceVersion: if anyone (another leader) wrote first, this conflicts
    // instead of replacing their certificate. Only the certificate is sent (see set_condition).
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": resource_version(&csr)? },
        "status": { "certificate": ByteString(issued.chain_pem) },
    });
    ctx.fence.check()?;
    let written = Api::<CachedCsr>::all(ctx.client.clone())
        .patch_status(&csr.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    ctx.finished.mark(&csr);

    ctx.metrics.issued.inc();
    if let Some(created) = written.metadata.creation_timestamp.as_ref() {
        let age = Timestamp::now().duration_since(created.0);
        ctx.metrics
            .create_to_issued_seconds
            .observe(age.as_secs_f64().max(0.0));
    }
    let message = format!(
        "issued serial {} for {} until {}",
        issued.serial_hex,
        req.parsed.subject_line(),
        not_after_text(issued.not_after)
    );
    info!(serial = %issued.serial_hex, not_after = issued.not_after, "issued");
    if has_application {
        // The receiver only goes away at shutdown, when the count no longer matters.
        let _ = ctx.issued.send(IssuedNote {
            application: req.cn.to_owned(),
            serial_hex: issued.serial_hex,
            not_after: issued.not_after,
        });
    }
    if ctx.issued_events {
        report(
            ctx,
            &written,
            Kind::Normal,
            "Issued",
            "Sign",
            &with_approval(approval, &message),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// An outcome's Event note, with the approval made in the same pass in front of it.
fn with_approval(approval: Option<&str>, message: &str) -> String {
    match approval {
        Some(approved) => format!("approved: {approved}; {message}"),
        None => message.to_owned(),
    }
}

fn not_after_text(unix: i64) -> String {
    Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// Adds a condition through `/approval` (Approved, Denied) or `/status` (Failed).
///
/// A merge patch that names the cached resourceVersion: the apiserver refuses it with 409 if
/// anyone wrote first, exactly like a PUT would, but it carries only the conditions. (A PUT
/// of the cached object would also write its metadata, and the cache holds no annotations:
/// subresource updates take metadata from the body, so a PUT would erase them.)
async fn set_condition(
    ctx: &Context,
    mut csr: CertificateSigningRequest,
    type_: &str,
    reason: &str,
    message: &str,
    subresource: &str,
) -> Result<CertificateSigningRequest, Error> {
    let now = Time(Timestamp::now());
    let resource_version = resource_version(&csr)?.to_owned();
    let conditions = csr
        .status
        .get_or_insert_default()
        .conditions
        .get_or_insert_default();
    conditions.push(CertificateSigningRequestCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "status": { "conditions": conditions },
    });
    ctx.fence.check()?;
    let written = Api::<CachedCsr>::all(ctx.client.clone())
        .patch_subresource(
            subresource,
            &csr.name_any(),
            &patch_params(),
            &Patch::Merge(&patch),
        )
        .await?;
    // Continue from what the server holds now, slimmed like the cache.
    let mut written = written.0;
    slim(&mut written);
    Ok(written)
}

/// The resourceVersion a write is conditional on. Without one the patch would not be
/// conditional at all (it would read as `null`), so a missing one is an error, never a blind write.
fn resource_version(csr: &CertificateSigningRequest) -> Result<&str, Error> {
    csr.metadata
        .resource_version
        .as_deref()
        .ok_or(Error::NoResourceVersion)
}

/// Merge patches under certpair's field manager.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// SubjectAccessReview with the requester's full identity as the apiserver recorded it:
/// may they `request` the Application named by the CN?
async fn may_request(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    application: &str,
) -> Result<bool, Error> {
    let key = AccessCache::key(csr, application);
    if ctx.access.allowed(&key) {
        ctx.metrics.access_reviews_cached.inc();
        return Ok(true);
    }
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            uid: csr.spec.uid.clone(),
            groups: csr.spec.groups.clone(),
            extra: csr.spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some(crate::api::GROUP.into()),
                resource: Some("applications".into()),
                verb: Some("request".into()),
                name: Some(application.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(ctx.client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let allowed = answer.status.is_some_and(|s| s.allowed);
    if allowed {
        ctx.access.remember(key);
    }
    Ok(allowed)
}

/// Publishes an Event on the CSR in the background; a failure to report never fails the
/// reconciliation, and the next write does not wait for it.
async fn report(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    kind: Kind,
    reason: &str,
    action: &str,
    note: &str,
) {
    ctx.events
        .report_soon(csr.object_ref(&()), kind, reason, action, note)
        .await;
}

/// Conflicts mean our cache was behind: retry soon (the watch brings the new version). No CA
/// yet: retry shortly. Anything else: back off.
pub fn error_policy(csr: Arc<CachedCsr>, err: &Error, ctx: Arc<Context>) -> Action {
    let kind = err.kind();
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::telemetry::ErrorLabels {
            kind: kind.as_str(),
        })
        .inc();
    match kind {
        ErrorKind::Conflict => Action::requeue(Duration::from_millis(200)),
        ErrorKind::NoCa => Action::requeue(Duration::from_secs(1)),
        // The term is being stopped; if leadership is confirmed again first, go on shortly.
        ErrorKind::NotLeading => Action::requeue(Duration::from_secs(1)),
        ErrorKind::Api | ErrorKind::Sign | ErrorKind::Encode => {
            let delay = ctx.retries.failed(&retry_key(&csr));
            warn!(csr = %csr.name_any(), error = %err, retry_in = ?delay, "reconciling CSR failed");
            Action::requeue(delay)
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus;

    use super::*;

    /// A CSR this term finished is skipped while the cache lags, and forgotten once the cache
    /// shows it final.
    #[test]
    fn finished_requests_are_remembered_until_the_cache_catches_up() {
        let finished = Finished::default();
        let mut csr = CertificateSigningRequest::default();
        csr.metadata.uid = Some("uid-1".into());
        assert!(!finished.known(&csr, false), "unknown at first");
        finished.mark(&csr);
        assert!(
            finished.known(&csr, false),
            "the lagging cache is not trusted"
        );
        assert!(!finished.known(&csr, true), "the cache caught up");
        assert!(!finished.known(&csr, false), "and the entry is gone");
        for i in 0..=Finished::MAX {
            let mut other = csr.clone();
            other.metadata.uid = Some(format!("uid-{i}"));
            finished.mark(&other);
        }
        assert!(finished.lock().len() <= Finished::MAX, "bounded");
    }

    /// An allowed answer is reused for the same requester and Application only, and only
    /// within the TTL.
    #[test]
    fn access_answers_are_kept_per_identity_and_application() {
        let cache = AccessCache::default();
        let mut csr = CertificateSigningRequest::default();
        csr.spec.username = Some("alice".into());
        csr.spec.groups = Some(vec!["team-a".into()]);
        let key = AccessCache::key(&csr, "billing");
        assert!(!cache.allowed(&key));
        cache.remember(key.clone());
        assert!(cache.allowed(&key));
        assert!(
            !cache.allowed(&AccessCache::key(&csr, "payroll")),
            "another Application"
        );
        let mut other = csr.clone();
        other.spec.groups = Some(vec!["team-b".into()]);
        assert!(
            !cache.allowed(&AccessCache::key(&other, "billing")),
            "the same name with other groups is another identity"
        );
        cache
            .0
            .lock()
            .expect("lock")
            .insert(key.clone(), std::time::Instant::now() - AccessCache::TTL);
        assert!(!cache.allowed(&key), "expired");
    }

    #[test]
    fn slim_keeps_what_reconcile_reads() {
        let mut pending = CertificateSigningRequest::default();
        pending.spec.request = ByteString(b"PEM".to_vec());
        pending.metadata.annotations = Some([("a".to_string(), "b".repeat(200_000))].into());
        pending.metadata.labels = Some([("l".to_string(), "v".to_string())].into());
        slim(&mut pending);
        assert_eq!(
            pending.spec.request.0, b"PEM",
            "a pending request keeps its PEM"
        );
        assert!(
            pending.metadata.annotations.is_none() && pending.metadata.labels.is_none(),
            "no cached CSR carries annotations or labels"
        );

        let mut issued = pending.clone();
        issued.status = Some(CertificateSigningRequestStatus {
            certificate: Some(ByteString(vec![1; 2000])),
            ..Default::default()
        });
        slim(&mut issued);
        assert!(issued.spec.request.0.is_empty());
        assert!(has_certificate(&issued), "still counts as issued");
        assert!(issued.metadata.annotations.is_none());

        let mut denied = pending.clone();
        denied.spec.signer_name = "certpair.dev/application".into();
        denied.spec.username = Some("someone".into());
        denied.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Denied".into(),
                status: "True".into(),
                reason: Some("UnknownApplication".into()),
                message: Some("no Application".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        slim(&mut denied);
        assert!(condition(&denied, "Denied"), "still counts as denied");
        assert!(denied.spec.signer_name.is_empty() && denied.spec.username.is_none());
        let kept = &denied.status.as_ref().and_then(|s| s.conditions.clone());
        assert!(
            kept.iter()
                .flatten()
                .all(|c| c.reason.is_none() && c.message.is_none())
        );

        // A pending CSR keeps what a write of its conditions sends back.
        let mut approved = pending.clone();
        approved.status = denied.status.clone();
        if let Some(c) = approved
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|c| c.first_mut())
        {
            c.type_ = "Approved".into();
            c.reason = Some("AutoApproved".into());
        }
        slim(&mut approved);
        assert!(condition(&approved, "Approved"));
        let kept = &approved.status.as_ref().and_then(|s| s.conditions.clone());
        assert!(kept.iter().flatten().all(|c| c.reason.is_some()));
    }
}
