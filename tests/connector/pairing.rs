//! Kyma's tutorial, step by step with curl and openssl: CSR info with the token, a key and a
//! CSR with the announced subject, the certificate, management info with it, renewal,
//! revocation, and the CRL.

use std::time::{Duration, Instant};

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{Api, api::ListParams};

use super::*;

#[tokio::test]
async fn kyma_tutorial_pairing_renewal_revocation_and_crl() {
    let s = setup();
    let (admin, app, dir) = fresh_application("shop").await;

    // 1. The TokenRequest: a token, the URL to start at, and the pin of the connector's CA.
    let (tr, status) = token_request(&admin, &app).await;
    let url = status["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&format!(
            "{}/v1/applications/signingRequests/info?token=",
            s.urls[0]
        )),
        "{url}"
    );
    let token = status["token"].as_str().expect("token");
    assert_eq!(token.len(), 88, "64 random bytes, base64url");
    let (ok, spki) = openssl(
        &dir,
        &[
            "x509",
            "-in",
            &s.connector_ca.to_string_lossy(),
            "-noout",
            "-pubkey",
        ],
    );
    assert!(ok, "{spki}");
    std::fs::write(dir.join("pub.pem"), &spki).expect("write");
    let (ok, _) = openssl(
        &dir,
        &[
            "pkey", "-pubin", "-in", "pub.pem", "-outform", "DER", "-out", "pub.der",
        ],
    );
    assert!(ok);
    let pin = certpair::pki::sha256_hex(&std::fs::read(dir.join("pub.der")).expect("read"));
    assert_eq!(
        status["caCertHash"],
        format!("sha256:{pin}"),
        "the pin is the connector CA's"
    );

    // 2. CSR info.
    let started = Instant::now();
    let info = curl(&[&url]);
    assert_eq!(info.code, 200, "{}", info.body);
    let info = info.json();
    let subject = info["certificate"]["subject"]
        .as_str()
        .expect("subject")
        .to_owned();
    assert_eq!(
        subject,
        format!("O=Acme,OU=Payments,C=DE,CN={app}"),
        "Kyma's order"
    );
    assert_eq!(info["certificate"]["key-algorithm"], "rsa2048");
    assert_eq!(info["certificate"]["extensions"], "");
    assert_eq!(
        info["api"]["infoUrl"],
        format!("{}/v1/applications/management/info", s.urls[0])
    );
    assert_eq!(
        info["api"]["eventsUrl"],
        format!("{}/{app}/v1/events", s.urls[0])
    );
    let csr_url = info["csrUrl"].as_str().expect("csrUrl").to_owned();
    assert!(!csr_url.contains(token), "a new token for the certificate");
    let status = token_status(&admin, &tr, |s| s["step"] == "Certificate").await;
    assert!(
        status.get("token").is_none() && status.get("url").is_none(),
        "the used token is cleared: {status}"
    );

    // 3. Key and CSR with the announced subject, as the tutorial does it.
    let openssl_subject = format!("/{}", subject.replace(',', "/"));
    let (key, csr) = key_and_csr(&dir, "app", &openssl_subject, 2048);
    let body = csr_body(&csr);
    let reply = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        &csr_url,
    ]);
    let pairing_took = started.elapsed();
    let (chain, client) = save_certificates(&dir, "app", &reply);
    let (ok, out) = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            &s.signing_ca.to_string_lossy(),
            &client.to_string_lossy(),
        ],
    );
    assert!(
        ok,
        "the certificate verifies against certpair-ca-bundle: {out}"
    );
    let (ok, out) = openssl(&dir, &["verify", "-CAfile", "app.ca.crt", "app.crt"]);
    assert!(ok, "and against the caCrt returned: {out}");
    let (_, printed) = openssl(
        &dir,
        &[
            "x509",
            "-in",
            "app.crt",
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
        ],
    );
    assert!(
        printed.contains(&format!("O = Acme, OU = Payments, C = DE, CN = {app}")),
        "{printed}"
    );
    assert!(
        printed.contains("TLS Web Client Authentication"),
        "{printed}"
    );
    let serial = serial_of(&client);
    eprintln!("pairing (info + certificate) took {pairing_took:?}");

    // The audit trail: a CSR requested by the connector, naming the TokenRequest.
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let listed = csrs
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=certpair-connector"))
        .await
        .expect("list CSRs");
    let ours: Vec<_> = listed
        .items
        .iter()
        .filter(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("certpair.dev/token-request"))
                == Some(&format!("default/{tr}"))
        })
        .collect();
    assert_eq!(ours.len(), 1, "one CSR for the pairing");
    assert_eq!(
        ours[0].spec.username.as_deref(),
        Some("system:serviceaccount:certpair-system:certpair-connector")
    );
    let status = token_status(&admin, &tr, |s| s["state"] == "Used").await;
    assert_eq!(status["serialNumber"], serial.as_str());
    assert!(status.get("token").is_none(), "{status}");

    // Both tokens are spent.
    let again = curl(&[&url]);
    assert_eq!(
        (again.code, again.error()),
        (403, "Invalid token.".to_owned())
    );
    // The certificate token fetches the same certificate again for the same key only.
    let again = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        &csr_url,
    ]);
    let (_, refetched) = save_certificates(&dir, "refetched", &again);
    assert_eq!(serial_of(&refetched), serial);

    // 4. Management info over mTLS: identity, URLs, the same certificate block.
    let management = format!("{}/v1/applications/management/info", s.urls[0]);
    let reply = curl_with(&chain, &key, &[&management]);
    assert_eq!(reply.code, 200, "{}", reply.body);
    let m = reply.json();
    assert_eq!(m["clientIdentity"]["application"], app.as_str());
    assert_eq!(m["clientIdentity"]["tenant"], "Acme");
    assert_eq!(m["clientIdentity"]["group"], "Payments");
    assert_eq!(
        m["certificate"], info["certificate"],
        "the same block as signingRequests/info"
    );
    assert_eq!(m["presentedCertificate"]["serialNumber"], serial.as_str());
    assert_eq!(
        m["urls"]["renewCertUrl"],
        format!("{}/v1/applications/certificates/renewals", s.urls[0])
    );
    // The heartbeat lands in the Application's status.
    let apps: Api<Application> = Api::all(admin.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while apps
        .get(&app)
        .await
        .ok()
        .and_then(|a| a.status)
        .and_then(|s| s.last_seen)
        .is_none()
    {
        assert!(Instant::now() < deadline, "status.lastSeen never written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 5. Renewal with the certificate: a new key, the same subject.
    let renewals = format!("{}/v1/applications/certificates/renewals", s.urls[0]);
    let (_key2, csr2) = key_and_csr(&dir, "renewed", &openssl_subject, 2048);
    let reply = curl_with(&chain, &key, &["-d", &csr_body(&csr2), &renewals]);
    let (_, renewed) = save_certificates(&dir, "renewed", &reply);
    let renewed_serial = serial_of(&renewed);
    assert_ne!(renewed_serial, serial);
    // One renewal per certificate: the same request again gets the same certificate, another
    // key is told to renew with the renewed certificate.
    let reply = curl_with(&chain, &key, &["-d", &csr_body(&csr2), &renewals]);
    let (_, again) = save_certificates(&dir, "renewed-again", &reply);
    assert_eq!(serial_of(&again), renewed_serial);
    let (_, csr3) = key_and_csr(&dir, "third", &openssl_subject, 2048);
    let reply = curl_with(&chain, &key, &["-d", &csr_body(&csr3), &renewals]);
    assert_eq!(reply.code, 409, "{}", reply.body);
    assert!(reply.error().contains("renewed already"), "{}", reply.body);
    // A renewal must keep the subject.
    let (_, other) = key_and_csr(
        &dir,
        "other",
        &format!("/O=Acme/OU=Other/C=DE/CN={app}"),
        2048,
    );
    let reply = curl_with(&chain, &key, &["-d", &csr_body(&other), &renewals]);
    assert_eq!(reply.code, 400, "{}", reply.body);
    assert!(
        reply.error().contains("a renewal keeps the subject"),
        "{}",
        reply.body
    );

    // 6. Revocation by the holder; refused at once on every path, on both replicas.
    let revocations = format!("{}/v1/applications/certificates/revocations", s.urls[0]);
    let reply = curl_with(&chain, &key, &["-X", "POST", &revocations]);
    assert_eq!(reply.code, 201, "{}", reply.body);
    let revoked_at = Instant::now();
    let reply = curl_with(&chain, &key, &["-X", "POST", &revocations]);
    assert_eq!(
        reply.code, 201,
        "revoking twice is revoking once: {}",
        reply.body
    );
    let reply = curl_with(&chain, &key, &[&management]);
    assert_eq!(
        (reply.code, reply.error()),
        (403, "Certificate has been revoked.".to_owned())
    );
    let reply = curl_with(&chain, &key, &["-d", &csr_body(&csr2), &renewals]);
    assert_eq!(
        (reply.code, reply.error()),
        (403, "Certificate has been revoked.".to_owned())
    );
    let other_replica = format!("{}/v1/applications/management/info", s.urls[1]);
    within(
        "the second replica refuses the revoked certificate",
        Duration::from_secs(1),
        || (curl_with(&chain, &key, &[&other_replica]).code == 403).then_some(()),
    )
    .await;
    eprintln!(
        "revocation seen by the second replica after {:?}",
        revoked_at.elapsed()
    );
    // The renewed certificate is unaffected.
    let renewed_chain = dir.join("renewed.chain.crt");
    let reply = curl_with(&renewed_chain, &dir.join("renewed.key"), &[&management]);
    assert_eq!(reply.code, 200, "{}", reply.body);

    // 7. The CRL lists the serial; openssl's two checks agree.
    let crl = dir.join("crl.pem");
    let crl_url = format!("{}/v1/crl", s.urls[1]);
    within(
        "the CRL lists the revoked serial",
        Duration::from_secs(20),
        || {
            let reply = curl(&["-H", "Accept: application/x-pem-file", &crl_url]);
            if reply.code != 200 {
                return None;
            }
            std::fs::write(&crl, &reply.body).ok()?;
            let (_, text) = openssl(&dir, &["crl", "-in", "crl.pem", "-noout", "-text"]);
            text.contains(&format!("Serial Number: {serial}"))
                .then_some(())
        },
    )
    .await;
    let ca = s.signing_ca.to_string_lossy().into_owned();
    let (ok, out) = openssl(
        &dir,
        &["crl", "-in", "crl.pem", "-CAfile", &ca, "-noout", "-verify"],
    );
    assert!(ok && out.contains("verify OK"), "{out}");
    let (ok, out) = openssl(
        &dir,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            &ca,
            "-CRLfile",
            "crl.pem",
            "app.crt",
        ],
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl(
        &dir,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            &ca,
            "-CRLfile",
            "crl.pem",
            "renewed.crt",
        ],
    );
    assert!(ok, "{out}");
    // DER by default.
    let der = run(Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&s.connector_ca)
        .arg(&crl_url));
    assert!(
        openssl::x509::X509Crl::from_der(&der.stdout).is_ok(),
        "DER without Accept"
    );
}
