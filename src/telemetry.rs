//! Logging and metrics set-up.

use std::io::IsTerminal;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{
    cli::{LogArgs, LogFormat},
    error::{Error, Result},
};

/// Installs the global tracing subscriber. Logs go to stderr so stdout stays free for
/// command output (`certpair crd`).
pub fn init_logging(args: &LogArgs) -> Result<()> {
    let filter = EnvFilter::try_new(&args.log_filter).map_err(|e| Error::LogFilter {
        filter: args.log_filter.clone(),
        reason: e.to_string(),
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    // A second initialisation (tests calling run twice) is harmless; keep the first.
    let _ = match args.log_format {
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

/// The controller's metrics. Labels are bounded sets, never object names.
pub struct Metrics {
    pub registry: Registry,
    /// Applications currently known to the controller's cache.
    pub applications: Gauge,
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
        Self {
            registry,
            applications,
        }
    }

    /// The registry in Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in an encoder.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
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
        let args = LogArgs {
            log_format: LogFormat::Text,
            log_filter: "certpair=[".into(),
        };
        let err = init_logging(&args).expect_err("must reject");
        assert!(err.to_string().contains("invalid log filter"));
    }
}
