//! A replica started with another `--lease-duration-seconds` than the last leader's becomes
//! leader once the Lease is free. The Lease manager takes a free Lease with a server-side apply
//! of its duration, which conflicts, for ever, with a different duration that another field
//! manager left on the Lease; certpair's release used to leave it there, so after a change of
//! the flag (a rolling update) no replica ever led again. Its own binary: it runs controllers
//! one after another and writes the leader Lease.

mod support;

use std::time::Duration;

use certpair::api::{DEFAULT_NAMESPACE, FIELD_MANAGER, LEADER_LEASE};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use support::{Cluster, ControllerProcess};

/// Bounded: with the conflict, a replica never leads, so any bound tells the two apart.
async fn leads(controller: &ControllerProcess) {
    support::poll(
        "leadership with a new lease duration",
        Duration::from_secs(15),
        || controller.is_leader().then_some(()),
    )
    .await;
}

#[tokio::test]
async fn a_changed_lease_duration_does_not_keep_replicas_from_leading() {
    let cluster = Cluster::connect().await;
    cluster.install_manifests().await;
    let mut first = cluster.start_controller(&[]).await; // 6 s
    first.wait_leader().await;
    first.send_term();
    assert!(first.wait_exit(Duration::from_secs(20)).is_some());

    // Released on SIGTERM: the next replica, with another duration, leads at once.
    let mut second = cluster
        .start_controller(&["--lease-duration-seconds", "9"])
        .await;
    leads(&second).await;
    second.send_term();
    assert!(second.wait_exit(Duration::from_secs(20)).is_some());

    // A Lease as certpair released it before: no holder, the duration kept (written by
    // certpair's field manager, as its release wrote it).
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), DEFAULT_NAMESPACE);
    leases
        .patch(
            LEADER_LEASE,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(serde_json::json!({
                "spec": {
                    "holderIdentity": null, "acquireTime": null, "renewTime": null,
                    "leaseDurationSeconds": 6,
                }
            })),
        )
        .await
        .expect("put the Lease in the old released state");
    let third = cluster
        .start_controller(&["--lease-duration-seconds", "12"])
        .await;
    leads(&third).await;
}
