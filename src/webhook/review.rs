//! The request path: AdmissionReview in, AdmissionReview out. [`review_csr`] is pure; the
//! actix handler around it turns bad bodies into a JSON `Status` with a 4xx.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use actix_web::{
    HttpRequest, HttpResponse,
    http::{ConnectionType, StatusCode},
    post, web,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
};
use serde_json::json;
use tracing::{debug, warn};

use crate::{
    limits::{self, BodyBudget},
    pki::csr::parse_pem_for_admission,
    policy::{self, ApplicationRules, Decision, Defaults, Denial, Facts, RequestSpec},
};

/// Largest AdmissionReview body accepted. A CSR review is a few KiB; the apiserver's own
/// request size limit is far larger, so cap it here.
pub use crate::limits::MAX_BODY_BYTES;

/// What the webhook says about one CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Refusal message; `None` admits.
    pub denied: Option<String>,
    pub warnings: Vec<String>,
}

/// Pure: the verdict on a CSR being created, given how to look up an Application by name.
pub fn review_csr(
    csr: &CertificateSigningRequest,
    signer_name: &str,
    defaults: &Defaults,
    application: impl Fn(&str) -> Option<ApplicationRules>,
) -> Verdict {
    let admit = |warnings| Verdict {
        denied: None,
        warnings,
    };
    let deny = |d: Denial| Verdict {
        denied: Some(d.to_string()),
        warnings: Vec::new(),
    };
    if csr.spec.signer_name != signer_name {
        return admit(Vec::new());
    }
    let parsed = match parse_pem_for_admission(&csr.spec.request.0) {
        Ok(p) => p,
        Err(e) => return deny(policy::unreadable(&e)),
    };
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let spec = RequestSpec {
        usages: &usages,
        expiration_seconds: csr.spec.expiration_seconds,
    };
    let req = match policy::check_request(&parsed, spec) {
        Ok(req) => req,
        Err(d) => return deny(d),
    };
    // Whether the Application exists, is enabled and what it requires is not the requester's
    // to read (they may lack even `get` on Applications), so every state-dependent finding
    // gets the same words. The approver's decision on the CSR says which rule failed, and only
    // after it has checked that the requester may request this Application.
    let fits = application(req.cn).is_some_and(|app| {
        let facts = Facts {
            application: Some(&app),
            // Authorization is the approver's to check (SubjectAccessReview); assume it here.
            requester_authorized: true,
            requester: csr.spec.username.as_deref().unwrap_or(""),
        };
        matches!(
            policy::decide(&req, &facts, defaults),
            Decision::Approve { .. } | Decision::Pending { .. }
        )
    });
    if fits {
        return admit(Vec::new());
    }
    admit(vec![format!(
        "certpair issues this only if an enabled Application {:?} exists, you may request certificates for it, and the request's subject and key fit it; `kubectl describe csr` shows the decision",
        req.cn
    )])
}

/// Looks up an Application's rules by name (the controller's cache in production).
pub type ApplicationLookup = Arc<dyn Fn(&str) -> Option<ApplicationRules> + Send + Sync>;

/// What the handler needs: the signer, the defaults and the Application lookup.
pub struct WebhookState {
    pub signer_name: String,
    pub defaults: Defaults,
    pub applications: ApplicationLookup,
    /// Set at SIGTERM, for the drain window before the listener closes: answers then close
    /// their connection (see [`validate`]).
    pub draining: Arc<AtomicBool>,
    /// Room for large bodies, shared by all connections.
    pub budget: BodyBudget,
}

/// A reply that closes its connection while the server drains (see [`validate`]).
fn reply(status: StatusCode, state: Option<&WebhookState>) -> actix_web::HttpResponseBuilder {
    let mut reply = HttpResponse::build(status);
    if state.is_some_and(|s| s.draining.load(Ordering::Relaxed)) {
        reply.force_close();
    }
    reply
}

