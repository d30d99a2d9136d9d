//! The apiserver's own rules for CSRs of certpair's signer, exercised as non-admin users:
//! RBAC on create, and the CertificateApproval admission plugin on the /approval subresource.

use k8s_openapi::ByteString;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::{
    certificates::v1::{
        CertificateSigningRequest, CertificateSigningRequestCondition,
        CertificateSigningRequestSpec,
    },
    rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use std::time::Duration;

use crate::support::{Cluster, csr_pem, ec_key, run, stderr, unique};

const SIGNER: &str = certpair::api::DEFAULT_SIGNER_NAME;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: Option<&[&str]>) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        resource_names: names.map(strings),
        ..Default::default()
    }
}

/// Grants `rules` to `user` through a fresh ClusterRole and ClusterRoleBinding, and waits
/// until the apiserver's RBAC authorizer (which reads bindings from a cache) allows each rule.
async fn grant(admin: &Client, user: &str, rules: Vec<PolicyRule>) {
    let checks = rules.clone();
    let name = unique("certpair-test");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                rules: Some(rules),
                ..Default::default()
            },
        )
        .await
        .expect("create ClusterRole");
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bindings
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name,
                },
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: user.into(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("create ClusterRoleBinding");
    for rule in checks {
        wait_allowed(admin, user, &rule).await;
    }
}

async fn wait_allowed(admin: &Client, user: &str, rule: &PolicyRule) {
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    let (resource, subresource) =
        match rule.resources.as_ref().expect("resources")[0].split_once('/') {
            Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
            None => (rule.resources.as_ref().expect("resources")[0].clone(), None),
        };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            resource_attributes: Some(ResourceAttributes {
                group: rule.api_groups.as_ref().map(|g| g[0].clone()),
                resource: Some(resource),
                subresource,
                verb: Some(rule.verbs[0].clone()),
                name: rule.resource_names.as_ref().map(|n| n[0].clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("SubjectAccessReview");
        if answer.status.is_some_and(|s| s.allowed) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "RBAC grant for {user} not effective after 10s: {rule:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
