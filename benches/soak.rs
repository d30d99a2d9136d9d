//! Steady work for a long time, certpair's resources sampled each minute:
//! `hack/soak.sh [MINUTES] [RATE]` (defaults 30 minutes, 10 CSRs a second). Prints figures;
//! asserts only that every CSR was issued and every pairing succeeded (a soak that silently
//! stopped working would show flat memory for the wrong reason).
//!
//! The controller serves its admission webhook (registered with `failurePolicy: Fail`, so
//! every CSR created is reviewed by it), and a connector runs beside it. A non-admin requester
//! creates RATE CSRs a second (ECDSA P-256) for a registered Application, and an external
//! application pairs through the connector (a TokenRequest, then Kyma's REST flow) every
//! [`PAIRING_EVERY`]. CSRs (the requester's and the pairings') are deleted two minutes after
//! they were created and TokenRequests a minute after use, so the caches hold a steady number
//! of objects and anything that grows is held by certpair itself. Each minute: certificates
//! issued, pairings, CSRs still waiting, then for the controller and the connector: RSS
//! (anonymous and file-backed for the controller), open file descriptors and CPU seconds. At
//! the end, growth from the end of the first minutes (warm-up: the cache fills for two
//! minutes) to the last minute.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use certpair::api::{CONNECTOR_CSR_LABEL, DEFAULT_SIGNER_NAME};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use support::{
    Cluster,
    csr::{Outcome, application, outcome, requester},
    csr_pem, ec_key, free_port,
    pairing::{rest_pair, token_requests},
    unique,
};

/// How long a CSR stays before the soak deletes it: the cache holds about RATE × this.
const KEEP: Duration = Duration::from_secs(120);
/// One pairing through the connector this often.
const PAIRING_EVERY: Duration = Duration::from_secs(2);

struct Sample {
    minute: u64,
    issued: usize,
    waiting: usize,
    rss_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    fds: usize,
    cpu_seconds: f64,
    pairings: usize,
    connector_rss_kib: u64,
    connector_fds: usize,
    connector_cpu_seconds: f64,
}

