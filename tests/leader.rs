//! Two controllers: only the leader writes, and when it dies mid-burst the standby takes over
//! and no request is lost or signed twice. Its own binary so no other controller competes.

mod support;

use std::time::Duration;

use support::{
    Cluster,
    burst::Burst,
    csr::{application, requester},
    poll, unique,
};

const BURST: usize = 200;

#[tokio::test]
async fn burst_survives_leader_death_with_exactly_one_certificate_each() {
    let cluster = Cluster::connect().await;
    let a = cluster.start_controller(&[]).await;
    let b = cluster.start_controller(&[]).await;
    poll("one leader", Duration::from_secs(30), || {
        (a.is_leader() || b.is_leader()).then_some(())
    })
    .await;
    assert!(!(a.is_leader() && b.is_leader()), "two leaders at once");
    // The standby serves probes but writes nothing.
    let (mut leader, survivor) = if a.is_leader() { (a, b) } else { (b, a) };

    let app = unique("burst");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let burst = Burst::new(&app, BURST);

    // Kill the leader (SIGKILL: no Lease release) once a quarter of the burst is issued.
    tokio::join!(
        burst.create_all(&who.client, 20),
        burst.wait_issued(&cluster.client, BURST / 4, Duration::from_secs(60))
    );
    assert!(
        survivor
            .metrics()
            .contains("certpair_certificates_issued_total 0"),
        "the standby must not sign while the leader lives:\n{}",
        survivor.metrics()
    );
    leader.kill_hard();
    eprintln!(
        "killed the leader; {:?} issued so far",
        burst.count_issued(&cluster.client).await
    );

    // The standby takes over within the lease duration and finishes the burst.
    burst
        .wait_issued(&cluster.client, BURST, Duration::from_secs(90))
        .await;
    assert!(survivor.is_leader());
    burst
        .assert_exactly_one_certificate_each(&cluster.client)
        .await;
    burst.delete_all(&cluster.client).await;
}
