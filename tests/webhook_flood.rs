//! The webhook under a flood of slow large bodies: 500 concurrent clients each send all but
//! the last byte of a 1 MiB body and reconnect when dropped, for 45 s. The webhook's memory
//! stays bounded (peak RSS under half the Deployment's 256 MiB limit), and a `kubectl create`
//! of a CSR during the flood is still answered through the apiserver. Its own binary: it
//! installs the webhook configuration and loads the machine for 45 s.

mod support;

use std::time::{Duration, Instant};

use support::{
    Cluster,
    csr::{application, requester},
    csr_pem, ec_key, unique,
};

const CLIENTS: usize = 500;
const FLOOD: Duration = Duration::from_secs(45);

/// The number of clients: 500, or CERTPAIR_FLOOD_CLIENTS to explore (the bound is asserted
/// whatever the number).
fn clients() -> usize {
    std::env::var("CERTPAIR_FLOOD_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CLIENTS)
}
/// Half the memory limit of the Deployment (256 MiB).
const PEAK_RSS_LIMIT_KIB: u64 = 128 * 1024;

#[tokio::test]
async fn a_flood_of_large_bodies_neither_exhausts_memory_nor_blocks_admission() {
    let cluster = Cluster::connect().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, _installed, controller) = support::webhook::serve(&cluster, dir.path(), &[]).await;
    let app = unique("flooded");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    // Admission works before the flood (retried while the webhook's certificate is first
    // injected); the apiserver now also holds a connection to the webhook.
    let create = |label: &str| {
        let name = unique(label);
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, manifest(&name, &csr_pem(&ec_key(), &app, &["Acme"])))
            .expect("write");
        support::run(who.kubectl().args(["create", "-f"]).arg(&file))
    };
    support::poll(
        "admission through the webhook",
        Duration::from_secs(30),
        || create("before-flood").status.success().then_some(()),
    )
    .await;
    let (_, before) = controller.memory_kib();

    let flood = tokio::task::spawn_blocking(move || {
        support::flood::flood(port, "/validate/certificatesigningrequests", CLIENTS, FLOOD)
    });
    let started = Instant::now();
    let mut peak = 0;
    let mut answered_during = None;
    while started.elapsed() < FLOOD {
        peak = peak.max(controller.memory_kib().1);
        if answered_during.is_none() && started.elapsed() > Duration::from_secs(15) {
            // A legitimate request in the middle of the flood: the apiserver calls the
            // webhook (failurePolicy Fail), so this succeeds only if the webhook answers.
            let at = Instant::now();
            let out = create("during-flood");
            answered_during = Some((out, at.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let flooded = flood.await.expect("flood threads");
    peak = peak.max(controller.memory_kib().1);
    println!(
        "flood: {} clients for {} s, {} TLS handshakes, {} failed connects; controller peak RSS {:.1} MiB (before the flood {:.1} MiB)",
        clients(),
        FLOOD.as_secs(),
        flooded.handshakes,
        flooded.failed_connects,
        peak as f64 / 1024.0,
        before as f64 / 1024.0
    );
    let (out, took) = answered_during.expect("a request was made during the flood");
    assert!(
        out.status.success(),
        "kubectl create during the flood failed after {took:?}: {}\n{}",
        support::stderr(&out),
        controller.logs()
    );
    println!("kubectl create during the flood answered in {took:?}");
    assert!(
        flooded.handshakes >= clients() as u64,
        "the flood reached the webhook: {flooded:?}"
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "peak RSS {peak} KiB is over half the 256 MiB limit"
    );
}

fn manifest(name: &str, pem: &[u8]) -> String {
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {}\n  usages: [digital signature, client auth]\n  request: {}\n",
        certpair::api::DEFAULT_SIGNER_NAME,
        openssl::base64::encode_block(pem)
    )
}
