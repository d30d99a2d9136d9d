//! `certpair connector`: two-phase pairing for external applications, in the shapes of Kyma's
//! Application Connector. Stateless: every replica serves, tokens and revocations live in the
//! API server, and every certificate is issued through a native CSR that the controller
//! approves and signs. One feature, one folder:
//! - `service`: the one service (tokens, issuance, identity, renewal, revocation);
//! - `tokens`: the TokenRequest cache (hashes only) and redemption by conditional write;
//! - `issuance`: CSRs created as the connector and one watch for their outcomes;
//! - `rest`: Kyma's REST shapes over the service; `graphql`: Compass's GraphQL shapes over
//!   the same service; `error`: errors to HTTP and GraphQL, in one place;
//! - `internal`: Kyma's internal API (tokens, revocation by hash) and Compass's internal token
//!   mutations, on their own listener.

pub mod error;
pub mod graphql;
pub mod internal;
pub mod issuance;
pub mod rest;
pub mod service;
pub mod tokens;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_web::{
    App, HttpServer,
    dev::{Service as _, ServiceResponse},
    http::ConnectionType,
    web,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, runtime::watcher};
use openssl::x509::X509;
use tracing::{info, warn};

pub use error::ConnectorError;

use crate::{
    api::{
        Application, CA_BUNDLE_CONFIGMAP, CA_BUNDLE_KEY, CRL_CONFIGMAP, CRL_DER_KEY, Revocation,
        TokenRequest,
    },
    cli::ConnectorArgs,
    error::{Error, Result},
    k8s::{cache, watch_named},
    limits,
    managed_tls::load_secret,
    policy::Defaults,
    server::{self, HttpState, Readiness},
    slot::Slot,
    telemetry::ConnectorMetrics,
    tls::{CertSlot, TrustSlot, mtls_acceptor, record_peer_certificate},
};

/// Readiness checks of a connector replica.
const SERVING_CERTIFICATE: &str = "connector-certificate";
const TRUST_BUNDLE: &str = "signing-ca-bundle";
const APPLICATIONS: &str = "applications-cache";
const TOKENS: &str = "token-requests-cache";
const REVOCATIONS: &str = "revocations-cache";

/// Worker threads of the TLS listener (see `webhook::WORKERS`: one per core).
const WORKERS: usize = 2;

pub async fn run(args: ConnectorArgs) -> Result<()> {
    let ConnectorArgs {
        connector_addr,
        internal_addr,
        internal_auth,
        http_addr,
        namespace,
        signer_name,
        connector_tls_secret,
        external_url,
        certificate_secured_url,
        gateway_url,
        director_url,
        graphql_introspection,
        issue_timeout_seconds,
        token_ttl_seconds,
        drain_seconds,
        subject,
        log,
    } = args;
    log.init()?;
    let external = external_url.trim_end_matches('/').to_owned();
    if !external.starts_with("https://") {
        return Err(Error::Config(format!(
            "--external-url {external_url:?} must be an https:// URL: it is where clients send tokens"
        )));
    }
    let urls = service::Urls {
        certificate_secured: certificate_secured_url
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| external.clone()),
        gateway: gateway_url
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| external.clone()),
        director: director_url.map(|u| u.trim_end_matches('/').to_owned()),
        external,
    };
    let client = crate::controller::connect().await?;

    let metrics = Arc::new(ConnectorMetrics::new());
    let readiness = Arc::new(Readiness::default());
    for check in [
        SERVING_CERTIFICATE,
        TRUST_BUNDLE,
        APPLICATIONS,
        TOKENS,
        REVOCATIONS,
    ] {
        readiness.register(check);
    }
    let (http_handle, http_task) = server::start_http(
        http_addr,
        Arc::new(HttpState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        }),
    )?;

    let synced = |check: &'static str| {
        let readiness = readiness.clone();
        move || {
            readiness.set(check, true);
            info!(cache = check, "synced");
        }
    };
    let (apps, apps_task) = cache(
        Api::<Application>::all(client.clone()),
        watcher::Config::default(),
        |a| a.metadata.managed_fields = None,
        synced(APPLICATIONS),
    );
    let (token_requests, tokens_task) = cache(
        Api::<TokenRequest>::all(client.clone()),
        watcher::Config::default(),
        tokens::slim,
        synced(TOKENS),
    );
    let revocation_metric = metrics.clone();
    let (revocations, revocations_task) = cache(
        Api::<Revocation>::all(client.clone()),
        watcher::Config::default(),
        |r| r.metadata.managed_fields = None,
        synced(REVOCATIONS),
    );
    let revocations_gauge = {
        let store = revocations.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                revocation_metric
                    .revocations
                    .set(i64::try_from(store.len()).unwrap_or(i64::MAX));
            }
        }
    };

    let serving = Arc::new(CertSlot::default());
    let trust = Arc::new(TrustSlot::default());
    let crl = Arc::new(Slot::<Vec<u8>>::default());
    let serving_task = load_secret(
        client.clone(),
        namespace.clone(),
        connector_tls_secret,
        serving.clone(),
        readiness.clone(),
        SERVING_CERTIFICATE,
    );
    let trust_task = watch_configmap(client.clone(), namespace.clone(), CA_BUNDLE_CONFIGMAP, {
        let trust = trust.clone();
        let readiness = readiness.clone();
        move |map| {
            let certs = map
                .and_then(|m| m.data.as_ref())
                .and_then(|d| d.get(CA_BUNDLE_KEY))
                .and_then(|pem| X509::stack_from_pem(pem.as_bytes()).ok())
                .unwrap_or_default();
            readiness.set(TRUST_BUNDLE, !certs.is_empty());
            info!(
                certificates = certs.len(),
                "signing CA bundle loaded for client certificates"
            );
            trust.set(certs);
        }
    });
    let crl_task = watch_configmap(client.clone(), namespace.clone(), CRL_CONFIGMAP, {
        let crl = crl.clone();
        move |map| match map
            .and_then(|m| m.binary_data.as_ref())
            .and_then(|d| d.get(CRL_DER_KEY))
        {
            Some(der) => crl.set(der.0.clone()),
            None => crl.clear(),
        }
    });

    let issuer = Arc::new(issuance::Issuer::new(
        client.clone(),
        signer_name,
        Duration::from_secs(issue_timeout_seconds),
    ));
    let defaults = Defaults {
        subject: subject.into_requirements(),
        ..Defaults::default()
    };
    let service = Arc::new(service::Service::new(
        client.clone(),
        defaults,
        apps,
        tokens::Tokens {
            client: client.clone(),
            store: token_requests,
        },
        revocations,
        issuer.clone(),
        urls.clone(),
        metrics.clone(),
        crl,
        trust.clone(),
    ));

    let draining = Arc::new(AtomicBool::new(false));
    let public = public_server(
        service.clone(),
        graphql_introspection,
        mtls_acceptor(serving, trust)
            .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?,
        connector_addr,
        draining.clone(),
    )?;
    let public_handle = public.handle();
    let public_task = tokio::spawn(public);
    info!(addr = %connector_addr, external_url = %urls.external, "serving the connector over TLS");

    let internal = internal::serve(
        internal_addr,
        Arc::new(internal::InternalState {
            client: client.clone(),
            auth: internal_auth,
            namespace,
            ttl_seconds: token_ttl_seconds,
            signer_name: issuer.signer_name.clone(),
            urls,
        }),
    )?;
    let internal_handle = internal.handle();
    let internal_task = tokio::spawn(internal);
    info!(addr = %internal_addr, auth = ?internal_auth, "serving the internal API");

    let background = async {
        tokio::join!(
            apps_task,
            tokens_task,
            revocations_task,
            revocations_gauge,
            serving_task,
            trust_task,
            crl_task,
            issuer.clone().watch()
        );
    };
    let outcome = tokio::select! {
        signal = crate::controller::shutdown_signal() => signal,
        () = background => Ok(()),
        served = public_task => server_ended(served),
        served = internal_task => server_ended(served),
        served = http_task => server_ended(served),
    };
    // Drain like the webhook: keep answering for the window, each answer closing its
    // connection and /readyz answering 503, then stop accepting and finish what is in flight.
    draining.store(true, Ordering::Relaxed);
    readiness.shutting_down();
    info!(window_seconds = drain_seconds, "draining");
    tokio::time::sleep(Duration::from_secs(drain_seconds)).await;
    tokio::join!(
        public_handle.stop(true),
        internal_handle.stop(true),
        http_handle.stop(true)
    );
    info!("stopped");
    outcome
}

