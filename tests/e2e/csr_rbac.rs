//! The apiserver's own rules for CSRs of certpair's signer, exercised as non-admin users:
//! RBAC on create, and the CertificateApproval admission plugin on the /approval subresource.
//! No certpair controller runs in this test binary, so nothing but the test decides.

use k8s_openapi::{
    ByteString,
    api::certificates::v1::{
        CertificateSigningRequest, CertificateSigningRequestCondition,
        CertificateSigningRequestSpec,
    },
};
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};

use crate::support::{
    Cluster,
    csr::{grant, rule},
    csr_pem, ec_key, run, stderr, unique,
};

const SIGNER: &str = certpair::api::DEFAULT_SIGNER_NAME;

fn csr(name: &str, cn: &str) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem(&ec_key(), cn, &["Acme"])),
            signer_name: SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        status: None,
    }
}

fn approved(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Approved" && c.status == "True")
        })
}

#[tokio::test]
async fn csr_creation_and_approval_follow_rbac_for_non_admins() {
    let cluster = Cluster::connect().await;
    let admin = cluster.client.clone();

    // A requester may create CSRs; the apiserver records who asked.
    let requester = cluster
        .user(&unique("requester"), &["certpair-tests"])
        .await;
    grant(
        &admin,
        &requester.username,
        vec![rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get"],
            None,
        )],
    )
    .await;
    let name = unique("csr-rbac");
    let created = Api::<CertificateSigningRequest>::all(requester.client.clone())
        .create(&PostParams::default(), &csr(&name, "billing"))
        .await
        .expect("requester creates a CSR for certpair's signer");
    assert_eq!(
        created.spec.username.as_deref(),
        Some(requester.username.as_str())
    );
    assert!(
        created
            .spec
            .groups
            .unwrap_or_default()
            .contains(&"certpair-tests".to_string())
    );

    // Someone with no CSR permission at all cannot even create one.
    let stranger = cluster.user(&unique("stranger"), &[]).await;
    let err = Api::<CertificateSigningRequest>::all(stranger.client.clone())
        .create(
            &PostParams::default(),
            &csr(&unique("csr-stranger"), "billing"),
        )
        .await
        .expect_err("RBAC must refuse a user without create");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );

    // Updating /approval is not enough: the approver must also hold `approve` on this signer.
    let half_approver = cluster.user(&unique("half-approver"), &[]).await;
    grant(
        &admin,
        &half_approver.username,
        vec![
            rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["get"],
                None,
            ),
            rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/approval"],
                &["update", "patch"],
                None,
            ),
            // `approve` on some other signer does not count.
            rule(
                &["certificates.k8s.io"],
                &["signers"],
                &["approve"],
                Some(&["example.com/other"]),
            ),
        ],
    )
    .await;
    let condition = CertificateSigningRequestCondition {
        type_: "Approved".into(),
        status: "True".into(),
        reason: Some("TestApproval".into()),
        message: Some("approved by the e2e test".into()),
        ..Default::default()
    };
    let patch = serde_json::json!({"status": {"conditions": [condition]}});
    let err = Api::<CertificateSigningRequest>::all(half_approver.client.clone())
        .patch_approval(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("CertificateApproval must refuse without approve on signers");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message.contains(SIGNER),
                "message should name the signer: {}",
                s.message
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    let still = Api::<CertificateSigningRequest>::all(admin.clone())
        .get(&name)
        .await
        .expect("get");
    assert!(
        !approved(&still),
        "a refused approval must leave the CSR pending"
    );

    // With `approve` on certpair's signer, `kubectl certificate approve` goes through.
    let approver = cluster.user(&unique("approver"), &[]).await;
    grant(
        &admin,
        &approver.username,
        vec![
            rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["get"],
                None,
            ),
            rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/approval"],
                &["update"],
                None,
            ),
            rule(
                &["certificates.k8s.io"],
                &["signers"],
                &["approve"],
                Some(&[SIGNER]),
            ),
        ],
    )
    .await;
    let out = run(approver.kubectl().args(["certificate", "approve", &name]));
    assert!(
        out.status.success(),
        "kubectl certificate approve failed: {}",
        stderr(&out)
    );
    let after = Api::<CertificateSigningRequest>::all(admin.clone())
        .get(&name)
        .await
        .expect("get");
    assert!(
        approved(&after),
        "CSR should be Approved: {:?}",
        after.status
    );

    Api::<CertificateSigningRequest>::all(admin)
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete CSR");
}

/// A ServiceAccount token from the TokenRequest API authenticates, and the apiserver records
/// the service account as the CSR's requester.
#[tokio::test]
async fn service_account_tokens_authenticate() {
    let cluster = Cluster::connect().await;
    let sa = cluster
        .service_account("default", &unique("sa-requester"))
        .await;
    grant(
        &cluster.client,
        &sa.username,
        vec![rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create"],
            None,
        )],
    )
    .await;
    let name = unique("csr-sa");
    let created = Api::<CertificateSigningRequest>::all(sa.client.clone())
        .create(&PostParams::default(), &csr(&name, "billing"))
        .await
        .expect("service account creates a CSR");
    assert_eq!(created.spec.username.as_deref(), Some(sa.username.as_str()));
    Api::<CertificateSigningRequest>::all(cluster.client.clone())
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete CSR");
}
