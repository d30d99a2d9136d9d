//! Admission throughput and latency of the webhook itself over TLS, with a realistic
//! AdmissionReview (an RSA-2048 CSR for a registered Application), driven by `wrk` over
//! kept-alive connections. Run with `hack/bench.sh webhook`. Prints figures; asserts nothing.

use std::{process::Command, sync::Arc, time::Duration};

use actix_web::web;
use certpair::{
    api::{ApplicationSpec, DEFAULT_SIGNER_NAME, SubjectRequirements},
    pki::{authority::Authority, now_unix},
    policy::Defaults,
    tls::{CertSlot, ServingIdentity, acceptor},
    webhook::{WORKERS, WebhookState, https_server},
};
use openssl::{
    ec::{EcGroup, EcKey},
    hash::MessageDigest,
    nid::Nid,
    pkey::PKey,
    rsa::Rsa,
    x509::{X509NameBuilder, X509ReqBuilder},
};

fn review_body() -> String {
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Acme")
        .expect("O");
    name.append_entry_by_nid(Nid::COMMONNAME, "billing")
        .expect("CN");
    let mut req = X509ReqBuilder::new().expect("req");
    req.set_subject_name(&name.build()).expect("subject");
    req.set_pubkey(&key).expect("pubkey");
    req.sign(&key, MessageDigest::sha256()).expect("sign");
    let pem = req.build().to_pem().expect("pem");
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b6f5d0e-bench",
            "kind": {"group": "certificates.k8s.io", "version": "v1", "kind": "CertificateSigningRequest"},
            "resource": {"group": "certificates.k8s.io", "version": "v1", "resource": "certificatesigningrequests"},
            "name": "billing-1",
            "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": {"name": "billing-1"},
                "spec": {
                    "request": openssl::base64::encode_block(&pem),
                    "signerName": DEFAULT_SIGNER_NAME,
                    "usages": ["digital signature", "client auth"],
                    "expirationSeconds": 3600,
                    "username": "alice"
                }
            },
            "dryRun": false
        }
    })
    .to_string()
}

fn main() -> std::io::Result<()> {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let ca =
        Authority::generate("bench webhook CA", Duration::from_secs(3600), now_unix()).expect("CA");
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve"))
            .expect("ec"),
    )
    .expect("key");
    let issued = ca
        .issue_server(
            "localhost",
            &["localhost".into()],
            &["127.0.0.1".parse().expect("ip")],
            &key,
            Duration::from_secs(3600),
            now_unix(),
        )
        .expect("serving certificate");
    let slot = Arc::new(CertSlot::default());
    slot.set(
        ServingIdentity::from_pem(
            &issued.chain_pem,
            &key.private_key_to_pem_pkcs8().expect("pem"),
        )
        .expect("identity"),
    );

    let state = web::Data::new(WebhookState {
        signer_name: DEFAULT_SIGNER_NAME.into(),
        defaults: Defaults::default(),
        applications: Arc::new(|name: &str| {
            (name == "billing").then(|| ApplicationSpec {
                subject: Some(SubjectRequirements {
                    organization: Some("Acme".into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }),
        draining: Arc::default(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let body = review_body();
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
        ),
    )?;
    let url = format!("https://127.0.0.1:{port}/validate/certificatesigningrequests");

    let rt = actix_web::rt::System::new();
    rt.block_on(async move {
        // The controller's own server: same workers, TLS settings and routes.
        let server = https_server(state, acceptor(slot).expect("acceptor"), listener)?;
        let handle = server.handle();
        actix_web::rt::spawn(server);
        println!("certpair webhook benchmark: AdmissionReview with an RSA-2048 CSR ({} bytes), TLS, kept-alive connections, {WORKERS} server workers, wrk -t1", body.len());
        for connections in [1, 4, 16, 64] {
            let out = actix_web::rt::task::spawn_blocking({
                let script = script.clone();
                let url = url.clone();
                move || {
                    Command::new("wrk")
                        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
                        .arg(&script)
                        .arg(&url)
                        .output()
                }
            })
            .await
            .expect("join")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let pick = |label: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(label))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
                    .unwrap_or_else(|| "?".into())
            };
            let errors = text.lines().find(|l| l.contains("Non-2xx") || l.contains("Socket errors")).unwrap_or("no errors");
            println!(
                "  {connections:>3} connections: {:>9} requests/s   p50 {:>8}  p90 {:>8}  p99 {:>8}   ({})",
                pick("Requests/sec:"),
                pick("50%"),
                pick("90%"),
                pick("99%"),
                errors.trim()
            );
            if !out.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            }
        }
        handle.stop(true).await;
        Ok(())
    })
}
