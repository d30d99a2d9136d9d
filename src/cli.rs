//! Command line. Every flag can also be set through a `CERTPAIR_*` environment variable, so
//! the same binary is configured by flags locally and by env in a Deployment.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    api::{DEFAULT_NAMESPACE, DEFAULT_SIGNER_NAME},
    policy::{self, SubjectRules},
    telemetry,
};

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
    Controller(Box<ControllerArgs>),
    /// Run the connector: pairing of external applications with one-time tokens (Kyma's REST
    /// shapes) over TLS, renewal and revocation over mTLS, and the CRL. Stateless; run as many
    /// replicas as needed.
    Connector(Box<ConnectorArgs>),
    /// Print certpair's CustomResourceDefinitions (Application, TokenRequest, Revocation) as
    /// YAML (pipe it to `kubectl apply -f -`).
    Crd,
    /// Pairing tokens (TokenRequests) through the Kubernetes API.
    Token(TokenArgs),
    /// Pair with the connector using a one-time token: CSR info, a key made here, the
    /// certificate; writes tls.key, tls.crt, ca.crt to --out.
    Pair(Box<PairArgs>),
    /// Renew a pairing's certificate over mTLS with a new key, when 70 % of its lifetime has
    /// passed (or --force); --watch keeps doing so.
    Renew(RenewArgs),
    /// Show what the connector says about a pairing (management info, over mTLS).
    Info(InfoArgs),
    /// Revoke a certificate: a pairing's own (--dir, over mTLS), or any by --serial or --sha256
    /// (an operator, through the Kubernetes API).
    Revoke(RevokeArgs),
}

