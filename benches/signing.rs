//! certpair's signing and CSR checking against what this machine's OpenSSL does, in one run:
//! `hack/bench.sh signing [SECONDS]`. Prints figures; asserts nothing about time.
//!
//! - **Signing**: `Authority::issue_client` (build, sign and encode one client certificate, the
//!   controller's whole signing step) per second, with a CA key of ECDSA P-256, RSA-2048 and
//!   RSA-4096, beside `openssl speed`'s raw signatures per second for the same key, as a
//!   percentage.
//! - **Parse + verify**: `pki::csr::parse_pem_for_admission` (PEM, DER, subject, key checks,
//!   the signature verified: what the webhook and the connector run per request) per second
//!   for ECDSA P-256 and RSA-2048 CSRs, beside `openssl speed`'s verifications per second.
//!
//! Each figure is single-threaded, measured for SECONDS (default 3), after a warm-up.
//!
//! For instruction counts: `valgrind --tool=callgrind target/release/deps/signing-* --count
//! issue 2000` (or `parse`), minus the same with 0 (see [`count`]).

use std::{
    process::Command,
    time::{Duration, Instant},
};

use certpair::pki::{
    authority::{Authority, LeafRequest},
    csr::parse_pem_for_admission,
    csr_builder::{RequestBuilder, key_for_algorithm},
    now_unix,
};
use openssl::{
    nid::Nid,
    pkey::{PKey, Private},
};

/// Runs `op` for `seconds` (after a tenth of that as warm-up); operations per second.
fn rate(seconds: f64, mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < seconds / 10.0 {
        op();
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        op();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// A self-signed CA with `key`, as certpair's signing CA would be brought.
fn authority(key: PKey<Private>) -> Authority {
    Authority::self_signed(
        "bench CA",
        key,
        Duration::from_secs(365 * 86400),
        now_unix(),
    )
    .expect("authority")
}

/// `openssl speed -mr` for `algorithms`: (name as openssl prints it, sign/s, verify/s).
fn openssl_speed(seconds: u64, algorithms: &[&str]) -> Vec<(String, f64, f64)> {
    let out = Command::new("openssl")
        .args(["speed", "-mr", "-seconds", &seconds.to_string()])
        .args(algorithms)
        .output()
        .expect("openssl speed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.lines() {
        // OpenSSL 3: `+F2:<i>:<bits>:<sign/s>:<verify/s>` (RSA), `+F4:...` (ECDSA); older
        // releases print seconds per operation instead, which are below 1.
        let fields: Vec<&str> = line.split(':').collect();
        let kind = match fields.first() {
            Some(&"+F2") => "rsa",
            Some(&"+F4") => "ecdsa",
            _ => continue,
        };
        let number = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        let (Some(bits), Some(sign), Some(verify)) = (number(2), number(3), number(4)) else {
            continue;
        };
        let per_second = |v: f64| if v < 1.0 && v > 0.0 { 1.0 / v } else { v };
        rows.push((
            format!("{kind}{bits}"),
            per_second(sign),
            per_second(verify),
        ));
    }
    rows
}

/// `--count issue|parse|parse-rsa N`: exactly N P-256 client certificates (P-256 CA) or N
/// P-256 (RSA-2048) CSR parses and nothing else, for `valgrind --tool=callgrind`, whose instruction counts are
/// stable on a noisy machine: the per-operation cost is (count at N - count at 0) / N.
fn count(what: &str, n: u64) {
    let algorithm = if what == "parse-rsa" {
        "rsa2048"
    } else {
        "ecdsa-p256"
    };
    let key = key_for_algorithm(algorithm).expect("key");
    let pem = RequestBuilder::cn("billing")
        .with(Nid::ORGANIZATIONNAME, "Acme")
        .to_pem(&key)
        .expect("csr");
    let parsed = parse_pem_for_admission(&pem).expect("parse");
    let ca = authority(key_for_algorithm("ecdsa-p256").expect("CA key"));
    let request = LeafRequest {
        subject: &parsed.subject,
        public_key: &parsed.public_key,
        public_key_der: Some(&parsed.public_key_der),
        lifetime: Duration::from_secs(3600),
    };
    for _ in 0..n {
        match what {
            "issue" => drop(ca.issue_client(&request, now_unix()).expect("issue")),
            _ => drop(parse_pem_for_admission(&pem).expect("parse")),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--count") {
        let what = args.get(i + 1).map_or("issue", String::as_str);
        let n = args.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(1000);
        return count(what, n);
    }
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    // openssl speed for each algorithm right before certpair's figure for it: this machine's
    // load changes from one minute to the next, and the ratio is what counts.
    let speed = |name: &str| {
        let algorithm = match name {
            "ecdsa256" => "ecdsap256",
            other => other,
        };
        openssl_speed(seconds.ceil() as u64, &[algorithm])
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, v)| (s, v))
            .unwrap_or((f64::NAN, f64::NAN))
    };
    let client_key = key_for_algorithm("ecdsa-p256").expect("key");
    // The key and subject as the controller has them: parsed from the request.
    let parsed = parse_pem_for_admission(
        &RequestBuilder::cn("billing")
            .with(Nid::ORGANIZATIONNAME, "Acme")
            .to_pem(&client_key)
            .expect("csr"),
    )
    .expect("parse");
    println!(
        "signing: certpair's issue_client (a whole client certificate) per second, single thread, {seconds} s each"
    );
    println!(
        "| CA key | certpair certificates/s | openssl speed signatures/s | certpair ÷ openssl |"
    );
    println!("| --- | --- | --- | --- |");
    for (algorithm, openssl_name) in [
        ("ecdsa-p256", "ecdsa256"),
        ("rsa2048", "rsa2048"),
        ("rsa4096", "rsa4096"),
    ] {
        let ca = authority(key_for_algorithm(algorithm).expect("CA key"));
        let request = LeafRequest {
            subject: &parsed.subject,
            public_key: &parsed.public_key,
            public_key_der: Some(&parsed.public_key_der),
            lifetime: Duration::from_secs(3600),
        };
        let (theirs, _) = speed(openssl_name);
        let ours = rate(seconds, || {
            ca.issue_client(&request, now_unix()).expect("issue");
        });
        println!(
            "| {algorithm} | {ours:.0} | {theirs:.0} | {:.0} % |",
            100.0 * ours / theirs
        );
    }
    println!();
    println!("parse + verify: certpair's parse_pem_for_admission per second, single thread");
    println!("| CSR key | certpair CSRs/s | openssl speed verifications/s | certpair ÷ openssl |");
    println!("| --- | --- | --- | --- |");
    for (algorithm, openssl_name) in [("ecdsa-p256", "ecdsa256"), ("rsa2048", "rsa2048")] {
        let key = key_for_algorithm(algorithm).expect("key");
        let pem = RequestBuilder::cn("billing")
            .with(Nid::ORGANIZATIONNAME, "Acme")
            .to_pem(&key)
            .expect("csr");
        let (_, theirs) = speed(openssl_name);
        let ours = rate(seconds, || {
            parse_pem_for_admission(&pem).expect("parse");
        });
        println!(
            "| {algorithm} | {ours:.0} | {theirs:.0} | {:.0} % |",
            100.0 * ours / theirs
        );
    }
}
