//! Bad input on every endpoint: each answer is a specific 4xx in Kyma's JSON shape, nothing
//! is issued, and the token is not spent by a refused request.

use std::path::Path;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{Api, api::ListParams};
use openssl::{
    asn1::Asn1Time,
    bn::{BigNum, MsbOption},
    hash::MessageDigest,
    nid::Nid,
    pkey::{PKey, Private},
    x509::{X509, X509NameBuilder, extension::BasicConstraints},
};

use super::*;

fn b64(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
}

fn body(pem: &[u8]) -> String {
    serde_json::json!({ "csr": b64(pem) }).to_string()
}

#[tokio::test]
async fn bad_input_gets_a_specific_4xx_and_issues_nothing() {
    let s = setup();
    let (admin, app, dir) = fresh_application("junk").await;
    let (tr, status) = token_request(&admin, &app).await;
    let reply = curl(&[status["url"].as_str().expect("url")]);
    assert_eq!(reply.code, 200, "{}", reply.body);
    let csr_url = reply.json()["csrUrl"].as_str().expect("csrUrl").to_owned();

    let key = support::ec_key();
    let good = |key: &PKey<Private>| {
        {
            certpair::pki::csr_builder::RequestBuilder::cn(&app)
                .with(Nid::ORGANIZATIONNAME, "Acme")
                .with(Nid::ORGANIZATIONALUNITNAME, "Payments")
                .with(Nid::COUNTRYNAME, "DE")
        }
        .to_pem(key)
        .expect("CSR")
    };
    let good_pem = good(&key);
    let mut forged = good_pem.clone();
    // Flip a byte inside the base64 of the signature (near the end of the PEM).
    let at = forged.len() - 40;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let weak =
        good(&PKey::from_rsa(openssl::rsa::Rsa::generate(1024).expect("rsa")).expect("pkey"));
    let ca_true = certpair::pki::csr_builder::RequestBuilder {
        ca: true,
        ..certpair::pki::csr_builder::RequestBuilder::cn(&app)
            .with(Nid::ORGANIZATIONNAME, "Acme")
            .with(Nid::ORGANIZATIONALUNITNAME, "Payments")
            .with(Nid::COUNTRYNAME, "DE")
    }
    .to_pem(&key)
    .expect("CSR");
    let wrong_o = certpair::pki::csr_builder::RequestBuilder::cn(&app)
        .with(Nid::ORGANIZATIONNAME, "Evil")
        .with(Nid::ORGANIZATIONALUNITNAME, "Payments")
        .with(Nid::COUNTRYNAME, "DE")
        .to_pem(&key)
        .expect("CSR");
    let two_blocks = [good_pem.clone(), good_pem.clone()].concat();
    let huge = format!("{{\"csr\": \"{}\"}}", "A".repeat(1024 * 1024));

    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("non-JSON", "csr=abc".into(), 400, "must be JSON"),
        ("no csr field", "{}".into(), 400, "must be JSON"),
        (
            "wrong base64",
            r#"{"csr": "%%%not base64%%%"}"#.into(),
            400,
            "There was an error while parsing the base64 content. An incorrect value was provided.",
        ),
        ("not PEM", body(b"hello"), 400, "InvalidRequest"),
        ("two PEM blocks", body(&two_blocks), 400, "2 PEM blocks"),
        ("forged signature", body(&forged), 400, "InvalidRequest"),
        ("RSA-1024", body(&weak), 400, "KeyTooWeak"),
        ("CA:TRUE", body(&ca_true), 400, "CA:TRUE"),
        (
            "wrong O",
            body(&wrong_o),
            400,
            "SubjectMismatch: subject: O=\"Evil\"",
        ),
        ("1 MiB body", huge, 413, "larger than"),
    ];
    for (what, payload, code, needle) in &cases {
        let file = dir.join("payload.json");
        std::fs::write(&file, payload).expect("write");
        let data = format!("@{}", file.display());
        let reply = curl(&[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &data,
            &csr_url,
        ]);
        assert_eq!(reply.code, *code, "{what}: {}", reply.body);
        let message = reply.error();
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
    }

    // Wrong method, unknown path: the same JSON shape.
    let reply = curl(&["-X", "DELETE", &csr_url]);
    assert_eq!(reply.code, 405, "{}", reply.body);
    assert!(reply.error().contains("does not take DELETE"));
    let reply = curl(&[&format!("{}/v1/nothing/here", s.urls[0])]);
    assert_eq!(reply.code, 404, "{}", reply.body);
    assert!(reply.error().contains("/v1/nothing/here"));
    let reply = curl(&["-o", "/dev/null", &format!("{}/v1", s.urls[0])]);
    assert_eq!(reply.code, 301);

    // mTLS paths: no certificate, one from another CA, an expired one of certpair's CA.
    let management = format!("{}/v1/applications/management/info", s.urls[0]);
    let reply = curl(&[&management]);
    assert_eq!(reply.code, 403, "{}", reply.body);
    assert!(
        reply.error().contains("needs the client certificate"),
        "{}",
        reply.body
    );
    let (foreign_cert, foreign_key) = self_made(&dir, &app);
    let reply = curl_with(&foreign_cert, &foreign_key, &[&management]);
    assert_eq!(reply.code, 403, "{}", reply.body);
    assert!(
        reply
            .error()
            .contains("not issued by certpair's signing CA"),
        "{}",
        reply.body
    );
    let (expired_cert, expired_key) = expired_from_signing_ca(&dir, &app).await;
    let reply = curl_with(&expired_cert, &expired_key, &[&management]);
    assert_eq!(reply.code, 403, "{}", reply.body);
    let message = reply.error();
    assert!(
        message.contains("expired") && message.contains("pair again with a new token"),
        "{message}"
    );

    // Nothing was issued, and the token is still good for the right request.
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let listed = csrs
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=certpair-connector"))
        .await
        .expect("list");
    let for_this = listed.items.iter().filter(|c| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("certpair.dev/token-request"))
            == Some(&format!("default/{tr}"))
    });
    assert_eq!(for_this.count(), 0, "no CSR for refused requests");
    let reply = curl(&["-d", &body(&good_pem), &csr_url]);
    assert_eq!(reply.code, 201, "{}", reply.body);
}

