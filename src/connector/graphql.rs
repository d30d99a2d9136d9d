//! Compass's GraphQL shapes over the connector service, `POST /graphql` (and `GET` for
//! queries) on the public listener, and Compass's old internal token mutations on the internal
//! one. The schema is Compass's, exactly (`schema.graphql`, kept equal by a test); the
//! resolvers are thin: each makes the same service call as its REST twin, and an error is the
//! same message REST gives, with `extensions.code` (and `status`, the HTTP status REST would
//! answer). async-graphql parses, validates and bounds queries; this file only moves bytes
//! and maps errors.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, ID, Object, ObjectType, Schema, ServerError,
    SimpleObject, SubscriptionType,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;

use super::{
    ConnectorError,
    internal::{self, InternalState},
    service::{Certificates, CsrInfo, Service},
};
use crate::{limits, telemetry::RouteLabels, tls::PeerCertificate};

/// Compass's external schema, as served (`GET /graphql/schema.graphql`).
pub const SCHEMA: &str = include_str!("schema.graphql");
/// Compass's internal schema (the internal listener's `/graphql`).
pub const INTERNAL_SCHEMA: &str = include_str!("internal.graphql");

/// Deepest selection a query may have: Compass's deepest is 3, introspection's about 12.
const MAX_DEPTH: usize = 16;
/// Most fields a query may select, counting each alias. The fields that call the service
/// (`configuration`, `signCertificateSigningRequest`, `revokeCertificate`) count
/// [`SERVICE_CALL`] each, so one request makes at most two of them (Compass's clients make
/// one): aliases cannot turn one request into many token lookups or CSRs.
const MAX_COMPLEXITY: usize = 300;
/// What a field that calls the service counts towards [`MAX_COMPLEXITY`].
const SERVICE_CALL: usize = 120;
/// Parser nesting limit (lists, objects, selections), so a hostile query cannot recurse deep.
const MAX_RECURSION: usize = 32;

/// What a resolver knows about the HTTP request it serves.
struct Call {
    /// `Connector-Token` header, else `?token=`.
    token: Option<String>,
    peer: Option<PeerCertificate>,
    /// Queries may come by GET; mutations only by POST (they change state).
    get: bool,
    /// The internal API's caller's bearer token.
    bearer: Option<String>,
}

fn graphql_error(e: &ConnectorError) -> async_graphql::Error {
    let status = actix_web::ResponseError::status_code(e).as_u16();
    let code = e.code();
    let mut error = async_graphql::Error::new(e.public_message()).extend_with(|_, ext| {
        ext.set("code", code);
        ext.set("status", status);
    });
    match e {
        ConnectorError::Refused { reason, .. } => {
            let reason = reason.as_str();
            error = error.extend_with(|_, ext| ext.set("reason", reason));
        }
        ConnectorError::Denied { csr, reason, .. } => {
            let (csr, reason) = (csr.clone(), reason.clone());
            error = error.extend_with(|_, ext| {
                ext.set("certificateSigningRequest", csr);
                ext.set("reason", reason);
            });
        }
        ConnectorError::Pending { csr, .. } => {
            let csr = csr.clone();
            error = error.extend_with(|_, ext| ext.set("certificateSigningRequest", csr));
        }
        _ => {}
    }
    error
}

type GqlResult<T> = async_graphql::Result<T>;

fn call<'c>(ctx: &'c Context<'_>) -> GqlResult<&'c Call> {
    ctx.data::<Call>()
}

fn service<'c>(ctx: &'c Context<'_>) -> GqlResult<&'c Arc<Service>> {
    ctx.data::<Arc<Service>>()
}

/// Mutations change state, so a GET (a link, a prefetch, a cache) may not carry one.
fn posted(call: &Call) -> GqlResult<()> {
    if call.get {
        return Err(async_graphql::Error::new(
            "mutations must be sent with POST (a GET request may only carry a query)",
        )
        .extend_with(|_, ext| {
            ext.set("code", "METHOD_NOT_ALLOWED");
            ext.set("status", 405);
        }));
    }
    Ok(())
}

#[derive(SimpleObject)]
struct Token {
    token: String,
}

#[derive(SimpleObject)]
struct CertificationResult {
    /// Base64 of the PEM client certificate then the CA chain.
    certificate_chain: String,
    /// Base64 of the PEM CA chain.
    ca_certificate: String,
    /// Base64 of the PEM client certificate.
    client_certificate: String,
}

