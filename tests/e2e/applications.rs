use certpair::api::{
    Application, ApplicationSpec, KeyAlgorithm, KeyRequirements, SubjectRequirements,
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};

use crate::support::{Cluster, run, stderr, unique};

#[tokio::test]
async fn application_is_created_and_read_back() {
    let cluster = Cluster::connect().await;
    cluster.ensure_crd().await;
    let apps: Api<Application> = Api::all(cluster.client.clone());
    let name = unique("readback");
    let spec = ApplicationSpec {
        subject: Some(SubjectRequirements {
            organization: Some("Acme".into()),
            country: Some("DE".into()),
            ..Default::default()
        }),
        keys: Some(KeyRequirements {
            allowed_algorithms: Some(vec![KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa]),
            min_rsa_bits: Some(3072),
        }),
        default_expiration_seconds: Some(3600),
        max_expiration_seconds: Some(86400),
        ..Default::default()
    };
    apps.create(
        &PostParams::default(),
        &Application::new(&name, spec.clone()),
    )
    .await
    .expect("create Application");
    let back = apps.get(&name).await.expect("get Application");
    assert_eq!(back.spec, spec);

    // kubectl sees it under the short name and prints the columns.
    let out = run(cluster.kubectl().args(["get", "capp", &name]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DISABLED"));

    apps.delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
}

/// `kubectl apply` of an invalid Application is refused by the apiserver itself (schema and
/// CEL rules in the CRD), with a message naming the field.
#[tokio::test]
async fn bad_applications_are_refused_by_schema_validation() {
    let cluster = Cluster::connect().await;
    cluster.ensure_crd().await;
    let long_name = format!("n{}", "x".repeat(64));
    let cases: Vec<(String, String, &str)> = vec![
        (
            unique("bad-durations"),
            "defaultExpirationSeconds: 7200\n  maxExpirationSeconds: 3600".into(),
            "spec.defaultExpirationSeconds must not exceed spec.maxExpirationSeconds",
        ),
        (
            unique("bad-country"),
            "subject: {country: de}".into(),
            "spec.subject.country",
        ),
        (
            unique("bad-rsa"),
            "keys: {minRsaBits: 1024}".into(),
            "spec.keys.minRsaBits",
        ),
        (
            unique("bad-algo"),
            "keys: {allowedAlgorithms: [DSA]}".into(),
            "Unsupported value: \"DSA\"",
        ),
        (
            unique("dup-algo"),
            "keys: {allowedAlgorithms: [RSA, RSA]}".into(),
            "spec.keys.allowedAlgorithms must not repeat an algorithm",
        ),
        (
            unique("short"),
            "maxExpirationSeconds: 59".into(),
            "spec.maxExpirationSeconds",
        ),
        (long_name, "{}".into(), "must be at most 64 characters"),
    ];
    for (name, spec, expected) in cases {
        let manifest = format!(
            "apiVersion: certpair.dev/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  {spec}\n"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("app.yaml");
        std::fs::write(&file, &manifest).expect("write manifest");
        let out = run(cluster.kubectl().args(["apply", "-f"]).arg(&file));
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "apiserver accepted a bad Application:\n{manifest}"
        );
        assert!(
            err.contains("is invalid") && err.contains(expected),
            "for\n{manifest}\nexpected {expected:?} in:\n{err}"
        );
    }
}

/// Objects of a mebibyte are refused by the schema before anything is stored: every string in
/// an Application's or a TokenRequest's spec has a bound (issue 12: what a hostile writer
/// sends cannot make certpair's caches or the connector hold it).
#[tokio::test]
async fn one_mebibyte_applications_and_token_requests_are_refused_by_the_schema() {
    let cluster = Cluster::connect().await;
    cluster.ensure_crd().await;
    let huge = "x".repeat(1024 * 1024);
    let cases = [
        (
            serde_json::json!({
                "apiVersion": "certpair.dev/v1alpha1", "kind": "Application",
                "metadata": {"name": unique("huge")},
                "spec": {"subject": {"organization": huge}},
            }),
            "spec.subject.organization",
        ),
        (
            serde_json::json!({
                "apiVersion": "certpair.dev/v1alpha1", "kind": "TokenRequest",
                "metadata": {"name": unique("huge"), "namespace": "default"},
                "spec": {"application": huge},
            }),
            "spec.application",
        ),
    ];
    for (object, field) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("huge.json");
        std::fs::write(&file, object.to_string()).expect("write");
        let out = run(cluster.kubectl().args(["create", "-f"]).arg(&file));
        let err = stderr(&out);
        assert!(!out.status.success(), "a 1 MiB {field} was accepted");
        assert!(
            err.contains(field) && err.contains("Too long"),
            "expected {field} Too long in: {}",
            &err[..err.len().min(2000)]
        );
    }
}

/// The kustomize base and both overlays render, and the apiserver accepts every object in
/// them (server dry run).
#[tokio::test]
async fn kustomize_base_is_accepted_by_the_apiserver() {
    let cluster = Cluster::connect().await;
    let root = crate::support::repo_root();
    // A server-side dry run cannot place objects in a namespace that does not exist yet.
    let ns = run(cluster
        .kubectl()
        .args(["apply", "-f"])
        .arg(root.join("manifests/namespace.yaml")));
    assert!(ns.status.success(), "{}", stderr(&ns));
    for (dir, must_have) in [
        (
            "kustomize/base",
            &["deployment.apps/certpair", "service/certpair-webhook"][..],
        ),
        (
            "kustomize/overlays/in-cluster",
            &["deployment.apps/certpair"][..],
        ),
        ("kustomize/overlays/local", &[][..]),
    ] {
        let out = run(cluster
            .kubectl()
            .args([
                "apply",
                "--dry-run=server",
                "--server-side",
                "--force-conflicts",
                "-k",
            ])
            .arg(root.join(dir)));
        assert!(
            out.status.success(),
            "kubectl apply -k {dir}: {}",
            stderr(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        for object in [
            "namespace/certpair-system",
            "clusterrole.rbac.authorization.k8s.io/certpair-controller",
            "customresourcedefinition.apiextensions.k8s.io/applications.certpair.dev",
            "validatingwebhookconfiguration.admissionregistration.k8s.io/certpair",
        ]
        .iter()
        .chain(must_have)
        {
            assert!(stdout.contains(object), "{dir} lacks {object}: {stdout}");
        }
    }
}
