//! The approver and signer for CSRs of certpair's signer. A thin shell: gather facts (parse,
//! Application cache, SubjectAccessReview), call `policy`, write the result through the
//! `/approval` and `/status` subresources, and report it (Event, log, metric).

use std::{sync::Arc, time::Duration};

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
    api::PostParams,
    runtime::{
        controller::Action,
        reflector::{ObjectRef, Store},
    },
};
use tokio::sync::mpsc;
use tracing::{debug, info, instrument, warn};

use super::{
    app_status::IssuedNote,
    events::{Kind, Publisher},
    signing_ca::SigningCa,
};
use crate::{
    api::{Application, FIELD_MANAGER},
    pki::{authority::LeafRequest, csr::parse_pem, now_unix},
    policy::{self, Decision, Defaults, Denial, Facts, RequestSpec},
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
}

/// Per-request retry delays after unexpected errors: 5 s, then doubling up to 5 min, reset by
/// a reconcile that succeeds. A fixed delay would turn an apiserver outage into one request
/// every 5 s for every CSR in flight, just when the apiserver is struggling.
#[derive(Default)]
pub struct Retries(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Retries {
    const FIRST: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(300);
    /// Failures remembered at most; beyond that (requests deleted while failing) start over.
    const CAPACITY: usize = 10_000;

    /// Records one more failure of `key` and returns how long to wait before the next try.
    pub fn failed(&self, key: &str) -> Duration {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::CAPACITY && !map.contains_key(key) {
            map.clear();
        }
        let failures = map.entry(key.to_owned()).or_insert(0);
        *failures = failures.saturating_add(1);
        Self::delay(*failures)
    }

    pub fn succeeded(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    fn delay(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        Self::FIRST.saturating_mul(1 << doublings).min(Self::MAX)
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
}

impl Error {
    /// Static category for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Self::Kube(_) => "api",
            Self::NoCa => "no_ca",
            Self::Sign(_) => "sign",
            Self::Encode(_) => "encode",
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

/// Stand-in for a certificate dropped from the cache: non-empty, so "has a certificate" holds.
const DROPPED: &[u8] = b"-";

/// Shrinks a cached CSR to what reconciliation reads. managedFields go always (a PUT without
/// them keeps the server's). A finished CSR is never written again, so its request,
/// certificate and annotations go too.
pub fn slim(csr: &mut CertificateSigningRequest) {
    csr.metadata.managed_fields = None;
    let finished = has_certificate(csr) || condition(csr, "Denied") || condition(csr, "Failed");
    if finished {
        csr.metadata.annotations = None;
        csr.metadata.labels = None;
        csr.spec.request = ByteString(Vec::new());
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
            }
        }
    }
}

/// Reconciles one CSR; a success clears its retry backoff.
pub async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let key = retry_key(&csr);
    let result = reconcile_once(csr, ctx.clone()).await;
    if result.is_ok() {
        ctx.retries.succeeded(&key);
    }
    result
}

#[instrument(skip_all, fields(csr = %csr.name_any(), requester = csr.spec.username.as_deref().unwrap_or("")))]
async fn reconcile_once(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    // Finished or refused requests are never touched again; a certificate is never replaced.
    if csr.spec.signer_name != ctx.signer_name
        || has_certificate(&csr)
        || condition(&csr, "Denied")
        || condition(&csr, "Failed")
    {
        return Ok(Action::await_change());
    }
    let parsed = parse_pem(&csr.spec.request.0);
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let spec = RequestSpec {
        usages: &usages,
        expiration_seconds: csr.spec.expiration_seconds,
    };
    let mut csr = (*csr).clone();

    if !condition(&csr, "Approved") {
        let cn = parsed
            .as_ref()
            .ok()
            .and_then(|p| policy::check_request(p, spec).ok())
            .map(str::to_owned);
        let app = cn
            .as_deref()
            .and_then(|cn| ctx.apps.get(&ObjectRef::new(cn)));
        let authorized = match (&cn, &app) {
            (Some(cn), Some(_)) => may_request(&ctx.client, &csr, cn).await?,
            _ => false,
        };
        let facts = Facts {
            request: parsed.as_ref(),
            spec,
            application: app.as_ref().map(|a| &a.spec),
            requester_authorized: authorized,
            requester: csr.spec.username.as_deref().unwrap_or(""),
        };
        match policy::decide(&facts, &ctx.defaults) {
            Decision::Approve { message } => {
                csr = set_condition(&ctx, csr, "Approved", "AutoApproved", &message, "approval")
                    .await?;
                ctx.metrics.decision("approved", "AutoApproved");
                info!(%message, "approved");
                report(&ctx, &csr, Kind::Normal, "Approved", "Approve", message).await;
            }
            Decision::Deny(Denial { reason, message }) => {
                set_condition(
                    &ctx,
                    csr.clone(),
                    "Denied",
                    reason.as_str(),
                    &message,
                    "approval",
                )
                .await?;
                ctx.metrics.decision("denied", reason.as_str());
                info!(%reason, %message, "denied");
                report(&ctx, &csr, Kind::Warning, reason.as_str(), "Deny", message).await;
                return Ok(Action::await_change());
            }
            Decision::Pending { message } => {
                // Re-evaluated when Applications change (the controller's reconcile_all trigger).
                debug!(%message, "left pending");
                return Ok(Action::await_change());
            }
        }
    }

    sign(&ctx, csr, parsed.as_ref().map_err(policy::unreadable), spec).await
}

/// Signs an Approved request — whoever approved it — if it passes the hard profile checks;
/// otherwise marks it Failed, since it can never be signed.
async fn sign(
    ctx: &Context,
    csr: CertificateSigningRequest,
    parsed: Result<&crate::pki::csr::ParsedRequest, Denial>,
    spec: RequestSpec<'_>,
) -> Result<Action, Error> {
    let app_of = |cn: &str| ctx.apps.get(&ObjectRef::new(cn));
    let checked = parsed.and_then(|p| {
        let cn = policy::check_request(p, spec)?;
        // "Disabled" means no new certificates, whoever approved the request and however long
        // signing was delayed after approval.
        if app_of(cn).is_some_and(|a| a.spec.disabled) {
            return Err(Denial {
                reason: policy::DenyReason::ApplicationDisabled,
                message: format!("Application {cn:?} is disabled (spec.disabled: true)"),
            });
        }
        Ok((p, cn.to_owned()))
    });
    let (parsed, cn) = match checked {
        Ok(ok) => ok,
        Err(Denial { reason, message }) => {
            let message = format!("{reason}: {message}");
            set_condition(
                ctx,
                csr.clone(),
                "Failed",
                "SignerValidationFailure",
                &message,
                "status",
            )
            .await?;
            ctx.metrics.decision("failed", "SignerValidationFailure");
            warn!(%message, "approved request cannot be signed");
            report(
                ctx,
                &csr,
                Kind::Warning,
                "SignerValidationFailure",
                "Sign",
                message,
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    let ca = ctx.ca.get().ok_or(Error::NoCa)?;
    let app = app_of(&cn);
    let lifetime = policy::lifetime(
        spec.expiration_seconds,
        app.as_ref().map(|a| &a.spec),
        &ctx.defaults,
    );

    let started = std::time::Instant::now();
    let issued = ca.issue_client(
        &LeafRequest {
            subject: &parsed.subject,
            public_key: &parsed.public_key,
            lifetime,
        },
        now_unix(),
    )?;
    ctx.metrics
        .signing_seconds
        .observe(started.elapsed().as_secs_f64());

    let mut csr = csr;
    csr.status.get_or_insert_default().certificate = Some(ByteString(issued.chain_pem));
    // PUT with the cached resourceVersion: if anyone (another leader) wrote first, this
    // conflicts instead of replacing their certificate.
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let written = api
        .replace_status(&csr.name_any(), &post_params(), &csr)
        .await?;

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
        parsed.subject_line(),
        not_after_text(issued.not_after)
    );
    info!(serial = %issued.serial_hex, not_after = issued.not_after, "issued");
    if app.is_some() {
        // The receiver only goes away at shutdown, when the count no longer matters.
        let _ = ctx.issued.send(IssuedNote {
            application: cn,
            serial_hex: issued.serial_hex,
            not_after: issued.not_after,
        });
    }
    report(ctx, &written, Kind::Normal, "Issued", "Sign", message).await;
    Ok(Action::await_change())
}

fn not_after_text(unix: i64) -> String {
    Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Adds a condition through `/approval` (Approved, Denied) or `/status` (Failed) with a PUT
/// that carries the cached resourceVersion.
async fn set_condition(
    ctx: &Context,
    mut csr: CertificateSigningRequest,
    type_: &str,
    reason: &str,
    message: &str,
    subresource: &str,
) -> Result<CertificateSigningRequest, Error> {
    let now = Time(Timestamp::now());
    csr.status
        .get_or_insert_default()
        .conditions
        .get_or_insert_default()
        .push(CertificateSigningRequestCondition {
            type_: type_.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now),
        });
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    Ok(api
        .replace_subresource(subresource, &csr.name_any(), &post_params(), &csr)
        .await?)
}

/// SubjectAccessReview with the requester's full identity as the apiserver recorded it:
/// may they `request` the Application named by the CN?
async fn may_request(
    client: &Client,
    csr: &CertificateSigningRequest,
    application: &str,
) -> Result<bool, Error> {
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
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Publishes an Event on the CSR; a failure to report never fails the reconciliation.
async fn report(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    kind: Kind,
    reason: &str,
    action: &str,
    note: String,
) {
    if let Err(e) = ctx
        .events
        .publish(csr.object_ref(&()), kind, reason, action, &note)
        .await
    {
        warn!(error = %e, "publishing an Event failed");
    }
}

/// Conflicts mean our cache was behind: retry soon (the watch brings the new version). No CA
/// yet: retry shortly. Anything else: back off.
pub fn error_policy(csr: Arc<CertificateSigningRequest>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::telemetry::ErrorLabels { kind: err.kind() })
        .inc();
    match err.kind() {
        "conflict" => Action::requeue(Duration::from_millis(200)),
        "no_ca" => Action::requeue(Duration::from_secs(1)),
        _ => {
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

    #[test]
    fn retries_back_off_per_request_and_reset_on_success() {
        let retries = Retries::default();
        let waits: Vec<u64> = (0..9).map(|_| retries.failed("a").as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(retries.failed("b").as_secs(), 5, "per request");
        retries.succeeded("a");
        assert_eq!(retries.failed("a").as_secs(), 5, "reset by a success");
        for _ in 0..100 {
            retries.failed("a");
        }
        assert_eq!(retries.failed("a").as_secs(), 300, "no overflow");
    }

    #[test]
    fn slim_keeps_what_reconcile_reads() {
        let mut pending = CertificateSigningRequest::default();
        pending.spec.request = ByteString(b"PEM".to_vec());
        pending.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        slim(&mut pending);
        assert_eq!(
            pending.spec.request.0, b"PEM",
            "a pending request keeps its PEM"
        );
        assert!(pending.metadata.annotations.is_some());

        let mut issued = pending.clone();
        issued.status = Some(CertificateSigningRequestStatus {
            certificate: Some(ByteString(vec![1; 2000])),
            ..Default::default()
        });
        slim(&mut issued);
        assert!(issued.spec.request.0.is_empty());
        assert!(has_certificate(&issued), "still counts as issued");
        assert!(issued.metadata.annotations.is_none());
    }
}
