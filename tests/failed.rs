//! A request approved by a person that certpair can never sign is marked Failed with reason
//! SignerValidationFailure. Its own binary: the approval must happen before any controller
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
    for csr in [&name, &for_retired] {
        let out = run(cluster.kubectl().args(["certificate", "approve", csr]));
        assert!(out.status.success(), "{}", stderr(&out));
    }

    let controller = cluster.start_controller(&[]).await;
    for (csr, needles) in [
        (&for_retired, ["ApplicationDisabled", "disabled"]),
        (&name, ["KeyTooWeak", "1024"]),
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
