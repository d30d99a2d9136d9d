//! The webhook configuration the webhook tests install: certpair's, pointing at a controller
//! run on this machine, removed again however the test ends (`failurePolicy: Fail` would
//! otherwise block every later CSR of certpair's signer).

use std::path::{Path, PathBuf};

use certpair::api::DEFAULT_SIGNER_NAME;

use super::{Cluster, run, stderr};

pub const CONFIG: &str = "certpair";

/// Deletes the webhook configuration when dropped.
pub struct InstalledConfig(PathBuf);

impl Drop for InstalledConfig {
    fn drop(&mut self) {
        let _ = std::process::Command::new(super::kubectl_path())
            .arg("--kubeconfig")
            .arg(&self.0)
            .args([
                "delete",
                "validatingwebhookconfiguration",
                CONFIG,
                "--ignore-not-found",
            ])
            .output();
    }
}

/// Applies (with kubectl) a configuration that sends CSRs of certpair's signer to
/// `https://127.0.0.1:<port>`, with no caBundle: certpair injects it; and ConfigMap
/// `certpair-webhook` saying so (what the leader restores and the admission policy allows).
pub fn install(cluster: &Cluster, port: u16, dir: &Path) -> InstalledConfig {
    let guard = InstalledConfig(cluster.kubeconfig.clone());
    let manifest = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: certpair-webhook
  namespace: certpair-system
data:
  url: {url}
  signerName: {DEFAULT_SIGNER_NAME}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {CONFIG}
webhooks:
  - name: csr.certpair.dev
    clientConfig:
      url: {url}
    rules:
      - apiGroups: [certificates.k8s.io]
        apiVersions: [v1]
        operations: [CREATE]
        resources: [certificatesigningrequests]
    matchConditions:
      - name: certpair-signer-only
        expression: object.spec.signerName == '{DEFAULT_SIGNER_NAME}'
    failurePolicy: Fail
    sideEffects: None
    timeoutSeconds: 5
    admissionReviewVersions: [v1]
"#,
        url = url(port)
    );
    let file = dir.join("webhook-configuration.yaml");
    std::fs::write(&file, manifest).expect("write webhook configuration");
    let out = run(cluster.kubectl().args(["apply", "-f"]).arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    guard
}

/// Where the tests' webhook configuration sends reviews.
pub fn url(port: u16) -> String {
    format!("https://127.0.0.1:{port}/validate/certificatesigningrequests")
}

/// Deletes the webhook's Secrets so a test starts from nothing; returns the Secrets API.
pub async fn start_from_nothing(
    cluster: &Cluster,
) -> kube::Api<k8s_openapi::api::core::v1::Secret> {
    cluster.install_manifests().await;
    let secrets = kube::Api::namespaced(cluster.client.clone(), "certpair-system");
    for name in ["certpair-webhook-ca", "certpair-webhook-tls"] {
        let _ = secrets
            .delete(name, &kube::api::DeleteParams::default())
            .await;
    }
    secrets
}

/// A TLS connection straight to a webhook listener on 127.0.0.1:port, without verifying its
/// certificate (the tests compare or bypass it; the apiserver is the verifying client).
pub fn tls_connect(port: u16) -> Option<openssl::ssl::SslStream<std::net::TcpStream>> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    // One connector for every connection: building one loads the system's CA bundle, which
    // costs milliseconds, and a flood's clients connect thousands of times.
    static CONNECTOR: std::sync::OnceLock<Option<SslConnector>> = std::sync::OnceLock::new();
    let connector = CONNECTOR.get_or_init(|| {
        let mut b = SslConnector::builder(SslMethod::tls_client()).ok()?;
        b.set_verify(SslVerifyMode::NONE);
        Some(b.build())
    });
    let mut config = connector.as_ref()?.configure().ok()?;
    config.set_use_server_name_indication(false);
    config.set_verify_hostname(false);
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    config.connect("127.0.0.1", tcp).ok()
}

/// A controller serving the webhook from nothing (its Secrets deleted) on a free loopback port,
/// with certpair's webhook configuration pointing at it; `extra` are more controller flags.
pub async fn serve(
    cluster: &Cluster,
    dir: &Path,
    extra: &[&str],
) -> (u16, InstalledConfig, super::ControllerProcess) {
    start_from_nothing(cluster).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let installed = install(cluster, port, dir);
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--webhook-addr",
        addr.as_str(),
        "--webhook-ips",
        "127.0.0.1",
        "--webhook-dns-names",
        "localhost",
    ];
    args.extend_from_slice(extra);
    let controller = cluster.start_controller(&args).await;
    (port, installed, controller)
}
