//! Webhook certificates rotate under load with zero failed admission calls. Lifetimes are
//! shortened by flags (CA 3 min, serving 1 min, renewed 25 s before expiry) and a client sends
//! dry-run CSR creations through the real apiserver (which calls the webhook) for about 3.5
//! minutes: across several serving rotations and one CA rotation. Its own binary: it owns the
//! webhook configuration while it runs.

mod support;

use std::{collections::HashSet, time::Duration};

use certpair::api::DEFAULT_SIGNER_NAME;
use k8s_openapi::api::{certificates::v1::CertificateSigningRequest, core::v1::Secret};
use kube::{Api, api::PostParams};
use openssl::x509::X509;
use support::{Cluster, csr_pem, ec_key, unique};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// DER of the leaf a TLS server on 127.0.0.1:port presents (no verification: we compare it).
fn served_leaf(port: u16) -> Option<Vec<u8>> {
    support::webhook::tls_connect(port)?
        .ssl()
        .peer_certificate()?
        .to_der()
        .ok()
}

fn secret_cert(secret: &Secret, key: &str) -> Vec<u8> {
    let pem = &secret.data.as_ref().expect("data")[key].0;
    X509::stack_from_pem(pem).expect("pem")[0]
        .to_der()
        .expect("der")
}

#[tokio::test]
async fn rotations_under_load_fail_no_admission_call() {
    let cluster = Cluster::connect().await;
    let secrets: Api<Secret> = support::webhook::start_from_nothing(&cluster).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (port_a, port_b) = (free_port(), free_port());
    let _installed = support::webhook::install(&cluster, port_a, dir.path());

    let (id_a, id_b) = (unique("replica-a"), unique("replica-b"));
    let flags = |port: u16, identity: &str| {
        vec![
            "--identity".to_string(),
            identity.to_string(),
            "--webhook-addr".to_string(),
            format!("127.0.0.1:{port}"),
            "--webhook-ips=127.0.0.1".into(),
            "--webhook-dns-names=localhost".into(),
            "--webhook-ca-validity-seconds=180".into(),
            "--webhook-serving-validity-seconds=60".into(),
            "--webhook-look-ahead-seconds=25".into(),
            "--webhook-check-interval-seconds=2".into(),
        ]
    };
    let (flags_a, flags_b) = (flags(port_a, &id_a), flags(port_b, &id_b));
    let a = cluster
        .start_controller(&flags_a.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let b = cluster
        .start_controller(&flags_b.iter().map(String::as_str).collect::<Vec<_>>())
        .await;

    // One leader, which alone writes Secrets, the bundle and Events; both replicas serve.
    let leader_is_a = support::poll("a leader", Duration::from_secs(30), || {
        match (a.is_leader(), b.is_leader()) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    })
    .await;
    let (leader, follower, leader_id, follower_id) = if leader_is_a {
        (&a, &b, &id_a, &id_b)
    } else {
        (&b, &a, &id_b, &id_a)
    };

    // Admission calls through the apiserver: dry-run creations, so nothing is stored.
    let csrs: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let pem = csr_pem(&ec_key(), "rotation-load", &["Acme"]);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let (mut sent, mut failed) = (0u32, Vec::new());
    let mut serving_seen = HashSet::new();
    let mut ca_seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(210);
    while tokio::time::Instant::now() < deadline {
        let csr = support::csr::csr_object(
            &unique("rotation"),
            pem.clone(),
            DEFAULT_SIGNER_NAME,
            &[],
            None,
        );
        sent += 1;
        if let Err(e) = csrs.create(&dry_run, &csr).await {
            failed.push(e.to_string());
        }
        if sent % 10 == 0 {
            if let Ok(s) = secrets.get("certpair-webhook-tls").await {
                serving_seen.insert(secret_cert(&s, "tls.crt"));
            }
            if let Ok(s) = secrets.get("certpair-webhook-ca").await {
                ca_seen.insert(secret_cert(&s, "ca.crt"));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "sent {sent} admission requests; {} failed; {} serving certificates and {} CAs seen",
        failed.len(),
        serving_seen.len(),
        ca_seen.len()
    );
    assert!(
        failed.is_empty(),
        "failed admission calls: {:?}\n{}",
        &failed[..failed.len().min(5)],
        a.logs()
    );
    assert!(
        serving_seen.len() >= 3,
        "expected at least two serving rotations, saw {} certificates",
        serving_seen.len()
    );
    assert!(
        ca_seen.len() >= 2,
        "expected a CA rotation, saw {} CAs",
        ca_seen.len()
    );

    // Only the leader wrote: the follower counted no repair and reported no Event, and the
    // leader never lost the Lease.
    // Scraped until both answer: an unreachable /metrics would read as "not leader, no repairs".
    support::poll("both replicas' metrics", Duration::from_secs(10), || {
        let (l, f) = (leader.metrics(), follower.metrics());
        (l.lines().any(|x| x == "certpair_leader 1") && f.lines().any(|x| x == "certpair_leader 0"))
            .then_some(())
    })
    .await;
    let repairs = |p: &support::ControllerProcess| -> f64 {
        p.metrics()
            .lines()
            .filter(|l| l.starts_with("certpair_webhook_certificate_repairs_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(repairs(leader) >= 3.0, "{}", leader.metrics());
    assert_eq!(repairs(follower), 0.0, "{}", follower.metrics());
    let out = support::run(cluster.kubectl().args([
        "get",
        "events.events.k8s.io",
        "-A",
        "--field-selector",
        &format!("regarding.name={}", support::webhook::CONFIG),
        "-o",
        "jsonpath={range .items[*]}{.reportingInstance}{\"\\n\"}{end}",
    ]));
    let instances = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        instances.lines().any(|i| i == leader_id.as_str()),
        "the leader reported its rotations: {instances}"
    );
    assert!(
        !instances.lines().any(|i| i == follower_id.as_str()),
        "the follower reported Events: {instances}"
    );

    // Both replicas serve the Secret's current certificate, leader or not.
    let current = secret_cert(
        &secrets.get("certpair-webhook-tls").await.expect("tls"),
        "tls.crt",
    );
    for (port, who) in [(port_a, &a), (port_b, &b)] {
        let served = support::poll(
            "the replica to serve the current certificate",
            Duration::from_secs(15),
            || served_leaf(port).filter(|der| *der == current),
        )
        .await;
        assert_eq!(served, current, "{}", who.logs());
    }
}