/// How client commands print their result on stdout (progress and errors go to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClientOutput {
    /// Result format on stdout: text for people, json for programs.
    #[arg(short, long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,

    /// No progress lines on stderr (errors are still printed).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create a TokenRequest for Application APP, wait for its token, and print the URL, the
    /// token and the connector CA's pin (what `kubectl get tokenrequest` shows).
    Create(TokenCreateArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenCreateArgs {
    /// The Application to pair.
    pub application: String,

    /// Namespace of the TokenRequest (default: the kubeconfig's namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,

    /// Seconds each token stays good (30 to 86400; default: the TokenRequest's, 300).
    #[arg(long, value_parser = clap::value_parser!(i64).range(30..=86_400))]
    pub ttl: Option<i64>,

    /// Seconds to wait for the controller to issue the token.
    #[arg(long, default_value_t = 30)]
    pub wait_seconds: u64,

    #[command(flatten)]
    pub output: ClientOutput,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PairArgs {
    /// The connector URL: the TokenRequest's `url` (it carries the token), or the connector's
    /// base URL with --token.
    pub url: String,

    /// The one-time token (default: the URL's `token=`).
    #[arg(long, env = "CERTPAIR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Pin of the connector's CA (`sha256:<hex>` of its public key, the TokenRequest's
    /// caCertHash): the token is sent only to a connector whose chain carries that CA.
    #[arg(long, conflicts_with = "ca_file")]
    pub ca_cert_hash: Option<String>,

    /// Trust the connector's CA from this PEM file instead of a pin.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,

    /// Directory to write tls.key (0600), tls.crt (certificate then CA chain), ca.crt (the
    /// signing CA chain), connector-ca.crt and pairing.json to.
    #[arg(long)]
    pub out: std::path::PathBuf,

    /// Key to generate (rsa2048, rsa3072, rsa4096, rsa8192, ecdsa-p256, ecdsa-p384; default:
    /// what the connector announces).
    #[arg(long)]
    pub key_algorithm: Option<String>,

    /// Pair through the Compass GraphQL API (`/graphql`) instead of Kyma's REST API.
    #[arg(long)]
    pub graphql: bool,

    /// Replace a pairing that --out already holds.
    #[arg(long)]
    pub force: bool,

    /// Seconds to keep retrying while the certificate awaits approval or the connector is
    /// unavailable.
    #[arg(long, default_value_t = 60)]
    pub wait_seconds: u64,

    #[command(flatten)]
    pub output: ClientOutput,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RenewArgs {
    /// A directory `certpair pair` wrote.
    #[arg(long)]
    pub dir: std::path::PathBuf,

    /// Renew now, whatever the certificate's age.
    #[arg(long)]
    pub force: bool,

    /// Keep running: renew each certificate once 70 % of its lifetime has passed, retrying
    /// with backoff while the connector is unreachable. Stops on SIGTERM or Ctrl-C.
    #[arg(long)]
    pub watch: bool,

    /// Key to generate (default: the kind the connector announces).
    #[arg(long)]
    pub key_algorithm: Option<String>,

    /// Seconds a single renewal keeps retrying while the connector is unavailable (without
    /// --watch).
    #[arg(long, default_value_t = 60)]
    pub wait_seconds: u64,

    #[command(flatten)]
    pub output: ClientOutput,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InfoArgs {
    /// A directory `certpair pair` wrote.
    #[arg(long)]
    pub dir: std::path::PathBuf,

    #[command(flatten)]
    pub output: ClientOutput,
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["dir", "serial", "sha256"])))]
pub struct RevokeArgs {
    /// Revoke this pairing's own certificate, over mTLS.
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,

    /// Revoke the certificate with this serial (hex), through the Kubernetes API.
    #[arg(long, conflicts_with_all = ["dir", "sha256"])]
    pub serial: Option<String>,

    /// Revoke the certificate whose DER has this SHA-256 (hex), through the Kubernetes API.
    #[arg(long, conflicts_with_all = ["dir"])]
    pub sha256: Option<String>,

    /// Why, recorded in the Revocation.
    #[arg(long)]
    pub reason: Option<String>,

    #[command(flatten)]
    pub output: ClientOutput,
}

/// How the connector's internal API authenticates its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InternalAuth {
    /// A Kubernetes bearer token (TokenReview), authorized by a SubjectAccessReview.
    Kubernetes,
    /// Whoever reaches the port (Kyma's model): ship a NetworkPolicy that restricts it.
    Network,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConnectorArgs {
    /// Address of the TLS listener for applications (token and certificate-secured paths).
    #[arg(long, env = "CERTPAIR_CONNECTOR_ADDR", default_value = "0.0.0.0:9443")]
    pub connector_addr: SocketAddr,

    /// Address of the internal API (Kyma's token and revocation-by-hash calls), plain HTTP.
    /// Never expose it beyond the cluster.
    #[arg(long, env = "CERTPAIR_INTERNAL_ADDR", default_value = "0.0.0.0:9080")]
    pub internal_addr: SocketAddr,

    /// How the internal API authenticates callers.
    #[arg(long, env = "CERTPAIR_INTERNAL_AUTH", value_enum, default_value_t = InternalAuth::Kubernetes)]
    pub internal_auth: InternalAuth,

    /// Address of the plain HTTP listener for /healthz, /readyz and /metrics.
    #[arg(long, env = "CERTPAIR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Namespace of certpair's objects (the trust bundle, the CRL, the serving Secret) and of
    /// TokenRequests created through the internal API.
    #[arg(long, env = "CERTPAIR_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,

    /// The signer of the CSRs the connector creates.
    #[arg(long, env = "CERTPAIR_SIGNER_NAME", default_value = DEFAULT_SIGNER_NAME)]
    pub signer_name: String,

    /// Secret (type kubernetes.io/tls, in the namespace) with the serving certificate: the one
    /// the controller manages, or one you supply (e.g. from cert-manager).
    #[arg(
        long,
        env = "CERTPAIR_CONNECTOR_TLS_SECRET",
        default_value = "certpair-connector-tls"
    )]
    pub connector_tls_secret: String,

    /// Base of the URLs of token-secured paths in answers, as clients reach the connector,
    /// e.g. https://connector.example.com.
    #[arg(long, env = "CERTPAIR_EXTERNAL_URL")]
    pub external_url: String,

    /// Base of the URLs of certificate-secured paths (default: --external-url).
    #[arg(long, env = "CERTPAIR_CERTIFICATE_SECURED_URL")]
    pub certificate_secured_url: Option<String>,

    /// Base of the application gateway URLs announced (eventsUrl, metadataUrl); certpair does
    /// not serve them (default: --external-url).
    #[arg(long, env = "CERTPAIR_GATEWAY_URL")]
    pub gateway_url: Option<String>,

    /// Compass's Director URL, announced as `managementPlaneInfo.directorURL` by the GraphQL
    /// API (null when unset); certpair does not serve it.
    #[arg(long, env = "CERTPAIR_DIRECTOR_URL")]
    pub director_url: Option<String>,

    /// Answer GraphQL introspection queries (`__schema`, `__type`). Off by default: the
    /// schema is published at /graphql/schema.graphql, and clients need no introspection.
    #[arg(long, env = "CERTPAIR_GRAPHQL_INTROSPECTION", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub graphql_introspection: bool,

    /// Seconds a pairing or renewal waits for its CSR to be signed before answering 503 with
    /// the CSR's name (a retry with the same token then picks the certificate up).
    #[arg(long, env = "CERTPAIR_ISSUE_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub issue_timeout_seconds: u64,

    /// Lifetime of tokens created through the internal API, in seconds.
    #[arg(long, env = "CERTPAIR_TOKEN_TTL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(i64).range(30..=86_400))]
    pub token_ttl_seconds: i64,

    /// Seconds the listener keeps serving after SIGTERM, closing each connection after its
    /// answer, before it stops accepting and drains.
    #[arg(long, env = "CERTPAIR_DRAIN_SECONDS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=10))]
    pub drain_seconds: u64,

    #[command(flatten)]
    pub subject: SubjectDefaults,

    #[command(flatten)]
    pub log: LogArgs,
}

