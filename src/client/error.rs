//! What a client command can fail at, and what a person (or a pipeline, by exit code) does
//! about it: every error names the step, what the other side said, and what to do next.

use std::fmt;

/// Exit codes of the client commands (clap's usage errors exit 2).
pub mod exit {
    /// Something on this machine: files, keys, flags that parse but do not make sense.
    pub const LOCAL: u8 = 1;
    /// The connector or the API server refused (4xx): retrying the same thing will not help.
    pub const REFUSED: u8 = 3;
    /// The connector or the API server could not be reached or failed (5xx): retry later.
    pub const UNAVAILABLE: u8 = 4;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Local,
    /// The server answered no: the HTTP status (or the API's), its message, and its code
    /// (GraphQL's `extensions.code`) when it sent one.
    Refused {
        status: u16,
        code: Option<String>,
    },
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct ClientError {
    /// The step that failed, as the progress lines name it.
    pub step: &'static str,
    pub kind: Kind,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl ClientError {
    pub fn local(step: &'static str, message: impl fmt::Display) -> Self {
        Self {
            step,
            kind: Kind::Local,
            message: message.to_string(),
            hint: None,
        }
    }

    pub fn unavailable(step: &'static str, message: impl fmt::Display) -> Self {
        Self {
            step,
            kind: Kind::Unavailable,
            message: message.to_string(),
            hint: Some("check the URL and that the connector runs; then retry".into()),
        }
    }

    pub fn refused(
        step: &'static str,
        status: u16,
        code: Option<String>,
        message: impl fmt::Display,
    ) -> Self {
        let message = message.to_string();
        let hint = hint_for(status, code.as_deref(), &message);
        Self {
            step,
            kind: if status >= 500 || status == 0 {
                Kind::Unavailable
            } else {
                Kind::Refused { status, code }
            },
            message,
            hint,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Local => exit::LOCAL,
            Kind::Refused { .. } => exit::REFUSED,
            Kind::Unavailable => exit::UNAVAILABLE,
        }
    }

    /// Worth trying again as it is: the connector was away, or the certificate awaits
    /// approval.
    pub fn retryable(&self) -> bool {
        match &self.kind {
            Kind::Unavailable => true,
            Kind::Refused { code, .. } => code.as_deref() == Some("CSR_PENDING"),
            Kind::Local => false,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "step": self.step,
            "message": self.message,
        });
        if let Kind::Refused { status, code } = &self.kind {
            error["status"] = (*status).into();
            if let Some(code) = code {
                error["code"] = code.clone().into();
            }
        }
        if let Some(hint) = &self.hint {
            error["hint"] = hint.clone().into();
        }
        serde_json::json!({ "error": error })
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: ", self.step)?;
        match &self.kind {
            Kind::Refused { status, .. } => write!(f, "refused ({status}): {}", self.message)?,
            _ => write!(f, "{}", self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  what to do: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ClientError {}

/// The advice for the connector's answers a person meets most.
fn hint_for(status: u16, code: Option<&str>, message: &str) -> Option<String> {
    let pair_again = "pair again with a new token (certpair token create APP, then certpair pair)";
    let hint = match code {
        Some("INVALID_TOKEN") => {
            "the token is used, expired or not this cluster's: create a new one (certpair token create APP)"
        }
        Some("TOKEN_NOT_PROVIDED") => {
            "pass the TokenRequest's url (it carries the token) or --token"
        }
        Some("CERTIFICATE_REVOKED") => pair_again,
        Some("CSR_PENDING") => {
            "the CSR awaits approval or signing (kubectl describe csr NAME shows why); run the same command again: the key and token are kept"
        }
        Some("CSR_DENIED") | Some("REFUSED") => {
            "the Application's policy refuses this request: see the reason, and the Application (kubectl get application APP -o yaml)"
        }
        _ if message.contains("awaits approval or signing") => {
            "the CSR awaits approval or signing (kubectl describe csr NAME shows why); run the same command again: the key and token are kept"
        }
        _ if message.contains("pair again") => pair_again,
        _ if message.starts_with("Invalid token.") => {
            "the token is used, expired or not this cluster's: create a new one (certpair token create APP)"
        }
        _ if message.starts_with("Certificate has been revoked.") => pair_again,
        _ if status >= 500 || status == 0 => "the connector is unavailable; retry later",
        _ => return None,
    };
    Some(hint.to_owned())
}
