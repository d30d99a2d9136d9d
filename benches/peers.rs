//! certpair beside its peers, in one run on one local control plane (the one KUBECONFIG
//! names): `hack/bench.sh peers [N]`. Prints a table and writes it as JSON under
//! `target/bench/`; asserts nothing about time.
//!
//! Rows, each issuing N certificates for ECDSA P-256 CSRs created by 32 concurrent creators,
//! one row after another, the CSRs of a row deleted before the next:
//! - **apiserver ceiling**: a raw writer that makes the calls any approve-and-sign controller
//!   must make per CSR (create, approval, status with a pre-made certificate), no checks;
//! - **kube-controller-manager** (built from the same pinned Kubernetes module as
//!   kube-apiserver) running only its CSR controllers, signing kubelet client CSRs with the
//!   control plane's CA: with its default client limits (`--kube-api-qps` 20, burst 30, what
//!   users get) and with the limits raised (the fair row: certpair's client has none);
//! - **certpair** (release build, as its ServiceAccount) issuing Application CSRs, as deployed
//!   and with `--issued-events=false` (what its one Event per certificate costs);
//! - the **apiserver ceiling** again: it drifts over a run on this shared machine, so the
//!   ratios to it use the mean of the first and last rows.
//!
//! Per row: time until all issued, certificates/s, create-to-issued p50/p99, the controller's
//! CPU seconds per 1,000 certificates (utime + stime from /proc) and peak RSS (VmHWM), and API
//! calls and 409 conflicts per certificate (the apiserver's `apiserver_request_total`, before
//! and after; the bench's own creates count in every row alike).

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use certpair::api::DEFAULT_SIGNER_NAME;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::watcher,
};
use serde::Serialize;
use serde_json::json;
use support::{
    Cluster, cpu_seconds_of,
    csr::{application, grant, requester, rule},
    csr_pem, ec_key, repo_root, unique,
};

const CREATORS: usize = 32;
const LABEL: &str = "certpair.dev/peers";
const KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const RAW_SIGNER: &str = "example.com/peers-raw";

#[derive(Serialize, Clone)]
struct Row {
    name: String,
    certificates: usize,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU seconds of the controller per 1,000 certificates (none for the raw writer).
    cpu_per_1000: Option<f64>,
    peak_rss_mib: Option<f64>,
    api_calls_per_certificate: f64,
    conflicts_per_certificate: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len().saturating_sub(1))]
}

fn request(name: &str, pem: Vec<u8>, signer: &str, batch: &str) -> CertificateSigningRequest {
    support::csr::csr_object(name, pem, signer, &[(LABEL, batch)], Some(3600))
}

/// The apiserver's request count so far, and how many of them were answered 409.
async fn apiserver_counts(client: &Client) -> (f64, f64) {
    let text = client
        .request_text(
            http::Request::get("/metrics")
                .body(Vec::new())
                .expect("request"),
        )
        .await
        .expect("apiserver /metrics");
    let (mut total, mut conflicts) = (0.0, 0.0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("apiserver_request_total{") {
            let value: f64 = rest
                .rsplit_once(' ')
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0.0);
            total += value;
            if rest.contains("code=\"409\"") {
                conflicts += value;
            }
        }
    }
    (total, conflicts)
}

/// VmHWM of a process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A controller under measurement: its pid, for CPU and memory.
struct Measured {
    pid: u32,
}

/// Creates `requests` with `api`, 32 at a time, each followed by `then` (the raw writer's
/// approval and status), and waits until every one has a certificate. Returns the time from
/// the first create until the last certificate, and each CSR's create-to-issued latency.
async fn issue<F, Fut>(
    admin: &Client,
    api: &Api<CertificateSigningRequest>,
    batch: &str,
    requests: Vec<CertificateSigningRequest>,
    then: F,
) -> (Duration, Vec<Duration>)
where
    F: Fn(String) -> Fut + Clone,
    Fut: std::future::Future<Output = ()>,
{
    let n = requests.len();
    let watched: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let selector = format!("{LABEL}={batch}");
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut seen = std::collections::HashSet::new();
        let mut events = watcher(watched, watcher::Config::default().labels(&selector)).boxed();
        while let Ok(Some(event)) = events.try_next().await {
            if let watcher::Event::InitDone = event
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(());
            }
            let csr = match event {
                watcher::Event::Apply(c) | watcher::Event::InitApply(c) => c,
                _ => continue,
            };
            let issued = csr
                .status
                .as_ref()
                .and_then(|s| s.certificate.as_ref())
                .is_some_and(|c| !c.0.is_empty());
            let name = csr.metadata.name.clone().unwrap_or_default();
            if issued && seen.insert(name.clone()) && done_tx.send((name, Instant::now())).is_err()
            {
                return;
            }
        }
    });
    let _ = ready_rx.await;
    let started = Instant::now();
    let created: HashMap<String, Instant> = stream::iter(requests)
        .map(|csr| {
            let api = api.clone();
            let then = then.clone();
            async move {
                let name = csr.metadata.name.clone().unwrap_or_default();
                let at = Instant::now();
                api.create(&PostParams::default(), &csr)
                    .await
                    .expect("create CSR");
                then(name.clone()).await;
                (name, at)
            }
        })
        .buffer_unordered(CREATORS)
        .collect()
        .await;
    let mut latencies = Vec::with_capacity(n);
    let mut last = started;
    while latencies.len() < n {
        let (name, at) = tokio::time::timeout(Duration::from_secs(300), done_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("issuance stalled: {} of {n} after 300 s", latencies.len()))
            .expect("watch ended");
        // A certificate may be seen before its create call returned.
        let from = created.get(&name).copied().unwrap_or(started);
        latencies.push(at.saturating_duration_since(from));
        last = at;
    }
    watch.abort();
    latencies.sort();
    (last.duration_since(started), latencies)
}

