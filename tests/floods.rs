//! certpair's listeners under floods, each still answering its real clients meanwhile:
//!
//! - slow large bodies: 500 concurrent clients each send all but the last byte of a 1 MiB body
//!   and reconnect when dropped, for 45 s. The webhook's memory stays bounded (peak RSS under
//!   half the Deployment's 256 MiB limit), and a `kubectl create` of a CSR during the flood is
//!   still answered through the apiserver;
//! - 1,000 idle connections (half after a TLS handshake, half before) held and renewed while
//!   five `kubectl create`s are made: every one is admitted;
//! - 1,000 idle connections to the connector, then 1,000 slow senders of 16 KiB bodies, then
//!   1,000 of 120 KiB heads that never end, while three external applications pair with curl:
//!   every pairing gets its certificate, and the connector's memory stays under half its
//!   Deployment's limit.
//!
//! Its own binary: it installs the webhook configuration and loads the machine; its tests take
//! turns.

mod support;

use std::time::{Duration, Instant};

use support::{
    Cluster,
    csr::{application, requester},
    csr_pem, ec_key, free_port,
    pairing::{Curled, csr_body, curl, token_request},
    unique,
};

const CLIENTS: usize = 500;
const IDLE_CLIENTS: usize = 1000;
/// `kubectl create`s made while the idle connections are held.
const IDLE_CREATES: usize = 5;
/// Pairings made during a flood of the connector.
const FLOOD_PAIRINGS: usize = 3;

/// Each test installs the webhook and floods it: one at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const FLOOD: Duration = Duration::from_secs(45);

/// The number of slow senders to the webhook: 500, or CERTPAIR_FLOOD_CLIENTS to explore (the
/// bound is asserted whatever the number).
fn clients() -> usize {
    env_or("CERTPAIR_FLOOD_CLIENTS", CLIENTS)
}
/// The number of idle clients to either listener, and of slow senders to the connector: 1,000,
/// or CERTPAIR_IDLE_CLIENTS to explore (what is asserted stays the same).
fn idle_clients() -> usize {
    env_or("CERTPAIR_IDLE_CLIENTS", IDLE_CLIENTS)
}
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
/// Half the memory limit of the controller's Deployment (256 MiB).
const PEAK_RSS_LIMIT_KIB: u64 = 128 * 1024;
/// Half the memory limit of the connector's Deployment (512 MiB, sized for these floods).
const CONNECTOR_PEAK_RSS_LIMIT_KIB: u64 = 256 * 1024;

#[tokio::test]
async fn a_flood_of_large_bodies_neither_exhausts_memory_nor_blocks_admission() {
    let _turn = TURN.lock().await;
    let cluster = Cluster::connect().await;
    let served = Served::start(&cluster, "flooded").await;
    let (port, controller) = (served.port, &served.controller);
    let create = |label: &str| served.create(label);
    let (_, before) = controller.memory_kib();

    let request =
        support::flood::unfinished_body("/validate/certificatesigningrequests", 1024 * 1024);
    let flood = Flood::start(port, request, clients());
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
    let flooded = flood.stop().await;
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
    assert_bounded(&flooded, clients(), peak, PEAK_RSS_LIMIT_KIB);
}

