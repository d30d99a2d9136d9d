//! The plain HTTP listener for probes and metrics. It is separate from the TLS listeners so a
//! broken certificate never hides the controller's health from the kubelet.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use actix_web::{App, HttpResponse, HttpServer, dev::Server, get, web};

use crate::{
    error::{Error, Result},
    telemetry::Encode,
};

/// Named readiness checks; `/readyz` answers 200 only when every registered check has passed
/// and the process is not shutting down.
#[derive(Debug, Default)]
pub struct Readiness {
    checks: RwLock<BTreeMap<&'static str, bool>>,
    shutting_down: AtomicBool,
}

impl Readiness {
    /// From now on `/readyz` answers 503: the process is draining, so whatever routes traffic
    /// by readiness (a Service outside Kubernetes' own endpoint handling, a load balancer)
    /// sends no new connections while the last answers go out.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Registers a check that starts out failing.
    pub fn register(&self, name: &'static str) {
        self.write().insert(name, false);
    }

    pub fn set(&self, name: &'static str, ok: bool) {
        self.write().insert(name, ok);
    }

    /// Names of the checks that have not passed; empty means ready.
    pub fn failing(&self) -> Vec<&'static str> {
        let checks = match self.checks.read() {
            Ok(c) => c,
            // A panicking writer cannot leave a map of booleans half-updated.
            Err(poisoned) => poisoned.into_inner(),
        };
        checks
            .iter()
            .filter(|(_, ok)| !**ok)
            .map(|(name, _)| *name)
            .collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<&'static str, bool>> {
        match self.checks.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// What the probe and metrics handlers read.
pub struct HttpState {
    pub metrics: Arc<dyn Encode>,
    pub readiness: Arc<Readiness>,
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

#[get("/readyz")]
async fn readyz(state: web::Data<HttpState>) -> HttpResponse {
    if state.readiness.is_shutting_down() {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "ready": false, "shuttingDown": true }));
    }
    let failing = state.readiness.failing();
    if failing.is_empty() {
        HttpResponse::Ok().content_type("text/plain").body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "ready": false, "waitingFor": failing }))
    }
}

#[get("/metrics")]
async fn metrics(state: web::Data<HttpState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// Routes of the plain listener, shared by the server and the in-process tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

/// The plain listener, started: [`serve_http`] bound and spawned, with a log line.
pub fn start_http(
    addr: SocketAddr,
    state: Arc<HttpState>,
) -> Result<(
    actix_web::dev::ServerHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let server = serve_http(addr, state)?;
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(http_addr = %addr, "serving /healthz, /readyz and /metrics");
    Ok((handle, task))
}

/// Binds the plain HTTP listener. The returned server must be awaited (or spawned); stop it
/// through its handle. Signals are left to the caller so one SIGTERM drains every listener.
pub fn serve_http(addr: SocketAddr, state: Arc<HttpState>) -> Result<Server> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(configure))
        .workers(1)
        .disable_signals()
        .bind(addr)
        .map_err(|source| Error::Bind { addr, source })?
        .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{body::to_bytes, http::StatusCode, test};

    fn state() -> Arc<HttpState> {
        Arc::new(HttpState {
            metrics: Arc::new(crate::telemetry::Metrics::new()),
            readiness: Arc::new(Readiness::default()),
        })
    }

    #[actix_web::test]
    async fn readyz_waits_for_every_check() {
        let state = state();
        state.readiness.register("applications-cache");
        let app = test::init_service(
            App::new()
                .app_data(web::Data::from(state.clone()))
                .configure(configure),
        )
        .await;

        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = to_bytes(resp.into_body()).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains("applications-cache"));

        state.readiness.set("applications-cache", true);
        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);

        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);

        // Draining: not ready any more, however the checks stand; still alive.
        state.readiness.shutting_down();
        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = to_bytes(resp.into_body()).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains("shuttingDown"));
        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn metrics_are_served() {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::from(state()))
                .configure(configure),
        )
        .await;
        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = to_bytes(resp.into_body()).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains("certpair_build_info"));
    }
}
