//! Admission throughput and latency of the webhook itself over TLS, with a realistic
//! AdmissionReview (an RSA-2048 CSR for a registered Application), over kept-alive
//! connections: latency percentiles at fixed offered rates (a small wrk2-style client here,
//! corrected for coordinated omission),
//! then throughput at saturation driven by `wrk`. The server is the controller's own
//! (`webhook::https_server`). Run with `hack/bench.sh webhook`. Prints figures; asserts nothing.

use std::{process::Command, sync::Arc, time::Duration};

use actix_web::web;
use certpair::{
    api::DEFAULT_SIGNER_NAME,
    pki::{authority::Authority, csr_builder::RequestBuilder, generate_p256, now_unix},
    policy::{ApplicationRules, Defaults, SubjectRules},
    tls::{CertSlot, ServingIdentity, acceptor},
    webhook::{WORKERS, WebhookState, https_server},
};
use openssl::{
    nid::Nid,
    pkey::PKey,
    rsa::Rsa,
    ssl::{SslConnector, SslMethod, SslVerifyMode},
};

fn review_body() -> String {
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
    let pem = RequestBuilder {
        subject: vec![
            (Nid::ORGANIZATIONNAME, "Acme".into()),
            (Nid::COMMONNAME, "billing".into()),
        ],
        ..Default::default()
    }
    .to_pem(&key)
    .expect("request");
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b6f5d0e-bench",
            "kind": {"group": "certificates.k8s.io", "version": "v1", "kind": "CertificateSigningRequest"},
            "resource": {"group": "certificates.k8s.io", "version": "v1", "resource": "certificatesigningrequests"},
            "name": "billing-1",
            "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": {"name": "billing-1"},
                "spec": {
                    "request": openssl::base64::encode_block(&pem),
                    "signerName": DEFAULT_SIGNER_NAME,
                    "usages": ["digital signature", "client auth"],
                    "expirationSeconds": 3600,
                    "username": "alice"
                }
            },
            "dryRun": false
        }
    })
    .to_string()
}

fn main() -> std::io::Result<()> {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let ca =
        Authority::generate("bench webhook CA", Duration::from_secs(3600), now_unix()).expect("CA");
    let key = generate_p256().expect("key");
    let issued = ca
        .issue_server(
            "localhost",
            &["localhost".into()],
            &["127.0.0.1".parse().expect("ip")],
            &key,
            Duration::from_secs(3600),
            now_unix(),
        )
        .expect("serving certificate");
    let slot = Arc::new(CertSlot::default());
    slot.set(
        ServingIdentity::from_pem(
            &issued.chain_pem,
            &key.private_key_to_pem_pkcs8().expect("pem"),
        )
        .expect("identity"),
    );

    let state = web::Data::new(WebhookState {
        signer_name: DEFAULT_SIGNER_NAME.into(),
        defaults: Defaults::default(),
        applications: Arc::new(|name: &str| {
            (name == "billing").then(|| ApplicationRules {
                subject: SubjectRules {
                    organization: Some("Acme".into()),
                    ..Default::default()
                },
                ..Default::default()
            })
        }),
        draining: Arc::default(),
        budget: Default::default(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let body = review_body();
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
        ),
    )?;
    let url = format!("https://127.0.0.1:{port}/validate/certificatesigningrequests");

    let request: Arc<[u8]> = format!(
        "POST /validate/certificatesigningrequests HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into();

    let rt = actix_web::rt::System::new();
    rt.block_on(async move {
        // The controller's own server: same workers, TLS settings and routes.
        let server = https_server(state, acceptor(slot).expect("acceptor"), listener)?;
        let handle = server.handle();
        actix_web::rt::spawn(server);
        println!(
            "certpair webhook benchmark: AdmissionReview with an RSA-2048 CSR ({} bytes), TLS, \
             kept-alive connections, {WORKERS} server workers, {seconds} s per row, load tool on the same machine",
            body.len()
        );
        // Warm-up: worker start-up, first handshakes and allocator growth are not the
        // steady state the rows report.
        let warm_up = vec!["-t1".into(), "-c4".into(), "-d2s".into(), "-s".into()];
        run("wrk", [warm_up, vec![script.display().to_string(), url.clone()]].concat()).await?;
        println!("fixed rate (wrk2-style: kept-alive connections opened first; latency from each request's due time, and from its actual send):");
        for (rate, connections) in [(1_000, 4), (5_000, 8)] {
            let request = request.clone();
            let r = actix_web::rt::task::spawn_blocking(move || {
                fixed_rate(port, &request, rate, connections, Duration::from_secs(seconds))
            })
            .await
            .map_err(std::io::Error::other)??;
            println!(
                "  {rate:>6}/s offered, {connections:>2} connections: {:>7.0} requests/s   p50 {:>6.2}ms  p99 {:>6.2}ms  p99.9 {:>6.2}ms  max {:>6.2}ms   from send: p50 {:>6.2}ms  p99 {:>6.2}ms   ({} failed)",
                r.achieved,
                r.p(&r.from_due, 0.50),
                r.p(&r.from_due, 0.99),
                r.p(&r.from_due, 0.999),
                r.p(&r.from_due, 1.0),
                r.p(&r.from_send, 0.50),
                r.p(&r.from_send, 0.99),
                r.failed
            );
        }
        println!("saturation (wrk -t1, as fast as it goes):");
        for connections in [1, 4, 16, 64] {
            let args = vec![
                "-t1".to_owned(),
                format!("-c{connections}"),
                format!("-d{seconds}s"),
                "--latency".into(),
                "-s".into(),
                script.display().to_string(),
                url.clone(),
            ];
            let out = run("wrk", args).await?;
            let text = String::from_utf8_lossy(&out.stdout);
            let pick = |label: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(label))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
                    .unwrap_or_else(|| "?".into())
            };
            let errors = text
                .lines()
                .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
                .unwrap_or("no errors");
            println!(
                "  {connections:>3} connections: {:>9} requests/s   p50 {:>8}  p90 {:>8}  p99 {:>8}   ({})",
                pick("Requests/sec:"),
                pick("50%"),
                pick("90%"),
                pick("99%"),
                errors.trim()
            );
            if !out.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            }
        }
        handle.stop(true).await;
        Ok(())
    })
}