/// The pairing loop in the background: one pairing every [`PAIRING_EVERY`], and the
/// connector's CSRs deleted [`KEEP`] after they were made.
struct Pairings {
    done: Arc<std::sync::atomic::AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Pairings {
    fn done(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn stop(self) -> (usize, Vec<String>) {
        let done = self.done();
        self.task.abort();
        let mut failures = self.failures.lock().expect("failures").clone();
        if let Err(e) = self.task.await
            && e.is_panic()
        {
            failures.push("the pairing loop panicked".into());
        }
        (done, failures)
    }
}

fn spawn_pairings(cluster: &Cluster, app: &str, base: &str) -> Pairings {
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let admin = cluster.client.clone();
    let ca = reqwest::Certificate::from_pem(&cluster.published_ca("certpair-connector-ca"))
        .expect("connector CA");
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("HTTP client");
    let (app, base) = (app.to_owned(), base.to_owned());
    let (counted, failed) = (done.clone(), failures.clone());
    let task = tokio::spawn(async move {
        let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
        let selector = format!("{}={}", CONNECTOR_CSR_LABEL.0, CONNECTOR_CSR_LABEL.1);
        let mut tick = tokio::time::interval(PAIRING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let token = token_requests(&admin, &app, 1).await.remove(0);
            let pem = csr_pem(&ec_key(), &app, &["Acme"]);
            let body = serde_json::json!({ "csr": openssl::base64::encode_block(&pem) });
            match rest_pair(&http, &base, &token, &body.to_string()).await {
                Ok(_) => {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => failed.lock().expect("failures").push(e),
            }
            // The connector's CSRs of this and earlier runs, once older than KEEP.
            let Ok(listed) = csrs.list(&ListParams::default().labels(&selector)).await else {
                continue;
            };
            let now = k8s_openapi::jiff::Timestamp::now();
            for csr in listed.items {
                let old = csr
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .is_some_and(|t| now.duration_since(t.0).as_secs() > KEEP.as_secs() as i64);
                if old {
                    let name = csr.metadata.name.unwrap_or_default();
                    let _ = csrs.delete(&name, &DeleteParams::default()).await;
                }
            }
        }
    });
    Pairings {
        done,
        failures,
        task,
    }
}

#[tokio::main]
async fn main() {
    let mut numbers = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let minutes = numbers.next().unwrap_or(30).max(3);
    let rate = numbers.next().unwrap_or(10).max(1);
    let cluster = Cluster::connect().await;
    cluster.install_connector_manifests().await;
    let connector_port = free_port();
    let base = format!("https://127.0.0.1:{connector_port}");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_webhook_port, _webhook_config, controller) = support::webhook::serve(
        &cluster,
        dir.path(),
        &[
            "--log-format",
            "json",
            "--log-filter",
            "warn",
            "--connector-url",
            &base,
            "--connector-ips",
            "127.0.0.1",
            "--token-retention-seconds",
            "60",
        ],
    )
    .await;
    support::poll("leadership", Duration::from_secs(60), || {
        controller.is_leader().then_some(())
    })
    .await;
    let connector = cluster
        .start_connector_at(
            connector_port,
            &["--log-format", "json", "--log-filter", "warn"],
        )
        .await;
    let app = unique("soak");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let batch = unique("s");
    // The webhook's certificate is injected into its configuration once the controller leads;
    // until then the apiserver cannot call it.
    let api: Api<CertificateSigningRequest> = Api::all(who.client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = support::csr::csr_object(
            &unique("soak-probe"),
            csr_pem(&ec_key(), &app, &["Acme"]),
            DEFAULT_SIGNER_NAME,
            &[],
            Some(3600),
        );
        match api.create(&PostParams::default(), &probe).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "admission never worked: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pairings = spawn_pairings(&cluster, &app, &base);

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

    let admin: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let mut live: VecDeque<(String, Instant)> = VecDeque::new();
    let mut created = 0usize;
    let mut samples: Vec<Sample> = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    println!(
        "certpair soak: {minutes} min, {rate} CSRs/s (ECDSA P-256) through the admission webhook, \
         one pairing every {} s through the connector, CSRs deleted after {} s",
        PAIRING_EVERY.as_secs(),
        KEEP.as_secs()
    );
    println!(
        "| minute | issued (total) | pairings (total) | waiting | controller RSS MiB | anonymous MiB | file MiB | open fds | CPU s | connector RSS MiB | open fds | CPU s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut last_paired = 0;
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
            let paired = pairings.done();
            let sample = Sample {
                minute,
                issued: total - last_issued,
                waiting: created - total,
                rss_kib,
                anon_kib,
                file_kib,
                fds: controller.open_fds(),
                cpu_seconds: controller.cpu_seconds(),
                pairings: paired - last_paired,
                connector_rss_kib: connector.memory_kib().0,
                connector_fds: connector.open_fds(),
                connector_cpu_seconds: connector.cpu_seconds(),
            };
            last_issued = total;
            last_paired = paired;
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "| {} | {} ({total}) | {} ({paired}) | {} | {:.1} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {} | {:.1} |",
                sample.minute,
                sample.issued,
                sample.pairings,
                sample.waiting,
                mib(sample.rss_kib),
                mib(sample.anon_kib),
                mib(sample.file_kib),
                sample.fds,
                sample.cpu_seconds,
                mib(sample.connector_rss_kib),
                sample.connector_fds,
                sample.connector_cpu_seconds
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
    let (paired, failures) = pairings.stop().await;
    assert!(
        failures.is_empty(),
        "pairings failed: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(paired > 0, "no pairing happened");
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
            "after warm-up (minute {} → {}): RSS {:.1} → {:.1} MiB (trend {:+.3} MiB/min, min {:.1}, max {:.1}), open fds {} → {} (trend {:+.3}/min); {created} CSRs issued, none refused; controller CPU {:.2} ms per certificate; connector RSS {:.1} → {:.1} MiB (trend {:+.3} MiB/min), open fds {} → {}, {paired} pairings, none failed",
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
            mib(first.connector_rss_kib),
            mib(last.connector_rss_kib),
            slope(&|s| s.connector_rss_kib as f64 / 1024.0),
            first.connector_fds,
            last.connector_fds,
        );
    }
}
