//! Faults in the control plane while certpair works, end to end (loopback only, bounded):
//!
//! - kube-apiserver restarted in the middle of a 1,000-CSR burst;
//! - etcd stopped for 10 s in the middle of a 1,000-CSR burst;
//! - the leader frozen (SIGSTOP) past its Lease while a standby takes over, then resumed.
//!
//! After each: every CSR has exactly one certificate for its own key, no serial twice, and the
//! controller recovered without a restart. Its own binary: it stops parts of the shared control
//! plane, so its tests take turns, and no other test's controller may compete.

mod support;

use std::{process::Command, time::Duration};

use k8s_openapi::{api::certificates::v1::CertificateSigningRequest, jiff::Timestamp};
use kube::Api;
use openssl::{asn1::Asn1Time, x509::X509};
use support::{
    Cluster, ControllerProcess, audit,
    burst::Burst,
    csr::{application, requester},
    poll, repo_root, run, stderr, unique,
};

const BURST: usize = 1000;

/// The tests stop shared servers: one at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn issued_total(controller: &ControllerProcess) -> u64 {
    controller
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix("certpair_certificates_issued_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no issued count in:\n{}", controller.metrics()))
}

/// A controller that leads and has finished whatever earlier tests left for the signer, and
/// the number of certificates it has issued so far.
async fn settled_controller(cluster: &Cluster) -> (ControllerProcess, u64) {
    let controller = cluster.start_controller(&[]).await;
    controller.wait_leader().await;
    let mut last = issued_total(&controller);
    let mut quiet_since = tokio::time::Instant::now();
    poll("the controller to settle", Duration::from_secs(60), || {
        let now = issued_total(&controller);
        if now != last {
            last = now;
            quiet_since = tokio::time::Instant::now();
        }
        (quiet_since.elapsed() > Duration::from_secs(2)).then_some(())
    })
    .await;
    (controller, last)
}

/// `hack/control-plane.sh restart <server> <down>` on the control plane under test; returns
/// how long the restart took.
async fn restart(cluster: &Cluster, server: &'static str, down_seconds: u32) -> Duration {
    let state = cluster.state_dir.clone();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let out = run(Command::new(repo_root().join("hack/control-plane.sh"))
            .args(["restart", server, &down_seconds.to_string()])
            .env("CERTPAIR_CONTROL_PLANE_DIR", state));
        assert!(
            out.status.success(),
            "restarting {server}: {}",
            stderr(&out)
        );
        started.elapsed()
    })
    .await
    .expect("restart")
}

/// A 1,000-CSR burst with `server` stopped for `down_seconds` once a quarter is issued.
async fn burst_through_restart(server: &'static str, down_seconds: u32) {
    let _turn = TURN.lock().await;
    let cluster = Cluster::connect().await;
    let (controller, before) = settled_controller(&cluster).await;
    let pid = controller.controller_pid().expect("controller pid");
    let app = unique("fault");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let burst = Burst::new(&app, BURST);

    let started = tokio::time::Instant::now();
    let fault = async {
        burst
            .wait_issued(&cluster.client, BURST / 4, Duration::from_secs(120))
            .await;
        let at = started.elapsed();
        let took = restart(&cluster, server, down_seconds).await;
        eprintln!("{server}: stopped at {at:?} into the burst, ready again {took:?} later");
    };
    let (retried, ()) = tokio::join!(burst.create_all(&who.client, 20), fault);
    eprintln!("{retried} of {BURST} creates had to be retried");
    burst
        .wait_issued(&cluster.client, BURST, Duration::from_secs(180))
        .await;
    eprintln!(
        "{server}: all {BURST} issued {:?} after the burst began",
        started.elapsed()
    );

    burst
        .assert_exactly_one_certificate_each(&cluster.client)
        .await;
    burst.delete_all(&cluster.client).await;
    // Signed once each: the controller's own count moved by exactly the burst.
    let after = issued_total(&controller);
    assert_eq!(
        after - before,
        BURST as u64,
        "certificates signed for {BURST} requests:\n{}",
        controller.logs()
    );
    assert_eq!(
        controller.controller_pid(),
        Some(pid),
        "the controller recovered by itself, not by a restart"
    );
    assert!(controller.is_leader(), "it leads again");
}

#[tokio::test]
async fn apiserver_restarted_mid_burst() {
    burst_through_restart("kube-apiserver", 0).await;
}

#[tokio::test]
async fn etcd_stopped_for_ten_seconds_mid_burst() {
    burst_through_restart("etcd", 10).await;
}

fn signal(controller: &ControllerProcess, signal: &str) {
    let pid = controller.controller_pid().expect("controller pid");
    let out = run(Command::new("kill").args([signal, &pid.to_string()]));
    assert!(out.status.success(), "kill {signal}: {}", stderr(&out));
}

