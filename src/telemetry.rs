//! Logging and metrics set-up.

use std::io::IsTerminal;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::error::{Error, Result};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global tracing subscriber with `filter` (tracing's EnvFilter syntax). Logs go
/// to stderr so stdout stays free for command output (`certpair crd`).
pub fn init_logging(format: LogFormat, filter: &str) -> Result<()> {
    let filter = EnvFilter::try_new(filter).map_err(|e| Error::LogFilter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    // A second initialisation (tests calling run twice) is harmless; keep the first.
    let _ = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Labels of a decision: `decision` is approved, denied, pending or failed; `reason` is from
/// the closed set in `policy::DenyReason` (or `AutoApproved`, `SignerValidationFailure`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// The controller's metrics. Labels are bounded sets, never object names.
pub struct Metrics {
    pub registry: Registry,
    /// Applications currently known to the controller's cache.
    pub applications: Gauge,
    pub decisions: Family<DecisionLabels, Counter>,
    pub issued: Counter,
    /// Approvals that reused a recent SubjectAccessReview answer (`csr::AccessCache`).
    pub access_reviews_cached: Counter,
    pub signing_seconds: Histogram,
    pub create_to_issued_seconds: Histogram,
    pub ca_not_after: Gauge,
    /// 1 for the reason the signing CA Secret cannot be used, while that lasts.
    pub signing_ca_problem: Family<ReasonLabels, Gauge>,
    pub leader: Gauge,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// CSRs of certpair's signer deleted by the cleanup, by `policy::cleanup::Cleanup`.
    pub csrs_deleted: Family<ReasonLabels, Counter>,
    /// The admission webhook's managed CA and serving certificate.
    pub webhook_tls: TlsMetrics,
    /// The connector's, when certpair manages them.
    pub connector_tls: TlsMetrics,
}

/// Repairs and expiry times of one managed CA + serving certificate pair.
pub struct TlsMetrics {
    pub repairs: Family<ErrorLabels, Counter>,
    pub ca_not_after: Gauge,
    pub serving_not_after: Gauge,
}

impl TlsMetrics {
    /// Registers `<listener>_certificate_repairs` and the two expiry gauges.
    fn register(registry: &mut Registry, listener: &str) -> Self {
        let repairs = Family::<ErrorLabels, Counter>::default();
        registry.register(
            format!("{listener}_certificate_repairs"),
            format!(
                "Changes to the {listener} CA, serving certificate or published bundle, by cause"
            ),
            repairs.clone(),
        );
        let ca_not_after = Gauge::default();
        registry.register(
            format!("{listener}_ca_expiry_timestamp_seconds"),
            format!("NotAfter of the {listener} CA, Unix time (leader only)"),
            ca_not_after.clone(),
        );
        let serving_not_after = Gauge::default();
        registry.register(
            format!("{listener}_serving_expiry_timestamp_seconds"),
            format!("NotAfter of the {listener} serving certificate, Unix time (leader only)"),
            serving_not_after.clone(),
        );
        Self {
            repairs,
            ca_not_after,
            serving_not_after,
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("certpair");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "certpair build information", build_info);
        let applications = Gauge::default();
        registry.register(
            "applications",
            "Applications in the controller's cache",
            applications.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "csr_decisions",
            "Decisions on CertificateSigningRequests by decision and reason",
            decisions.clone(),
        );
        let issued = Counter::default();
        registry.register("certificates_issued", "Certificates issued", issued.clone());
        let access_reviews_cached = Counter::default();
        registry.register(
            "access_reviews_cached",
            "Approvals that reused a SubjectAccessReview answer from the last 10 s",
            access_reviews_cached.clone(),
        );
        // 50 µs .. ~0.8 s: an ECDSA signature is tens of microseconds, RSA CA keys far more.
        let signing_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 15));
        registry.register(
            "signing_duration_seconds",
            "Time to build and sign one certificate",
            signing_seconds.clone(),
        );
        // 5 ms .. ~80 s.
        let create_to_issued_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        registry.register(
            "csr_create_to_issued_seconds",
            "Time from a CSR's creation to its certificate being written",
            create_to_issued_seconds.clone(),
        );
        let ca_not_after = Gauge::default();
        registry.register(
            "signing_ca_expiry_timestamp_seconds",
            "NotAfter of the signing CA certificate, Unix time",
            ca_not_after.clone(),
        );
        let signing_ca_problem = Family::<ReasonLabels, Gauge>::default();
        registry.register(
            "signing_ca_problem",
            "1 while the signing CA Secret cannot be used, by reason (the previous CA, if any, keeps signing)",
            signing_ca_problem.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed CSR reconciliations by error kind",
            reconcile_errors.clone(),
        );
        let csrs_deleted = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "csrs_deleted",
            "CSRs of certpair's signer deleted past their retention, by reason (expired, finished, pending)",
            csrs_deleted.clone(),
        );
        let webhook_tls = TlsMetrics::register(&mut registry, "webhook");
        let connector_tls = TlsMetrics::register(&mut registry, "connector");
        Self {
            registry,
            applications,
            webhook_tls,
            connector_tls,
            decisions,
            issued,
            access_reviews_cached,
            signing_seconds,
            create_to_issued_seconds,
            ca_not_after,
            signing_ca_problem,
            leader,
            reconcile_errors,
            csrs_deleted,
        }
    }

    pub fn decision(&self, decision: &'static str, reason: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { decision, reason })
            .inc();
    }

    /// The registry in Prometheus text exposition format.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }
}

impl Encode for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

/// Whatever a process serves at `/metrics`.
pub trait Encode: Send + Sync {
    fn encode(&self) -> String;
}

fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; an error here would be a bug in an encoder.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}

/// Labels of one connector answer: the route (a fixed name, never the URL) and the status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub code: u16,
}

/// Labels of certificates the connector handed out: `pairing` or `renewal`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssueLabels {
    pub kind: &'static str,
}

/// The connector's metrics.
pub struct ConnectorMetrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    pub certificates: Family<IssueLabels, Counter>,
    pub issue_seconds: Histogram,
    /// Applications that called `management/info` in the last five minutes.
    pub applications_seen: Gauge,
    pub revocations: Gauge,
}

impl ConnectorMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("certpair_connector");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "requests",
            "Answers of the connector by route and HTTP status",
            requests.clone(),
        );
        let certificates = Family::<IssueLabels, Counter>::default();
        registry.register(
            "certificates",
            "Certificates handed out, by pairing or renewal",
            certificates.clone(),
        );
        let issue_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "issue_seconds",
            "Time from creating a CSR to holding its certificate",
            issue_seconds.clone(),
        );
        let applications_seen = Gauge::default();
        registry.register(
            "applications_seen",
            "Applications that fetched management/info in the last five minutes (heartbeat)",
            applications_seen.clone(),
        );
        let revocations = Gauge::default();
        registry.register(
            "revocations",
            "Revoked certificates the connector refuses",
            revocations.clone(),
        );
        Self {
            registry,
            requests,
            certificates,
            issue_seconds,
            applications_seen,
            revocations,
        }
    }
}

impl Default for ConnectorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Encode for ConnectorMetrics {
    fn encode(&self) -> String {
        encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_prefix() {
        let m = Metrics::new();
        m.applications.set(3);
        let text = m.encode();
        assert!(text.contains("certpair_applications 3"), "{text}");
        assert!(text.contains("certpair_build_info{version=\""), "{text}");
    }

    #[test]
    fn bad_log_filter_is_a_clear_error() {
        let err = init_logging(LogFormat::Text, "certpair=[").expect_err("must reject");
        assert!(err.to_string().contains("invalid log filter"));
    }
}
