//! Kyma's internal connector API, on its own plain-HTTP listener that only the cluster
//! reaches: `POST /v1/applications/tokens` (header `Application`) creates a TokenRequest on
//! the caller's behalf and answers with its URL and token; `POST
//! /v1/applications/certificates/revocations` (`{"hash"}`) revokes a certificate by the
//! SHA-256 of its DER. Callers are authenticated by a Kubernetes bearer token (TokenReview)
//! and authorized by a SubjectAccessReview, unless `--internal-auth=network`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use actix_web::{HttpRequest, HttpResponse, HttpServer, dev::Server, http::StatusCode, web};
use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    certificates::v1::CertificateSigningRequest,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
};
use openssl::x509::X509;
use serde_json::{Value, json};
use tracing::info;

use super::{
    ConnectorError,
    error::error_body,
    service::{Urls, create_revocation},
};
use crate::{
    api::{GROUP, RevocationSpec, TokenRequest, TokenRequestSpec, TokenState},
    cli::InternalAuth,
    error::{Error, Result},
    limits,
    pki::{authority::unix, csr::certificate_subject, serial_hex, sha256_hex},
};

pub struct InternalState {
    pub client: Client,
    pub auth: InternalAuth,
    /// Where TokenRequests made through this API are created.
    pub namespace: String,
    pub ttl_seconds: i64,
    pub signer_name: String,
    pub urls: Urls,
}

type State = web::Data<Arc<InternalState>>;

