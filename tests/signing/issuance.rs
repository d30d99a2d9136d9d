use std::{process::Command, time::Duration};

use certpair::api::{ApplicationSpec, DEFAULT_SIGNER_NAME, SubjectRequirements};
use k8s_openapi::api::{certificates::v1::CertificateSigningRequest, core::v1::ConfigMap};
use kube::Api;
use openssl::x509::X509;

use crate::support::{
    Cluster,
    csr::{Outcome, application, requester, submit, wait_outcome},
    run, shared_controller, stderr, unique,
};

/// A key and CSR made with the `openssl` command line, as a user would.
fn openssl_csr(
    dir: &std::path::Path,
    name: &str,
    key_args: &[&str],
    subject: &str,
    extra: &[&str],
) -> Vec<u8> {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    // `-out` goes before genrsa's trailing bit count.
    let out = Command::new("openssl")
        .arg(key_args[0])
        .arg("-out")
        .arg(&key)
        .args(&key_args[1..])
        .output()
        .expect("openssl key");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new("openssl")
        .args(["req", "-new", "-key"])
        .arg(&key)
        .args(["-subj", subject])
        .args(extra)
        .arg("-out")
        .arg(&csr)
        .output()
        .expect("openssl req");
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read(&csr).expect("read csr")
}

const RSA2048: &[&str] = &["genrsa", "2048"];
const RSA1024: &[&str] = &["genrsa", "1024"];
const P256: &[&str] = &["ecparam", "-name", "prime256v1", "-genkey", "-noout"];

#[tokio::test]
async fn authorized_requests_are_approved_and_issued() {
    let cluster = Cluster::connect().await;
    let controller = shared_controller();
    let app = unique("billing");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serials = Vec::new();

    for (kind, key_args) in [("rsa", RSA2048), ("ecdsa", P256)] {
        let name = unique(&format!("issue-{kind}"));
        let pem = openssl_csr(
            dir.path(),
            &name,
            key_args,
            &format!("/O=Acme/CN={app}"),
            &[],
        );
        submit(
            &who,
            &name,
            &pem,
            DEFAULT_SIGNER_NAME,
            Some(3600),
            dir.path(),
        );
        let Outcome::Issued(chain) = wait_outcome(&cluster.client, &name).await else {
            panic!("{name} was not issued:\n{}", controller.logs());
        };

        // Approving and signing wrote only conditions and the certificate: the annotation
        // kubectl apply put there is intact on the server (certpair's cache holds none).
        let on_server = Api::<CertificateSigningRequest>::all(cluster.client.clone())
            .get(&name)
            .await
            .expect("get");
        let last_applied = on_server
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
            .cloned()
            .unwrap_or_default();
        assert!(
            last_applied.contains(&format!("\"name\":\"{name}\""))
                && last_applied.contains("\"request\""),
            "annotations after issuance: {:?}",
            on_server.metadata.annotations
        );

        // openssl verify against the published bundle.
        let bundle = Api::<ConfigMap>::namespaced(cluster.client.clone(), "certpair-system")
            .get("certpair-ca-bundle")
            .await
            .expect("bundle ConfigMap")
            .data
            .and_then(|d| d.get("ca.crt").cloned())
            .expect("ca.crt");
        let leaf = X509::stack_from_pem(&chain).expect("chain")[0].clone();
        serials.push(
            leaf.serial_number()
                .to_bn()
                .expect("bn")
                .to_hex_str()
                .expect("hex")
                .to_string(),
        );
        std::fs::write(dir.path().join("bundle.pem"), &bundle).expect("write");
        std::fs::write(
            dir.path().join(format!("{name}.crt")),
            leaf.to_pem().expect("pem"),
        )
        .expect("write");
        let out = Command::new("openssl")
            .args(["verify", "-purpose", "sslclient", "-CAfile"])
            .arg(dir.path().join("bundle.pem"))
            .arg(dir.path().join(format!("{name}.crt")))
            .output()
            .expect("openssl verify");
        assert!(
            out.status.success(),
            "openssl verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );

        // Subject as requested; CA:FALSE; clientAuth; valid for expirationSeconds.
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.path().join(format!("{name}.crt")))
            .output()
            .expect("x509");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!("Subject: O = Acme, CN = {app}")),
            "{text}"
        );
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(!text.contains("TLS Web Server Authentication"), "{text}");
        // Valid for exactly expirationSeconds, backdated at both ends by up to 5 minutes (never
        // before the CA's own NotBefore, so not a fixed offset), never past issuance + 3600 s.
        let created = Api::<CertificateSigningRequest>::all(cluster.client.clone())
            .get(&name)
            .await
            .expect("get")
            .metadata
            .creation_timestamp
            .expect("created")
            .0
            .as_second();
        let epoch = openssl::asn1::Asn1Time::from_unix(0).expect("epoch");
        let unix = |t: &openssl::asn1::Asn1TimeRef| {
            let diff = epoch.diff(t).expect("diff");
            i64::from(diff.days) * 86400 + i64::from(diff.secs)
        };
        let (not_before, not_after) = (unix(leaf.not_before()), unix(leaf.not_after()));
        assert_eq!(not_after - not_before, 3600, "{text}");
        assert!(
            (created - 300 - 30..=created + 30).contains(&not_before),
            "NotBefore {not_before} is not within 5 minutes before creation {created}:\n{text}"
        );
        let key = openssl::pkey::PKey::private_key_from_pem(
            &std::fs::read(dir.path().join(format!("{name}.key"))).expect("key"),
        )
        .expect("key");
        assert!(
            leaf.public_key().expect("pub").public_eq(&key),
            "certificate is for the requester's key"
        );
    }

    // The Application's status counts both certificates and names the last one.
    let apps: Api<certpair::api::Application> = Api::all(cluster.client.clone());
    let app_now = crate::support::wait_for(
        &apps,
        &app,
        "status.issuedCount = 2",
        Duration::from_secs(15),
        |a: Option<&certpair::api::Application>| {
            a.and_then(|a| a.status.as_ref())
                .and_then(|s| s.issued_count)
                == Some(2)
        },
    )
    .await;
    let status = app_now.status.expect("status");
    let last = status.last_issued_serial.expect("lastIssuedSerial");
    assert!(serials.contains(&last), "{last} is not one of {serials:?}");
    assert!(status.last_issued_not_after.is_some());

    controller
        .wait_metric("certpair_certificates_issued_total")
        .await;
    controller
        .wait_metric(r#"certpair_csr_decisions_total{decision="approved",reason="AutoApproved"}"#)
        .await;
}