/// Slowloris: idle connections hold the webhook's connection slots (each until the head
/// timeout, or the TLS handshake timeout before that), and are opened again at once. The
/// apiserver's reviews still get through: its connection is kept alive across the flood.
#[tokio::test]
async fn a_thousand_idle_connections_do_not_stop_admission() {
    let _turn = TURN.lock().await;
    let cluster = Cluster::connect().await;
    let served = Served::start(&cluster, "idle").await;
    let (port, controller) = (served.port, &served.controller);
    let create = |label: &str| served.create(label);

    let at = Instant::now();
    assert!(create("before-idle").status.success());
    let baseline = at.elapsed();
    let flood_started = Instant::now();
    let flood = Flood::idle(port, idle_clients());
    // Let the flood take every slot first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut answers = Vec::new();
    let mut peak = 0;
    for _ in 0..IDLE_CREATES {
        peak = peak.max(controller.memory_kib().1);
        let at = Instant::now();
        let out = create("during-idle");
        answers.push((out, at.elapsed()));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let lasted = flood_started.elapsed();
    let flooded = flood.stop().await;
    let took: Vec<String> = answers
        .iter()
        .map(|(_, took)| format!("{:.2}", took.as_secs_f64()))
        .collect();
    println!(
        "idle flood: {} clients for {:.0} s, {} TLS handshakes, {} failed connects; \
         kubectl create took {:.2} s before it and [{}] s during it; peak RSS {:.1} MiB",
        idle_clients(),
        lasted.as_secs_f64(),
        flooded.handshakes,
        flooded.failed_connects,
        baseline.as_secs_f64(),
        took.join(", "),
        peak as f64 / 1024.0
    );
    for (out, took) in &answers {
        assert!(
            out.status.success(),
            "kubectl create during the idle flood failed after {took:?}: {}",
            support::stderr(out)
        );
    }
    assert_bounded(&flooded, idle_clients() / 2, peak, PEAK_RSS_LIMIT_KIB);
}

/// Slowloris against the connector: external applications open a new connection for each
/// call (curl here), so unlike the apiserver they cannot rely on a kept-alive connection and
/// must find a free slot among the idle clients'.
#[tokio::test]
async fn a_thousand_idle_connections_do_not_stop_pairing() {
    let _turn = TURN.lock().await;
    let cluster = Cluster::connect().await;
    let paired = Paired::start(&cluster, "idle-pairing").await;
    let before = paired.pair_before();
    let flood = Flood::idle(paired.port, idle_clients());
    let (took, peak, lasted) = paired.pair_during().await;
    let flooded = flood.stop().await;
    paired.report(
        &format!("idle flood on the connector: {} clients", idle_clients()),
        &flooded,
        lasted,
        before,
        &took,
        peak,
    );
}

/// Slow senders against the connector: each client announces the largest body the connector
/// reads (16 KiB) to the GraphQL endpoint, which reads a body before it looks
/// at a token, sends all of it but the last byte, and holds the connection until the body
/// timeout drops it.
#[tokio::test]
async fn a_thousand_slow_senders_do_not_stop_pairing() {
    let request =
        support::flood::unfinished_body("/graphql", certpair::limits::CONNECTOR_BODY_BYTES);
    pair_through(request, "slow senders").await;
}

/// The same with heads that never end: each client sends a request head of 120 KiB (one long
/// header, just under the 128 KiB at which actix refuses a head) without its blank line, so
/// the connector buffers it until the 5 s head timeout. The costliest thing to hold per
/// connection before any handler runs, in every one of the connector's slots.
#[tokio::test]
async fn a_thousand_unfinished_heads_do_not_stop_pairing() {
    let request = support::flood::unfinished_head("/graphql", 120 * 1024);
    pair_through(request, "unfinished heads").await;
}

/// Floods the connector with [`IDLE_CLIENTS`] clients sending `request` and stalling, pairs
/// during the flood, and asserts what [`Paired::report`] does.
async fn pair_through(request: Vec<u8>, what: &str) {
    let _turn = TURN.lock().await;
    let cluster = Cluster::connect().await;
    let paired = Paired::start(&cluster, "slow-pairing").await;
    let before = paired.pair_before();
    let flood = Flood::start(paired.port, request, idle_clients());
    let (took, peak, lasted) = paired.pair_during().await;
    let flooded = flood.stop().await;
    paired.report(
        &format!("{what} on the connector: {} clients", idle_clients()),
        &flooded,
        lasted,
        before,
        &took,
        peak,
    );
}

/// Flood clients running on blocking threads until stopped (for at most four minutes).
struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: tokio::task::JoinHandle<support::flood::Flooded>,
}

impl Flood {
    const LONGEST: Duration = Duration::from_secs(240);

    /// `clients` slow senders of `request` to `port`.
    fn start(port: u16, request: Vec<u8>, clients: usize) -> Flood {
        Flood::spawn(move |stop| {
            support::flood::flood(port, &request, clients, stop, Flood::LONGEST)
        })
    }

    /// `clients` idle connections to `port`.
    fn idle(port: u16, clients: usize) -> Flood {
        Flood::spawn(move |stop| support::flood::idle(port, clients, stop, Flood::LONGEST))
    }

    fn spawn(
        run: impl FnOnce(&std::sync::atomic::AtomicBool) -> support::flood::Flooded + Send + 'static,
    ) -> Flood {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = {
            let stop = stop.clone();
            tokio::task::spawn_blocking(move || run(&stop))
        };
        Flood { stop, clients }
    }

    async fn stop(self) -> support::flood::Flooded {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.clients.await.expect("flood threads")
    }
}

/// A controller and a connector, an Application, and TokenRequests for it made beforehand,
/// so that what is timed is the application's own two calls.
struct Paired {
    _controller: support::ControllerProcess,
    connector: support::ControllerProcess,
    port: u16,
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
    app: String,
    /// The first is paired before the flood, the others during it.
    info_urls: Vec<String>,
}

