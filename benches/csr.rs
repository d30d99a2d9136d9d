//! CSR throughput and latency against the real control plane named by KUBECONFIG.
//! Run with `hack/bench.sh csr [N]`. Prints figures; asserts nothing about time.
//!
//! N CSRs (keys prepared beforehand) are created concurrently by a non-admin requester while a
//! watch records when each certificate appears; then single CSRs one at a time on the idle
//! cluster. The controller (release build) runs as its ServiceAccount.
//!
//! Last, the restart a hostile requester could make expensive: with the controller stopped,
//! 1,000 CSRs of certpair's signer are created, each with a 200 KB annotation (anyone allowed
//! to create CSRs can do this); then a controller starts among them, and its peak RSS until it
//! has decided all of them is reported.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use certpair::api::DEFAULT_SIGNER_NAME;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use support::{
    Cluster,
    csr::{Outcome, application, outcome, requester},
    csr_pem, ec_key, unique,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn request(name: &str, pem: Vec<u8>, batch: &str) -> CertificateSigningRequest {
    support::csr::csr_object(
        name,
        pem,
        DEFAULT_SIGNER_NAME,
        &[("certpair.dev/bench", batch)],
        Some(3600),
    )
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let singles = 50;
    let cluster = Cluster::connect().await;
    let controller = cluster
        .start_controller(&["--log-format", "json", "--log-filter", "warn"])
        .await;
    support::poll("leadership", Duration::from_secs(300), || {
        controller.is_leader().then_some(())
    })
    .await;
    let app = unique("bench");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;

    eprintln!("preparing {n} + {singles} keys and requests...");
    let batch = unique("b");
    let prepared: Vec<(String, Vec<u8>)> = (0..n + singles)
        .map(|i| {
            (
                format!("{batch}-{i:05}"),
                csr_pem(&ec_key(), &app, &["Acme"]),
            )
        })
        .collect();
    let (burst, single) = prepared.split_at(n);

    // Watch for certificates (as admin) before creating anything.
    let admin: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let selector = format!("certpair.dev/bench={batch}");
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch = tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        let mut events = watcher(admin, watcher::Config::default().labels(&selector))
            .applied_objects()
            .boxed();
        while let Ok(Some(csr)) = events.try_next().await {
            if let Some(Outcome::Issued(_)) = outcome(&csr) {
                let name = csr.metadata.name.clone().unwrap_or_default();
                if seen.insert(name.clone()) && done_tx.send((name, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });

    let (idle_anon, idle_file) = controller.rss_split_kib();
    let api: Api<CertificateSigningRequest> = Api::all(who.client.clone());
    let started = Instant::now();
    let created: HashMap<String, Instant> = stream::iter(burst.iter().cloned())
        .map(|(name, pem)| {
            let api = api.clone();
            let batch = batch.clone();
            async move {
                let at = Instant::now();
                api.create(&PostParams::default(), &request(&name, pem, &batch))
                    .await
                    .expect("create");
                (name, at)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let created_in = started.elapsed();
    let mut latencies = Vec::with_capacity(n);
    let mut peak_hwm = 0;
    while latencies.len() < n {
        let (name, at) = tokio::time::timeout(Duration::from_secs(120), done_rx.recv())
            .await
            .expect("issuance stalled for 120 s")
            .expect("watch ended");
        if let Some(c) = created.get(&name) {
            latencies.push(at.duration_since(*c));
        }
        if latencies.len() % 100 == 0 {
            peak_hwm = peak_hwm.max(controller.memory_kib().1);
        }
    }
    let total = started.elapsed();

    // One at a time on the now idle cluster.
    let mut single_lat = Vec::new();
    for (name, pem) in single {
        let at = Instant::now();
        api.create(&PostParams::default(), &request(name, pem.clone(), &batch))
            .await
            .expect("create");
        loop {
            let (done, when) = done_rx.recv().await.expect("watch");
            if &done == name {
                single_lat.push(when.duration_since(at));
                break;
            }
        }
    }
    watch.abort();
    let (rss, hwm) = controller.memory_kib();
    let (anon, file) = controller.rss_split_kib();
    latencies.sort();
    single_lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("certpair CSR benchmark: {n} CSRs, ECDSA P-256 keys, 32 concurrent creators");
    println!("  creates finished in      {:>8.0} ms", ms(created_in));
    println!("  all issued in            {:>8.0} ms", ms(total));
    println!(
        "  throughput               {:>8.0} certificates/s",
        n as f64 / total.as_secs_f64()
    );
    println!(
        "  create-to-issued         p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0))
    );
    println!(
        "  single CSR, idle cluster p50 {:.1} ms  p95 {:.1} ms  ({} sequential)",
        ms(percentile(&single_lat, 0.50)),
        ms(percentile(&single_lat, 0.95)),
        singles
    );
    println!(
        "  controller RSS           now {:.1} MiB, peak {:.1} MiB (CSRs of its signer in the cluster: all of this run's and earlier ones)",
        rss as f64 / 1024.0,
        hwm.max(peak_hwm) as f64 / 1024.0
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "    of which anonymous {:.1} MiB (before the burst {:.1}), file-backed (code) {:.1} MiB (before {:.1})",
        mib(anon),
        mib(idle_anon),
        mib(file),
        mib(idle_file)
    );

    // Time to look at the controller from outside (e.g. gdb, pmap) before it stops.
    if let Some(seconds) = std::env::var("CERTPAIR_BENCH_PAUSE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        eprintln!(
            "pausing {seconds} s; controller pid {:?}",
            controller.controller_pid()
        );
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (rss, _) = controller.memory_kib();
        let (anon, file) = controller.rss_split_kib();
        println!(
            "  after the pause: RSS {:.1} MiB, anonymous {:.1} MiB, file-backed {:.1} MiB",
            rss as f64 / 1024.0,
            anon as f64 / 1024.0,
            file as f64 / 1024.0
        );
    }

    // The restart among annotated CSRs.
    drop(controller);
    let padded = 1000;
    let padding = "x".repeat(200_000);
    let batch = unique("pad");
    eprintln!("creating {padded} CSRs with a 200 KB annotation each, controller stopped...");
    let requests: Vec<CertificateSigningRequest> = (0..padded)
        .map(|i| {
            let mut csr = request(
                &format!("{batch}-{i:05}"),
                csr_pem(&ec_key(), &app, &["Acme"]),
                &batch,
            );
            csr.metadata.annotations =
                Some([("bench.certpair.dev/padding".to_string(), padding.clone())].into());
            csr
        })
        .collect();
    stream::iter(requests)
        .map(|csr| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &csr)
                    .await
                    .expect("create");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let restarted = Instant::now();
    let controller = cluster
        .start_controller(&["--log-format", "json", "--log-filter", "warn"])
        .await;
    let admin: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let selector = format!("certpair.dev/bench={batch}");
    let decided = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let counter = decided.clone();
    let watch = tokio::spawn(async move {
        let mut events = watcher(admin, watcher::Config::default().labels(&selector))
            .applied_objects()
            .boxed();
        while let Ok(Some(csr)) = events.try_next().await {
            if let (Some(_), Ok(mut seen)) = (outcome(&csr), counter.lock()) {
                seen.insert(csr.metadata.name.clone().unwrap_or_default());
            }
        }
    });
    let mut restart_hwm = 0;
    while decided.lock().map(|d| d.len()).unwrap_or(0) < padded {
        restart_hwm = restart_hwm.max(controller.memory_kib().1);
        assert!(
            restarted.elapsed() < Duration::from_secs(300),
            "the restarted controller did not decide the annotated CSRs in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    watch.abort();
    restart_hwm = restart_hwm.max(controller.memory_kib().1);
    println!(
        "  restart among {padded} CSRs with 200 KB annotations: all decided in {:.1} s, controller peak RSS {:.1} MiB",
        restarted.elapsed().as_secs_f64(),
        restart_hwm as f64 / 1024.0
    );
}