/// Runs a load tool to completion off the server's threads.
async fn run(program: &str, args: Vec<String>) -> std::io::Result<std::process::Output> {
    let name = program.to_owned();
    actix_web::rt::task::spawn_blocking(move || Command::new(&name).args(&args).output())
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| std::io::Error::new(e.kind(), format!("{program}: {e}")))
}

/// One connection's latencies from due time and from send, and its failures.
type ConnectionRun = (Vec<f64>, Vec<f64>, usize);

/// Latencies (seconds, sorted) of a fixed-rate run, and what went wrong.
struct FixedRate {
    /// From each request's due time: what a client on that schedule sees.
    from_due: Vec<f64>,
    /// From when each request was actually written: the server's share, without the client's
    /// own wake-up delays on this 2-core machine.
    from_send: Vec<f64>,
    achieved: f64,
    failed: usize,
}

impl FixedRate {
    /// The q-quantile of `sorted`, in milliseconds.
    fn p(&self, sorted: &[f64], q: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i] * 1e3
    }
}

/// Offers `rate` requests/s over `connections` kept-alive TLS connections for `duration`.
/// Each connection sends on its own fixed schedule; a request's latency runs from when it was
/// due, not from when it went out, so a stall that delays later requests counts against
/// them too (no coordinated omission, as in wrk2; at most one request per connection is in
/// flight, so queueing beyond that happens in this client and is counted). Connections are opened and used once before the clock
/// starts: the apiserver keeps its webhook connections alive, so handshakes are not the
/// steady state measured here.
fn fixed_rate(
    port: u16,
    request: &[u8],
    rate: u32,
    connections: u32,
    duration: Duration,
) -> std::io::Result<FixedRate> {
    use std::{
        io::{BufRead, BufReader, Read, Write},
        time::Instant,
    };
    let connect = || -> std::io::Result<_> {
        let mut b =
            SslConnector::builder(SslMethod::tls_client()).map_err(std::io::Error::other)?;
        b.set_verify(SslVerifyMode::NONE);
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_nodelay(true)?;
        let mut config = b.build().configure().map_err(std::io::Error::other)?;
        config.set_verify_hostname(false);
        let tls = config
            .connect("localhost", tcp)
            .map_err(std::io::Error::other)?;
        Ok(BufReader::new(tls))
    };
    // One request and its answer; true if the webhook admitted it.
    let exchange = |conn: &mut BufReader<openssl::ssl::SslStream<std::net::TcpStream>>| -> std::io::Result<bool> {
        conn.get_mut().write_all(request)?;
        let (mut status, mut length, mut line) = (String::new(), 0usize, String::new());
        conn.read_line(&mut status)?;
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            if line.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(std::io::Error::other)?;
            }
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body)?;
        Ok(status.starts_with("HTTP/1.1 200") && body.windows(14).any(|w| w == b"\"allowed\":true"))
    };
    let mut conns = Vec::new();
    for _ in 0..connections {
        let mut conn = connect()?;
        if !exchange(&mut conn)? {
            return Err(std::io::Error::other("warm-up request was not admitted"));
        }
        conns.push(conn);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let period = Duration::from_secs_f64(f64::from(connections) / f64::from(rate));
    let results: Vec<ConnectionRun> = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(c, mut conn)| {
                let exchange = &exchange;
                scope.spawn(move || {
                    let (mut from_due, mut from_send, mut failed) = (Vec::new(), Vec::new(), 0);
                    let mut due = start + Duration::from_secs_f64(c as f64 / f64::from(rate));
                    while due < start + duration {
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let sent = Instant::now();
                        match exchange(&mut conn) {
                            Ok(true) => {
                                from_due.push(due.elapsed().as_secs_f64());
                                from_send.push(sent.elapsed().as_secs_f64());
                            }
                            Ok(false) => failed += 1,
                            Err(_) => {
                                // A broken connection fails what it still had to send.
                                failed += ((start + duration)
                                    .saturating_duration_since(due)
                                    .as_secs_f64()
                                    / period.as_secs_f64())
                                    as usize
                                    + 1;
                                break;
                            }
                        }
                        due += period;
                    }
                    (from_due, from_send, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let failed = results.iter().map(|r| r.2).sum();
    let sorted = |pick: fn(&ConnectionRun) -> &Vec<f64>| {
        let mut all: Vec<f64> = results
            .iter()
            .flat_map(|r| pick(r).iter().copied())
            .collect();
        all.sort_by(f64::total_cmp);
        all
    };
    let (from_due, from_send) = (sorted(|r| &r.0), sorted(|r| &r.1));
    Ok(FixedRate {
        achieved: from_due.len() as f64 / elapsed,
        from_due,
        from_send,
        failed,
    })
}
