//! `--unmatched=pending`, manual approval with kubectl (which cannot make certpair sign for an
//! Application that does not exist), re-evaluation when an Application appears, and
//! bring-your-own signing CA. Its own binary: it runs its own controller with
//! flags that differ from the signing tests', and it replaces the signing CA.

mod support;

use std::{process::Command, time::Duration};

use k8s_openapi::api::{certificates::v1::CertificateSigningRequest, core::v1::ConfigMap};
use kube::Api;
use support::{
    Cluster,
    csr::{Outcome, application, request_certificate, requester, wait_outcome},
    run, stderr, unique, wait_for,
};

fn pending(csr: &CertificateSigningRequest) -> bool {
    let status = csr.status.clone().unwrap_or_default();
    status.conditions.unwrap_or_default().is_empty() && status.certificate.is_none()
}

#[tokio::test]
async fn unmatched_requests_wait_for_a_person_or_an_application() {
    let cluster = Cluster::connect().await;
    let controller = cluster.start_controller(&["--unmatched", "pending"]).await;
    controller.wait_leader().await;
    let dir = tempfile::tempdir().expect("tempdir");

    // Two requests for Applications that do not exist yet.
    let (later_app, manual_app) = (unique("later"), unique("manual"));
    let who = requester(&cluster, Some(&later_app)).await;
    let later = request_certificate(&who, "pending-later", &later_app, dir.path());
    let manual = request_certificate(&who, "pending-manual", &manual_app, dir.path());

    // Positive control: a matched request submitted afterwards is issued, so the controller
    // has already looked at the two above and left them pending.
    let known = unique("known");
    application(&cluster.client, &known, None).await;
    let who_known = requester(&cluster, Some(&known)).await;
    let control = request_certificate(&who_known, "pending-control", &known, dir.path());
    assert!(
        matches!(
            wait_outcome(&cluster.client, &control).await,
            Outcome::Issued(_)
        ),
        "{}",
        controller.logs()
    );
    let csrs: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    assert!(
        pending(&csrs.get(&later).await.expect("get")),
        "must stay pending"
    );
    assert!(
        pending(&csrs.get(&manual).await.expect("get")),
        "must stay pending"
    );

    // A person approves one by hand while its Application still does not exist: an approval
    // does not widen the profile, so certpair refuses to sign it (Failed, with the reason).
    let out = run(cluster.kubectl().args(["certificate", "approve", &manual]));
    assert!(out.status.success(), "{}", stderr(&out));
    match wait_outcome(&cluster.client, &manual).await {
        Outcome::Failed { reason, message } => {
            assert_eq!(reason, "SignerValidationFailure", "{message}");
            assert!(message.starts_with("UnknownApplication:"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}\n{}", controller.logs()),
    }

    // The Application for the other appears: the pending request is re-evaluated and issued.
    application(&cluster.client, &later_app, None).await;
    assert!(
        matches!(
            wait_outcome(&cluster.client, &later).await,
            Outcome::Issued(_)
        ),
        "{}",
        controller.logs()
    );
}

#[tokio::test]
async fn a_replaced_signing_ca_is_used_without_restart() {
    let cluster = Cluster::connect().await;
    let controller = cluster.start_controller(&["--unmatched", "pending"]).await;
    controller.wait_leader().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // A certificate from the CA in use now, to check it still verifies after the change.
    let app = unique("byo-app");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let name = request_certificate(&who, "before-byo", &app, d);
    let Outcome::Issued(chain) = wait_outcome(&cluster.client, &name).await else {
        panic!("not issued:\n{}", controller.logs());
    };
    let before = openssl::x509::X509::stack_from_pem(&chain).expect("chain")[0].clone();
    std::fs::write(d.join("before.crt"), before.to_pem().expect("pem")).expect("write");

    // Bring your own CA, made with openssl and installed with kubectl.
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(d)
            .args(args)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "byo.key",
    ]);
    let cn = unique("byo-ca");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "byo.key",
        "-days",
        "30",
        "-subj",
        &format!("/CN={cn}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        // RFC 5280 lets a root omit its Subject Key Identifier; certpair then derives the
        // leaves' Authority Key Identifier from the CA's key, and `openssl verify` below
        // checks the result.
        "-addext",
        "subjectKeyIdentifier=none",
        "-out",
        "byo.crt",
    ]);

    // First a Secret that cannot work (the CA certificate with another key): the CA in use
    // keeps signing, and the operator is told — a Warning Event on the Secret and a metric.
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "other.key",
    ]);
    let apply_secret = |key: &str| {
        // `generic` with the TLS type: `kubectl create secret tls` would refuse the mismatch.
        let secret = run(cluster.kubectl().current_dir(d).args([
            "create",
            "secret",
            "generic",
            "certpair-signing-ca",
            "-n",
            "certpair-system",
            "--type",
            "kubernetes.io/tls",
            "--from-file",
            "tls.crt=byo.crt",
            "--from-file",
            &format!("tls.key={key}"),
            "--dry-run=client",
            "-o",
            "yaml",
        ]));
        assert!(secret.status.success(), "{}", stderr(&secret));
        std::fs::write(d.join("secret.yaml"), &secret.stdout).expect("write");
        let out = run(cluster
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(d.join("secret.yaml")));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    apply_secret("other.key");
    controller
        .wait_metric(r#"certpair_signing_ca_problem{reason="key_mismatch"} 1"#)
        .await;
    cluster
        .wait_event(
            "certpair-system",
            "certpair-signing-ca",
            "note",
            &["key_mismatch", "still signing with the previous CA"],
        )
        .await;
    let during = request_certificate(&who, "during-bad-ca", &app, d);
    let Outcome::Issued(chain) = wait_outcome(&cluster.client, &during).await else {
        panic!("not issued with the previous CA:\n{}", controller.logs());
    };
    let during = openssl::x509::X509::stack_from_pem(&chain).expect("chain")[0].clone();
    assert_eq!(
        during.issuer_name().to_der().expect("der"),
        before.issuer_name().to_der().expect("der"),
        "the previous CA keeps signing"
    );
    // Then the real one.
    apply_secret("byo.key");

    // The bundle is republished with the new CA first, keeping the one it replaced: what that
    // CA issued still verifies against the bundle...
    let bundles: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "certpair-system");
    let byo = openssl::x509::X509::from_pem(&std::fs::read(d.join("byo.crt")).expect("read"))
        .expect("byo")
        .to_der()
        .expect("der");
    let bundle_pem = |cm: Option<&ConfigMap>| {
        cm.and_then(|c| c.data.as_ref())
            .and_then(|d| d.get("ca.crt"))
            .cloned()
            .unwrap_or_default()
    };
    let first_is_byo = move |cm: Option<&ConfigMap>| {
        openssl::x509::X509::stack_from_pem(bundle_pem(cm).as_bytes())
            .ok()
            .and_then(|certs| certs.first()?.to_der().ok())
            .is_some_and(|der| der == byo)
    };
    let bundle = wait_for(
        &bundles,
        "certpair-ca-bundle",
        "the new CA first in the bundle",
        Duration::from_secs(30),
        first_is_byo,
    )
    .await;
    let bundle = bundle
        .data
        .and_then(|d| d.get("ca.crt").cloned())
        .unwrap_or_default();
    std::fs::write(d.join("bundle.pem"), &bundle).expect("write");
    openssl(&["verify", "-CAfile", "bundle.pem", "before.crt"]);

    // ...and the next certificate is signed by the new one.
    let name = request_certificate(&who, "byo-csr", &app, d);
    let Outcome::Issued(chain) = wait_outcome(&cluster.client, &name).await else {
        panic!("not issued:\n{}", controller.logs());
    };
    let leaf = openssl::x509::X509::stack_from_pem(&chain).expect("chain")[0].clone();
    std::fs::write(d.join("leaf.crt"), leaf.to_pem().expect("pem")).expect("write");
    openssl(&["verify", "-CAfile", "byo.crt", "leaf.crt"]);
    openssl(&["verify", "-CAfile", "bundle.pem", "leaf.crt"]);
    assert_eq!(
        leaf.issuer_name()
            .entries()
            .next()
            .and_then(|e| e.data().to_string().ok()),
        Some(cn),
        "issued by the replaced CA"
    );
    controller
        .wait_metric(r#"certpair_signing_ca_problem{reason="key_mismatch"} 0"#)
        .await;
}