/// Who called, as the TokenReview says (or the network, in `network` mode).
pub struct Caller {
    pub username: String,
    uid: Option<String>,
    groups: Option<Vec<String>>,
    extra: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// The request's `Authorization: Bearer` token.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Authenticates the caller by `bearer` and asks whether they may `verb` `resource` (named
/// `name`) in certpair's API group.
pub async fn authorize(
    state: &InternalState,
    bearer: Option<&str>,
    verb: &str,
    resource: &str,
    name: Option<&str>,
) -> Result<Caller, ConnectorError> {
    if state.auth == InternalAuth::Network {
        return Ok(Caller {
            username: "network".into(),
            uid: None,
            groups: None,
            extra: None,
        });
    }
    let bearer = bearer.ok_or_else(|| {
        ConnectorError::Unauthenticated(
            "send a Kubernetes bearer token (Authorization: Bearer ...)".into(),
        )
    })?;
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(bearer.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviewed = Api::<TokenReview>::all(state.client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let status = reviewed.status.unwrap_or_default();
    let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
        return Err(ConnectorError::Unauthenticated(
            "the bearer token is not valid for this cluster".into(),
        ));
    };
    let caller = Caller {
        username: user.username.unwrap_or_default(),
        uid: user.uid,
        groups: user.groups,
        extra: user.extra,
    };
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(caller.username.clone()),
            uid: caller.uid.clone(),
            groups: caller.groups.clone(),
            extra: caller.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some(GROUP.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                name: name.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(state.client.clone())
        .create(&PostParams::default(), &access)
        .await?;
    if !answer.status.is_some_and(|s| s.allowed) {
        return Err(ConnectorError::Forbidden(format!(
            "{:?} may not {verb} {resource}.{GROUP}{}",
            caller.username,
            name.map(|n| format!(" named {n:?}")).unwrap_or_default()
        )));
    }
    Ok(caller)
}

/// `POST /v1/applications/tokens`, header `Application: <name>` → 201 `{"url", "token"}`.
async fn create_token(state: State, req: HttpRequest) -> HttpResponse {
    let result = async {
        let application = req
            .headers()
            .get("Application")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ConnectorError::BadRequest("the Application header is missing".into()))?
            .to_owned();
        let caller = authorize(
            &state,
            bearer(&req).as_deref(),
            "request",
            "applications",
            Some(&application),
        )
        .await?;
        let (url, token) = token_for(&state, &application, &caller.username).await?;
        Ok::<_, ConnectorError>(HttpResponse::Created().json(json!({ "url": url, "token": token })))
    }
    .await;
    result.unwrap_or_else(|e| actix_web::ResponseError::error_response(&e))
}

/// Creates a TokenRequest and waits (bounded) for the controller to issue its token.
pub async fn token_for(
    state: &InternalState,
    application: &str,
    requested_by: &str,
) -> Result<(String, String), ConnectorError> {
    let api: Api<TokenRequest> = Api::namespaced(state.client.clone(), &state.namespace);
    let mut meta = ObjectMeta {
        generate_name: Some(format!("internal-{application}-")),
        ..crate::k8s::owned_meta("")
    };
    meta.name = None;
    meta.annotations = Some(
        [(
            "certpair.dev/requested-by".to_owned(),
            requested_by.to_owned(),
        )]
        .into(),
    );
    let created = api
        .create(
            &crate::k8s::post_params(),
            &TokenRequest {
                metadata: meta,
                spec: TokenRequestSpec {
                    application: application.to_owned(),
                    ttl_seconds: state.ttl_seconds,
                },
                status: None,
            },
        )
        .await?;
    let name = created.name_any();
    info!(token_request = %name, %application, %requested_by, "TokenRequest created through the internal API");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = api.get_opt(&name).await?.and_then(|t| t.status) {
            match (status.state, status.token) {
                (Some(TokenState::Ready), Some(token)) => {
                    return Ok((state.urls.info(&token), token));
                }
                (Some(TokenState::Error), _) => {
                    return Err(ConnectorError::Forbidden(format!(
                        "TokenRequest {}/{name}: {}",
                        state.namespace,
                        status.message.unwrap_or_default()
                    )));
                }
                _ => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ConnectorError::Busy(format!(
                "TokenRequest {}/{name} has no token yet (is the controller running with --connector-url?)",
                state.namespace
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /v1/applications/certificates/revocations`, `{"hash": "<hex SHA-256 of the DER>"}`
/// (the key in any case, as Kyma's decoder took it) → 201.
async fn revoke_by_hash(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let result = async {
        authorize(
            &state,
            bearer(&req).as_deref(),
            "create",
            "revocations",
            None,
        )
        .await?;
        let body = limits::read_small(&req, payload)
            .await
            .map_err(|e| ConnectorError::BadRequest(e.to_string()))?;
        let hash = revocation_hash(&body)?;
        let spec = match find_certificate(&state.client, &state.signer_name, &hash).await? {
            Some(spec) => spec,
            None => RevocationSpec {
                sha256: Some(hash.clone()),
                reason: Some("revoked by hash through the internal API".into()),
                ..Default::default()
            },
        };
        create_revocation(&state.client, spec).await?;
        info!(sha256 = %hash, "certificate revoked through the internal API");
        Ok::<_, ConnectorError>(HttpResponse::Created().finish())
    }
    .await;
    result.unwrap_or_else(|e| actix_web::ResponseError::error_response(&e))
}

/// The lower-case hex SHA-256 of a body `{"hash": "<hex>"}` (the key in any case, as Kyma's
/// decoder took it). Public so the fuzz target (`fuzz/fuzz_targets/connector_rest.rs`) feeds
/// it what a caller may send.
pub fn revocation_hash(body: &[u8]) -> Result<String, ConnectorError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ConnectorError::BadRequest(format!(
            "the body must be JSON {{\"hash\": \"<hex>\"}}: {e}"
        ))
    })?;
    let hash = value
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("hash")))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| ConnectorError::BadRequest("the body has no \"hash\"".into()))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConnectorError::BadRequest(
            "\"hash\" must be the hex SHA-256 of the certificate's DER (64 characters)".into(),
        ));
    }
    Ok(hash)
}

/// The certificate of certpair's signer whose DER hashes to `sha256`, among the CSRs that
/// still exist: its serial, Application and NotAfter complete the Revocation (so the CRL can
/// list it and it is pruned on time). Paged, so memory stays bounded.
async fn find_certificate(
    client: &Client,
    signer: &str,
    sha256: &str,
) -> Result<Option<RevocationSpec>, kube::Error> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let mut params = ListParams::default()
        .fields(&format!("spec.signerName={signer}"))
        .limit(100);
    loop {
        let page = api.list(&params).await?;
        for csr in &page.items {
            let Some(pem) = csr.status.as_ref().and_then(|s| s.certificate.as_ref()) else {
                continue;
            };
            let Ok(leaf) = X509::from_pem(&pem.0) else {
                continue;
            };
            let Ok(der) = leaf.to_der() else { continue };
            if sha256_hex(&der) != sha256 {
                continue;
            }
            let application = certificate_subject(&der).ok().and_then(|s| {
                s.into_iter()
                    .find(|a| a.kind == crate::pki::csr::AttributeKind::CommonName)
                    .map(|a| a.value)
            });
            let not_after = unix(leaf.not_after())
                .ok()
                .and_then(|t| k8s_openapi::jiff::Timestamp::from_second(t).ok())
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
            return Ok(Some(RevocationSpec {
                serial_number: serial_hex(&leaf).ok(),
                sha256: Some(sha256.to_owned()),
                application,
                not_after,
                reason: Some(format!(
                    "revoked by hash through the internal API (CSR {})",
                    csr.name_any()
                )),
            }));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => params = params.continue_token(&next),
            None => return Ok(None),
        }
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    error_body(
        StatusCode::NOT_FOUND,
        &format!("{} is not a path of the internal API", req.path()),
    )
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    error_body(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{} does not take {}", req.path(), req.method()),
    )
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/v1/applications/tokens").route(web::post().to(create_token)))
        .service(resource("/graphql").route(web::post().to(super::graphql::internal)))
        .service(
            resource("/v1/applications/certificates/revocations")
                .route(web::post().to(revoke_by_hash)),
        )
        .default_service(web::to(not_found));
}

pub fn serve(addr: SocketAddr, state: Arc<InternalState>) -> Result<Server> {
    let schema = web::Data::new(super::graphql::internal_schema(state.clone()));
    let data = web::Data::new(state);
    Ok(HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(schema.clone())
            .configure(configure)
    })
    .workers(1)
    // No Nagle: a reply's head and body must not wait for the client's delayed ACK.
    .tcp_nodelay(true)
    .max_connections(limits::MAX_CONNECTIONS_PER_WORKER)
    .client_request_timeout(limits::HEAD_TIMEOUT)
    .disable_signals()
    .bind(addr)
    .map_err(|source| Error::Bind { addr, source })?
    .run())
}
