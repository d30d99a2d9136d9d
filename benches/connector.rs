//! Connector pairings and renewals against the real control plane named by KUBECONFIG.
//! Run with `hack/bench.sh connector [N] [C]`. Prints figures; asserts nothing about time.
//!
//! The controller and one connector (release builds) run as their ServiceAccounts. N
//! TokenRequests are made beforehand (and keys and CSRs: RSA-2048 generation is the client's
//! cost, not the connector's); then N full pairings (signingRequests/info, then
//! certificates) from C concurrent clients; then single pairings one at a time on the idle
//! cluster; then N renewals over mTLS from C clients; and the connector's RSS.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use certpair::{
    api::{Application, ApplicationSpec, SubjectRequirements, TokenRequest},
    pki::csr_builder::RequestBuilder,
};
use futures::{StreamExt, stream};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use openssl::{nid::Nid, pkey::PKey, rsa::Rsa};
use support::{Cluster, free_port, unique};

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
    body: String,
}

fn prepare(app: &str) -> Prepared {
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
    let pem = RequestBuilder::cn(app)
        .with(Nid::ORGANIZATIONNAME, "Acme")
        .with(Nid::COUNTRYNAME, "DE")
        .to_pem(&key)
        .expect("CSR");
    Prepared {
        key_pem: key.private_key_to_pem_pkcs8().expect("pem"),
        body: serde_json::json!({ "csr": openssl::base64::encode_block(&pem) }).to_string(),
    }
}

async fn tokens(client: &Client, app: &str, n: usize) -> Vec<String> {
    let api: Api<TokenRequest> = Api::namespaced(client.clone(), "default");
    let batch = unique("bench");
    for i in 0..n {
        let tr: TokenRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "certpair.dev/v1alpha1",
            "kind": "TokenRequest",
            "metadata": {"name": format!("{batch}-{i}"), "labels": {"bench": batch}},
            "spec": {"application": app, "ttlSeconds": 3600},
        }))
        .expect("TokenRequest");
        api.create(&PostParams::default(), &tr)
            .await
            .expect("create");
    }
    loop {
        let listed = api
            .list(&ListParams::default().labels(&format!("bench={batch}")))
            .await
            .expect("list");
        let ready: Vec<String> = listed
            .items
            .iter()
            .filter_map(|t| t.status.as_ref()?.token.clone())
            .collect();
        if ready.len() == n {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One pairing: (info latency, certificate latency), and the certificate chain PEM.
async fn pair(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &str,
) -> Result<(Duration, Duration, Vec<u8>), String> {
    let started = Instant::now();
    let info: serde_json::Value = http
        .get(format!(
            "{base}/v1/applications/signingRequests/info?token={token}"
        ))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let info_took = started.elapsed();
    let csr_url = info["csrUrl"]
        .as_str()
        .ok_or(format!("no csrUrl: {info}"))?;
    let started = Instant::now();
    let reply = http
        .post(csr_url)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = reply.status();
    let json: serde_json::Value = reply.json().await.map_err(|e| e.to_string())?;
    if status.as_u16() != 201 {
        return Err(format!("{status}: {json}"));
    }
    let crt = openssl::base64::decode_block(json["crt"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    Ok((info_took, started.elapsed(), crt))
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
    Api::<Application>::all(cluster.client.clone())
        .create(
            &PostParams::default(),
            &Application::new(
                &app,
                ApplicationSpec {
                    subject: Some(SubjectRequirements {
                        organization: Some("Acme".into()),
                        country: Some("DE".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ),
        )
        .await
        .expect("Application");
    let ca = reqwest::Certificate::from_pem(&cluster.published_ca("certpair-connector-ca"))
        .expect("connector CA");
    let http = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .build()
        .expect("client");

    eprintln!("preparing {} keys, CSRs and TokenRequests...", n + singles);
    // RSA key generation is slow: on every core.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let prepared: Vec<Prepared> = std::thread::scope(|scope| {
        let per = (n + singles).div_ceil(cores);
        let handles: Vec<_> = (0..cores)
            .map(|c| {
                let count = per.min((n + singles).saturating_sub(c * per));
                let app = &app;
                scope.spawn(move || (0..count).map(|_| prepare(app)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("keys"))
            .collect()
    });
    let toks = tokens(&cluster.client, &app, n + singles).await;

    println!("connector bench: {n} pairings from {concurrency} concurrent clients (RSA-2048 CSRs)");
    let cpu = |p: &support::ControllerProcess| p.cpu_seconds();
    let (connector_cpu, controller_cpu) = (cpu(&connector), cpu(&controller));
    let (apiserver_cpu, etcd_cpu) = (cpu_of("kube-apiserver"), cpu_of("/etcd"));
    let started = Instant::now();
    let results: Vec<_> = stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            let base = base.clone();
            let token = toks[i].clone();
            let body = prepared[i].body.clone();
            async move {
                let t = Instant::now();
                let r = pair(&http, &base, &token, &body).await;
                (i, r, t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut info = Vec::new();
    let mut cert = Vec::new();
    let mut total = Vec::new();
    let mut chains = Vec::new();
    let mut failures = 0;
    for (index, r, took) in results {
        match r {
            Ok((i, c, chain)) => {
                info.push(i);
                cert.push(c);
                total.push(took);
                chains.push((index, chain));
            }
            Err(e) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("pairing failed: {e}");
                }
            }
        }
    }
    println!(
        "  {} pairings in {:.2} s: {:.1} pairings/s ({failures} failed)",
        total.len(),
        elapsed.as_secs_f64(),
        total.len() as f64 / elapsed.as_secs_f64()
    );
    let paired = total.len().max(1) as f64;
    println!(
        "  CPU per pairing: connector {:.2} ms, controller {:.2} ms, kube-apiserver {:.2} ms, etcd {:.2} ms ({:.1} s wall on {} cores, this client beside them)",
        (cpu(&connector) - connector_cpu) * 1e3 / paired,
        (cpu(&controller) - controller_cpu) * 1e3 / paired,
        (cpu_of("kube-apiserver") - apiserver_cpu) * 1e3 / paired,
        (cpu_of("/etcd") - etcd_cpu) * 1e3 / paired,
        elapsed.as_secs_f64(),
        std::thread::available_parallelism().map_or(2, |n| n.get())
    );
    summary("info", info);
    summary("certificates", cert);
    summary("pairing", total);

    println!("single pairings, one at a time on the idle cluster ({singles}):");
    let mut single = Vec::new();
    for i in n..n + singles {
        let t = Instant::now();
        if pair(&http, &base, &toks[i], &prepared[i].body)
            .await
            .is_ok()
        {
            single.push(t.elapsed());
        }
    }
    summary("pairing", single);

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
