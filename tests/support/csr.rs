//! Requesting certificates the way users do: a CSR manifest applied with kubectl as the
//! requester, then waiting for the controller's verdict.

use std::{path::Path, time::Duration};

use certpair::api::{Application, ApplicationSpec, SubjectRequirements};
use k8s_openapi::{
    ByteString,
    api::{
        certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec},
        rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject},
    },
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

use super::{Cluster, Identity, run, stderr, unique, wait_for};

/// A client certificate's CSR object: `name`, the PEM request, `signer`, usages digital
/// signature and client auth, `labels`, and `expirationSeconds` when given.
pub fn csr_object(
    name: &str,
    pem: Vec<u8>,
    signer: &str,
    labels: &[(&str, &str)],
    expiration_seconds: Option<i32>,
) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem),
            signer_name: signer.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            expiration_seconds,
            ..Default::default()
        },
        status: None,
    }
}

pub fn rule(
    groups: &[&str],
    resources: &[&str],
    verbs: &[&str],
    names: Option<&[&str]>,
) -> PolicyRule {
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
pub async fn grant(admin: &Client, user: &str, rules: Vec<PolicyRule>) {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
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
                rules: Some(rules.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("create ClusterRole");
    Api::<ClusterRoleBinding>::all(admin.clone())
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
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    for rule in rules {
        let resource = &rule.resources.as_ref().expect("resources")[0];
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
            None => (resource.clone(), None),
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
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "RBAC grant for {user} not effective after 10s: {rule:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Creates Application `name` requiring O=Acme.
pub async fn application(admin: &Client, name: &str, spec: Option<ApplicationSpec>) {
    let spec = spec.unwrap_or_else(|| ApplicationSpec {
        subject: Some(SubjectRequirements {
            organization: Some("Acme".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    Api::<Application>::all(admin.clone())
        .create(&PostParams::default(), &Application::new(name, spec))
        .await
        .expect("create Application");
}

/// A user who may create and read CSRs and, when `application` is given, `request` it.
pub async fn requester(cluster: &Cluster, application: Option<&str>) -> Identity {
    let user = cluster
        .user(&unique("requester"), &["certpair-requesters"])
        .await;
    let mut rules = vec![rule(
        &["certificates.k8s.io"],
        &["certificatesigningrequests"],
        &["create", "get"],
        None,
    )];
    if let Some(app) = application {
        rules.push(may_request(app));
    }
    grant(&cluster.client, &user.username, rules).await;
    user
}

/// The RBAC rule that lets a subject `request` Application `app`.
pub fn may_request(app: &str) -> PolicyRule {
    rule(
        &["certpair.dev"],
        &["applications"],
        &["request"],
        Some(&[app]),
    )
}

/// `kubectl apply` of a CSR manifest as `who`.
pub fn submit(
    who: &Identity,
    name: &str,
    pem: &[u8],
    signer: &str,
    expiration: Option<i32>,
    dir: &Path,
) {
    let usages = "  usages: [digital signature, client auth]\n";
    let expiration = expiration
        .map(|s| format!("  expirationSeconds: {s}\n"))
        .unwrap_or_default();
    let manifest = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {signer}\n{usages}{expiration}  request: {}\n",
        openssl::base64::encode_block(pem)
    );
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, manifest).expect("write CSR manifest");
    let out = run(who.kubectl().args(["apply", "-f"]).arg(&file));
    assert!(
        out.status.success(),
        "kubectl apply of CSR {name} failed: {}",
        stderr(&out)
    );
}

/// How a CSR ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Issued(Vec<u8>),
    Denied { reason: String, message: String },
    Failed { reason: String, message: String },
}

pub fn outcome(csr: &CertificateSigningRequest) -> Option<Outcome> {
    let status = csr.status.as_ref()?;
    if let Some(cert) = status.certificate.as_ref().filter(|c| !c.0.is_empty()) {
        return Some(Outcome::Issued(cert.0.clone()));
    }
    let cond = status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")?;
    let reason = cond.reason.clone().unwrap_or_default();
    let message = cond.message.clone().unwrap_or_default();
    Some(if cond.type_ == "Denied" {
        Outcome::Denied { reason, message }
    } else {
        Outcome::Failed { reason, message }
    })
}

/// Waits until the CSR is issued, denied or failed.
pub async fn wait_outcome(admin: &Client, name: &str) -> Outcome {
    let api: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let csr = wait_for(
        &api,
        name,
        "issued, denied or failed",
        Duration::from_secs(60),
        |csr: Option<&CertificateSigningRequest>| csr.and_then(outcome).is_some(),
    )
    .await;
    outcome(&csr).expect("an outcome")
}

/// Submits (with kubectl, as `who`) a fresh ECDSA P-256 request for `CN=<application>, O=Acme`
/// to certpair's signer and returns the CSR's name.
pub fn request_certificate(who: &Identity, prefix: &str, application: &str, dir: &Path) -> String {
    let name = unique(prefix);
    let pem = super::csr_pem(&super::ec_key(), application, &["Acme"]);
    submit(
        who,
        &name,
        &pem,
        certpair::api::DEFAULT_SIGNER_NAME,
        None,
        dir,
    );
    name
}