/// Deletion of finished and stale CSRs of certpair's signer (kube-controller-manager's CSR
/// cleaner, with its defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct CleanupArgs {
    /// Delete CSRs of certpair's signer once they are done with: issued, denied or failed ones
    /// after --csr-finished-retention-seconds, undecided ones after
    /// --csr-pending-retention-seconds, issued ones whose certificate expired at once.
    #[arg(long, env = "CERTPAIR_CSR_CLEANUP", default_value_t = true, action = clap::ArgAction::Set)]
    pub csr_cleanup: bool,

    /// How long an issued, denied or failed CSR is kept after that decision, in seconds.
    #[arg(long, env = "CERTPAIR_CSR_FINISHED_RETENTION_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub csr_finished_retention_seconds: u64,

    /// How long a CSR nobody decided is kept after its creation, in seconds.
    #[arg(long, env = "CERTPAIR_CSR_PENDING_RETENTION_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub csr_pending_retention_seconds: u64,

    /// Seconds between two cleanup passes (each lists the signer's CSRs in pages).
    #[arg(long, env = "CERTPAIR_CSR_CLEANUP_INTERVAL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub csr_cleanup_interval_seconds: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Address of the plain HTTP listener for /healthz, /readyz and /metrics.
    #[arg(long, env = "CERTPAIR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Namespace of certpair's own objects: the signing CA Secret, the trust bundle ConfigMap
    /// and the leader Lease.
    #[arg(long, env = "CERTPAIR_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,

    /// The `spec.signerName` this controller approves and signs for.
    #[arg(long, env = "CERTPAIR_SIGNER_NAME", default_value = DEFAULT_SIGNER_NAME)]
    pub signer_name: String,

    /// What to do with a well-formed request whose CN names no Application: deny it, or leave
    /// it pending for a person or pipeline to approve.
    #[arg(long, env = "CERTPAIR_UNMATCHED", value_enum, default_value_t = Unmatched::Deny)]
    pub unmatched: Unmatched,

    #[command(flatten)]
    pub subject: SubjectDefaults,

    /// Certificate lifetime when neither the CSR (spec.expirationSeconds) nor the Application
    /// sets one, in seconds.
    #[arg(long, env = "CERTPAIR_DEFAULT_EXPIRATION_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(600..=157_680_000))]
    pub default_expiration_seconds: u64,

    /// Longest certificate lifetime when the Application sets no maximum, in seconds.
    #[arg(long, env = "CERTPAIR_MAX_EXPIRATION_SECONDS", default_value_t = 2_592_000,
          value_parser = clap::value_parser!(u64).range(600..=157_680_000))]
    pub max_expiration_seconds: u64,

    /// Generate the signing CA (ECDSA P-256) when its Secret does not exist. Turn off to
    /// require a CA you provide (bring your own: `kubectl create secret tls ...`).
    #[arg(long, env = "CERTPAIR_GENERATE_CA", default_value_t = true, action = clap::ArgAction::Set)]
    pub generate_ca: bool,

    /// Validity of a generated signing CA, in days.
    #[arg(long, env = "CERTPAIR_CA_VALIDITY_DAYS", default_value_t = 3650,
          value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub ca_validity_days: u64,

    /// This replica's identity in the leader Lease (default: the host name, which is the pod
    /// name in a Deployment).
    #[arg(long, env = "CERTPAIR_IDENTITY")]
    pub identity: Option<String>,

    /// Seconds a leader holds the Lease without renewing it; a standby takes over after this.
    #[arg(long, env = "CERTPAIR_LEASE_DURATION_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_duration_seconds: u64,

    #[command(flatten)]
    pub webhook: WebhookArgs,

    #[command(flatten)]
    pub connector: ConnectorSideArgs,

    /// Receive the initial list of CSRs as a stream of single objects (WatchList) rather than
    /// in pages, so CSRs with large annotations never sit in memory a page at a time. Needs the
    /// apiserver's WatchList feature (on by default in Kubernetes 1.32 and from 1.34; off in
    /// 1.33). Off: pages of 50 objects.
    #[arg(long, env = "CERTPAIR_STREAMING_LISTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub streaming_lists: bool,

    /// Publish a Normal `Issued` Event on each CSR it signs (serial, subject, expiry, and the
    /// approval made in the same pass), which `kubectl describe csr` shows. Off, an issuance
    /// costs the apiserver one write less (three instead of four with the create): the
    /// Approved condition, the certificate and the metrics still record it. Denials and
    /// failures always get their Warning Event.
    #[arg(long, env = "CERTPAIR_ISSUED_EVENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub issued_events: bool,

    #[command(flatten)]
    pub cleanup: CleanupArgs,

    /// Concurrent CSR reconciliations.
    #[arg(long, env = "CERTPAIR_WORKERS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    #[command(flatten)]
    pub log: LogArgs,
}