impl From<Certificates> for CertificationResult {
    fn from(certs: Certificates) -> Self {
        Self {
            certificate_chain: STANDARD.encode(certs.full_chain()),
            ca_certificate: STANDARD.encode(&certs.ca_chain),
            client_certificate: STANDARD.encode(&certs.client),
        }
    }
}

#[derive(SimpleObject)]
struct ManagementPlaneInfo {
    #[graphql(name = "directorURL")]
    director_url: Option<String>,
    #[graphql(name = "certificateSecuredConnectorURL")]
    certificate_secured_connector_url: Option<String>,
}

#[derive(SimpleObject)]
struct CertificateSigningRequestInfo {
    subject: String,
    key_algorithm: String,
}

impl From<CsrInfo> for CertificateSigningRequestInfo {
    fn from(info: CsrInfo) -> Self {
        Self {
            subject: info.subject,
            key_algorithm: info.key_algorithm.to_owned(),
        }
    }
}

#[derive(SimpleObject)]
struct Configuration {
    token: Option<Token>,
    certificate_signing_request_info: Option<CertificateSigningRequestInfo>,
    management_plane_info: Option<ManagementPlaneInfo>,
}

pub struct Query;

#[Object]
impl Query {
    /// With a token: redeems it and returns the token to sign with, what to request and where
    /// to go next. Over mTLS without a token: the same for a renewal (no token).
    #[graphql(complexity = "SERVICE_CALL + child_complexity")]
    async fn configuration(&self, ctx: &Context<'_>) -> GqlResult<Configuration> {
        let (call, service) = (call(ctx)?, service(ctx)?);
        let urls = &service.urls;
        let management = ManagementPlaneInfo {
            director_url: urls.director.clone(),
            certificate_secured_connector_url: Some(format!(
                "{}/graphql",
                urls.certificate_secured
            )),
        };
        let (token, info) = match (&call.token, &call.peer) {
            (None, Some(peer)) => {
                let identity = service
                    .identify(Some(peer))
                    .map_err(|e| graphql_error(&e))?;
                (None, service.management_info(&identity))
            }
            (token, _) => {
                let info = service
                    .signing_info(token.as_deref())
                    .await
                    .map_err(|e| graphql_error(&e))?;
                (
                    Some(Token {
                        token: info.certificate_token,
                    }),
                    info.csr,
                )
            }
        };
        Ok(Configuration {
            token,
            certificate_signing_request_info: Some(info.into()),
            management_plane_info: Some(management),
        })
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// `csr`: base64 of the PEM CSR. With a token: the pairing; over mTLS without a token: a
    /// renewal of the presented certificate.
    #[graphql(complexity = "SERVICE_CALL + child_complexity")]
    async fn sign_certificate_signing_request(
        &self,
        ctx: &Context<'_>,
        csr: String,
    ) -> GqlResult<CertificationResult> {
        let (call, service) = (call(ctx)?, service(ctx)?);
        posted(call)?;
        let result = async {
            let decode = |csr: &str| {
                STANDARD
                    .decode(csr.trim())
                    .map_err(|e| ConnectorError::Base64(format!("(csr: {e})")))
            };
            match (&call.token, &call.peer) {
                (None, Some(peer)) => {
                    let identity = service.identify(Some(peer))?;
                    service.renew(&identity, &decode(&csr)?).await
                }
                (token, _) => {
                    // The token first (Kyma's and REST's order): without a good one the CSR is
                    // not looked at.
                    service
                        .tokens
                        .find(token.as_deref(), crate::api::TokenStep::Certificate)
                        .await?;
                    service.issue(token.as_deref(), &decode(&csr)?).await
                }
            }
        }
        .await;
        result
            .map(CertificationResult::from)
            .map_err(|e| graphql_error(&e))
    }

    /// Revokes the presented client certificate (mTLS).
    #[graphql(complexity = "SERVICE_CALL")]
    async fn revoke_certificate(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let (call, service) = (call(ctx)?, service(ctx)?);
        posted(call)?;
        service
            .revoke(call.peer.as_ref())
            .await
            .map_err(|e| graphql_error(&e))?;
        Ok(true)
    }
}

pub type CompassSchema = Schema<Query, Mutation, EmptySubscription>;

/// `builder` with certpair's limits (depth, complexity, parser recursion), introspection off
/// unless asked for. Public so the fuzz target (`fuzz/fuzz_targets/graphql.rs`) builds a
/// schema with the served types and limits without a service behind it.
pub fn bounded<Q, M>(
    builder: async_graphql::SchemaBuilder<Q, M, EmptySubscription>,
    introspection: bool,
) -> Schema<Q, M, EmptySubscription>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    EmptySubscription: SubscriptionType,
{
    let builder = builder
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(MAX_RECURSION);
    if introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The public schema over `service`.
pub fn schema(service: Arc<Service>, introspection: bool) -> CompassSchema {
    bounded(
        Schema::build(Query, Mutation, EmptySubscription).data(service),
        introspection,
    )
}

/// The answer to a request that never reached the executor (a body too large, not JSON).
fn refused(message: String, code: &'static str, status: u16) -> async_graphql::Response {
    let mut error = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code);
    ext.set("status", status);
    error.extensions = Some(ext);
    async_graphql::Response::from_errors(vec![error])
}

/// Reads a GraphQL request from GET's query string or POST's JSON body (bounded).
async fn read_request(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<async_graphql::Request, async_graphql::Response> {
    if req.method() == actix_web::http::Method::GET {
        return async_graphql::http::parse_query_string(req.query_string()).map_err(|e| {
            refused(
                format!("the query string must carry query=, and may carry variables= and operationName=: {e}"),
                "BAD_REQUEST",
                400,
            )
        });
    }
    // JSON only: a form or text/plain POST is what a browser sends cross-site without asking,
    // and the connector's mutations must not be reachable that way with a user's certificate.
    if !limits::is_json(req) {
        return Err(refused(
            "a POST to /graphql must be Content-Type: application/json".into(),
            "BAD_REQUEST",
            415,
        ));
    }
    let body = limits::read_small(req, payload)
        .await
        .map_err(|e| match e {
            limits::BodyError::TooLarge(_) => refused(
                format!("{e}; a GraphQL request to the connector is a few KiB"),
                "TOO_LARGE",
                413,
            ),
            other => refused(other.to_string(), "BAD_REQUEST", 400),
        })?;
    serde_json::from_slice(&body).map_err(|e| {
        refused(
            format!("the body must be JSON {{\"query\", \"variables\", \"operationName\"}}: {e}"),
            "BAD_REQUEST",
            400,
        )
    })
}

/// Compass's own clients send `configuration()`; GraphQL's grammar has no empty argument
/// list, but gqlgen (Compass's server) takes one as none. So does certpair: every `(` whose
/// next token is `)` is dropped with it, outside strings and comments. Nothing else changes.
fn drop_empty_arguments(query: &str) -> std::borrow::Cow<'_, str> {
    let bytes = query.as_bytes();
    // Skips whitespace, commas and comments (GraphQL's ignored tokens) from `i`.
    let skip_ignored = |mut i: usize| {
        while i < bytes.len() {
            match bytes[i] {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                        i += 1;
                    }
                }
                _ => break,
            }
        }
        i
    };
    let mut out: Option<String> = None;
    let mut kept = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                // A block string: up to the closing `"""` that is not escaped.
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => i = skip_ignored(i),
            b'(' => {
                let next = skip_ignored(i + 1);
                if bytes.get(next) == Some(&b')') {
                    let out = out.get_or_insert_with(|| String::with_capacity(query.len()));
                    out.push_str(&query[kept..i]);
                    // A space where `()` was: `a()b` stays two names.
                    out.push(' ');
                    kept = next + 1;
                    i = next + 1;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    match out {
        Some(mut out) => {
            out.push_str(query.get(kept..).unwrap_or_default());
            std::borrow::Cow::Owned(out)
        }
        None => std::borrow::Cow::Borrowed(query),
    }
}

/// async-graphql's words for its limits, with the limit and what a connector query needs.
fn explain_limit(message: &str) -> Option<String> {
    match message {
        "recursion limit exceeded." => Some(format!(
            "the query nests more than {MAX_RECURSION} levels (recursion limit exceeded); a connector query needs 3"
        )),
        "Query is nested too deep." => Some(format!(
            "the query selects more than {MAX_DEPTH} levels deep; a connector query needs 3"
        )),
        "Query is too complex." => Some(format!(
            "the query is too complex: at most two calls of configuration, signCertificateSigningRequest or revokeCertificate (aliases count) and {MAX_COMPLEXITY} fields in all"
        )),
        _ => None,
    }
}

/// Executes one request. GraphQL errors are answered with HTTP 200 (as Compass and the
/// GraphQL-over-HTTP `application/json` convention do); those async-graphql raises itself (a
/// parse error, an unknown field, a limit) get `extensions.code` `BAD_QUERY`.
async fn execute<Q, M>(
    schema: &Schema<Q, M, EmptySubscription>,
    req: &HttpRequest,
    payload: web::Payload,
    call: Call,
) -> async_graphql::Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
{
    match read_request(req, payload).await {
        Ok(request) => run(schema, request.data(call)).await,
        Err(refusal) => refusal,
    }
}

/// Executes one request read from the wire: `configuration()` taken as `configuration`, and
/// the errors async-graphql raises itself explained and coded `BAD_QUERY`. Public so the fuzz
/// target (`fuzz/fuzz_targets/graphql.rs`) runs what [`execute`] runs after reading the body.
pub async fn run<Q, M>(
    schema: &Schema<Q, M, EmptySubscription>,
    mut request: async_graphql::Request,
) -> async_graphql::Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
{
    if let std::borrow::Cow::Owned(query) = drop_empty_arguments(&request.query) {
        request.query = query;
    }
    let mut response = schema.execute(request).await;
    for error in &mut response.errors {
        if let Some(message) = explain_limit(&error.message) {
            error.message = message;
        }
        let ext = error.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", "BAD_QUERY");
            ext.set("status", 400);
        }
    }
    response
}

