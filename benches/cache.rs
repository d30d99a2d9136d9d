//! What the controller's CSR cache holds per CSR: `hack/bench.sh cache`. 10,000 issued CSRs
//! as the apiserver sends them are slimmed (`controller::csr::slim`) and applied to a
//! kube-runtime reflector store, as the controller does; a counting allocator reports the bytes
//! and allocations still live per CSR. No cluster needed; prints figures, asserts nothing.
//! (The controller's RSS with 10,000 CSRs, from `hack/bench.sh csr 10000`, is this plus what
//! the allocator keeps after the burst's transient allocations.)

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::runtime::{reflector, watcher};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting live bytes and allocations.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        COUNT.fetch_add(1, Relaxed);
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

fn main() {
    let json = r#"{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"name":"b-7f3a9c-00001","uid":"0b6f1c3e-5a8f-4d9e-9b1a-2c3d4e5f6a7b","resourceVersion":"123456","creationTimestamp":"2026-12-02T07:00:00Z","labels":{"certpair.dev/bench":"b-7f3a9c"}},"spec":{"request":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQkJqQ0JyQUlCQURCS01SQXdEZ1lEVlFRRERBZGlhV3hzYVc1bk1SMHdHd1lEVlFRS0RCUkJZMjFsSUVOdmNuQnZjbUYwYVc5dU1SY3dGUVlEVlFRTERBNXdZWGx0Wlc1MGN5MTBaV0Z0TUZrd0V3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFCi0tLS0tRU5EIENFUlRJRklDQVRFIFJFUVVFU1QtLS0tLQo=","signerName":"certpair.dev/application","expirationSeconds":3600,"usages":["client auth","digital signature"],"username":"system:serviceaccount:bench-abc:requester-xyz","uid":"7a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d","groups":["system:serviceaccounts","system:serviceaccounts:bench-abc","system:authenticated"]},"status":{"conditions":[{"type":"Approved","status":"True","reason":"AutoApproved","message":"approved: requester may request Application billing","lastUpdateTime":"2026-12-02T07:00:01Z","lastTransitionTime":"2026-12-02T07:00:01Z"}],"certificate":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="}}"#;
    let (store, mut writer) = reflector::store::<CertificateSigningRequest>();
    let before = LIVE.load(Relaxed);
    let before_n = COUNT.load(Relaxed);
    let n = 10_000;
    for i in 0..n {
        let mut csr: CertificateSigningRequest = serde_json::from_str(json).expect("CSR JSON");
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
}