/// The admission webhook and its self-managed certificates.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Serve the admission webhook over TLS on this address (e.g. 0.0.0.0:8443). Unset: no
    /// webhook.
    #[arg(long, env = "CERTPAIR_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,

    /// Name of the ValidatingWebhookConfiguration whose caBundle certpair keeps current.
    #[arg(long, env = "CERTPAIR_WEBHOOK_CONFIG_NAME", default_value = "certpair")]
    pub webhook_config_name: String,

    /// DNS names in the serving certificate (comma-separated).
    #[arg(
        long,
        env = "CERTPAIR_WEBHOOK_DNS_NAMES",
        value_delimiter = ',',
        default_value = "certpair-webhook.certpair-system.svc"
    )]
    pub webhook_dns_names: Vec<String>,

    /// IP addresses in the serving certificate (comma-separated), e.g. 127.0.0.1 for a
    /// webhook the apiserver reaches by URL.
    #[arg(long, env = "CERTPAIR_WEBHOOK_IPS", value_delimiter = ',')]
    pub webhook_ips: Vec<std::net::IpAddr>,

    /// Validity of a generated webhook CA, in seconds (default one year).
    #[arg(long, env = "CERTPAIR_WEBHOOK_CA_VALIDITY_SECONDS", default_value_t = 31_536_000,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub webhook_ca_validity_seconds: u64,

    /// Validity of a serving certificate, in seconds (default 90 days).
    #[arg(long, env = "CERTPAIR_WEBHOOK_SERVING_VALIDITY_SECONDS", default_value_t = 7_776_000,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub webhook_serving_validity_seconds: u64,

    /// Renew a certificate this many seconds before it expires (default 30 days). Must be
    /// shorter than both validities.
    #[arg(
        long,
        env = "CERTPAIR_WEBHOOK_LOOK_AHEAD_SECONDS",
        default_value_t = 2_592_000
    )]
    pub webhook_look_ahead_seconds: u64,

    /// Seconds between periodic checks of the webhook certificates.
    #[arg(long, env = "CERTPAIR_WEBHOOK_CHECK_INTERVAL_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_check_interval_seconds: u64,

    /// Seconds the webhook keeps serving after SIGTERM, closing each connection after its
    /// answer, before it stops accepting and drains: the apiserver's kept-alive connections
    /// then end cleanly after a response instead of being cut while it may be writing to them.
    /// At most 10: with the 5 s preStop sleep and the 10 s bound on in-flight reviews that
    /// stays inside Kubernetes' default 30 s grace period.
    #[arg(long, env = "CERTPAIR_WEBHOOK_DRAIN_SECONDS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=10))]
    pub webhook_drain_seconds: u64,
}