fn bad_request(
    status: StatusCode,
    state: Option<&WebhookState>,
    message: impl Into<String>,
) -> HttpResponse {
    let message = message.into();
    reply(status, state).json(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": status.as_u16(),
    }))
}

/// One review: the body read within the listener's limits ([`crate::limits`]), parsed, and
/// answered. A bad body gets a 4xx with a JSON Status, never a panic.
#[post("/validate/certificatesigningrequests")]
async fn validate(
    state: web::Data<WebhookState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let not_a_review = |status, why: &dyn std::fmt::Display| {
        bad_request(
            status,
            Some(&state),
            format!("not an admission.k8s.io/v1 AdmissionReview: {why}"),
        )
    };
    if !limits::is_json(&req) {
        return not_a_review(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &"the Content-Type must be application/json",
        );
    }
    // Held until the answer is built: parsing costs memory too.
    let body = match state.budget.read(&req, payload).await {
        Ok(body) => body,
        Err(e) => {
            let mut response = not_a_review(e.status(), &e);
            // The rest of the body may still be on its way: do not wait for it.
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            return response;
        }
    };
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body.bytes) {
        Ok(review) => review,
        Err(e) => return not_a_review(StatusCode::BAD_REQUEST, &e),
    };
    let response = match answer(&state, review) {
        Ok(response) => response,
        Err(message) => return bad_request(StatusCode::BAD_REQUEST, Some(&state), message),
    };
    // While draining (after SIGTERM, before the listener closes), every answer closes its
    // connection, so the apiserver's next call opens a new one, to a replica that stays.
    reply(StatusCode::OK, Some(&state)).json(response.into_review())
}

/// The AdmissionResponse for a review, or why the body is not one (a 400). Public so the
/// fuzz target (`fuzz/fuzz_targets/admission_review.rs`) runs exactly what the handler runs
/// after reading the body.
pub fn answer(
    state: &WebhookState,
    review: AdmissionReview<DynamicObject>,
) -> Result<AdmissionResponse, String> {
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return Err(format!(
            "expected kind AdmissionReview of admission.k8s.io/v1, got {:?} of {:?}",
            review.types.kind, review.types.api_version
        ));
    }
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| "AdmissionReview has no request".to_owned())?;
    let response = AdmissionResponse::from(&request);
    if request.operation != Operation::Create {
        return Ok(response);
    }
    let Some(object) = request.object.as_ref() else {
        return Ok(response.deny("the AdmissionReview request has no object"));
    };
    let csr: CertificateSigningRequest =
        match serde_json::to_value(object).and_then(serde_json::from_value) {
            Ok(csr) => csr,
            Err(e) => {
                warn!(uid = %request.uid, error = %e, "object is not a CertificateSigningRequest");
                return Ok(response.deny(format!(
                    "object is not a certificates.k8s.io/v1 CertificateSigningRequest: {e}"
                )));
            }
        };
    let verdict = review_csr(&csr, &state.signer_name, &state.defaults, |name| {
        (state.applications)(name)
    });
    debug!(uid = %request.uid, name = %request.name, denied = verdict.denied.is_some(), warnings = verdict.warnings.len(), "reviewed");
    let mut response = match verdict.denied {
        Some(message) => response.deny(message),
        None => response,
    };
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings);
    }
    Ok(response)
}

/// Routes of the webhook listener.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(validate);
}

#[cfg(test)]
mod tests {
    use actix_web::{App, body::to_bytes, test};
    use openssl::nid::Nid;
    use serde_json::Value;

    use super::*;
    use crate::{
        pki::testing::{Req, p256, rsa},
        policy::SubjectRules,
    };

