//! Limits every certpair HTTPS listener applies, so that what a hostile client sends cannot
//! make the process hold unbounded memory: connections per worker, TLS handshakes in flight,
//! time to send a request, the size of one body, and the bytes of large bodies held at once
//! across all connections.
//!
//! Why the last one: a per-body limit alone multiplies by the number of connections (500
//! connections each sending all but the last byte of a 1 MiB body held the webhook at 300 MiB).
//! Bodies up to [`SMALL_BODY_BYTES`] (every real AdmissionReview of a CSR: a few KiB) are read
//! at once; a larger one first takes room for its whole declared length from one shared
//! [`BodyBudget`], waiting (within the read timeout) while others hold it. So a legitimate
//! large request waits for room instead of failing, and a flood of large bodies costs at most
//! the budget, while small requests never queue behind it.

use std::time::Duration;

use actix_web::{HttpRequest, http::StatusCode, web};
use futures::StreamExt;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Bodies up to this size are read without taking room from the budget.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;
/// Bytes of large bodies held at once across all connections of a listener: room for four
/// 1 MiB reviews (a real one is a few KiB; the apiserver sends one per CSR created).
pub const LARGE_BODY_BUDGET: usize = 4 * MAX_BODY_BYTES;
/// Time to receive a whole body, including any wait for room: the apiserver's own webhook
/// timeout is 5 s, so a body still arriving after that serves nobody.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to receive a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle kept-alive connection to the webhook stays open: longer than the
/// apiserver's own idle timeout for webhook connections (90 s, Go's default), so it is always
/// the client that closes an idle connection. The other way round, the apiserver can send a
/// review on a connection the server is just closing, and Go does not retry a POST. It also
/// keeps the apiserver's connections through a flood, when a new one would wait behind the
/// flood's in the listen backlog.
pub const KEEP_ALIVE: Duration = Duration::from_secs(100);
/// Connections waiting in the kernel for a worker to take them (the listen backlog): room
/// for a flood's reconnects without the kernel dropping a real client's SYN (with the usual
/// 128, 1,000 idle clients made new connections to the connector time out in `connect`).
/// Linux caps it at `net.core.somaxconn` (4096 by default since Linux 5.4, 128 before).
pub const LISTEN_BACKLOG: i32 = 1024;

/// Connections per worker of a listener whose clients are a few in-cluster components (the
/// apiserver for the webhook, the controller for the connector's internal API).
pub const MAX_CONNECTIONS_PER_WORKER: usize = 64;

/// The connection limits of one listener, per worker thread: the connections it holds at
/// once (further ones wait in the listen backlog), the TLS handshakes among them, and how
/// long an idle kept-alive connection stays.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub connections: usize,
    pub handshakes: usize,
    pub keep_alive: Duration,
}

/// The webhook's one client is the apiserver, which keeps its connections alive (one per
/// review in flight), so few slots are needed and they are what bounds memory. A connection
/// sending a body holds about 450 KiB (actix-http buffers up to 128 KiB of unread input,
/// then its payload buffer and OpenSSL's records), so the connection limit, not the body
/// budget, bounds a flood of slow senders: at 128 a flood held the webhook at 138–148 MiB,
/// at 64 at 101 MiB (tests/floods.rs; the bound is half the Deployment's 256 MiB).
pub const WEBHOOK: ConnectionLimits = ConnectionLimits {
    connections: MAX_CONNECTIONS_PER_WORKER,
    handshakes: 32,
    keep_alive: KEEP_ALIVE,
};

/// The connector's clients are external applications, each opening a connection of its own
/// for a call or two, so they must find a free slot: enough that 1,000 idle connections (each
/// held for the TLS handshake or head timeout, 3 s or 5 s, then made again) leave room. (At
/// 256 per worker, such a flood made each call wait 4–5 s in the listen backlog.) The price is
/// what each slot may cost before any handler runs: a head that never ends is buffered up to
/// actix-http's 128 KiB, plus OpenSSL's records, about 190 KiB a connection, so a flood of
/// such heads holds the connector near 200 MiB (tests/floods.rs; its Deployment's memory
/// limit is 512 MiB for this). Its bodies are small ([`CONNECTOR_BODY_BYTES`]). Its clients do
/// not need long keep-alive: a pairing's or renewal's calls follow each other within seconds.
pub const CONNECTOR: ConnectionLimits = ConnectionLimits {
    connections: 512,
    handshakes: 512,
    keep_alive: Duration::from_secs(15),
};

