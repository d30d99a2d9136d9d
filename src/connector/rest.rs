//! Kyma's REST shapes over the connector service: each handler reads the wire format, makes
//! one service call and writes the answer. Errors are [`ConnectorError`]s, rendered as
//! `{"code", "error"}` in one place.

use std::sync::Arc;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;
use serde_json::json;

use super::{
    ConnectorError,
    error::error_body,
    service::{Certificates, CsrInfo, Service},
};
use crate::{limits, telemetry::RouteLabels, tls::PeerCertificate};

/// The OpenAPI 3 description of these routes, served at `/v1/api.yaml`.
pub const OPENAPI: &str = include_str!("openapi.yaml");

type State = web::Data<Arc<Service>>;

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// A body `{"csr": "<base64 of the PEM>"}`.
#[derive(Deserialize)]
struct CsrBody {
    csr: String,
}

async fn csr_from_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<u8>, ConnectorError> {
    let body = limits::read_small(req, payload)
        .await
        .map_err(|e| match e {
            limits::BodyError::TooLarge(_) => {
                ConnectorError::TooLarge(format!("{e}; a CSR body is a few KiB"))
            }
            other => ConnectorError::BadRequest(other.to_string()),
        })?;
    csr_from_json(&body)
}

/// The PEM CSR of a body `{"csr": "<base64 of the PEM>"}`. Public so the fuzz target
/// (`fuzz/fuzz_targets/connector_rest.rs`) feeds it what a client may send.
pub fn csr_from_json(body: &[u8]) -> Result<Vec<u8>, ConnectorError> {
    let parsed: CsrBody = serde_json::from_slice(body).map_err(|e| {
        ConnectorError::BadRequest(format!(
            "the body must be JSON {{\"csr\": \"<base64 of the PEM CSR>\"}}: {e}"
        ))
    })?;
    STANDARD
        .decode(parsed.csr.trim())
        .map_err(|e| ConnectorError::Base64(format!("(csr: {e})")))
}

fn certificates(certs: &Certificates) -> HttpResponse {
    HttpResponse::Created().json(json!({
        "crt": STANDARD.encode(certs.full_chain()),
        "clientCrt": STANDARD.encode(&certs.client),
        "caCrt": STANDARD.encode(&certs.ca_chain),
    }))
}

fn certificate_block(info: &CsrInfo) -> serde_json::Value {
    json!({
        "subject": info.subject,
        "extensions": "",
        "key-algorithm": info.key_algorithm,
    })
}

/// `more` and the application gateway's URLs as Kyma announced them (certpair does not serve
/// them): `eventsUrl`, `eventsInfoUrl`, `metadataUrl`.
fn with_gateway(
    app: &str,
    urls: &super::service::Urls,
    mut more: serde_json::Value,
) -> serde_json::Value {
    let gateway = &urls.gateway;
    more["eventsUrl"] = json!(format!("{gateway}/{app}/v1/events"));
    more["eventsInfoUrl"] = json!(format!("{gateway}/{app}/v1/events/subscribed"));
    more["metadataUrl"] = json!(format!("{gateway}/{app}/v1/metadata/services"));
    more
}

fn counted(
    state: &State,
    route: &'static str,
    result: Result<HttpResponse, ConnectorError>,
) -> HttpResponse {
    let response = match result {
        Ok(r) => r,
        Err(e) => actix_web::ResponseError::error_response(&e),
    };
    state
        .metrics
        .requests
        .get_or_create(&RouteLabels {
            route,
            code: response.status().as_u16(),
        })
        .inc();
    response
}

async fn signing_info(state: State, query: web::Query<TokenQuery>) -> HttpResponse {
    let result = async {
        let info = state.signing_info(query.token.as_deref()).await?;
        let urls = &state.urls;
        let app = &info.application;
        Ok(HttpResponse::Ok().json(json!({
            "csrUrl": format!("{}/v1/applications/certificates?token={}", urls.external, info.certificate_token),
            "api": with_gateway(app, urls, json!({
                "infoUrl": format!("{}/v1/applications/management/info", urls.certificate_secured),
                "certificatesUrl": format!("{}/v1/applications/certificates", urls.certificate_secured),
            })),
            "certificate": certificate_block(&info.csr),
        })))
    }
    .await;
    counted(&state, "signing_info", result)
}

async fn sign(
    state: State,
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    payload: web::Payload,
) -> HttpResponse {
    let result = async {
        // The token first (Kyma's order): without a good one the body is not looked at.
        state
            .tokens
            .find(query.token.as_deref(), crate::api::TokenStep::Certificate)
            .await?;
        let pem = csr_from_body(&req, payload).await?;
        let certs = state.issue(query.token.as_deref(), &pem).await?;
        Ok(certificates(&certs))
    }
    .await;
    counted(&state, "certificates", result)
}

