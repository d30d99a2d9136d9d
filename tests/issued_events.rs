//! `--issued-events=false`: a certificate is issued without the Normal `Issued` Event (one
//! apiserver write less per certificate), while a denial still gets its Warning Event. Its own
//! binary: it runs its own controller with the flag.

mod support;

use certpair::api::DEFAULT_SIGNER_NAME;
use support::{
    Cluster,
    csr::{Outcome, application, requester, submit, wait_outcome},
    run, unique,
};

#[tokio::test]
async fn without_issued_events_a_certificate_has_no_event_but_a_denial_does() {
    let cluster = Cluster::connect().await;
    cluster.install_manifests().await;
    let controller = cluster.start_controller(&["--issued-events=false"]).await;
    controller.wait_leader().await;
    let app = unique("quiet");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let issued = unique("quiet-issued");
    submit(
        &who,
        &issued,
        &support::csr_pem(&support::ec_key(), &app, &["Acme"]),
        DEFAULT_SIGNER_NAME,
        None,
        dir.path(),
    );
    let outcome = wait_outcome(&cluster.client, &issued).await;
    assert!(
        matches!(outcome, Outcome::Issued(_)),
        "{outcome:?}\n{}",
        controller.logs()
    );

    // A denial afterwards: once its Warning Event is there, an Event for the certificate
    // (written in the background before it) would be there too.
    let denied = unique("quiet-denied");
    submit(
        &who,
        &denied,
        &support::csr_pem(&support::ec_key(), &unique("no-such-app"), &["Acme"]),
        DEFAULT_SIGNER_NAME,
        None,
        dir.path(),
    );
    assert!(matches!(
        wait_outcome(&cluster.client, &denied).await,
        Outcome::Denied { .. }
    ));
    cluster
        .wait_event("default", &denied, "reason", &["UnknownApplication"])
        .await;
    let out = run(cluster.kubectl().args([
        "get",
        "events.events.k8s.io",
        "-n",
        "default",
        "--field-selector",
        &format!("regarding.name={issued}"),
        "-o",
        "jsonpath={.items[*].reason}",
    ]));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "no Event about the issued CSR"
    );
}
