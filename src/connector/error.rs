//! Every way a connector call can fail, and how each maps to an HTTP status and Kyma's JSON
//! error shape `{"code": <status>, "error": "<message>"}`, or to a GraphQL error with the
//! same message and `extensions.code`, in one place.

use std::time::Duration;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;
use tracing::warn;

use crate::policy::DenyReason;

/// Kyma's words for a body whose base64 does not decode; clients match on them.
pub const BASE64_MESSAGE: &str =
    "There was an error while parsing the base64 content. An incorrect value was provided.";

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("Token not provided.")]
    TokenMissing,
    /// Kyma's words, then certpair's detail when it has one.
    #[error("Invalid token.{}", .0.as_deref().map(|d| format!(" {d}")).unwrap_or_default())]
    InvalidToken(Option<String>),
    #[error("{BASE64_MESSAGE} {0}")]
    Base64(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    /// The request (or the Application it names) is refused by policy.
    #[error("{reason}: {message}")]
    Refused { reason: DenyReason, message: String },
    #[error("Certificate has been revoked.")]
    Revoked,
    /// No client certificate, or one that certpair did not issue or that has expired.
    #[error("{0}")]
    ClientCertificate(String),
    /// The internal API's caller is not authenticated.
    #[error("{0}")]
    Unauthenticated(String),
    /// A client certificate whose Application or subject no longer allows it.
    #[error("{0}")]
    Forbidden(String),
    /// The controller denied (or failed) the CSR.
    #[error("CSR {csr} was refused: {reason}: {message}")]
    Denied {
        csr: String,
        reason: String,
        message: String,
    },
    #[error(
        "CSR {csr} has no certificate after {} s (it awaits approval or signing; `kubectl describe csr {csr}` shows why); retry the same request with the same token to receive it once issued",
        .waited.as_secs()
    )]
    Pending { csr: String, waited: Duration },
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Internal(String),
}

impl ConnectorError {
    /// A short, fixed name of the error's kind, for logs.
    fn kind(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Internal(_) => "internal",
            _ => "client",
        }
    }

    /// A stable name for programs (GraphQL's `extensions.code`; REST carries the status).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TokenMissing => "TOKEN_NOT_PROVIDED",
            Self::InvalidToken(_) => "INVALID_TOKEN",
            Self::Base64(_) => "INVALID_BASE64",
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::TooLarge(_) => "TOO_LARGE",
            Self::Refused { .. } => "REFUSED",
            Self::Revoked => "CERTIFICATE_REVOKED",
            Self::ClientCertificate(_) => "CLIENT_CERTIFICATE",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Denied { .. } => "CSR_DENIED",
            Self::Pending { .. } => "CSR_PENDING",
            Self::Conflict(_) => "CONFLICT",
            Self::Busy(_) => "UNAVAILABLE",
            Self::Kube(_) | Self::Internal(_) => match self.status_code() {
                StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
                _ => "INTERNAL",
            },
        }
    }

    /// What the client is told: the error itself, except that a 5xx's detail goes to the log
    /// and the client gets words without internals.
    pub fn public_message(&self) -> String {
        match self {
            Self::Kube(_) | Self::Internal(_) => {
                warn!(kind = self.kind(), error = %self, "connector request failed");
                if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
                    "The connector cannot reach the Kubernetes API right now; retry.".to_owned()
                } else {
                    "The connector failed to complete the request; retry, and see its log if it persists.".to_owned()
                }
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ConnectorError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::TokenMissing | Self::InvalidToken(_) | Self::Revoked => StatusCode::FORBIDDEN,
            Self::ClientCertificate(_) | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Base64(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Refused { reason, .. } => match reason {
                DenyReason::UnknownApplication
                | DenyReason::ApplicationDisabled
                | DenyReason::RequesterNotAuthorized => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            },
            Self::Denied { reason, .. } if reason == "RequesterNotAuthorized" => {
                StatusCode::FORBIDDEN
            }
            Self::Denied { .. } => StatusCode::BAD_REQUEST,
            Self::Pending { .. } | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Kube(kube::Error::Api(_)) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Kube(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        error_body(self.status_code(), &self.public_message())
    }
}

/// Kyma's error shape.
pub fn error_body(status: StatusCode, message: &str) -> HttpResponse {
    let mut reply = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        reply.insert_header(("Retry-After", "5"));
    }
    reply.json(json!({ "code": status.as_u16(), "error": message }))
}
