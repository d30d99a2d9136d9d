//! A leader that can no longer renew its Lease stops acting before a standby could take the
//! expired Lease, and resumes once renewals work again. The renewal is made to fail the way it
//! does in a real cluster when a permission goes missing: the controller's Role loses `patch`
//! and `update` on the Lease. Its own binary: it changes the controller's RBAC while it runs.

mod support;

use std::time::Duration;

use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    certificates::v1::CertificateSigningRequest,
    rbac::v1::Role,
};
use kube::{Api, api::PostParams};
use support::{
    Cluster,
    csr::{Outcome, application, outcome, request_certificate, requester, wait_outcome},
    poll, unique,
};

const CONTROLLER: &str = "system:serviceaccount:certpair-system:certpair-controller";

/// Whether the controller's ServiceAccount may patch the leader Lease right now.
async fn may_renew(cluster: &Cluster) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(CONTROLLER.into()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:certpair-system".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some("coordination.k8s.io".into()),
                resource: Some("leases".into()),
                namespace: Some("certpair-system".into()),
                name: Some(certpair::api::LEADER_LEASE.into()),
                verb: Some("patch".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(cluster.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_acting_and_resumes_later() {
    let cluster = Cluster::connect().await;
    let controller = cluster.start_controller(&[]).await;
    controller.wait_leader().await;

    // Revoke renewal: the Lease rule keeps `get` only.
    let roles: Api<Role> = Api::namespaced(cluster.client.clone(), "certpair-system");
    let mut role = roles.get("certpair-controller").await.expect("Role");
    for rule in role.rules.iter_mut().flatten() {
        if rule.resources.as_deref() == Some(&["leases".to_string()][..])
            && rule.resource_names.is_some()
        {
            rule.verbs = vec!["get".into()];
        }
    }
    roles
        .replace("certpair-controller", &PostParams::default(), &role)
        .await
        .expect("revoke Lease renewal");
    let revoked_at = tokio::time::Instant::now();
    let deadline = revoked_at + Duration::from_secs(10);
    while may_renew(&cluster).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "revocation not effective"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The lease lasts 6 s in these tests; the leader must step down about then, not never.
    poll("the leader to step down", Duration::from_secs(20), || {
        controller
            .metrics()
            .lines()
            .any(|l| l == "certpair_leader 0")
            .then_some(())
    })
    .await;
    eprintln!(
        "stepped down {:?} after the revocation",
        revoked_at.elapsed()
    );
    assert!(
        controller.logs().contains("cannot confirm it"),
        "{}",
        controller.logs()
    );

    // Not leading: an authorized request waits.
    let dir = tempfile::tempdir().expect("tempdir");
    let app = unique("lease-loss");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let name = request_certificate(&who, "while-not-leading", &app, dir.path());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let csrs: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let csr = csrs.get(&name).await.expect("CSR");
    assert!(
        outcome(&csr).is_none() && csr.status.and_then(|s| s.conditions).is_none(),
        "a replica that is not leading touched the request"
    );

    // Renewal works again (the manifests re-applied, as an operator would): it leads again
    // and the waiting request is issued.
    cluster.install_manifests().await;
    controller.wait_leader().await;
    let Outcome::Issued(_) = wait_outcome(&cluster.client, &name).await else {
        panic!("not issued after leading again:\n{}", controller.logs());
    };
}