    fn state() -> web::Data<WebhookState> {
        web::Data::new(WebhookState {
            signer_name: crate::api::DEFAULT_SIGNER_NAME.into(),
            defaults: Defaults::default(),
            applications: Arc::new(|name: &str| match name {
                "billing" => Some(ApplicationRules {
                    subject: SubjectRules {
                        organization: Some("Acme".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }),
                "retired" => Some(ApplicationRules {
                    disabled: true,
                    ..Default::default()
                }),
                _ => None,
            }),
            draining: Arc::default(),
            budget: BodyBudget::default(),
        })
    }

    fn review(pem: &[u8], signer: &str, operation: &str) -> Value {
        use openssl::base64::encode_block;
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "3f1c-uid",
                "kind": {"group": "certificates.k8s.io", "version": "v1", "kind": "CertificateSigningRequest"},
                "resource": {"group": "certificates.k8s.io", "version": "v1", "resource": "certificatesigningrequests"},
                "name": "csr-1",
                "operation": operation,
                "userInfo": {"username": "alice"},
                "object": {
                    "apiVersion": "certificates.k8s.io/v1",
                    "kind": "CertificateSigningRequest",
                    "metadata": {"name": "csr-1"},
                    "spec": {
                        "request": encode_block(pem),
                        "signerName": signer,
                        "usages": ["digital signature", "client auth"],
                        "expirationSeconds": 3600
                    }
                },
                "dryRun": false
            }
        })
    }

    async fn call(body: Vec<u8>, content_type: &str) -> (StatusCode, Value) {
        let app = test::init_service(App::new().app_data(state()).configure(configure)).await;
        let req = test::TestRequest::post()
            .uri("/validate/certificatesigningrequests")
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_request();
        let resp = test::call_service(&app, req).await;
        let status = resp.status();
        let bytes = to_bytes(resp.into_body()).await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn verdict(pem: &[u8], signer: &str, operation: &str) -> Value {
        let (status, body) = call(
            serde_json::to_vec(&review(pem, signer, operation)).expect("json"),
            "application/json",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(body["response"]["uid"], "3f1c-uid", "the uid is echoed");
        body["response"].clone()
    }

    const SIGNER: &str = crate::api::DEFAULT_SIGNER_NAME;

    /// Answers, refusals included, close their connection once the server drains, and only
    /// then.
    #[actix_web::test]
    async fn draining_closes_each_connection_after_its_answer() {
        use actix_web::http::ConnectionType;
        let state = state();
        let app = test::init_service(App::new().app_data(state.clone()).configure(configure)).await;
        let body = review(&Req::cn("billing").pem(&p256()), SIGNER, "CREATE");
        let mut kinds = Vec::new();
        for draining in [false, true] {
            state.draining.store(draining, Ordering::Relaxed);
            let req = test::TestRequest::post()
                .uri("/validate/certificatesigningrequests")
                .set_json(&body)
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::OK);
            kinds.push(resp.response().head().connection_type());
        }
        assert_ne!(kinds[0], ConnectionType::Close);
        assert_eq!(kinds[1], ConnectionType::Close);

        // Refusals of bad bodies close too: from the JSON extractor and from the handler.
        for body in [&b"not json"[..], br#"{"apiVersion":"v1","kind":"Status"}"#] {
            let req = test::TestRequest::post()
                .uri("/validate/certificatesigningrequests")
                .insert_header(("content-type", "application/json"))
                .set_payload(body.to_vec())
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            assert_eq!(
                resp.response().head().connection_type(),
                ConnectionType::Close
            );
        }
    }

    #[actix_web::test]
    async fn admits_a_good_request_silently() {
        let r = verdict(
            &Req::cn("billing")
                .with(Nid::ORGANIZATIONNAME, "Acme")
                .pem(&p256()),
            SIGNER,
            "CREATE",
        )
        .await;
        assert_eq!(r["allowed"], true, "{r}");
        assert!(r.get("warnings").is_none(), "{r}");
    }

    #[actix_web::test]
    async fn refuses_what_can_never_become_valid() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
                    .to_vec(),
                "InvalidRequest",
            ),
            (b"garbage".to_vec(), "not PEM"),
            (
                Req::cn("billing")
                    .with(Nid::ORGANIZATIONNAME, "Acme")
                    .pem(&rsa(1024)),
                "KeyTooWeak",
            ),
            (
                Req {
                    ca: true,
                    ..Req::cn("billing")
                }
                .pem(&p256()),
                "CA:TRUE",
            ),
        ];
        for (pem, needle) in cases {
            let r = verdict(&pem, SIGNER, "CREATE").await;
            assert_eq!(r["allowed"], false, "{r}");
            let message = r["status"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    }

    /// A review of a request whose RSA exponent would make verifying it cost milliseconds is
    /// refused for the exponent; its signature (forged here) is never checked, or the refusal
    /// would say so.
    #[actix_web::test]
    async fn a_huge_rsa_exponent_is_refused_without_verifying() {
        use crate::pki::testing::{forged_rsa_request, huge_exponent};
        let key = openssl::rsa::Rsa::generate(2048).expect("rsa");
        let r = verdict(
            &forged_rsa_request(key.n(), &huge_exponent()),
            SIGNER,
            "CREATE",
        )
        .await;
        assert_eq!(r["allowed"], false, "{r}");
        let message = r["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("KeyTooWeak:") && message.contains("exponent has 300 bits"),
            "{message}"
        );
        assert!(!message.contains("signature"), "{message}");
    }

    #[actix_web::test]
    async fn state_dependent_findings_are_warnings() {
        // Missing, disabled, or not what the Application requires: one and the same warning,
        // so it tells a requester nothing about Applications they may not read.
        let mut warnings = Vec::new();
        for (cn, o) in [("billing", "Evil"), ("retired", "Acme"), ("nobody", "Acme")] {
            let pem = Req::cn(cn).with(Nid::ORGANIZATIONNAME, o).pem(&p256());
            let r = verdict(&pem, SIGNER, "CREATE").await;
            assert_eq!(r["allowed"], true, "{r}");
            let warning = r["warnings"][0].as_str().unwrap_or_default().to_owned();
            assert!(
                warning.contains(&format!("enabled Application \"{cn}\" exists")),
                "{warning}"
            );
            warnings.push(warning.replace(cn, "X"));
        }
        warnings.dedup();
        assert_eq!(warnings.len(), 1, "the same words each time: {warnings:?}");
        for secret in [
            "Evil",
            "Acme",
            "disabled",
            "SubjectMismatch",
            "ApplicationDisabled",
        ] {
            assert!(!warnings[0].contains(secret), "{}", warnings[0]);
        }
    }

    #[actix_web::test]
    async fn other_signers_and_other_operations_pass() {
        let r = verdict(b"garbage", "example.com/other", "CREATE").await;
        assert_eq!(r["allowed"], true);
        let r = verdict(b"garbage", SIGNER, "UPDATE").await;
        assert_eq!(r["allowed"], true);
    }

    #[actix_web::test]
    async fn bad_bodies_get_a_json_4xx() {
        let (status, body) = call(b"{not json".to_vec(), "application/json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["kind"], "Status", "{body}");

        let mut wrong = review(b"x", SIGNER, "CREATE");
        wrong["apiVersion"] = "admission.k8s.io/v1beta1".into();
        let (status, body) = call(
            serde_json::to_vec(&wrong).expect("json"),
            "application/json",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("admission.k8s.io/v1"),
            "{body}"
        );

        let mut empty = review(b"x", SIGNER, "CREATE");
        empty.as_object_mut().expect("object").remove("request");
        let (status, body) = call(
            serde_json::to_vec(&empty).expect("json"),
            "application/json",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no request"),
            "{body}"
        );

        let mut huge = review(b"x", SIGNER, "CREATE");
        huge["request"]["object"]["metadata"]["annotations"] =
            json!({"pad": "x".repeat(MAX_BODY_BYTES)});
        let (status, body) =
            call(serde_json::to_vec(&huge).expect("json"), "application/json").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], 413, "{body}");

        let (status, _) = call(b"{}".to_vec(), "text/plain").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
