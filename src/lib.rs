//! certpair: X.509 client certificates for applications through native Kubernetes
//! CertificateSigningRequests. See DESIGN.md for the architecture.
#![forbid(unsafe_code)]
#![deny(warnings)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod cli;
pub mod controller;
pub mod error;
pub mod pki;
pub mod policy;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod webhook;

pub use error::{Error, Result};
