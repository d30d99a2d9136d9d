//! The webhook's HTTPS listener: its flags checked once at start-up, the server every replica
//! runs, and its graceful drain on SIGTERM.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_web::web;
use kube::{Client, runtime::reflector::ObjectRef, runtime::reflector::Store};
use tokio::task::JoinHandle;
use tracing::info;

use super::{
    certificates::{self, WEBHOOK_CERTIFICATE},
    review::{WebhookState, configure},
};
use crate::{
    api::Application,
    cli::WebhookArgs,
    error::{Error, Result},
    limits,
    managed_tls::{self, ManagedTls},
    policy::Defaults,
    server::Readiness,
    tls::CertSlot,
};

/// The webhook's configuration, checked once at start-up.
pub struct WebhookConfig {
    pub addr: SocketAddr,
    /// Its managed CA and serving certificate.
    pub tls: ManagedTls,
    pub drain_window: Duration,
}

impl WebhookConfig {
    /// `None` when the webhook is off (no `--webhook-addr`); an error for flags that cannot
    /// work together.
    pub fn from_args(args: WebhookArgs, namespace: &str) -> Result<Option<Self>> {
        let WebhookArgs {
            webhook_addr,
            webhook_config_name,
            webhook_dns_names,
            webhook_ips,
            webhook_ca_validity_seconds,
            webhook_serving_validity_seconds,
            webhook_look_ahead_seconds,
            // Read by the controller: it paces every managed certificate.
            webhook_check_interval_seconds: _,
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
            tls: certificates::managed(
                namespace,
                webhook_config_name,
                dns_names,
                webhook_ips,
                Duration::from_secs(webhook_ca_validity_seconds),
                Duration::from_secs(webhook_serving_validity_seconds),
                Duration::from_secs(webhook_look_ahead_seconds),
            ),
            drain_window: Duration::from_secs(webhook_drain_seconds),
        }))
    }
}

/// Binds the TLS listener for admission reviews and starts loading its certificate.
pub fn serve(
    config: &WebhookConfig,
    client: Client,
    signer_name: &str,
    defaults: &Defaults,
    apps: Store<Application>,
    readiness: Arc<Readiness>,
) -> Result<WebhookServer> {
    readiness.register(WEBHOOK_CERTIFICATE);
    let slot = Arc::new(CertSlot::default());
    let draining = Arc::new(AtomicBool::new(false));
    tokio::spawn(managed_tls::load_serving_secret(
        client,
        Arc::new(config.tls.clone()),
        slot.clone(),
        readiness.clone(),
        WEBHOOK_CERTIFICATE,
    ));
    let state = web::Data::new(WebhookState {
        signer_name: signer_name.to_owned(),
        defaults: defaults.clone(),
        applications: Arc::new(move |name: &str| {
            apps.get(&ObjectRef::new(name)).map(|a| (&a.spec).into())
        }),
        draining: draining.clone(),
        budget: Default::default(),
    });
    let acceptor =
        crate::tls::acceptor(slot).map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?;
    let addr = config.addr;
    let listener = limits::listener(addr).map_err(|source| Error::Bind { addr, source })?;
    let server =
        https_server(state, acceptor, listener).map_err(|source| Error::Bind { addr, source })?;
    info!(%addr, "serving the admission webhook over TLS");
    Ok(WebhookServer {
        handle: server.handle(),
        task: tokio::spawn(server),
        draining,
        drain_window: config.drain_window,
        readiness,
    })
}

/// The running webhook listener and what its graceful stop needs.
pub struct WebhookServer {
    handle: actix_web::dev::ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
    draining: Arc<AtomicBool>,
    drain_window: Duration,
    readiness: Arc<Readiness>,
}

impl WebhookServer {
    /// Graceful stop in two steps. For `drain_window` it keeps serving, but `/readyz` answers
    /// 503 and every answer closes its connection: an apiserver connection that is in use ends cleanly after a
    /// response. (Cutting a kept-alive connection can race a request the apiserver is just
    /// writing; Go does not retry a POST, so that admission call would fail.) Then it stops
    /// accepting, finishes the reviews in flight (actix closes idle connections and answers
    /// in-flight ones with `Connection: close`), and returns; bounded by the server's shutdown
    /// timeout.
    pub async fn drain(self) {
        self.draining.store(true, Ordering::Relaxed);
        self.readiness.shutting_down();
        info!(window = ?self.drain_window, "webhook: draining; answers now close their connection");
        tokio::time::sleep(self.drain_window).await;
        info!("webhook: no longer accepting connections; finishing in-flight reviews");
        self.handle.stop(true).await;
        self.task.abort();
    }
}

/// Worker threads of the TLS listener. Two, one per core of the machines certpair is sized
/// for: one worker saturates at about 7,000 reviews/s here, two reach 11,000 (hack/bench.sh
/// webhook). Reviews are CPU-bound (an RSA or ECDSA verification each), so more workers
/// than cores only add context switches.
pub const WORKERS: usize = 2;

/// The webhook's HTTPS server on an already bound listener: what the controller runs and what
/// the benchmark measures. Signals are left to the caller, which stops the server gracefully
/// (in-flight reviews finish) through the returned server's handle.
pub fn https_server(
    state: web::Data<WebhookState>,
    acceptor: openssl::ssl::SslAcceptorBuilder,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(limits::bounded(
        actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(state.clone())
                .configure(configure)
        })
        .workers(WORKERS),
        limits::WEBHOOK,
    )
    .listen_openssl(listener, acceptor)?
    .run())
}
