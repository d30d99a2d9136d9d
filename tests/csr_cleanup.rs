//! CSR cleanup with short retentions: issued and denied CSRs of certpair's signer are deleted
//! once their retention has passed, an undecided one after the pending retention, a CSR of
//! another signer never; the deletions are counted and the Application's status keeps its
//! count. certpair's ServiceAccount cannot delete another signer's CSR (policy
//! certpair-csr-cleanup). Its own binary: it runs its own controller.

mod support;

use std::time::{Duration, Instant};

use certpair::api::{Application, DEFAULT_SIGNER_NAME};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use support::{
    Cluster,
    csr::{Outcome, application, csr_object, requester, wait_outcome},
    csr_pem, ec_key, unique,
};

const OTHER_SIGNER: &str = "example.com/not-certpair";

/// Polls `probe` every 200 ms until it is true, or panics after `timeout`.
async fn until<F, Fut>(what: &str, timeout: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !probe().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn finished_and_stale_csrs_of_certpairs_signer_are_deleted_and_no_others() {
    let cluster = Cluster::connect().await;
    cluster.install_manifests().await;
    let controller = cluster
        .start_controller(&[
            "--unmatched=pending",
            "--csr-finished-retention-seconds=4",
            "--csr-pending-retention-seconds=10",
            "--csr-cleanup-interval-seconds=1",
        ])
        .await;
    controller.wait_leader().await;
    let app = unique("tidy");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let api: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let create = |name: &str, cn: &str, signer: &str, key: openssl::pkey::PKey<_>| {
        let api = api.clone();
        let csr = csr_object(name, csr_pem(&key, cn, &["Acme"]), signer, &[], None);
        async move {
            api.create(&PostParams::default(), &csr)
                .await
                .expect("create CSR");
        }
    };
    let issued = unique("tidy-issued");
    let denied = unique("tidy-denied");
    let pending = unique("tidy-pending");
    let other = unique("tidy-other");
    // Created as admin: the cleanup does not care who asked. The issued one by the requester.
    Api::<CertificateSigningRequest>::all(who.client.clone())
        .create(
            &PostParams::default(),
            &csr_object(
                &issued,
                csr_pem(&ec_key(), &app, &["Acme"]),
                DEFAULT_SIGNER_NAME,
                &[],
                None,
            ),
        )
        .await
        .expect("create");
    let weak = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).expect("rsa"))
        .expect("key");
    create(&denied, &app, DEFAULT_SIGNER_NAME, weak).await;
    create(
        &pending,
        &unique("no-such-app"),
        DEFAULT_SIGNER_NAME,
        ec_key(),
    )
    .await;
    create(&other, &app, OTHER_SIGNER, ec_key()).await;
    assert!(matches!(
        wait_outcome(&cluster.client, &issued).await,
        Outcome::Issued(_)
    ));
    assert!(matches!(
        wait_outcome(&cluster.client, &denied).await,
        Outcome::Denied { .. }
    ));
    let started = Instant::now();

    // Finished ones go after their 4 s (plus a pass), the pending one after its 10 s.
    let gone = |name: String| {
        let api = api.clone();
        async move { api.get_opt(&name).await.expect("get").is_none() }
    };
    until(
        "the issued and denied CSRs deleted",
        Duration::from_secs(30),
        || async { gone(issued.clone()).await && gone(denied.clone()).await },
    )
    .await;
    assert!(
        !gone(pending.clone()).await,
        "the pending CSR went after {:?}, before its 10 s",
        started.elapsed()
    );
    until(
        "the pending CSR deleted",
        Duration::from_secs(30),
        || async { gone(pending.clone()).await },
    )
    .await;
    assert!(
        !gone(other.clone()).await,
        "another signer's CSR is never deleted"
    );
    // At least these (the control plane may hold older CSRs of the signer from other tests,
    // which the cleanup deletes too).
    let deleted = |reason: &str| {
        let prefix = format!("certpair_csrs_deleted_total{{reason=\"{reason}\"}} ");
        controller
            .metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Counted just after each delete returns: bounded wait.
    support::poll("the deletions counted", Duration::from_secs(10), || {
        (deleted("finished") >= 2.0 && deleted("pending") >= 1.0).then_some(())
    })
    .await;
    assert!(
        controller
            .logs()
            .contains("deleted CSRs past their retention"),
        "a log line per pass that deleted: {}",
        controller.logs()
    );
    // The Application still counts its certificate.
    let status = Api::<Application>::all(cluster.client.clone())
        .get(&app)
        .await
        .expect("get Application")
        .status
        .expect("status");
    assert_eq!(status.issued_count, Some(1), "{status:?}");

    // certpair's ServiceAccount itself cannot delete another signer's CSR.
    let controller_sa = cluster
        .service_account("certpair-system", "certpair-controller")
        .await;
    let refused = Api::<CertificateSigningRequest>::all(controller_sa.client.clone())
        .delete(&other, &DeleteParams::default())
        .await
        .expect_err("the policy refuses");
    assert!(
        refused
            .to_string()
            .contains("only delete CSRs of its own signer"),
        "{refused}"
    );
    api.delete(&other, &DeleteParams::default())
        .await
        .expect("admin deletes it");
}