/// Largest body the connector reads ([`read_small`]): a CSR of the largest RSA key certpair
/// signs is under 6 KiB as base64 in JSON, and a GraphQL request carrying one not much more.
pub const CONNECTOR_BODY_BYTES: usize = 16 * 1024;

/// A TCP listener on `addr` with [`LISTEN_BACKLOG`] (the standard library's is 128), and
/// `SO_REUSEADDR` as the standard library's has it (a restart is not refused while old
/// connections linger in TIME_WAIT).
pub fn listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// `server` with the limits every certpair HTTPS listener applies: `limits` (connections and
/// handshakes per worker, keep-alive), time to send a head, a shutdown bounded well inside Kubernetes'
/// 30 s grace period, no signal handling of its own (the process drains every listener on one
/// SIGTERM), and no Nagle (an answer's body must not wait for the client's delayed ACK of its
/// head: 40 ms each on Linux).
pub fn bounded<F, I, S, B>(
    server: actix_web::HttpServer<F, I, S, B>,
    limits: ConnectionLimits,
) -> actix_web::HttpServer<F, I, S, B>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: actix_service::IntoServiceFactory<S, actix_http::Request>,
    S: actix_web::dev::ServiceFactory<actix_http::Request, Config = actix_web::dev::AppConfig>
        + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<actix_http::Response<B>> + 'static,
    <S::Service as actix_web::dev::Service<actix_http::Request>>::Future: 'static,
    S::Service: 'static,
    B: actix_web::body::MessageBody + 'static,
{
    server
        .tcp_nodelay(true)
        .max_connections(limits.connections)
        .max_connection_rate(limits.handshakes)
        .client_request_timeout(HEAD_TIMEOUT)
        .keep_alive(limits.keep_alive)
        .shutdown_timeout(10)
        .disable_signals()
}

/// Room for large bodies, shared by every connection of one listener.
pub struct BodyBudget {
    bytes: Semaphore,
}

impl Default for BodyBudget {
    fn default() -> Self {
        Self {
            bytes: Semaphore::new(LARGE_BODY_BUDGET),
        }
    }
}

/// A body read within the limits. The room it took from the budget is given back when it is
/// dropped, so keep it until the request is answered (parsing costs memory too).
pub struct Body<'a> {
    pub bytes: web::BytesMut,
    _room: Option<SemaphorePermit<'a>>,
}

/// Why a body was not read; each maps to a 4xx.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body did not arrive within {} s", BODY_TIMEOUT.as_secs())]
    TooSlow,
    #[error("reading the body failed: {0}")]
    Read(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooSlow => StatusCode::REQUEST_TIMEOUT,
            Self::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl BodyBudget {
    /// Reads the body of `req` within the size, budget and time limits.
    pub async fn read<'a>(
        &'a self,
        req: &HttpRequest,
        payload: web::Payload,
    ) -> Result<Body<'a>, BodyError> {
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(BodyError::TooLarge(MAX_BODY_BYTES));
        }
        tokio::time::timeout(BODY_TIMEOUT, self.read_within(declared, payload))
            .await
            .unwrap_or(Err(BodyError::TooSlow))
    }

    async fn read_within<'a>(
        &'a self,
        declared: Option<usize>,
        mut payload: web::Payload,
    ) -> Result<Body<'a>, BodyError> {
        // Without a length (chunked), assume the largest.
        let expected = declared.unwrap_or(MAX_BODY_BYTES);
        let room = if expected > SMALL_BODY_BYTES {
            // MAX_BODY_BYTES fits in u32; the semaphore never closes.
            let n = u32::try_from(expected).unwrap_or(u32::MAX);
            Some(
                self.bytes
                    .acquire_many(n)
                    .await
                    .map_err(|e| BodyError::Read(e.to_string()))?,
            )
        } else {
            None
        };
        // All at once when the length is declared (the room for it is held): growing by
        // doubling would copy, and briefly hold, up to twice the body.
        let mut bytes = web::BytesMut::with_capacity(match declared {
            Some(n) => n,
            None => SMALL_BODY_BYTES,
        });
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
            if bytes.len() + chunk.len() > expected {
                return Err(BodyError::TooLarge(MAX_BODY_BYTES));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Body { bytes, _room: room })
    }
}

