//! A request approved by a person that certpair can never sign is marked Failed with reason
//! SignerValidationFailure: an approval stands in for the requester's authorization, not for
//! the certificate profile. Its own binary: the approval must happen before any controller
//! runs, or the controller would deny the request first.

mod support;

use certpair::api::DEFAULT_SIGNER_NAME;
use support::{
    Cluster,
    csr::{Outcome, application, requester, submit, wait_outcome},
    run, stderr, unique,
};

#[tokio::test]
async fn approved_but_unsignable_requests_fail() {
    let cluster = Cluster::connect().await;
    cluster.install_manifests().await;
    let who = requester(&cluster, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // RSA-1024: the apiserver accepts it, certpair never signs it.
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).expect("rsa"))
        .expect("key");
    let name = unique("unsignable");
    submit(
        &who,
        &name,
        &support::csr_pem(&key, "someone", &["Acme"]),
        DEFAULT_SIGNER_NAME,
        None,
        dir.path(),
    );
    // A disabled Application gets no new certificates, even through a person's approval.
    let retired = unique("retired");
    application(
        &cluster.client,
        &retired,
        Some(certpair::api::ApplicationSpec {
            disabled: true,
            ..Default::default()
        }),
    )
    .await;
    let for_retired = unique("for-retired");
    submit(
        &who,
        &for_retired,
        &support::csr_pem(&support::ec_key(), &retired, &[]),
        DEFAULT_SIGNER_NAME,
        None,
        dir.path(),
    );
    // Kubernetes' own names are never certified: O=system:masters for no Application.
    let masters = unique("masters");
    submit(
        &who,
        &masters,
        &support::csr_pem(&support::ec_key(), "ghost", &["system:masters"]),
        DEFAULT_SIGNER_NAME,
        None,
        dir.path(),
    );
    // No such Application: nothing to sign for, whoever approved.
    let ghost = unique("ghost");
    submit(
        &who,
        &ghost,
        &support::csr_pem(&support::ec_key(), &unique("no-such-app"), &["Acme"]),
        DEFAULT_SIGNER_NAME,
        None,
        dir.path(),
    );
    // An Application deleted between the approval and the signing.
    let gone = unique("gone");
    application(&cluster.client, &gone, None).await;
    let for_gone = unique("for-gone");
    submit(
        &who,
        &for_gone,
        &support::csr_pem(&support::ec_key(), &gone, &["Acme"]),
        DEFAULT_SIGNER_NAME,
        None,
        dir.path(),
    );
    // Positive control: approved by hand for an existing Application, though the requester
    // may not `request` it (the approval stands in for that): issued.
    let kept = unique("kept");
    application(&cluster.client, &kept, None).await;
    let for_kept = unique("for-kept");
    submit(
        &who,
        &for_kept,
        &support::csr_pem(&support::ec_key(), &kept, &["Acme"]),
        DEFAULT_SIGNER_NAME,
        None,
        dir.path(),
    );
    for csr in [&name, &for_retired, &masters, &ghost, &for_gone, &for_kept] {
        let out = run(cluster.kubectl().args(["certificate", "approve", csr]));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run(cluster
        .kubectl()
        .args(["delete", "applications.certpair.dev", &gone]));
    assert!(out.status.success(), "{}", stderr(&out));

    let controller = cluster.start_controller(&[]).await;
    assert!(
        matches!(
            wait_outcome(&cluster.client, &for_kept).await,
            Outcome::Issued(_)
        ),
        "{}",
        controller.logs()
    );
    for (csr, needles) in [
        (&for_retired, ["ApplicationDisabled", "disabled"]),
        (&name, ["KeyTooWeak", "1024"]),
        (&masters, ["SubjectMismatch", "system:masters"]),
        (
            &ghost,
            ["UnknownApplication", "names no registered Application"],
        ),
        (
            &for_gone,
            ["UnknownApplication", "names no registered Application"],
        ),
    ] {
        match wait_outcome(&cluster.client, csr).await {
            Outcome::Failed { reason, message } => {
                assert_eq!(reason, "SignerValidationFailure", "{message}");
                assert!(
                    needles.iter().all(|n| message.contains(n)),
                    "{message} lacks {needles:?}"
                );
            }
            other => panic!(
                "{csr}: expected Failed, got {other:?}\n{}",
                controller.logs()
            ),
        }
    }
    controller
        .wait_metric(r#"decision="failed",reason="SignerValidationFailure""#)
        .await;
}
