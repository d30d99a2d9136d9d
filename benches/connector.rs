//! Connector pairings and renewals against the real control plane named by KUBECONFIG.
//! Run with `hack/bench.sh connector [N] [C]`. Prints figures; asserts nothing about time.
//!
//! The controller and one connector (release builds) run as their ServiceAccounts. 2N
//! TokenRequests are made beforehand (and keys and CSRs: RSA-2048 generation is the client's
//! cost, not the connector's); then N full pairings through Kyma's REST API
//! (signingRequests/info, then certificates) and N through Compass's GraphQL API
//! (`configuration`, then `signCertificateSigningRequest`), from C concurrent clients, in
//! alternating halves (REST, GraphQL, REST, GraphQL) so that a noisy minute on this shared
//! machine falls on both; then single pairings of each, one at a time on the idle cluster;
//! then N renewals over mTLS from C clients; and the connector's RSS.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use certpair::{
    api::{ApplicationSpec, SubjectRequirements},
    pki::csr_builder::RequestBuilder,
};
use futures::{StreamExt, stream};
use openssl::{nid::Nid, pkey::PKey, rsa::Rsa};
use support::{
    Cluster, free_port,
    pairing::{rest_pair, token_requests},
    unique,
};

/// CPU seconds (user + system) used so far by every process whose command line starts with a
/// path ending in `name` (the control plane's kube-apiserver, etcd).
fn cpu_of(name: &str) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if !String::from_utf8_lossy(first).ends_with(name) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        total += (ticks(11) + ticks(12)) / 100.0;
    }
    total
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    if samples.is_empty() {
        return;
    }
    println!(
        "  {name:<14} p50 {:>7.1} ms   p95 {:>7.1} ms   p99 {:>7.1} ms",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
}

/// A prepared client: its key (PEM) and CSR body.
struct Prepared {
    key_pem: Vec<u8>,
    /// REST's body, `{"csr": ...}`.
    body: String,
    /// The CSR as GraphQL's argument: base64 of the PEM.
    csr: String,
}

fn prepare(app: &str) -> Prepared {
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
    let pem = RequestBuilder::cn(app)
        .with(Nid::ORGANIZATIONNAME, "Acme")
        .with(Nid::COUNTRYNAME, "DE")
        .to_pem(&key)
        .expect("CSR");
    let csr = openssl::base64::encode_block(&pem);
    Prepared {
        key_pem: key.private_key_to_pem_pkcs8().expect("pem"),
        body: serde_json::json!({ "csr": csr }).to_string(),
        csr,
    }
}

const CONFIGURATION: &str = "{ result: configuration() { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { certificateSecuredConnectorURL } } }";
const SIGN: &str = "mutation($csr: String!) { result: signCertificateSigningRequest(csr: $csr) { certificateChain caCertificate clientCertificate } }";

/// One GraphQL call; `data.result`, or the first error.
async fn graphql(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    variables: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let answer: serde_json::Value = http
        .post(format!("{base}/graphql"))
        .header("Connector-Token", token)
        .json(&serde_json::json!({ "query": query, "variables": variables }))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if answer.get("errors").is_some() {
        return Err(answer.to_string());
    }
    Ok(answer["data"]["result"].clone())
}

/// One pairing through Compass's API: (configuration latency, signing latency), and the
/// certificate chain PEM.
async fn pair_graphql(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    csr: &str,
) -> Result<(Duration, Duration, Vec<u8>), String> {
    let started = Instant::now();
    let config = graphql(http, base, token, CONFIGURATION, serde_json::json!({})).await?;
    let info_took = started.elapsed();
    let next = config["token"]["token"]
        .as_str()
        .ok_or(format!("no token: {config}"))?;
    let started = Instant::now();
    let result = graphql(http, base, next, SIGN, serde_json::json!({ "csr": csr })).await?;
    let chain =
        openssl::base64::decode_block(result["certificateChain"].as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?;
    Ok((info_took, started.elapsed(), chain))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    Rest,
    Graphql,
}

/// One pairing of `flavour` with token and CSR `i`.
async fn pair_with(
    flavour: Flavour,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    prepared: &Prepared,
) -> Result<(Duration, Duration, Vec<u8>), String> {
    match flavour {
        Flavour::Rest => rest_pair(http, base, token, &prepared.body).await,
        Flavour::Graphql => pair_graphql(http, base, token, &prepared.csr).await,
    }
}

/// What a batch of concurrent pairings measured.
#[derive(Default)]
struct Batch {
    info: Vec<Duration>,
    cert: Vec<Duration>,
    total: Vec<Duration>,
    chains: Vec<(usize, Vec<u8>)>,
    failures: usize,
    elapsed: Duration,
}

/// What every pairing goes to, and with what.
struct Target<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    toks: &'a [String],
    prepared: &'a [Prepared],
    concurrency: usize,
}

