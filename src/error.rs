//! The crate's error type. Variants carry enough context to print one line that tells an
//! operator what is wrong and what to do, without a backtrace.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load a Kubernetes client configuration (set KUBECONFIG or run in a pod): {0}")]
    KubeConfig(#[source] kube::config::InferConfigError),

    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),

    #[error("cannot reach the Kubernetes API server at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    #[error(
        "the Application CRD (applications.certpair.dev) is not installed in the cluster at {url}; install it with `certpair crd | kubectl apply -f -`"
    )]
    CrdMissing { url: String },

    #[error("the Kubernetes API server at {url} refused {what}: {message} (HTTP {code})")]
    ApiRefused {
        url: String,
        what: &'static str,
        message: String,
        code: u16,
    },

    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),

    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot install the signal handler: {0}")]
    Signal(#[source] std::io::Error),

    #[error("HTTP server failed: {0}")]
    Server(#[source] std::io::Error),

    #[error("cannot render the CRD as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("leader election failed: {0}")]
    Lease(String),

    #[error("invalid log filter {filter:?}: {reason}")]
    LogFilter { filter: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The innermost cause of an error chain: for a failed connection this is the operating
/// system's own words ("Connection refused"), which is what an operator needs to see.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn root_cause_reaches_the_innermost_error() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(root_cause(&err), "Connection refused");
    }

    #[test]
    fn crd_missing_names_the_fix() {
        let msg = Error::CrdMissing {
            url: "https://127.0.0.1:6443/".into(),
        }
        .to_string();
        assert!(msg.contains("certpair crd | kubectl apply -f -"));
        assert!(!msg.contains('\n'));
    }
}