fn server_ended(
    served: std::result::Result<std::io::Result<()>, tokio::task::JoinError>,
) -> Result<()> {
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Server(e)),
        Err(e) => Err(Error::Server(std::io::Error::other(e))),
    }
}

/// The public TLS listener: Kyma's REST routes, client certificates asked for on every
/// handshake and recorded for the mTLS paths, the connector's connection limits
/// ([`limits::CONNECTOR`]) and the same time limits as the webhook.
pub fn public_server(
    service: Arc<service::Service>,
    introspection: bool,
    acceptor: openssl::ssl::SslAcceptorBuilder,
    addr: SocketAddr,
    draining: Arc<AtomicBool>,
) -> Result<actix_web::dev::Server> {
    let schema = web::Data::new(graphql::schema(service.clone(), introspection));
    let data = web::Data::new(service);
    let listener = limits::listener(addr).map_err(|source| Error::Bind { addr, source })?;
    let server = HttpServer::new(move || {
        let draining = draining.clone();
        App::new()
            .app_data(data.clone())
            .app_data(schema.clone())
            .wrap_fn(move |req, srv| {
                let draining = draining.clone();
                let answer = srv.call(req);
                async move {
                    let mut res: ServiceResponse = answer.await?;
                    if draining.load(Ordering::Relaxed) {
                        res.response_mut()
                            .head_mut()
                            .set_connection_type(ConnectionType::Close);
                    }
                    Ok(res)
                }
            })
            .configure(rest::configure)
    })
    .workers(WORKERS);
    let server = limits::bounded(server, limits::CONNECTOR)
        .on_connect(record_peer_certificate)
        .listen_openssl(listener, acceptor)
        .map_err(|source| Error::Bind { addr, source })?
        .run();
    Ok(server)
}

/// Calls `apply` with ConfigMap `name` whenever it changes (`None` once it is deleted).
async fn watch_configmap(
    client: Client,
    namespace: String,
    name: &'static str,
    apply: impl Fn(Option<&ConfigMap>),
) {
    let maps: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let mut events = watch_named(maps, name).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(map) | watcher::Event::InitApply(map)) => apply(Some(&map)),
            Ok(watcher::Event::Delete(_)) => apply(None),
            Ok(_) => {}
            Err(e) => warn!(configmap = name, error = %e, "watching failed; retrying"),
        }
    }
}