fn reply(response: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(response)
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn query_token(req: &HttpRequest) -> Option<String> {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("token").cloned())
        .filter(|t| !t.is_empty())
}

/// `POST /graphql`, `GET /graphql?query=...` on the public listener.
pub async fn public(
    schema: web::Data<CompassSchema>,
    service: web::Data<Arc<Service>>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let call = Call {
        token: header(&req, "Connector-Token").or_else(|| query_token(&req)),
        peer: req.conn_data::<PeerCertificate>().cloned(),
        get: req.method() == actix_web::http::Method::GET,
        bearer: None,
    };
    let response = execute(&schema, &req, payload, call).await;
    let code = response
        .errors
        .first()
        .and_then(|e| e.extensions.as_ref())
        .and_then(|ext| ext.get("status"))
        .and_then(|s| match s {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    service
        .metrics
        .requests
        .get_or_create(&RouteLabels {
            route: "graphql",
            code,
        })
        .inc();
    reply(&response)
}

/// `GET /graphql/schema.graphql`: the schema, for clients and code generators.
pub async fn schema_sdl() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/graphql; charset=utf-8")
        .body(SCHEMA)
}

// Compass's old internal API: tokens for an Application (or a Runtime) by name.

pub struct InternalQuery;

#[Object(name = "Query")]
impl InternalQuery {
    async fn is_healthy(&self) -> bool {
        true
    }
}

pub struct InternalMutation;

#[Object(name = "Mutation")]
impl InternalMutation {
    /// Creates a TokenRequest for Application `authID` on the caller's behalf (the caller must
    /// be allowed to `request` it) and returns its token.
    async fn generate_application_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "authID")] auth_id: ID,
    ) -> GqlResult<Token> {
        let call = call(ctx)?;
        posted(call)?;
        let state = ctx.data::<Arc<InternalState>>()?;
        let application = auth_id.as_str().trim();
        let result = async {
            if application.is_empty() {
                return Err(ConnectorError::BadRequest(
                    "authID is empty; it names the Application".into(),
                ));
            }
            let caller = internal::authorize(
                state,
                call.bearer.as_deref(),
                "request",
                "applications",
                Some(application),
            )
            .await?;
            internal::token_for(state, application, &caller.username).await
        }
        .await;
        result
            .map(|(_, token)| Token { token })
            .map_err(|e| graphql_error(&e))
    }

    /// Compass's Runtime pairing. certpair pairs Applications only for now, and says so.
    async fn generate_runtime_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "authID")] auth_id: ID,
    ) -> GqlResult<Token> {
        posted(call(ctx)?)?;
        Err(graphql_error(&ConnectorError::BadRequest(format!(
            "runtime tokens are not supported: certpair pairs Applications (generateApplicationToken); {:?} was not paired",
            auth_id.as_str()
        ))))
    }
}

