//! What the controller's CSR cache holds per CSR, and what decoding a CSR costs:
//! `hack/bench.sh cache`. No cluster needed; prints figures, asserts nothing.
//!
//! 1. 10,000 issued CSRs as the apiserver sends them (`issued_csr.json`: managedFields of three
//!    managers, a label, a two-certificate chain) are decoded as the controller decodes them
//!    (`controller::cached_csr::CachedCsr`), slimmed (`controller::csr::slim`) and applied to a
//!    kube-runtime reflector store; a counting allocator reports the bytes and allocations
//!    still live per CSR. (The controller's RSS with 10,000 CSRs, from `hack/bench.sh csr
//!    10000`, is this plus what the allocator keeps after the burst's transient allocations.)
//! 2. Decoding that CSR as k8s-openapi's `CertificateSigningRequest` (as the controller did
//!    before) and as `CachedCsr`: allocations and time per decode, side by side in one run.
//!    The controller decodes a whole CSR five times per certificate (three watch events, two
//!    patch answers).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use certpair::controller::cached_csr::CachedCsr;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::runtime::{reflector, watcher};

/// The system allocator, counting live bytes, live allocations and all allocations made.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static MADE: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        COUNT.fetch_add(1, Relaxed);
        MADE.fetch_add(1, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        COUNT.fetch_sub(1, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}
#[global_allocator]
static A: Counting = Counting;

const ISSUED: &str = include_str!("issued_csr.json");

/// Allocations and nanoseconds per decode of [`ISSUED`] as `T`, over `n` decodes.
fn decode_cost<T: serde::de::DeserializeOwned>(n: usize) -> (f64, f64) {
    let made = MADE.load(Relaxed);
    let started = Instant::now();
    for _ in 0..n {
        let decoded: T = serde_json::from_str(ISSUED).expect("CSR JSON");
        std::hint::black_box(decoded);
    }
    let nanos = started.elapsed().as_nanos() as f64 / n as f64;
    ((MADE.load(Relaxed) - made) as f64 / n as f64, nanos)
}

fn main() {
    let (store, mut writer) = reflector::store::<CachedCsr>();
    let before = LIVE.load(Relaxed);
    let before_n = COUNT.load(Relaxed);
    let n = 10_000;
    for i in 0..n {
        let mut csr: CachedCsr = serde_json::from_str(ISSUED).expect("CSR JSON");
        csr.metadata.name = Some(format!("b-7f3a9c-{i:05}"));
        csr.metadata.uid = Some(format!("0b6f1c3e-5a8f-4d9e-9b1a-{i:012}"));
        certpair::controller::csr::slim(&mut csr);
        writer.apply_watcher_event(&watcher::Event::Apply(csr));
    }
    let after = LIVE.load(Relaxed);
    println!(
        "CSR cache: {} issued CSRs cached, {:.1} MiB live: {:.0} bytes and {:.1} allocations per CSR (the CSR struct alone is {} bytes)",
        store.len(),
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) as f64 / n as f64,
        (COUNT.load(Relaxed) - before_n) as f64 / n as f64,
        std::mem::size_of::<CertificateSigningRequest>()
    );

    let rounds = 20_000;
    // Warm up both, then measure alternately so machine noise hits both alike.
    decode_cost::<CertificateSigningRequest>(1_000);
    decode_cost::<CachedCsr>(1_000);
    let (mut full, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        full.push(decode_cost::<CertificateSigningRequest>(rounds));
        cached.push(decode_cost::<CachedCsr>(rounds));
    }
    let best = |v: &[(f64, f64)]| {
        v.iter()
            .copied()
            .fold((0.0, f64::MAX), |(_, t), (a, n)| (a, t.min(n)))
    };
    let (full_allocs, full_ns) = best(&full);
    let (cached_allocs, cached_ns) = best(&cached);
    println!(
        "decoding an issued CSR ({} bytes of JSON), best of 5 × {rounds}: k8s-openapi's CertificateSigningRequest {:.0} allocations, {:.1} µs; CachedCsr {:.0} allocations, {:.1} µs ({:.0} % of the time)",
        ISSUED.len(),
        full_allocs,
        full_ns / 1000.0,
        cached_allocs,
        cached_ns / 1000.0,
        100.0 * cached_ns / full_ns
    );
}