/// Each case: a request that must be denied, the reason, and a phrase of the message.
#[tokio::test]
async fn bad_requests_are_denied_with_a_precise_reason() {
    let cluster = Cluster::connect().await;
    let controller = shared_controller();
    let app = unique("payments");
    application(&cluster.client, &app, None).await;
    let disabled = unique("retired");
    application(
        &cluster.client,
        &disabled,
        Some(ApplicationSpec {
            disabled: true,
            subject: Some(SubjectRequirements {
                organization: Some("Acme".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .await;
    let who = requester(&cluster, Some(&app)).await;
    let who_disabled = requester(&cluster, Some(&disabled)).await;
    let stranger = requester(&cluster, None).await; // may create CSRs, may not request `app`
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    let good = openssl_csr(d, "good", P256, &format!("/O=Acme/CN={app}"), &[]);
    let tampered = {
        // Flip one character of the CN inside the signed request.
        let der = openssl::x509::X509Req::from_pem(&good)
            .expect("req")
            .to_der()
            .expect("der");
        let mut der = der;
        let pos = der
            .windows(app.len())
            .position(|w| w == app.as_bytes())
            .expect("CN");
        der[pos] ^= 0x01;
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            openssl::base64::encode_block(&der)
        )
        .into_bytes()
    };
    let cases: Vec<(&str, &crate::support::Identity, Vec<u8>, &str, &str)> = vec![
        (
            "no-permission",
            &stranger,
            good.clone(),
            "RequesterNotAuthorized",
            "verb \"request\"",
        ),
        (
            "wrong-org",
            &who,
            openssl_csr(d, "wrong-org", P256, &format!("/O=Evil/CN={app}"), &[]),
            "SubjectMismatch",
            "requires O=\"Acme\"",
        ),
        (
            "missing-org",
            &who,
            openssl_csr(d, "missing-org", P256, &format!("/CN={app}"), &[]),
            "SubjectMismatch",
            "O is missing",
        ),
        (
            "rsa-1024",
            &who,
            openssl_csr(d, "rsa-1024", RSA1024, &format!("/O=Acme/CN={app}"), &[]),
            "KeyTooWeak",
            "1024 bits",
        ),
        (
            "ca-true",
            &who,
            openssl_csr(
                d,
                "ca-true",
                P256,
                &format!("/O=Acme/CN={app}"),
                &["-addext", "basicConstraints=critical,CA:TRUE"],
            ),
            "DisallowedExtensions",
            "CA:TRUE",
        ),
        (
            "disabled",
            &who_disabled,
            openssl_csr(d, "disabled", P256, &format!("/O=Acme/CN={disabled}"), &[]),
            "ApplicationDisabled",
            "disabled",
        ),
        (
            "unknown-app",
            &who,
            openssl_csr(d, "unknown", P256, "/O=Acme/CN=no-such-application-x", &[]),
            "UnknownApplication",
            "names no registered Application",
        ),
    ];
    // A tampered request never reaches certpair: the apiserver checks the signature on create.
    // (certpair's own check of it is covered by the policy unit tests.)
    let dir_path = d.join("tampered.yaml");
    std::fs::write(
        &dir_path,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {}\nspec:\n  signerName: {DEFAULT_SIGNER_NAME}\n  usages: [client auth]\n  request: {}\n",
            unique("deny-tampered"),
            openssl::base64::encode_block(&tampered)
        ),
    )
    .expect("write");
    let out = run(who.kubectl().args(["apply", "-f"]).arg(&dir_path));
    assert!(
        !out.status.success() && stderr(&out).contains("verification failure"),
        "{}",
        stderr(&out)
    );

    let mut names = Vec::new();
    for (label, identity, pem, _, _) in &cases {
        let name = unique(&format!("deny-{label}"));
        submit(identity, &name, pem, DEFAULT_SIGNER_NAME, Some(3600), d);
        names.push(name);
    }
    for ((label, _, _, reason, needle), name) in cases.iter().zip(&names) {
        match wait_outcome(&cluster.client, name).await {
            Outcome::Denied {
                reason: got,
                message,
            } => {
                assert_eq!(&got, reason, "{label}: {message}");
                assert!(
                    message.contains(needle),
                    "{label}: {message:?} lacks {needle:?}"
                );
            }
            other => panic!(
                "{label}: expected Denied/{reason}, got {other:?}\n{}",
                controller.logs()
            ),
        }
    }

    // The Event follows the decision; wait for it (bounded), then a person reading
    // `kubectl describe csr` sees the reason and the message.
    let denied = names[3].clone();
    cluster
        .wait_event("default", &denied, "reason", &["KeyTooWeak"])
        .await;
    let out = run(cluster.kubectl().args(["describe", "csr", &denied]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Denied") && text.contains("KeyTooWeak") && text.contains("1024 bits"),
        "{text}"
    );
    controller
        .wait_metric(r#"certpair_csr_decisions_total{decision="denied",reason="KeyTooWeak"}"#)
        .await;
}

#[tokio::test]
async fn csrs_of_other_signers_are_never_touched() {
    let cluster = Cluster::connect().await;
    let controller = shared_controller();
    let app = unique("other-signer");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = openssl_csr(dir.path(), "other", P256, &format!("/O=Acme/CN={app}"), &[]);
    let foreign = unique("foreign");
    submit(
        &who,
        &foreign,
        &pem,
        "example.com/other",
        Some(3600),
        dir.path(),
    );
    // Positive control: a CSR for certpair's signer created after it gets issued, so the
    // controller has seen everything created before.
    let ours = unique("ours");
    submit(
        &who,
        &ours,
        &pem,
        DEFAULT_SIGNER_NAME,
        Some(3600),
        dir.path(),
    );
    assert!(
        matches!(
            wait_outcome(&cluster.client, &ours).await,
            Outcome::Issued(_)
        ),
        "{}",
        controller.logs()
    );
    let foreign = Api::<CertificateSigningRequest>::all(cluster.client.clone())
        .get(&foreign)
        .await
        .expect("get");
    let status = foreign.status.unwrap_or_default();
    assert!(status.conditions.unwrap_or_default().is_empty() && status.certificate.is_none());
}
