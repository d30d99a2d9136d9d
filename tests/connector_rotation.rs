//! The connector's serving certificate rotates under load with zero failed requests. The
//! controller manages it with a 60 s lifetime renewed 45 s before expiry, checked every second,
//! so a new certificate is issued about every 15 s; meanwhile four clients open a fresh TLS
//! connection for every request (so every request is a handshake with whatever certificate the
//! connector holds then), verify it against the connector CA, and fetch `/v1/api.yaml`. Its own
//! binary: it runs a controller with its own flags.

mod support;

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::TcpStream,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use openssl::{
    ssl::{SslConnector, SslMethod, SslVerifyMode},
    x509::X509,
};
use support::{Cluster, free_port, run};

/// One request over a new verified connection: the served leaf's serial, or what failed.
fn fetch(port: u16, ca: &[X509]) -> Result<String, String> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    for cert in ca {
        builder
            .cert_store_mut()
            .add_cert(cert.clone())
            .map_err(|e| e.to_string())?;
    }
    builder.set_verify(SslVerifyMode::PEER);
    let mut config = builder.build().configure().map_err(|e| e.to_string())?;
    config.set_use_server_name_indication(false);
    config
        .param_mut()
        .set_ip("127.0.0.1".parse().map_err(|_| "ip")?)
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = config
        .connect("127.0.0.1", tcp)
        .map_err(|e| format!("handshake: {e}"))?;
    let serial = tls
        .ssl()
        .peer_certificate()
        .and_then(|c| certpair::pki::serial_hex(&c).ok())
        .ok_or("no certificate")?;
    write!(
        tls,
        "GET /v1/api.yaml HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    if response.starts_with("HTTP/1.1 200") && response.contains("openapi: 3") {
        Ok(serial)
    } else {
        Err(format!(
            "answer: {}",
            response.lines().next().unwrap_or_default()
        ))
    }
}

#[tokio::test]
async fn serving_certificate_rotations_under_load_fail_no_request() {
    let cluster = Cluster::connect().await;
    cluster.install_connector_manifests().await;
    // Start from nothing, so the lifetimes below apply from the first certificate.
    for secret in ["certpair-connector-tls", "certpair-connector-ca"] {
        let _ = run(cluster.kubectl().args([
            "delete",
            "secret",
            "-n",
            "certpair-system",
            secret,
            "--ignore-not-found",
        ]));
    }
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let controller = cluster
        .start_controller(&[
            "--connector-url",
            &url,
            "--connector-ips",
            "127.0.0.1",
            "--connector-serving-validity-seconds",
            "60",
            "--connector-look-ahead-seconds",
            "45",
            "--webhook-check-interval-seconds",
            "1",
        ])
        .await;
    controller.wait_leader().await;
    let connector = cluster.start_connector_at(port, &[]).await;
    let ca =
        X509::stack_from_pem(&cluster.published_ca("certpair-connector-ca")).expect("connector CA");

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(Mutex::new(HashSet::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, failures, requests, ca) = (
                stop.clone(),
                served.clone(),
                failures.clone(),
                requests.clone(),
                ca.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match fetch(port, &ca) {
                        Ok(serial) => {
                            served.lock().expect("lock").insert(serial);
                        }
                        Err(e) => failures.lock().expect("lock").push(e),
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    // Long enough for at least two rotations after the first certificate.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if served.lock().expect("lock").len() >= 3 && started.elapsed() > Duration::from_secs(32) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let served = served.lock().expect("lock").clone();
    let failures = failures.lock().expect("lock").clone();
    let total = requests.load(Ordering::Relaxed);
    eprintln!(
        "{total} requests over {:?}, {} serving certificates seen, {} failed",
        started.elapsed(),
        served.len(),
        failures.len()
    );
    assert!(
        served.len() >= 3,
        "the serving certificate rotated at least twice: {served:?}\n{}",
        controller.logs()
    );
    assert!(
        failures.is_empty(),
        "failed requests: {:?}\nconnector log:\n{}",
        &failures[..failures.len().min(5)],
        connector.logs()
    );
}