#[allow(clippy::too_many_arguments)]
async fn row(
    name: &str,
    admin: &Client,
    api: &Api<CertificateSigningRequest>,
    requests: Vec<CertificateSigningRequest>,
    batch: &str,
    measured: Option<&Measured>,
    then: impl Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + Clone,
) -> Row {
    let n = requests.len();
    let (calls_before, conflicts_before) = apiserver_counts(admin).await;
    let cpu_before = measured.map(|m| cpu_seconds_of(PathBuf::from(format!("/proc/{}", m.pid))));
    let (took, latencies) = issue(admin, api, batch, requests, then).await;
    let (calls_after, conflicts_after) = apiserver_counts(admin).await;
    let cpu_after = measured.map(|m| cpu_seconds_of(PathBuf::from(format!("/proc/{}", m.pid))));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let row = Row {
        name: name.to_owned(),
        certificates: n,
        seconds: took.as_secs_f64(),
        per_second: n as f64 / took.as_secs_f64(),
        p50_ms: ms(percentile(&latencies, 0.5)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        cpu_per_1000: cpu_before
            .zip(cpu_after)
            .map(|(b, a)| (a - b) * 1000.0 / n as f64),
        peak_rss_mib: measured.map(|m| peak_kib(m.pid) as f64 / 1024.0),
        // The two /metrics reads themselves are not the row's.
        api_calls_per_certificate: (calls_after - calls_before - 1.0) / n as f64,
        conflicts_per_certificate: (conflicts_after - conflicts_before) / n as f64,
    };
    eprintln!(
        "{name}: {n} in {:.1} s, {:.1}/s",
        row.seconds, row.per_second
    );
    // The next row starts from the same state: no CSRs of this one.
    Api::<CertificateSigningRequest>::all(admin.clone())
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("{LABEL}={batch}")),
        )
        .await
        .expect("delete the row's CSRs");
    row
}