/// The leader is frozen mid-burst (SIGSTOP: it cannot even notice), long enough for the
/// standby to take the Lease and sign, then resumed. The apiserver's audit log, which tells
/// the two processes apart by their tokens, shows no write from it after it was frozen.
#[tokio::test]
async fn a_leader_frozen_past_its_lease_writes_nothing_when_it_resumes() {
    let _turn = TURN.lock().await;
    let cluster = Cluster::connect().await;
    let (frozen, _) = settled_controller(&cluster).await;
    let standby = cluster.start_controller(&[]).await;
    assert!(!standby.is_leader());
    let app = unique("frozen");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let burst = Burst::new(&app, 600);

    let token = frozen.token.clone().expect("the leader's token");
    let freeze = async {
        // Mid-burst, so the leader has requests in flight when it stops.
        burst
            .wait_issued(&cluster.client, 100, Duration::from_secs(60))
            .await;
        signal(&frozen, "-STOP");
        let stopped_at = Timestamp::now();
        let stopped = tokio::time::Instant::now();
        poll("the standby to lead", Duration::from_secs(30), || {
            standby.is_leader().then_some(())
        })
        .await;
        eprintln!("the standby leads {:?} after the freeze", stopped.elapsed());
        // Let the standby sign for a while, so the frozen one's view is well out of date.
        tokio::time::sleep(Duration::from_secs(3)).await;
        signal(&frozen, "-CONT");
        (stopped_at, Timestamp::now())
    };
    let (_, (stopped_at, resumed_at)) = tokio::join!(burst.create_all(&who.client, 10), freeze);
    burst
        .wait_issued(&cluster.client, 600, Duration::from_secs(120))
        .await;
    // Time for a stray write of the resumed process to reach the log.
    poll(
        "the resumed process to step down",
        Duration::from_secs(10),
        || {
            frozen
                .metrics()
                .lines()
                .any(|l| l == "certpair_leader 0")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // What the audit log shows of the frozen process. Requests it had begun before the
    // freeze may reach the apiserver only when it resumes (they sat in its HTTP client), so a
    // write received after the resumption is allowed only if it provably began before the
    // freeze, by what it carries: an Event's name holds its creation time, an approval its
    // condition's time, a certificate its NotBefore. A write begun after the resumption (which
    // the fence forbids) carries a later time and fails the test.
    let writes = audit::writes_with(&cluster, &token);
    let csrs: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let stopped_second = stopped_at.as_second();
    let mut late = Vec::new();
    let mut flushed = 0;
    for write in writes.iter().filter(|w| w.received >= resumed_at) {
        let begun_before_freeze = match write.resource.as_str() {
            "events" => write
                .name
                .rsplit_once('.')
                .and_then(|(_, hex)| i128::from_str_radix(hex, 16).ok())
                .is_some_and(|ns| ns < stopped_at.as_nanosecond()),
            // Refused by the apiserver: nothing was written.
            _ if write.code != 200 => true,
            "certificatesigningrequests/approval" => {
                let csr = csrs.get(&write.name).await.expect("CSR");
                csr.status
                    .and_then(|s| s.conditions)
                    .into_iter()
                    .flatten()
                    .find(|c| c.type_ == "Approved")
                    .and_then(|c| c.last_update_time)
                    .is_some_and(|t| t.0.as_second() <= stopped_second)
            }
            "certificatesigningrequests/status" => {
                let csr = csrs.get(&write.name).await.expect("CSR");
                let pem = csr.status.and_then(|s| s.certificate).expect("certificate");
                let leaf = X509::from_pem(&pem.0).expect("leaf");
                let not_before = leaf
                    .not_before()
                    .diff(&Asn1Time::from_unix(0).expect("epoch"))
                    .expect("diff");
                let issued = -(i64::from(not_before.days) * 86_400 + i64::from(not_before.secs));
                let backdate =
                    i64::try_from(certpair::pki::profile::BACKDATE.as_secs()).unwrap_or(0);
                issued + backdate <= stopped_second
            }
            _ => false,
        };
        if begun_before_freeze {
            flushed += 1;
        } else {
            late.push(write);
        }
    }
    assert!(
        late.is_empty(),
        "the resumed leader began writes after it was frozen: {late:#?}\n{}",
        frozen.logs()
    );
    let before = writes.iter().filter(|w| w.received < stopped_at).count();
    assert!(
        writes
            .iter()
            .any(|w| w.resource == "certificatesigningrequests/status" && w.code == 200),
        "the audit log shows the leader's certificates (else it proves nothing): {before} writes"
    );
    eprintln!(
        "the leader wrote {before} times before the freeze; {flushed} requests begun before it \
         reached the apiserver on resumption; none begun after"
    );
    assert!(standby.is_leader(), "the standby still leads");
    burst
        .assert_exactly_one_certificate_each(&cluster.client)
        .await;
    burst.delete_all(&cluster.client).await;
}
