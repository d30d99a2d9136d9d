//! What the admission webhook costs a user: `hack/bench.sh admission [N]` times N server-side
//! dry runs of one CSR (`kubectl apply --dry-run=server`, and the same request from an API
//! client without kubectl's process start) with certpair's webhook off, then on (the
//! controller serving it, the apiserver calling it over TLS), on the local control plane
//! KUBECONFIG names. Prints p50/p99 and the difference; asserts nothing about time.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use certpair::api::DEFAULT_SIGNER_NAME;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{Api, api::PostParams};
use support::{
    Cluster, Identity,
    csr::{application, requester},
    csr_pem, ec_key, run, stderr, unique,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len().saturating_sub(1))]
}

/// p50 and p99 in ms.
fn summary(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
    )
}

/// N `kubectl apply --dry-run=server` of `manifest` as `who`, and N dry-run creates through
/// the API: each call's wall time.
async fn measure(
    who: &Identity,
    manifest: &std::path::Path,
    csr: &CertificateSigningRequest,
    n: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut kubectl = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let out = run(who
            .kubectl()
            .args(["apply", "--dry-run=server", "-f"])
            .arg(manifest));
        kubectl.push(started.elapsed());
        assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
    }
    let api: Api<CertificateSigningRequest> = Api::all(who.client.clone());
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut client = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        api.create(&params, csr).await.expect("dry-run create");
        client.push(started.elapsed());
    }
    (kubectl, client)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let cluster = Cluster::connect().await;
    cluster.install_manifests().await;
    let app = unique("admission");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = csr_pem(&ec_key(), &app, &["Acme"]);
    let name = unique("dry-run");
    let csr = support::csr::csr_object(&name, pem.clone(), DEFAULT_SIGNER_NAME, &[], None);
    let manifest = dir.path().join("csr.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {DEFAULT_SIGNER_NAME}\n  usages: [digital signature, client auth]\n  request: {}\n",
            openssl::base64::encode_block(&pem)
        ),
    )
    .expect("write manifest");

    eprintln!("webhook off: {n} dry runs each way...");
    let off = measure(&who, &manifest, &csr, n).await;

    eprintln!("webhook on: starting the controller with it...");
    let (port, installed, controller) = support::webhook::serve(&cluster, dir.path(), &[]).await;
    // The apiserver calls it once the caBundle is in: wait until a request only the webhook
    // refuses (an RSA-1024 key) is refused.
    let weak_key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).expect("rsa"))
        .expect("key");
    let weak = dir.path().join("weak.yaml");
    std::fs::write(
        &weak,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: weak-{name}\nspec:\n  signerName: {DEFAULT_SIGNER_NAME}\n  usages: [digital signature, client auth]\n  request: {}\n",
            openssl::base64::encode_block(&csr_pem(&weak_key, &app, &["Acme"]))
        ),
    )
    .expect("write manifest");
    support::poll("the webhook to be called", Duration::from_secs(60), || {
        let out = run(who
            .kubectl()
            .args(["apply", "--dry-run=server", "-f"])
            .arg(&weak));
        (!out.status.success() && stderr(&out).contains("KeyTooWeak")).then_some(())
    })
    .await;
    eprintln!("webhook on (127.0.0.1:{port}): {n} dry runs each way...");
    let on = measure(&who, &manifest, &csr, n).await;
    drop(installed);
    drop(controller);

    println!("admission through the apiserver: {n} server-side dry runs of one CSR, one at a time");
    println!("| path | webhook off p50 / p99 | webhook on p50 / p99 | added p50 / p99 |");
    println!("| --- | --- | --- | --- |");
    for (what, a, b) in [
        ("kubectl apply --dry-run=server", off.0, on.0),
        ("API client, dryRun=All", off.1, on.1),
    ] {
        let (a50, a99) = summary(a);
        let (b50, b99) = summary(b);
        println!(
            "| {what} | {a50:.1} / {a99:.1} ms | {b50:.1} / {b99:.1} ms | {:.1} / {:.1} ms |",
            b50 - a50,
            b99 - a99
        );
    }
}
