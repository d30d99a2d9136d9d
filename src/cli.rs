//! Command line. Every flag can also be set through a `CERTPAIR_*` environment variable, so
//! the same binary is configured by flags locally and by env in a Deployment.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "certpair",
    version,
    about = "X.509 client certificates for applications through Kubernetes CertificateSigningRequests"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: connects to the cluster named by KUBECONFIG (or the in-cluster
    /// service account) and serves /healthz, /readyz and /metrics over plain HTTP.
    Controller(ControllerArgs),
    /// Print the Application CustomResourceDefinition as YAML (pipe it to `kubectl apply -f -`).
    Crd,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Address of the plain HTTP listener for /healthz, /readyz and /metrics.
    #[arg(long, env = "CERTPAIR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "CERTPAIR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `certpair=debug,kube=info`.
    /// The default silences kube's per-request error lines: certpair reports each failure
    /// itself, with context, and a duplicate line only hides the one that says what to do.
    #[arg(
        long,
        env = "CERTPAIR_LOG",
        default_value = "info,kube_client::client::builder=off"
    )]
    pub log_filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn controller_defaults() {
        let cli = Cli::try_parse_from(["certpair", "controller"]).expect("parses");
        let Command::Controller(args) = cli.command else {
            panic!("expected the controller subcommand");
        };
        assert_eq!(args.http_addr.port(), 8080);
        assert_eq!(args.log.log_format, LogFormat::Text);
    }

    #[test]
    fn rejects_a_bad_address() {
        let err = Cli::try_parse_from(["certpair", "controller", "--http-addr", "nope"])
            .expect_err("must reject");
        assert!(err.to_string().contains("--http-addr"));
    }
}
