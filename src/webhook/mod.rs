//! The validating admission webhook for CSRs of certpair's signer. It rejects what can never
//! become valid with the same `policy` code the controller decides with, and turns
//! state-dependent findings (no such Application yet, a disabled one) into warnings, which
//! kubectl prints. One feature, one folder:
//! - `review`: the request path (AdmissionReview in, AdmissionReview out);
//! - `server`: flags, the HTTPS listener every replica runs, the drain on SIGTERM;
//! - `certificates`: its CA and serving certificate, managed by [`crate::managed_tls`];
//! - `configuration`: the ValidatingWebhookConfiguration as shipped, and drift from it.

pub mod certificates;
pub mod configuration;
pub mod review;
pub mod server;

pub use review::{MAX_BODY_BYTES, Verdict, WebhookState, configure, review_csr};
pub use server::{WORKERS, WebhookConfig, WebhookServer, https_server};