async fn management_info(state: State, req: HttpRequest) -> HttpResponse {
    let result = (|| {
        let identity = state.identify(req.conn_data::<PeerCertificate>())?;
        let info = state.management_info(&identity);
        let urls = &state.urls;
        let app = &identity.application;
        let mut client_identity = json!({ "application": app });
        // Kyma's central mode: tenant in O, group in OU, when the Application sets them.
        if let Some(tenant) = &identity.rules.subject.organization {
            client_identity["tenant"] = json!(tenant);
        }
        if let Some(group) = &identity.rules.subject.organizational_unit {
            client_identity["group"] = json!(group);
        }
        Ok(HttpResponse::Ok().json(json!({
            "clientIdentity": client_identity,
            "urls": with_gateway(app, urls, json!({
                "renewCertUrl": format!("{}/v1/applications/certificates/renewals", urls.certificate_secured),
                "revokeCertUrl": format!("{}/v1/applications/certificates/revocations", urls.certificate_secured),
            })),
            "certificate": certificate_block(&info),
            "presentedCertificate": {
                "serialNumber": identity.serial,
                "notAfter": rfc3339(identity.not_after),
                "renewAfter": rfc3339(identity.renew_after()),
            },
        })))
    })();
    counted(&state, "management_info", result)
}

async fn renew(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let result = async {
        let identity = state.identify(req.conn_data::<PeerCertificate>())?;
        let pem = csr_from_body(&req, payload).await?;
        let certs = state.renew(&identity, &pem).await?;
        Ok(certificates(&certs))
    }
    .await;
    counted(&state, "renewals", result)
}

async fn revoke(state: State, req: HttpRequest) -> HttpResponse {
    let result = state
        .revoke(req.conn_data::<PeerCertificate>())
        .await
        .map(|()| HttpResponse::Created().finish());
    counted(&state, "revocations", result)
}

async fn api_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI)
}

async fn v1() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/v1/api.yaml"))
        .finish()
}

/// The CRL: DER, or PEM when the client accepts `application/x-pem-file` (or text).
async fn crl(state: State, req: HttpRequest) -> HttpResponse {
    let Some(der) = state.crl.get() else {
        return counted(
            &state,
            "crl",
            Err(ConnectorError::Busy(
                "no CRL has been published yet (the controller's leader publishes it)".into(),
            )),
        );
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let response = if accept.contains("pem") || accept.contains("text/plain") {
        HttpResponse::Ok()
            .content_type("application/x-pem-file")
            .body(
                openssl::x509::X509Crl::from_der(&der)
                    .and_then(|c| c.to_pem())
                    .unwrap_or_default(),
            )
    } else {
        HttpResponse::Ok()
            .content_type("application/pkix-crl")
            .body(der.as_ref().clone())
    };
    counted(&state, "crl", Ok(response))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    error_body(
        StatusCode::NOT_FOUND,
        &format!(
            "{} is not a path of the connector; see /v1/api.yaml",
            req.path()
        ),
    )
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    error_body(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "{} does not take {}; see /v1/api.yaml",
            req.path(),
            req.method()
        ),
    )
}

fn rfc3339(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The public routes: `(path, method)` for each, as the OpenAPI test compares them.
pub const ROUTES: &[(&str, &str)] = &[
    ("/v1/applications/signingRequests/info", "get"),
    ("/v1/applications/certificates", "post"),
    ("/v1/applications/management/info", "get"),
    ("/v1/applications/certificates/renewals", "post"),
    ("/v1/applications/certificates/revocations", "post"),
    ("/v1/crl", "get"),
    ("/v1/api.yaml", "get"),
];

/// Routes of the public listener. Errors of extractors (a bad query string) use the same
/// JSON shape.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| {
        let message = format!("bad query string: {e}");
        actix_web::error::InternalError::from_response(
            e,
            error_body(StatusCode::BAD_REQUEST, &message),
        )
        .into()
    }))
    .service(resource(ROUTES[0].0).route(web::get().to(signing_info)))
    .service(resource(ROUTES[1].0).route(web::post().to(sign)))
    .service(resource(ROUTES[2].0).route(web::get().to(management_info)))
    .service(resource(ROUTES[3].0).route(web::post().to(renew)))
    .service(resource(ROUTES[4].0).route(web::post().to(revoke)))
    .service(resource(ROUTES[5].0).route(web::get().to(crl)))
    .service(resource(ROUTES[6].0).route(web::get().to(api_yaml)))
    .service(resource("/v1").route(web::get().to(v1)))
    .service(
        resource("/graphql")
            .route(web::post().to(super::graphql::public))
            .route(web::get().to(super::graphql::public)),
    )
    .service(resource("/graphql/schema.graphql").route(web::get().to(super::graphql::schema_sdl)))
    .default_service(web::to(not_found));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document lists exactly the served routes with their methods.
    #[test]
    fn openapi_matches_the_routes() {
        let doc: serde_yaml::Value = serde_yaml::from_str(OPENAPI).expect("valid YAML");
        assert_eq!(doc["openapi"].as_str(), Some("3.0.3"));
        let paths = doc["paths"].as_mapping().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, ops)| {
                let path = path.as_str().unwrap_or_default().to_owned();
                ops.as_mapping()
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .map(move |method| {
                        (path.clone(), method.as_str().unwrap_or_default().to_owned())
                    })
            })
            .collect();
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }
}