/// A self-signed CA and a leaf for `CN=<app>` from it: a client certificate certpair never
/// issued.
fn self_made(dir: &Path, app: &str) -> (PathBuf, PathBuf) {
    let ca_key = support::ec_key();
    let ca = certificate(&ca_key, &ca_key, None, "not certpair", true, 0, 3600);
    let key = support::ec_key();
    let leaf = certificate(&key, &ca_key, Some(&ca), app, false, 0, 3600);
    write_pair(dir, "foreign", &leaf, &key)
}

/// A certificate for `CN=<app>` signed by certpair's own signing CA (read from its Secret as
/// the admin), expired an hour ago.
async fn expired_from_signing_ca(dir: &Path, app: &str) -> (PathBuf, PathBuf) {
    use k8s_openapi::api::core::v1::Secret;
    let secret = Api::<Secret>::namespaced(admin().await, "certpair-system")
        .get("certpair-signing-ca")
        .await
        .expect("signing CA Secret");
    let data = secret.data.expect("data");
    let ca = X509::from_pem(&data["tls.crt"].0).expect("CA");
    let ca_key = PKey::private_key_from_pem(&data["tls.key"].0).expect("CA key");
    let key = support::ec_key();
    let leaf = certificate(&key, &ca_key, Some(&ca), app, false, -7200, -3600);
    write_pair(dir, "expired", &leaf, &key)
}

fn write_pair(dir: &Path, name: &str, cert: &X509, key: &PKey<Private>) -> (PathBuf, PathBuf) {
    let cert_file = dir.join(format!("{name}.crt"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&cert_file, cert.to_pem().expect("pem")).expect("write");
    std::fs::write(&key_file, key.private_key_to_pem_pkcs8().expect("pem")).expect("write");
    (cert_file, key_file)
}

/// A certificate for `CN=<cn>, O=Acme, OU=Payments, C=DE` valid from `from` to `to` seconds
/// from now, signed by `signer` (self-signed without `issuer`).
fn certificate(
    key: &PKey<Private>,
    signer: &PKey<Private>,
    issuer: Option<&X509>,
    cn: &str,
    ca: bool,
    from: i64,
    to: i64,
) -> X509 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Acme")
        .expect("O");
    name.append_entry_by_nid(Nid::ORGANIZATIONALUNITNAME, "Payments")
        .expect("OU");
    name.append_entry_by_nid(Nid::COUNTRYNAME, "DE").expect("C");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("version");
    let mut serial = BigNum::new().expect("bn");
    serial
        .rand(120, MsbOption::MAYBE_ZERO, false)
        .expect("rand");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map(|i| i.subject_name()).unwrap_or(&name))
        .expect("issuer");
    b.set_pubkey(key).expect("key");
    b.set_not_before(&Asn1Time::from_unix(now + from).expect("time"))
        .expect("nb");
    b.set_not_after(&Asn1Time::from_unix(now + to).expect("time"))
        .expect("na");
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("bc");
    }
    b.sign(signer, MessageDigest::sha256()).expect("sign");
    b.build()
}