impl Paired {
    async fn start(cluster: &Cluster, prefix: &str) -> Paired {
        cluster.install_connector_manifests().await;
        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        let controller = cluster
            .start_controller(&["--connector-url", &url, "--connector-ips", "127.0.0.1"])
            .await;
        controller.wait_leader().await;
        let connector = cluster.start_connector_at(port, &[]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("connector-ca.crt");
        std::fs::write(&ca, cluster.published_ca("certpair-connector-ca")).expect("write");
        let app = unique(prefix);
        application(&cluster.client, &app, None).await;
        let mut info_urls = Vec::new();
        for _ in 0..=FLOOD_PAIRINGS {
            info_urls.push(token_request(&cluster.client, &app, &unique(prefix)).await);
        }
        Paired {
            _controller: controller,
            connector,
            port,
            _dir: dir,
            ca,
            app,
            info_urls,
        }
    }

    /// One pairing with curl (info, then certificates): the time it took, or what failed.
    fn pair(&self, info_url: &str) -> Result<Duration, String> {
        let at = Instant::now();
        let Curled {
            code, body, stderr, ..
        } = curl(&self.ca, &[info_url]);
        if code != 200 {
            return Err(format!(
                "signingRequests/info after {:?}: {code} {body} {stderr}",
                at.elapsed()
            ));
        }
        let csr_url = body["csrUrl"].as_str().unwrap_or_default().to_owned();
        let Curled {
            code, body, stderr, ..
        } = curl(&self.ca, &["-d", &csr_body(&self.app, &ec_key()), &csr_url]);
        if code != 201 || !body["crt"].is_string() {
            return Err(format!(
                "certificates after {:?}: {code} {body} {stderr}",
                at.elapsed()
            ));
        }
        Ok(at.elapsed())
    }

    /// The first pairing, before any flood: how long it took.
    fn pair_before(&self) -> Duration {
        self.pair(&self.info_urls[0])
            .expect("a pairing before the flood")
    }

    /// Waits 5 s for a flood just started to take every slot, then pairs the others 2 s
    /// apart: every pairing's outcome, the connector's peak RSS, and how long since the call.
    async fn pair_during(&self) -> (Vec<Result<Duration, String>>, u64, Duration) {
        let began = Instant::now();
        let mut took = Vec::new();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut peak = 0;
        for info_url in &self.info_urls[1..] {
            peak = peak.max(self.connector.memory_kib().1);
            took.push(self.pair(info_url));
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        (
            took,
            peak.max(self.connector.memory_kib().1),
            began.elapsed(),
        )
    }

    /// Prints the figures, then asserts that every pairing got its certificate, that the flood
    /// reached the connector, and that its peak RSS stayed under half its 512 MiB limit.
    fn report(
        &self,
        what: &str,
        flooded: &support::flood::Flooded,
        lasted: Duration,
        before: Duration,
        took: &[Result<Duration, String>],
        peak: u64,
    ) {
        let shown: Vec<String> = took
            .iter()
            .map(|t| match t {
                Ok(t) => format!("{:.2}", t.as_secs_f64()),
                Err(_) => "failed".into(),
            })
            .collect();
        println!(
            "{what} for {:.0} s, {} TLS handshakes, {} failed connects; a pairing (info + \
             certificates, curl) took {:.2} s before it and [{}] s during it; connector peak \
             RSS {:.1} MiB",
            lasted.as_secs_f64(),
            flooded.handshakes,
            flooded.failed_connects,
            before.as_secs_f64(),
            shown.join(", "),
            peak as f64 / 1024.0
        );
        for t in took {
            if let Err(e) = t {
                panic!("a pairing during the flood failed: {e}");
            }
        }
        assert_bounded(
            flooded,
            idle_clients() / 2,
            peak,
            CONNECTOR_PEAK_RSS_LIMIT_KIB,
        );
    }
}

/// The flood reached the listener (at least `handshakes` TLS handshakes), and the process's
/// peak RSS stayed under `limit_kib` (half its Deployment's memory limit).
fn assert_bounded(flooded: &support::flood::Flooded, handshakes: usize, peak: u64, limit_kib: u64) {
    assert!(
        flooded.handshakes >= handshakes as u64,
        "the flood reached the listener: {flooded:?}"
    );
    assert!(
        peak < limit_kib,
        "peak RSS {peak} KiB is over {limit_kib} KiB, half the Deployment's memory limit"
    );
}

/// A controller serving the webhook, an Application and a requester who may ask for it.
struct Served {
    dir: tempfile::TempDir,
    port: u16,
    _installed: support::webhook::InstalledConfig,
    controller: support::ControllerProcess,
    app: String,
    who: support::Identity,
}

impl Served {
    /// Started, and admission works (retried while the webhook's certificate is first
    /// injected); the apiserver now also holds a connection to the webhook.
    async fn start(cluster: &Cluster, prefix: &str) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, installed, controller) = support::webhook::serve(cluster, dir.path(), &[]).await;
        let app = unique(prefix);
        application(&cluster.client, &app, None).await;
        let who = requester(cluster, Some(&app)).await;
        let served = Served {
            dir,
            port,
            _installed: installed,
            controller,
            app,
            who,
        };
        support::poll(
            "admission through the webhook",
            Duration::from_secs(30),
            || served.create("before").status.success().then_some(()),
        )
        .await;
        served
    }

    /// `kubectl create` of a CSR as the requester: it succeeds only if the webhook answers.
    fn create(&self, label: &str) -> std::process::Output {
        let name = unique(label);
        let file = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            manifest(&name, &csr_pem(&ec_key(), &self.app, &["Acme"])),
        )
        .expect("write");
        support::run(self.who.kubectl().args(["create", "-f"]).arg(&file))
    }
}

fn manifest(name: &str, pem: &[u8]) -> String {
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {}\n  usages: [digital signature, client auth]\n  request: {}\n",
        certpair::api::DEFAULT_SIGNER_NAME,
        openssl::base64::encode_block(pem)
    )
}