/// Reads a body of at most [`CONNECTOR_BODY_BYTES`] (every connector request: a CSR is a few
/// KiB), within [`BODY_TIMEOUT`]. Needs no budget: this much per connection is what the
/// connection limits already allow for.
pub async fn read_small(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::BytesMut, BodyError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > CONNECTOR_BODY_BYTES) {
        return Err(BodyError::TooLarge(CONNECTOR_BODY_BYTES));
    }
    let read = async {
        let mut bytes = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
            if bytes.len() + chunk.len() > CONNECTOR_BODY_BYTES {
                return Err(BodyError::TooLarge(CONNECTOR_BODY_BYTES));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(Err(BodyError::TooSlow))
}

/// Whether the request says its body is JSON (`application/json` or `…+json`).
pub fn is_json(req: &HttpRequest) -> bool {
    use actix_web::HttpMessage;
    use actix_web::mime::JSON;
    req.mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.subtype() == JSON || m.suffix() == Some(JSON))
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, body::to_bytes, post, test};

    use super::*;

    #[post("/")]
    async fn echo(
        budget: web::Data<BodyBudget>,
        req: HttpRequest,
        payload: web::Payload,
    ) -> HttpResponse {
        match budget.read(&req, payload).await {
            Ok(body) => HttpResponse::Ok().body(body.bytes.len().to_string()),
            Err(e) => HttpResponse::build(e.status()).body(e.to_string()),
        }
    }

    async fn post(budget: &web::Data<BodyBudget>, body: Vec<u8>) -> (StatusCode, String) {
        let app = test::init_service(App::new().app_data(budget.clone()).service(echo)).await;
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/")
                .set_payload(body)
                .to_request(),
        )
        .await;
        let status = resp.status();
        let text = to_bytes(resp.into_body()).await.expect("body");
        (status, String::from_utf8_lossy(&text).into_owned())
    }

    #[actix_web::test]
    async fn sizes_and_room() {
        let budget = web::Data::new(BodyBudget::default());
        assert_eq!(
            post(&budget, vec![b'x'; 100]).await,
            (StatusCode::OK, "100".into())
        );
        assert_eq!(
            post(&budget, vec![b'x'; MAX_BODY_BYTES]).await,
            (StatusCode::OK, MAX_BODY_BYTES.to_string())
        );
        assert_eq!(
            post(&budget, vec![b'x'; MAX_BODY_BYTES + 1]).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            budget.bytes.available_permits(),
            LARGE_BODY_BUDGET,
            "room is given back"
        );
    }

    /// With the budget held by others, a large body waits (here: past the timeout, 408), a
    /// small one does not wait at all.
    #[actix_web::test]
    async fn a_large_body_waits_for_room_a_small_one_does_not() {
        let budget = web::Data::new(BodyBudget::default());
        let held = budget
            .bytes
            .acquire_many(u32::try_from(LARGE_BODY_BUDGET).expect("fits"))
            .await
            .expect("all the room");
        let started = std::time::Instant::now();
        assert_eq!(
            post(&budget, vec![b'x'; 1000]).await,
            (StatusCode::OK, "1000".into())
        );
        assert!(
            started.elapsed() < BODY_TIMEOUT,
            "the small body did not queue"
        );
        let (status, _) = post(&budget, vec![b'x'; SMALL_BODY_BYTES + 1]).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        drop(held);
        let (status, _) = post(&budget, vec![b'x'; SMALL_BODY_BYTES + 1]).await;
        assert_eq!(status, StatusCode::OK);
    }
}