/// Pairings of `flavour` for the given token/CSR indices, `concurrency` at a time.
async fn batch(
    target: &Target<'_>,
    flavour: Flavour,
    indices: std::ops::Range<usize>,
    into: &mut Batch,
) {
    let Target {
        http,
        base,
        toks,
        prepared,
        concurrency,
    } = *target;
    let started = Instant::now();
    let results: Vec<_> = stream::iter(indices)
        .map(|i| async move {
            let t = Instant::now();
            let r = pair_with(flavour, http, base, &toks[i], &prepared[i]).await;
            (i, r, t.elapsed())
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    into.elapsed += started.elapsed();
    for (index, r, took) in results {
        match r {
            Ok((i, c, chain)) => {
                into.info.push(i);
                into.cert.push(c);
                into.total.push(took);
                into.chains.push((index, chain));
            }
            Err(e) => {
                into.failures += 1;
                if into.failures <= 3 {
                    eprintln!("{flavour:?} pairing failed: {e}");
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(200);
    let concurrency = args.get(1).copied().unwrap_or(16);
    let singles = 20;
    let cluster = Cluster::connect().await;
    cluster.install_connector_manifests().await;
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let controller = cluster
        .start_controller(&[
            "--log-filter",
            "warn",
            "--connector-url",
            &base,
            "--connector-ips",
            "127.0.0.1",
        ])
        .await;
    controller.wait_leader().await;
    let connector = cluster
        .start_connector_at(port, &["--log-filter", "warn"])
        .await;
    let app = unique("bench");
    support::csr::application(
        &cluster.client,
        &app,
        Some(ApplicationSpec {
            subject: Some(SubjectRequirements {
                organization: Some("Acme".into()),
                country: Some("DE".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .await;
    let ca = reqwest::Certificate::from_pem(&cluster.published_ca("certpair-connector-ca"))
        .expect("connector CA");
    let http = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .build()
        .expect("client");

    let total_prepared = 2 * (n + singles);
    eprintln!("preparing {total_prepared} keys, CSRs and TokenRequests...");
    // RSA key generation is slow: on every core.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let prepared: Vec<Prepared> = std::thread::scope(|scope| {
        let per = total_prepared.div_ceil(cores);
        let handles: Vec<_> = (0..cores)
            .map(|c| {
                let count = per.min(total_prepared.saturating_sub(c * per));
                let app = &app;
                scope.spawn(move || (0..count).map(|_| prepare(app)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("keys"))
            .collect()
    });
    let toks = token_requests(&cluster.client, &app, total_prepared).await;

    println!(
        "connector bench: {n} REST and {n} GraphQL pairings from {concurrency} concurrent clients (RSA-2048 CSRs), in alternating halves"
    );
    let cpu = |p: &support::ControllerProcess| p.cpu_seconds();
    // Indices: REST pairings 0..n, GraphQL n..2n, singles after.
    let half = n / 2;
    let target = Target {
        http: &http,
        base: &base,
        toks: &toks,
        prepared: &prepared,
        concurrency,
    };
    let mut results = [Batch::default(), Batch::default()];
    let mut cpus = [[0.0f64; 4]; 2];
    for (flavour, range) in [
        (Flavour::Rest, 0..half),
        (Flavour::Graphql, n..n + half),
        (Flavour::Rest, half..n),
        (Flavour::Graphql, n + half..2 * n),
    ] {
        let slot = usize::from(flavour == Flavour::Graphql);
        let before = [
            cpu(&connector),
            cpu(&controller),
            cpu_of("kube-apiserver"),
            cpu_of("/etcd"),
        ];
        batch(&target, flavour, range, &mut results[slot]).await;
        let after = [
            cpu(&connector),
            cpu(&controller),
            cpu_of("kube-apiserver"),
            cpu_of("/etcd"),
        ];
        for k in 0..4 {
            cpus[slot][k] += after[k] - before[k];
        }
    }
    let mut rates = [0.0f64; 2];
    for (slot, name) in [(0, "REST (Kyma)"), (1, "GraphQL (Compass)")] {
        let r = &results[slot];
        rates[slot] = r.total.len() as f64 / r.elapsed.as_secs_f64();
        println!(
            "{name}: {} pairings in {:.2} s: {:.1} pairings/s ({} failed)",
            r.total.len(),
            r.elapsed.as_secs_f64(),
            rates[slot],
            r.failures
        );
        let paired = r.total.len().max(1) as f64;
        let c = cpus[slot];
        println!(
            "  CPU per pairing: connector {:.2} ms, controller {:.2} ms, kube-apiserver {:.2} ms, etcd {:.2} ms ({} cores, this client beside them)",
            c[0] * 1e3 / paired,
            c[1] * 1e3 / paired,
            c[2] * 1e3 / paired,
            c[3] * 1e3 / paired,
            cores
        );
        summary(
            if slot == 0 { "info" } else { "configuration" },
            r.info.clone(),
        );
        summary("certificate", r.cert.clone());
        summary("pairing", r.total.clone());
    }
    println!(
        "GraphQL ÷ REST throughput: {:.2} (same run, alternating halves)",
        rates[1] / rates[0].max(f64::MIN_POSITIVE)
    );

    for (flavour, first) in [(Flavour::Rest, 2 * n), (Flavour::Graphql, 2 * n + singles)] {
        println!("single {flavour:?} pairings, one at a time on the idle cluster ({singles}):");
        let mut single = Vec::new();
        for i in first..first + singles {
            let t = Instant::now();
            if pair_with(flavour, &http, &base, &toks[i], &prepared[i])
                .await
                .is_ok()
            {
                single.push(t.elapsed());
            }
        }
        summary("pairing", single);
    }
    let chains = std::mem::take(&mut results[0].chains);

    println!(
        "{} renewals over mTLS from {concurrency} concurrent clients:",
        chains.len()
    );
    // Each chain with the key of the CSR it was issued for; clients built before the clock
    // starts (loading a client identity and the system roots costs the client milliseconds).
    let clients: Vec<(reqwest::Client, String)> = chains
        .iter()
        .map(|(i, chain)| {
            let identity =
                reqwest::Identity::from_pkcs8_pem(chain, &prepared[*i].key_pem).expect("identity");
            let client = reqwest::Client::builder()
                .add_root_certificate(ca.clone())
                .identity(identity)
                .build()
                .expect("client");
            (client, prepared[(*i + 1) % n].body.clone())
        })
        .collect();
    let (connector_cpu, controller_cpu) = (cpu(&connector), cpu(&controller));
    let started = Instant::now();
    let renewals: Vec<_> = stream::iter(clients.iter())
        .map(|(client, body)| {
            let url = format!("{base}/v1/applications/certificates/renewals");
            async move {
                let t = Instant::now();
                let ok = client
                    .post(url)
                    .body(body.clone())
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 201)
                    .unwrap_or(false);
                (ok, t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let ok: Vec<Duration> = renewals
        .iter()
        .filter(|(ok, _)| *ok)
        .map(|(_, t)| *t)
        .collect();
    println!(
        "  {} renewals in {:.2} s: {:.1} renewals/s ({} failed)",
        ok.len(),
        elapsed.as_secs_f64(),
        ok.len() as f64 / elapsed.as_secs_f64(),
        renewals.len() - ok.len()
    );
    let renewed = ok.len().max(1) as f64;
    println!(
        "  CPU per renewal: connector {:.2} ms, controller {:.2} ms",
        (cpu(&connector) - connector_cpu) * 1e3 / renewed,
        (cpu(&controller) - controller_cpu) * 1e3 / renewed,
    );
    summary("renewal", ok);
    let (rss, peak) = connector.memory_kib();
    println!(
        "connector RSS now {:.1} MiB, peak {:.1} MiB",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    let (rss, peak) = controller.memory_kib();
    println!(
        "controller RSS now {:.1} MiB, peak {:.1} MiB",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
