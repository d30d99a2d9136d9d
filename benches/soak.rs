//! Steady issuance for a long time, the controller's resources sampled each minute:
//! `hack/soak.sh [MINUTES] [RATE]` (defaults 30 minutes, 10 CSRs a second). Prints figures;
//! asserts only that every CSR was issued (a soak that silently stopped issuing would show
//! flat memory for the wrong reason).
//!
//! A non-admin requester creates RATE CSRs a second (ECDSA P-256) for a registered Application
//! (the benches' controller runs without its admission webhook); CSRs are deleted two minutes
//! after they were created, so the controller's cache holds a steady number of CSRs and
//! anything that grows is held by certpair itself. Each minute: certificates issued, CSRs still waiting, the controller's RSS
//! (anonymous and file-backed), open file descriptors and CPU seconds. At the end, growth from
//! the end of the first minutes (warm-up: the cache fills for two minutes) to the last minute.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use certpair::api::DEFAULT_SIGNER_NAME;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use support::{
    Cluster,
    csr::{Outcome, application, outcome, requester},
    csr_pem, ec_key, unique,
};

/// How long a CSR stays before the soak deletes it: the cache holds about RATE × this.
const KEEP: Duration = Duration::from_secs(120);

struct Sample {
    minute: u64,
    issued: usize,
    waiting: usize,
    rss_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    fds: usize,
    cpu_seconds: f64,
}

#[tokio::main]
async fn main() {
    let mut numbers = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let minutes = numbers.next().unwrap_or(30).max(3);
    let rate = numbers.next().unwrap_or(10).max(1);
    let cluster = Cluster::connect().await;
    let controller = cluster
        .start_controller(&["--log-format", "json", "--log-filter", "warn"])
        .await;
    support::poll("leadership", Duration::from_secs(60), || {
        controller.is_leader().then_some(())
    })
    .await;
    let app = unique("soak");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let batch = unique("s");

    // Issued and refused CSRs of this run, from a watch as admin.
    let issued: Arc<Mutex<HashSet<String>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let watch = {
        let admin: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
        let selector = format!("certpair.dev/soak={batch}");
        let (issued, refused) = (issued.clone(), refused.clone());
        tokio::spawn(async move {
            let mut events = watcher(admin, watcher::Config::default().labels(&selector))
                .applied_objects()
                .boxed();
            while let Ok(Some(csr)) = events.try_next().await {
                let name = csr.metadata.name.clone().unwrap_or_default();
                match outcome(&csr) {
                    Some(Outcome::Issued(_)) => {
                        issued.lock().expect("issued").insert(name);
                    }
                    Some(other) => refused
                        .lock()
                        .expect("refused")
                        .push(format!("{name}: {other:?}")),
                    None => {}
                }
            }
        })
    };

    let api: Api<CertificateSigningRequest> = Api::all(who.client.clone());
    let admin: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let mut live: VecDeque<(String, Instant)> = VecDeque::new();
    let mut created = 0usize;
    let mut samples: Vec<Sample> = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    println!(
        "certpair soak: {minutes} min, {rate} CSRs/s (ECDSA P-256), each deleted after {} s",
        KEEP.as_secs()
    );
    println!(
        "| minute | issued (total) | waiting | RSS MiB | anonymous MiB | file MiB | open fds | CPU s (total) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut last_issued = 0;
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        tick.tick().await;
        let name = format!("{batch}-{created:07}");
        let csr = support::csr::csr_object(
            &name,
            csr_pem(&ec_key(), &app, &["Acme"]),
            DEFAULT_SIGNER_NAME,
            &[("certpair.dev/soak", &batch)],
            Some(3600),
        );
        api.create(&PostParams::default(), &csr)
            .await
            .expect("create");
        created += 1;
        live.push_back((name, Instant::now()));
        while live.front().is_some_and(|(_, at)| at.elapsed() > KEEP) {
            let (old, _) = live.pop_front().expect("front");
            let _ = admin.delete(&old, &DeleteParams::default()).await;
        }
        let minute = started.elapsed().as_secs() / 60;
        if minute > samples.len() as u64 {
            let total = issued.lock().expect("issued").len();
            let (rss_kib, _) = controller.memory_kib();
            let (anon_kib, file_kib) = controller.rss_split_kib();
            let sample = Sample {
                minute,
                issued: total - last_issued,
                waiting: created - total,
                rss_kib,
                anon_kib,
                file_kib,
                fds: controller.open_fds(),
                cpu_seconds: controller.cpu_seconds(),
            };
            last_issued = total;
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "| {} | {} ({total}) | {} | {:.1} | {:.1} | {:.1} | {} | {:.1} |",
                sample.minute,
                sample.issued,
                sample.waiting,
                mib(sample.rss_kib),
                mib(sample.anon_kib),
                mib(sample.file_kib),
                sample.fds,
                sample.cpu_seconds
            );
            samples.push(sample);
        }
    }
    // Let the last ones finish, then check that nothing was refused or lost.
    support::poll("the last certificates", Duration::from_secs(60), || {
        (issued.lock().expect("issued").len() == created).then_some(())
    })
    .await;
    watch.abort();
    let refused = refused.lock().expect("refused");
    assert!(
        refused.is_empty(),
        "soak CSRs were refused: {:?}",
        &refused[..refused.len().min(5)]
    );

    // Growth after the warm-up (the cache fills for KEEP), per minute, by least squares.
    let warm = (KEEP.as_secs() / 60 + 1) as usize;
    let steady: Vec<&Sample> = samples.iter().skip(warm).collect();
    let slope = |value: &dyn Fn(&Sample) -> f64| {
        let n = steady.len() as f64;
        let mean_x = steady.iter().map(|s| s.minute as f64).sum::<f64>() / n;
        let mean_y = steady.iter().map(|s| value(s)).sum::<f64>() / n;
        let num: f64 = steady
            .iter()
            .map(|s| (s.minute as f64 - mean_x) * (value(s) - mean_y))
            .sum();
        let den: f64 = steady
            .iter()
            .map(|s| (s.minute as f64 - mean_x).powi(2))
            .sum();
        if den == 0.0 { 0.0 } else { num / den }
    };
    if let (Some(first), Some(last)) = (steady.first(), steady.last()) {
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "after warm-up (minute {} → {}): RSS {:.1} → {:.1} MiB (trend {:+.3} MiB/min, min {:.1}, max {:.1}), open fds {} → {} (trend {:+.3}/min); {created} CSRs issued, none refused; controller CPU {:.2} ms per certificate",
            first.minute,
            last.minute,
            mib(first.rss_kib),
            mib(last.rss_kib),
            slope(&|s| s.rss_kib as f64 / 1024.0),
            steady
                .iter()
                .map(|s| mib(s.rss_kib))
                .fold(f64::MAX, f64::min),
            steady.iter().map(|s| mib(s.rss_kib)).fold(0.0, f64::max),
            first.fds,
            last.fds,
            slope(&|s| s.fds as f64),
            1000.0 * last.cpu_seconds / created.max(1) as f64,
        );
    }
}