pub type InternalSchema = Schema<InternalQuery, InternalMutation, EmptySubscription>;

pub fn internal_schema(state: Arc<InternalState>) -> InternalSchema {
    bounded(
        Schema::build(InternalQuery, InternalMutation, EmptySubscription).data(state),
        false,
    )
}

/// `POST /graphql` on the internal listener.
pub async fn internal(
    schema: web::Data<InternalSchema>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let call = Call {
        token: None,
        peer: None,
        get: req.method() == actix_web::http::Method::GET,
        bearer: internal::bearer(&req),
    };
    reply(&execute(&schema, &req, payload, call).await)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use async_graphql::parser::{parse_schema, types::TypeSystemDefinition};

    use super::*;

    /// Each object type's fields as `name(args): Type`, sorted, from SDL text.
    fn shape(sdl: &str) -> BTreeMap<String, Vec<String>> {
        let doc = parse_schema(sdl).expect("valid SDL");
        let mut types = BTreeMap::new();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let t = t.node;
            let async_graphql::parser::types::TypeKind::Object(object) = t.kind else {
                continue;
            };
            let mut fields: Vec<String> = object
                .fields
                .iter()
                .map(|f| {
                    let f = &f.node;
                    let args: Vec<String> = f
                        .arguments
                        .iter()
                        .map(|a| format!("{}: {}", a.node.name.node, a.node.ty.node))
                        .collect();
                    format!("{}({}): {}", f.name.node, args.join(", "), f.ty.node)
                })
                .collect();
            fields.sort();
            types.insert(t.name.node.to_string(), fields);
        }
        types
    }

    /// The served schema is exactly Compass's (the committed file), type by type and field
    /// by field, nullability included.
    #[test]
    fn public_schema_is_compass() {
        let served = Schema::build(Query, Mutation, EmptySubscription)
            .finish()
            .sdl();
        assert_eq!(shape(&served), shape(SCHEMA), "{served}");
        assert_eq!(shape(SCHEMA).len(), 7);
    }

    #[test]
    fn empty_argument_lists_are_dropped_outside_strings_and_comments() {
        let cases = [
            (
                "{ result: configuration() { token { token } } }",
                "{ result: configuration  { token { token } } }",
            ),
            ("{ a( ,\n ) b(x: 1) }", "{ a  b(x: 1) }"),
            ("{ a()b }", "{ a b }"),
            ("{ a(# none\n) }", "{ a  }"),
            (r#"{ a(s: "()") }"#, r#"{ a(s: "()") }"#),
            (r#"{ a(s: "\"()") }"#, r#"{ a(s: "\"()") }"#),
            (r#"{ a(s: """x()""") }"#, r#"{ a(s: """x()""") }"#),
            ("{ a # ()\n }", "{ a # ()\n }"),
            ("{ a(", "{ a("),
            ("\"", "\""),
        ];
        for (query, expected) in cases {
            assert_eq!(drop_empty_arguments(query), expected, "{query:?}");
        }
    }

    /// Compass's client's query parses, and the limits answer in certpair's words.
    #[tokio::test]
    async fn compass_query_parses_and_limits_explain_themselves() {
        let schema = bounded(Schema::build(Query, Mutation, EmptySubscription), false);
        let run = |query: String| {
            let schema = schema.clone();
            async move {
                let query = drop_empty_arguments(&query).into_owned();
                let errors = schema.execute(query.as_str()).await.errors;
                errors
                    .into_iter()
                    .map(|e| explain_limit(&e.message).unwrap_or(e.message))
                    .collect::<Vec<_>>()
            }
        };
        // No per-request data here: the resolver runs (so it parsed and validated).
        let errors = run("{ result: configuration() { token { token } } }".into()).await;
        assert!(errors[0].contains("does not exist"), "{errors:?}");
        let deep = format!(
            "{{ {} token {} }}",
            "configuration {".repeat(100),
            "}".repeat(100)
        );
        let errors = run(deep).await;
        assert!(
            errors[0].contains("nests more than 32 levels"),
            "{errors:?}"
        );
        // Two aliased calls are allowed, three are not.
        let aliased = |n: usize| {
            format!(
                "{{ {} }}",
                (0..n)
                    .map(|i| format!("a{i}: configuration {{ token {{ token }} }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        let errors = run(aliased(2)).await;
        assert!(errors[0].contains("does not exist"), "{errors:?}");
        let errors = run(aliased(3)).await;
        assert!(errors[0].contains("at most two calls"), "{errors:?}");
        let wide = format!(
            "{{ configuration {{ {} }} }}",
            (0..100)
                .map(|i| format!("a{i}: certificateSigningRequestInfo {{ subject }}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let errors = run(wide).await;
        assert!(errors[0].contains("300 fields in all"), "{errors:?}");
    }

    #[test]
    fn internal_schema_is_compass() {
        let served = Schema::build(InternalQuery, InternalMutation, EmptySubscription)
            .finish()
            .sdl();
        assert_eq!(shape(&served), shape(INTERNAL_SCHEMA), "{served}");
    }
}