/// kube-controller-manager with only its CSR controllers, signing with the control plane's
/// CA, at the given client limits. Returns once its signer has started.
fn start_kcm(cluster: &Cluster, qps: u32, burst: u32) -> (Child, PathBuf) {
    let bin = repo_root().join("hack/bin/kube-controller-manager");
    assert!(
        bin.exists(),
        "{} is missing: hack/bench.sh peers builds it (hack/control-plane.sh build-kcm)",
        bin.display()
    );
    let pki = cluster.state_dir.join("pki");
    let log = cluster.state_dir.join(format!("{}.log", unique("kcm")));
    let child = Command::new(bin)
        .args([
            "--kubeconfig",
            &cluster.kubeconfig.to_string_lossy(),
            "--controllers=csrapproving,csrsigning",
            "--cluster-signing-cert-file",
            &pki.join("ca.crt").to_string_lossy(),
            "--cluster-signing-key-file",
            &pki.join("ca.key").to_string_lossy(),
            "--leader-elect=false",
            "--secure-port=0",
            "--use-service-account-credentials=false",
            "--kube-api-qps",
            &qps.to_string(),
            "--kube-api-burst",
            &burst.to_string(),
            "-v=2",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("kcm log"))
        .spawn()
        .expect("start kube-controller-manager");
    (child, log)
}

async fn wait_kcm(log: &PathBuf) {
    support::poll(
        "kube-controller-manager's CSR signer to start",
        Duration::from_secs(60),
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            (text
                .contains("\"Starting certificate controller\" name=\"csrsigning-kubelet-client\"")
                && text.contains("\"Starting certificate controller\" name=\"csrapproving\"")
                && text.contains("Caches are synced"))
            .then_some(())
        },
    )
    .await;
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let cluster = Cluster::connect().await;
    let admin = cluster.client.clone();
    let admin_api: Api<CertificateSigningRequest> = Api::all(admin.clone());
    eprintln!("preparing 4 × {n} ECDSA P-256 keys and requests...");
    let prepare = |cn: &dyn Fn(usize) -> String, orgs: &[&str], signer: &str, batch: &str| {
        (0..n)
            .map(|i| {
                request(
                    &format!("{batch}-{i:05}"),
                    csr_pem(&ec_key(), &cn(i), orgs),
                    signer,
                    batch,
                )
            })
            .collect::<Vec<_>>()
    };
    let mut rows = Vec::new();

    // The ceiling: create, approval, status with a pre-made certificate; nothing checked.
    let ca = certpair::pki::authority::Authority::generate(
        "peers raw writer",
        Duration::from_secs(86400),
        certpair::pki::now_unix(),
    )
    .expect("CA");
    let premade = ca.chain_pem().expect("pem");
    let batch = unique("raw");
    let requests = prepare(&|i| format!("raw-{i}"), &["Acme"], RAW_SIGNER, &batch);
    let raw_api = admin_api.clone();
    let then = {
        let api = admin_api.clone();
        let premade = premade.clone();
        move |name: String| {
            let api = api.clone();
            let premade = premade.clone();
            Box::pin(async move {
                let pp = PatchParams::default();
                api.patch_approval(
                    &name,
                    &pp,
                    &Patch::Merge(json!({"status": {"conditions": [{
                        "type": "Approved", "status": "True",
                        "reason": "Bench", "message": "the raw writer approves everything",
                    }]}})),
                )
                .await
                .expect("approve");
                api.patch_status(
                    &name,
                    &pp,
                    &Patch::Merge(
                        json!({"status": {"certificate": openssl::base64::encode_block(&premade)}}),
                    ),
                )
                .await
                .expect("status");
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
        }
    };
    rows.push(
        row(
            "apiserver ceiling (raw writer)",
            &admin,
            &raw_api,
            requests,
            &batch,
            None,
            then.clone(),
        )
        .await,
    );

    // kube-controller-manager: kubelet client CSRs from a requester allowed `nodeclient`.
    let node_requester = cluster.user(&unique("bootstrap"), &[]).await;
    grant(
        &admin,
        &node_requester.username,
        vec![rule(
            &["certificates.k8s.io"],
            &[
                "certificatesigningrequests",
                "certificatesigningrequests/nodeclient",
            ],
            &["create", "get"],
            None,
        )],
    )
    .await;
    let node_api: Api<CertificateSigningRequest> = Api::all(node_requester.client.clone());
    let no_then =
        |_: String| Box::pin(async {}) as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
    for (name, qps, burst) in [
        (
            "kube-controller-manager, default client limits (qps 20, burst 30)",
            20,
            30,
        ),
        (
            "kube-controller-manager, limits raised (qps 2000, burst 4000)",
            2000,
            4000,
        ),
    ] {
        let (child, log) = start_kcm(&cluster, qps, burst);
        wait_kcm(&log).await;
        let batch = unique("kcm");
        let requests = prepare(
            &|i| format!("system:node:peers-{i}"),
            &["system:nodes"],
            KUBELET_SIGNER,
            &batch,
        );
        let measured = Measured { pid: child.id() };
        rows.push(
            row(
                name,
                &admin,
                &node_api,
                requests,
                &batch,
                Some(&measured),
                no_then,
            )
            .await,
        );
        stop(child);
    }
    // KCM really signed: one more certificate, verified by openssl against its CA.
    {
        let (child, log) = start_kcm(&cluster, 20, 30);
        wait_kcm(&log).await;
        let name = unique("peers-verify");
        let pem = csr_pem(&ec_key(), "system:node:peers-verify", &["system:nodes"]);
        node_api
            .create(
                &PostParams::default(),
                &request(&name, pem, KUBELET_SIGNER, "verify"),
            )
            .await
            .expect("create");
        let deadline = Instant::now() + Duration::from_secs(30);
        let certificate = loop {
            let csr = admin_api.get(&name).await.expect("get");
            if let Some(c) = csr.status.and_then(|s| s.certificate) {
                break c.0;
            }
            assert!(
                Instant::now() < deadline,
                "kube-controller-manager did not sign {name}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let file = cluster.state_dir.join(format!("{name}.crt"));
        std::fs::write(&file, &certificate).expect("write");
        let out = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(cluster.state_dir.join("pki/ca.crt"))
            .arg(&file)
            .output()
            .expect("openssl");
        let verified = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{verified}");
        let started = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Starting certificate controller"))
            .filter_map(|l| l.split("name=").nth(1).map(str::to_owned))
            .collect::<Vec<_>>();
        eprintln!(
            "kube-controller-manager's log started: {}",
            started.join(", ")
        );
        eprintln!(
            "its certificate, against the control plane's CA: {}",
            verified.trim()
        );
        admin_api
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
        stop(child);
    }

    // certpair: Application CSRs from a requester allowed to `request` it; as deployed, then
    // without the Issued Event (what the Event costs the apiserver).
    cluster.install_manifests().await;
    let app = unique("peers");
    application(&admin, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let certpair_api: Api<CertificateSigningRequest> = Api::all(who.client.clone());
    let mut conflicts = 0.0;
    for (name, flags) in [
        ("certpair (release build)", &[][..]),
        (
            "certpair, --issued-events=false",
            &["--issued-events=false"][..],
        ),
    ] {
        let args = [&["--log-format", "json", "--log-filter", "warn"][..], flags].concat();
        let controller = cluster.start_controller(&args).await;
        controller.wait_leader().await;
        let batch = unique("certpair");
        let requests = prepare(&|_| app.clone(), &["Acme"], DEFAULT_SIGNER_NAME, &batch);
        let measured = Measured {
            pid: controller.controller_pid().expect("the controller runs"),
        };
        rows.push(
            row(
                name,
                &admin,
                &certpair_api,
                requests,
                &batch,
                Some(&measured),
                no_then,
            )
            .await,
        );
        conflicts += controller
            .metrics()
            .lines()
            .filter(|l| l.starts_with("certpair_reconcile_errors_total") && l.contains("conflict"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>();
    }

    // The ceiling again: it moves over a run on this shared machine, so the ratios use the
    // mean of the two.
    let batch = unique("raw");
    let requests = prepare(&|i| format!("raw-{i}"), &["Acme"], RAW_SIGNER, &batch);
    rows.push(
        row(
            "apiserver ceiling again (raw writer, last row)",
            &admin,
            &raw_api,
            requests,
            &batch,
            None,
            then,
        )
        .await,
    );

    print(&rows, n, conflicts);
    let dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let file = dir.join(format!("peers-{}.json", certpair::pki::now_unix()));
    std::fs::write(
        &file,
        serde_json::to_vec_pretty(&json!({
            "date": k8s_openapi::jiff::Timestamp::now().to_string(),
            "certificates": n,
            "creators": CREATORS,
            "rows": rows,
        }))
        .expect("JSON"),
    )
    .expect("write JSON");
    println!("raw figures: {}", file.display());
}

fn print(rows: &[Row], n: usize, certpair_conflicts: f64) {
    println!(
        "\npeers: {n} ECDSA P-256 certificates per row, {CREATORS} concurrent creators, one control plane, rows one after another\n"
    );
    println!(
        "| row | certificates/s | p50 / p99 create-to-issued | controller CPU per 1,000 | peak RSS | API calls per certificate | 409s per certificate |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.0} / {:.0} ms | {} | {} | {:.2} | {:.3} |",
            r.name,
            r.per_second,
            r.p50_ms,
            r.p99_ms,
            r.cpu_per_1000.map_or("—".into(), |c| format!("{c:.2} s")),
            r.peak_rss_mib.map_or("—".into(), |m| format!("{m:.0} MiB")),
            r.api_calls_per_certificate,
            r.conflicts_per_certificate
        );
    }
    let ceilings: Vec<f64> = rows
        .iter()
        .filter(|r| r.name.starts_with("apiserver ceiling"))
        .map(|r| r.per_second)
        .collect();
    let ceiling = ceilings.iter().sum::<f64>() / ceilings.len().max(1) as f64;
    let Some(fair) = rows.iter().find(|r| r.name.contains("limits raised")) else {
        return;
    };
    println!();
    for ours in rows.iter().filter(|r| r.name.starts_with("certpair")) {
        println!(
            "{} ÷ kube-controller-manager (fair row): throughput {:.2}, CPU per certificate {:.2}, peak RSS {:.2}; ÷ apiserver ceiling (mean of {}): throughput {:.2}",
            ours.name,
            ours.per_second / fair.per_second,
            ours.cpu_per_1000.unwrap_or(0.0) / fair.cpu_per_1000.unwrap_or(f64::MAX),
            ours.peak_rss_mib.unwrap_or(0.0) / fair.peak_rss_mib.unwrap_or(f64::MAX),
            ceilings
                .iter()
                .map(|c| format!("{c:.1}"))
                .collect::<Vec<_>>()
                .join(" and "),
            ours.per_second / ceiling
        );
    }
    println!(
        "certpair's own conflict count (certpair_reconcile_errors_total{{kind=\"conflict\"}}): {certpair_conflicts}"
    );
}