/// What the controller's leader does for the connector: TokenRequests, the connector's
/// certificates, the CRL.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectorSideArgs {
    /// The connector's external URL (as its --external-url): a TokenRequest's status.url is
    /// its signingRequests/info there. Unset: TokenRequests are not served.
    #[arg(long, env = "CERTPAIR_CONNECTOR_URL")]
    pub connector_url: Option<String>,

    /// DNS names of the connector's serving certificate. With these (or --connector-ips)
    /// certpair manages it: Secrets certpair-connector-ca and certpair-connector-tls, and the
    /// CA published in ConfigMap certpair-connector-ca (the pin in TokenRequests). Without
    /// them the certificate is yours (e.g. cert-manager; publish its CA in that ConfigMap).
    #[arg(long, env = "CERTPAIR_CONNECTOR_DNS_NAMES", value_delimiter = ',')]
    pub connector_dns_names: Vec<String>,

    /// IP addresses of the connector's serving certificate (comma-separated).
    #[arg(long, env = "CERTPAIR_CONNECTOR_IPS", value_delimiter = ',')]
    pub connector_ips: Vec<std::net::IpAddr>,

    /// Validity of the connector's managed serving certificate, in seconds (default 90 days).
    #[arg(long, env = "CERTPAIR_CONNECTOR_SERVING_VALIDITY_SECONDS", default_value_t = 7_776_000,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub connector_serving_validity_seconds: u64,

    /// Renew the connector's serving certificate this many seconds before it expires (default
    /// 30 days); its CA follows the webhook's CA validity and look-ahead.
    #[arg(
        long,
        env = "CERTPAIR_CONNECTOR_LOOK_AHEAD_SECONDS",
        default_value_t = 2_592_000
    )]
    pub connector_look_ahead_seconds: u64,

    /// Seconds an ended TokenRequest (Used, Expired, Error) is kept before it is deleted.
    #[arg(long, env = "CERTPAIR_TOKEN_RETENTION_SECONDS", default_value_t = 3600)]
    pub token_retention_seconds: u64,

    /// Seconds from a CRL's thisUpdate to its nextUpdate; it is published again at half.
    #[arg(long, env = "CERTPAIR_CRL_VALIDITY_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(120..=2_592_000))]
    pub crl_validity_seconds: u64,
}

/// Subject fields every request must carry unless its Application sets them itself.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SubjectDefaults {
    /// Required organization (O) for Applications that set none.
    #[arg(long, env = "CERTPAIR_DEFAULT_ORGANIZATION")]
    pub default_organization: Option<String>,
    /// Required organizational unit (OU) for Applications that set none.
    #[arg(long, env = "CERTPAIR_DEFAULT_ORGANIZATIONAL_UNIT")]
    pub default_organizational_unit: Option<String>,
    /// Required locality (L) for Applications that set none.
    #[arg(long, env = "CERTPAIR_DEFAULT_LOCALITY")]
    pub default_locality: Option<String>,
    /// Required state or province (ST) for Applications that set none.
    #[arg(long, env = "CERTPAIR_DEFAULT_PROVINCE")]
    pub default_province: Option<String>,
    /// Required country (C) for Applications that set none: two letters (ISO 3166-1).
    #[arg(long, env = "CERTPAIR_DEFAULT_COUNTRY", value_parser = parse_country)]
    pub default_country: Option<String>,
}

/// What happens to a well-formed request naming no registered Application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Unmatched {
    Deny,
    Pending,
}

impl From<Unmatched> for policy::Unmatched {
    fn from(u: Unmatched) -> Self {
        match u {
            Unmatched::Deny => Self::Deny,
            Unmatched::Pending => Self::Pending,
        }
    }
}

impl SubjectDefaults {
    pub fn into_requirements(self) -> SubjectRules {
        let Self {
            default_organization,
            default_organizational_unit,
            default_locality,
            default_province,
            default_country,
        } = self;
        SubjectRules {
            organization: default_organization,
            organizational_unit: default_organizational_unit,
            locality: default_locality,
            province: default_province,
            country: default_country,
        }
    }
}

fn parse_country(value: &str) -> Result<String, String> {
    if value.len() == 2 && value.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a two-letter upper-case country code such as DE"
        ))
    }
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

impl LogArgs {
    /// Installs logging as these flags say.
    pub fn init(&self) -> crate::Result<()> {
        let format = match self.log_format {
            LogFormat::Text => telemetry::LogFormat::Text,
            LogFormat::Json => telemetry::LogFormat::Json,
        };
        telemetry::init_logging(format, &self.log_filter)
    }
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
        assert_eq!(args.signer_name, "certpair.dev/application");
        assert_eq!(args.unmatched, Unmatched::Deny);
        assert!(args.generate_ca);
    }

    #[test]
    fn default_country_must_be_two_letters() {
        assert!(
            Cli::try_parse_from(["certpair", "controller", "--default-country", "DEU"]).is_err()
        );
        assert!(Cli::try_parse_from(["certpair", "controller", "--default-country", "DE"]).is_ok());
    }

    #[test]
    fn lifetimes_below_the_floor_are_refused() {
        let err = Cli::try_parse_from(["certpair", "controller", "--max-expiration-seconds", "60"])
            .expect_err("must reject");
        assert!(
            err.to_string().contains("--max-expiration-seconds"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_bad_address() {
        let err = Cli::try_parse_from(["certpair", "controller", "--http-addr", "nope"])
            .expect_err("must reject");
        assert!(err.to_string().contains("--http-addr"));
    }
}
