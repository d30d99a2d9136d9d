//! The webhook's own PKI, managed by [`crate::managed_tls`]: Secrets `certpair-webhook-ca`
//! (`ca.crt`, `ca.key`) and `certpair-webhook-tls` (`tls.crt`, `tls.key`), and the `caBundle`
//! injected into the ValidatingWebhookConfiguration.

use std::{net::IpAddr, time::Duration};

use super::configuration::SHIPPED_CONFIGMAP;
use crate::{
    api::{WEBHOOK_CA_SECRET, WEBHOOK_TLS_SECRET},
    managed_tls::{ManagedTls, TrustTarget},
};

/// Common name of every webhook CA certpair generates; earlier ones are recognised by it.
pub const WEBHOOK_CA_NAME: &str = "certpair webhook CA";
/// Readiness check: a serving certificate is loaded and the injected bundle trusts it.
pub const WEBHOOK_CERTIFICATE: &str = "webhook-certificate";

/// The webhook's managed CA and serving certificate.
pub fn managed(
    namespace: &str,
    config_name: String,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    ca_validity: Duration,
    serving_validity: Duration,
    look_ahead: Duration,
) -> ManagedTls {
    ManagedTls {
        label: "webhook",
        namespace: namespace.to_owned(),
        ca_secret: WEBHOOK_CA_SECRET,
        tls_secret: WEBHOOK_TLS_SECRET,
        ca_name: WEBHOOK_CA_NAME,
        dns_names,
        ips,
        ca_validity,
        serving_validity,
        look_ahead,
        trust: TrustTarget::WebhookConfiguration {
            name: config_name,
            shipped: Some(SHIPPED_CONFIGMAP),
        },
    }
}
