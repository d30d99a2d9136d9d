//! The admission webhook, called by the real kube-apiserver: certpair creates its CA and
//! serving certificate from nothing, injects the caBundle, and `kubectl apply` of a CSR gets
//! the webhook's verdict. Its own binary: the webhook configuration (`failurePolicy: Fail`)
//! applies to every CSR of certpair's signer while it exists, so it is removed at the end.

mod support;

use std::time::Duration;

use certpair::api::DEFAULT_SIGNER_NAME;
use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration, core::v1::Secret,
};
use kube::{Api, api::DeleteParams};
use support::{
    Cluster,
    csr::{application, requester},
    csr_pem, ec_key, run, stderr, unique, wait_for,
};

const CONFIG: &str = "certpair";

/// Deletes the webhook configuration however the test ends.
struct RemoveConfig(std::path::PathBuf);

impl Drop for RemoveConfig {
    fn drop(&mut self) {
        let _ = std::process::Command::new(support::kubectl_path())
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

fn configuration(port: u16) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {CONFIG}
webhooks:
  - name: csr.certpair.dev
    clientConfig:
      url: https://127.0.0.1:{port}/validate/certificatesigningrequests
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
"#
    )
}

fn csr_manifest(name: &str, pem: &[u8]) -> String {
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {DEFAULT_SIGNER_NAME}\n  usages: [digital signature, client auth]\n  request: {}\n",
        openssl::base64::encode_block(pem)
    )
}

#[tokio::test]
async fn from_nothing_the_webhook_is_served_injected_and_enforced() {
    let cluster = Cluster::connect().await;
    cluster.install_manifests().await;
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "certpair-system");
    for name in ["certpair-webhook-ca", "certpair-webhook-tls"] {
        let _ = secrets.delete(name, &DeleteParams::default()).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let _cleanup = RemoveConfig(cluster.kubeconfig.clone());
    std::fs::write(dir.path().join("webhook.yaml"), configuration(port)).expect("write");
    let out = run(cluster
        .kubectl()
        .args(["apply", "-f"])
        .arg(dir.path().join("webhook.yaml")));
    assert!(out.status.success(), "{}", stderr(&out));

    let addr = format!("127.0.0.1:{port}");
    let controller = cluster
        .start_controller(&[
            "--webhook-addr",
            &addr,
            "--webhook-ips",
            "127.0.0.1",
            "--webhook-dns-names",
            "localhost",
        ])
        .await;

    // The Secrets appear and the bundle is injected.
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client.clone());
    wait_for(
        &configs,
        CONFIG,
        "caBundle injected",
        Duration::from_secs(30),
        |c: Option<&ValidatingWebhookConfiguration>| {
            c.and_then(|c| c.webhooks.as_ref()).is_some_and(|w| {
                w.iter().all(|w| {
                    w.client_config
                        .ca_bundle
                        .as_ref()
                        .is_some_and(|b| !b.0.is_empty())
                })
            })
        },
    )
    .await;
    let ca = secrets.get("certpair-webhook-ca").await.expect("CA Secret");
    assert!(
        ca.data.as_ref().is_some_and(|d| d.contains_key("ca.key")),
        "CA Secret has its key"
    );

    let app = unique("hooked");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let apply = |name: &str, pem: &[u8]| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, csr_manifest(name, pem)).expect("write");
        run(who.kubectl().args(["apply", "-f"]).arg(&file))
    };

    // Two PEM blocks: the apiserver reads the first and accepts it; certpair refuses.
    let good = csr_pem(&ec_key(), &app, &["Acme"]);
    let out = apply(
        &unique("two-blocks"),
        &[good.clone(), good.clone()].concat(),
    );
    assert!(!out.status.success(), "a two-block request must be refused");
    let err = stderr(&out);
    assert!(
        err.contains("denied the request") && err.contains("2 PEM blocks"),
        "{err}\n{}",
        controller.logs()
    );

    // RSA-1024: refused with the field and the rule.
    let weak = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).expect("rsa"))
        .expect("key");
    let out = apply(&unique("weak"), &csr_pem(&weak, &app, &["Acme"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("KeyTooWeak"), "{}", stderr(&out));

    // A good request is admitted (and then issued by the controller).
    let out = apply(&unique("good"), &good);
    assert!(out.status.success(), "{}", stderr(&out));

    // A request naming no Application is admitted with a warning kubectl prints.
    let out = apply(
        &unique("orphan"),
        &csr_pem(&ec_key(), &unique("no-such-app"), &["Acme"]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Warning:") && stderr(&out).contains("no Application"),
        "{}",
        stderr(&out)
    );
}
