//! The admission webhook, called by the real kube-apiserver: certpair creates its CA and
//! serving certificate from nothing, injects the caBundle, and `kubectl apply` of a CSR gets
//! the webhook's verdict. Its own binary: the webhook configuration (`failurePolicy: Fail`)
//! applies to every CSR of certpair's signer while it exists, so it is removed at the end.
//!
//! One controller serves every phase (starting from nothing is the expensive part), but each
//! phase after the start reports on its own: a failed phase is named, its panic printed, and
//! the phases after it still run, so the first failure does not hide the rest.

mod support;

use std::{
    future::Future,
    io::{Read, Write},
    panic::AssertUnwindSafe,
    process::Output,
    time::Duration,
};

use futures::FutureExt;

use certpair::api::DEFAULT_SIGNER_NAME;
use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration, core::v1::Secret,
};
use kube::{Api, api::DeleteParams};
use support::{
    Cluster, ControllerProcess, Identity,
    csr::{application, requester},
    csr_pem, ec_key, run, stderr, unique, wait_for,
    webhook::CONFIG,
};

fn csr_manifest(name: &str, pem: &[u8]) -> String {
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {DEFAULT_SIGNER_NAME}\n  usages: [digital signature, client auth]\n  request: {}\n",
        openssl::base64::encode_block(pem)
    )
}

#[tokio::test]
async fn from_nothing_the_webhook_is_served_injected_and_enforced() {
    let s = Setup::start().await;
    let mut failed = Vec::new();
    phase(
        &mut failed,
        "refusals and warnings",
        refusals_and_warnings(&s),
    )
    .await;
    phase(&mut failed, "repairs", repairs(&s)).await;
    phase(
        &mut failed,
        "the configuration as shipped: policy and restore",
        configuration_as_shipped(&s),
    )
    .await;
    phase(
        &mut failed,
        "bad bodies to the TLS listener",
        bad_bodies(&s),
    )
    .await;
    phase(&mut failed, "graceful shutdown", graceful_shutdown(s)).await;
    assert!(
        failed.is_empty(),
        "phases failed: {failed:?} (each one's panic is printed above)"
    );
}

/// Runs one phase; a panic is recorded by name instead of ending the test.
async fn phase(failed: &mut Vec<&'static str>, name: &'static str, body: impl Future<Output = ()>) {
    eprintln!("--- phase: {name}");
    if AssertUnwindSafe(body).catch_unwind().await.is_err() {
        eprintln!("--- phase failed: {name}");
        failed.push(name);
    }
}

/// A controller serving the webhook from nothing: its Secrets created, the caBundle injected,
/// an Application and a requester for it.
struct Setup {
    cluster: Cluster,
    secrets: Api<Secret>,
    configs: Api<ValidatingWebhookConfiguration>,
    dir: tempfile::TempDir,
    port: u16,
    app: String,
    who: Identity,
    /// A request the webhook admits.
    good: Vec<u8>,
    controller: ControllerProcess,
    /// Removes the webhook configuration when the test ends.
    _installed: support::webhook::InstalledConfig,
}

impl Setup {
    async fn start() -> Self {
        let cluster = Cluster::connect().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, installed, controller) =
            support::webhook::serve(&cluster, dir.path(), &["--webhook-drain-seconds", "4"]).await;
        let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "certpair-system");

        // The Secrets appear and the bundle is injected.
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client.clone());
        wait_for(
            &configs,
            CONFIG,
            "caBundle injected",
            Duration::from_secs(30),
            |c: Option<&ValidatingWebhookConfiguration>| {
                c.and_then(|c| c.webhooks.as_ref()).is_some_and(|w| {
                    w.iter().all(|w| {
                        w.client_config
                            .ca_bundle
                            .as_ref()
                            .is_some_and(|b| !b.0.is_empty())
                    })
                })
            },
        )
        .await;
        let ca = secrets.get("certpair-webhook-ca").await.expect("CA Secret");
        assert!(
            ca.data.as_ref().is_some_and(|d| d.contains_key("ca.key")),
            "CA Secret has its key"
        );
        let app = unique("hooked");
        application(&cluster.client, &app, None).await;
        let who = requester(&cluster, Some(&app)).await;
        let good = csr_pem(&ec_key(), &app, &["Acme"]);
        Self {
            cluster,
            secrets,
            configs,
            dir,
            port,
            app,
            who,
            good,
            controller,
            _installed: installed,
        }
    }

    /// `kubectl apply` of a CSR named `name` with `pem`, as the requester.
    fn apply(&self, name: &str, pem: &[u8]) -> Output {
        let file = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, csr_manifest(name, pem)).expect("write");
        run(self.who.kubectl().args(["apply", "-f"]).arg(&file))
    }
}

/// Refusals name the rule; state-dependent findings are warnings kubectl prints.
async fn refusals_and_warnings(s: &Setup) {
    let Setup {
        app,
        good,
        controller,
        ..
    } = s;
    let apply = |name: &str, pem: &[u8]| s.apply(name, pem);
    // Two PEM blocks: the apiserver reads the first and accepts it; certpair refuses.
    let out = apply(
        &unique("two-blocks"),
        &[good.clone(), good.clone()].concat(),
    );
    assert!(!out.status.success(), "a two-block request must be refused");
    let err = stderr(&out);
    assert!(
        err.contains("denied the request") && err.contains("2 PEM blocks"),
        "{err}\n{}",
        controller.logs()
    );

    // RSA-1024: refused with the field and the rule.
    let weak = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).expect("rsa"))
        .expect("key");
    let out = apply(&unique("weak"), &csr_pem(&weak, app, &["Acme"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("KeyTooWeak"), "{}", stderr(&out));

    // A good request is admitted (and then issued by the controller).
    let out = apply(&unique("good"), good);
    assert!(out.status.success(), "{}", stderr(&out));

    // A CSR whose AdmissionReview is over the webhook's 1 MiB: kubectl says so.
    let huge = certpair::pki::csr_builder::RequestBuilder {
        sans: vec!["a".repeat(620_000)],
        ..certpair::pki::csr_builder::RequestBuilder::cn(app)
    }
    .to_pem(&ec_key())
    .expect("a large request");
    // `create`, not `apply`: apply would copy the request into an annotation, which the
    // apiserver caps at 256 KiB before the webhook is asked.
    let name = unique("huge");
    let file = s.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, csr_manifest(&name, &huge)).expect("write");
    let out = run(s.who.kubectl().args(["create", "-f"]).arg(&file));
    assert!(!out.status.success(), "a CSR over 1 MiB must be refused");
    assert!(
        stderr(&out).contains("the body is larger than 1048576 bytes"),
        "{}",
        stderr(&out)
    );

    // A request naming no Application is admitted with a warning kubectl prints.
    let out = apply(
        &unique("orphan"),
        &csr_pem(&ec_key(), &unique("no-such-app"), &["Acme"]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Warning:")
            && stderr(&out).contains("only if an enabled Application"),
        "{}",
        stderr(&out)
    );
}

/// Four repairs; admission works after each; each is counted and reported.
async fn repairs(s: &Setup) {
    let Setup {
        cluster,
        secrets,
        configs,
        good,
        controller,
        ..
    } = s;
    let apply = |name: &str, pem: &[u8]| s.apply(name, pem);
    // Repairs. After each, admission must work again (retried briefly: replicas pick up a new
    // serving certificate within moments, and the CA overlap in the bundle is not built yet).
    let admitted = |label: &'static str| {
        let apply = &apply;
        let good = good.clone();
        async move {
            let mut last = String::new();
            for _ in 0..100 {
                let out = apply(&unique(label), &good);
                if out.status.success() {
                    return;
                }
                last = stderr(&out);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("admission did not recover after {label}: {last}");
        }
    };
    let bundle = |c: &ValidatingWebhookConfiguration| {
        c.webhooks
            .as_ref()
            .and_then(|w| w[0].client_config.ca_bundle.clone())
            .map(|b| b.0)
            .unwrap_or_default()
    };
    let ca_before = secrets
        .get("certpair-webhook-ca")
        .await
        .expect("CA")
        .data
        .expect("data")["ca.crt"]
        .0
        .clone();

    // 1. Garbage in caBundle: re-injected, CA unchanged (no key churn).
    let mut config = configs.get(CONFIG).await.expect("config");
    for w in config.webhooks.iter_mut().flatten() {
        w.client_config.ca_bundle = Some(k8s_openapi::ByteString(b"garbage".to_vec()));
    }
    configs
        .replace(CONFIG, &Default::default(), &config)
        .await
        .expect("write garbage");
    let ca_pem = ca_before.clone();
    wait_for(
        configs,
        CONFIG,
        "caBundle re-injected",
        Duration::from_secs(30),
        move |c: Option<&ValidatingWebhookConfiguration>| c.is_some_and(|c| bundle(c) == ca_pem),
    )
    .await;
    let ca_after = secrets
        .get("certpair-webhook-ca")
        .await
        .expect("CA")
        .data
        .expect("data")["ca.crt"]
        .0
        .clone();
    assert_eq!(
        ca_before, ca_after,
        "a drifted bundle must not regenerate the CA"
    );
    admitted("after-drift").await;

    // 2. Serving Secret deleted: re-issued from the same CA.
    let tls_uid = secrets
        .get("certpair-webhook-tls")
        .await
        .expect("tls")
        .metadata
        .uid
        .expect("uid");
    secrets
        .delete("certpair-webhook-tls", &DeleteParams::default())
        .await
        .expect("delete tls");
    wait_for(
        secrets,
        "certpair-webhook-tls",
        "serving Secret re-issued",
        Duration::from_secs(30),
        move |s: Option<&Secret>| {
            s.is_some_and(|s| s.metadata.uid.as_deref() != Some(tls_uid.as_str()))
        },
    )
    .await;
    admitted("after-tls-delete").await;

    // 3. Serving Secret replaced by a certificate from a foreign CA: re-issued.
    let foreign = certpair::pki::authority::Authority::generate(
        "foreign",
        Duration::from_secs(3600),
        certpair::pki::now_unix(),
    )
    .expect("CA");
    let key = ec_key();
    let issued = foreign
        .issue_server(
            "localhost",
            &["localhost".into()],
            &["127.0.0.1".parse().expect("ip")],
            &key,
            Duration::from_secs(3600),
            certpair::pki::now_unix(),
        )
        .expect("issued");
    let mut tls = secrets.get("certpair-webhook-tls").await.expect("tls");
    let foreign_crt = issued.chain_pem.clone();
    tls.data = Some(
        [
            (
                "tls.crt".to_string(),
                k8s_openapi::ByteString(foreign_crt.clone()),
            ),
            (
                "tls.key".to_string(),
                k8s_openapi::ByteString(key.private_key_to_pem_pkcs8().expect("pem")),
            ),
        ]
        .into(),
    );
    secrets
        .replace("certpair-webhook-tls", &Default::default(), &tls)
        .await
        .expect("write foreign");
    wait_for(
        secrets,
        "certpair-webhook-tls",
        "foreign certificate replaced",
        Duration::from_secs(30),
        move |s: Option<&Secret>| {
            s.and_then(|s| s.data.as_ref())
                .and_then(|d| d.get("tls.crt"))
                .is_some_and(|c| c.0 != foreign_crt)
        },
    )
    .await;
    admitted("after-foreign").await;

    // 4. CA Secret deleted: a new CA, re-injected, serving certificate re-issued from it.
    secrets
        .delete("certpair-webhook-ca", &DeleteParams::default())
        .await
        .expect("delete CA");
    let old_ca = ca_before.clone();
    wait_for(
        configs,
        CONFIG,
        "new CA injected",
        Duration::from_secs(30),
        move |c: Option<&ValidatingWebhookConfiguration>| {
            c.is_some_and(|c| !bundle(c).is_empty() && bundle(c) != old_ca)
        },
    )
    .await;
    admitted("after-ca-delete").await;

    // Each repair is counted by cause and reported as an Event on the webhook configuration.
    for cause in [
        "bundle_injected",
        "serving_missing",
        "serving_foreign_ca",
        "ca_missing",
    ] {
        controller
            .wait_metric(&format!(
                r#"certpair_webhook_certificate_repairs_total{{kind="{cause}"}}"#
            ))
            .await;
    }
    cluster
        .wait_event(
            "default",
            CONFIG,
            "reason",
            &["CABundleInjected", "CARotated"],
        )
        .await;
}

/// A leaked controller token cannot turn the configuration against the cluster: as certpair's
/// ServiceAccount, adding a rule or pointing the webhook elsewhere is refused by the
/// ValidatingAdmissionPolicy, while changing the caBundle is allowed. And what an admin adds is
/// taken out again by the leader, with an Event.
async fn configuration_as_shipped(s: &Setup) {
    use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
    let Setup {
        cluster,
        configs,
        controller,
        ..
    } = s;
    let sa = cluster
        .service_account("certpair-system", "certpair-controller")
        .await;
    let as_sa: Api<ValidatingWebhookConfiguration> = Api::all(sa.client.clone());
    let rule = |group: &str, resource: &str, operation: &str| RuleWithOperations {
        api_groups: Some(vec![group.into()]),
        api_versions: Some(vec!["*".into()]),
        operations: Some(vec![operation.into()]),
        resources: Some(vec![resource.into()]),
        scope: Some("*".into()),
    };
    async fn edited(
        configs: &Api<ValidatingWebhookConfiguration>,
        edit: &dyn Fn(&mut ValidatingWebhookConfiguration),
    ) -> ValidatingWebhookConfiguration {
        let mut config = configs.get(CONFIG).await.expect("config");
        edit(&mut config);
        config
    }

    for (what, edit, needle) in [
        (
            "a rule for Secrets",
            &(|c: &mut ValidatingWebhookConfiguration| {
                c.webhooks.as_mut().expect("webhooks")[0]
                    .rules
                    .get_or_insert_default()
                    .push(rule("", "secrets", "CREATE"))
            }) as &dyn Fn(&mut ValidatingWebhookConfiguration),
            "may not change the webhook's rules",
        ),
        (
            "another URL",
            &|c: &mut ValidatingWebhookConfiguration| {
                c.webhooks.as_mut().expect("webhooks")[0].client_config.url =
                    Some("https://attacker.example/collect".into())
            },
            "may not point the webhook elsewhere",
        ),
        (
            "an owner (the garbage collector would delete the configuration)",
            &|c: &mut ValidatingWebhookConfiguration| {
                c.metadata.owner_references = Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        name: "gone".into(),
                        uid: "00000000-0000-0000-0000-000000000000".into(),
                        ..Default::default()
                    },
                ])
            },
            "may not change the configuration's owners",
        ),
        (
            "failurePolicy Ignore",
            &|c: &mut ValidatingWebhookConfiguration| {
                c.webhooks.as_mut().expect("webhooks")[0].failure_policy = Some("Ignore".into())
            },
            "may not change the webhook's failure policy",
        ),
    ] {
        let config = edited(configs, edit).await;
        match as_sa.replace(CONFIG, &Default::default(), &config).await {
            Err(kube::Error::Api(status)) => assert!(
                status.message.contains(needle),
                "{what}: {}",
                status.message
            ),
            other => panic!("{what}: the ServiceAccount's write was not refused: {other:?}"),
        }
    }
    // Nor may it write the ConfigMap that says where the webhook lives (RBAC lets it create
    // ConfigMaps, for its trust bundle).
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(sa.client.clone(), "certpair-system");
    let forged = k8s_openapi::api::core::v1::ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("certpair-webhook".into()),
            ..Default::default()
        },
        data: Some([("url".to_string(), "https://attacker.example/".to_string())].into()),
        ..Default::default()
    };
    match maps.create(&Default::default(), &forged).await {
        Err(kube::Error::Api(status)) => assert!(
            status
                .message
                .contains("may not create or change ConfigMap certpair-webhook"),
            "{}",
            status.message
        ),
        other => panic!("creating ConfigMap certpair-webhook was not refused: {other:?}"),
    }

    let config = edited(configs, &|c: &mut ValidatingWebhookConfiguration| {
        c.webhooks.as_mut().expect("webhooks")[0]
            .client_config
            .ca_bundle = Some(k8s_openapi::ByteString(b"rotated".to_vec()))
    })
    .await;
    as_sa
        .replace(CONFIG, &Default::default(), &config)
        .await
        .expect("the ServiceAccount may change the caBundle");

    // An admin adds a rule (a harmless one: deleting Applications); the leader takes it out.
    let config = edited(configs, &|c: &mut ValidatingWebhookConfiguration| {
        c.webhooks.as_mut().expect("webhooks")[0]
            .rules
            .get_or_insert_default()
            .push(rule("certpair.dev", "applications", "DELETE"))
    })
    .await;
    configs
        .replace(CONFIG, &Default::default(), &config)
        .await
        .expect("the admin's edit");
    wait_for(
        configs,
        CONFIG,
        "the added rule removed",
        Duration::from_secs(30),
        |c: Option<&ValidatingWebhookConfiguration>| {
            c.and_then(|c| c.webhooks.as_ref())
                .is_some_and(|w| w[0].rules.as_ref().is_some_and(|r| r.len() == 1))
        },
    )
    .await;
    controller
        .wait_metric(r#"certpair_webhook_certificate_repairs_total{kind="configuration_drift"}"#)
        .await;
    cluster
        .wait_event(
            "default",
            CONFIG,
            "note",
            &["restored its webhook configuration", "rules"],
        )
        .await;
}

/// Bad input straight to the TLS listener.
async fn bad_bodies(s: &Setup) {
    let port = s.port;
    // Bad input straight to the TLS listener: a clear 4xx with a JSON Status each, and the
    // replica keeps serving (the reviews below still work).
    for (label, request, status) in [
        ("non-JSON", bad_post("application/json", b"not json"), 400),
        (
            "wrong kind",
            bad_post("application/json", br#"{"apiVersion":"v1","kind":"Pod"}"#),
            400,
        ),
        (
            "no request",
            bad_post(
                "application/json",
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            ),
            400,
        ),
        ("not JSON content", bad_post("text/plain", b"{}"), 415),
        (
            "over 1 MiB",
            post_head("application/json", 2 * 1024 * 1024, ""),
            413,
        ),
    ] {
        let mut stream = support::webhook::tls_connect(port).expect("TLS to the webhook");
        stream.write_all(&request).expect("send");
        let (head, body) = read_http_response(&mut stream);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{label}: {head}"
        );
        assert_eq!(body["kind"], "Status", "{label}: {body}");
        assert_eq!(body["code"], status, "{label}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{label}: {body}"
        );
    }
}

/// SIGTERM: the drain window, an in-flight review answered, exit 0.
async fn graceful_shutdown(s: Setup) {
    let Setup {
        port,
        good,
        controller,
        ..
    } = s;
    // Graceful shutdown, on two kept-alive connections like the apiserver's. SIGTERM opens the
    // drain window: answers close their connection (A). A review started in the window and
    // still in flight when the listener closes (B, half sent) is answered, while new
    // connections are refused; then the process exits 0.
    let connect = || {
        let stream = support::webhook::tls_connect(port).expect("TLS to the webhook");
        stream
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        stream
    };
    let review = |uid: &str| serde_json::to_vec(&admission_review(uid, &good)).expect("json");
    let post = |body: &[u8], extra: &str| post_head("application/json", body.len(), extra);
    let exchange = |stream: &mut openssl::ssl::SslStream<std::net::TcpStream>, uid: &str| {
        let body = review(uid);
        stream
            .write_all(&[post(&body, ""), body].concat())
            .expect("send a review");
        let (head, answer) = read_http_response(stream);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(answer["response"]["uid"], uid, "{answer}");
        head.to_ascii_lowercase()
    };
    let closed = |stream: &mut openssl::ssl::SslStream<std::net::TcpStream>| {
        matches!(stream.read(&mut [0u8; 16]), Ok(0) | Err(_))
    };
    let (mut a, mut b) = (connect(), connect());
    for (stream, label) in [(&mut a, "warm-a"), (&mut b, "warm-b")] {
        let head = exchange(stream, &unique(label));
        assert!(
            !head.contains("connection: close"),
            "kept alive before SIGTERM: {head}"
        );
    }

    let mut controller = controller;
    controller.send_term();
    support::poll("the drain window", Duration::from_secs(10), || {
        controller
            .logs()
            .contains("webhook: draining")
            .then_some(())
    })
    .await;
    let head = exchange(&mut a, &unique("in-window"));
    assert!(
        head.contains("connection: close"),
        "an answer in the drain window closes its connection:\n{head}"
    );
    assert!(closed(&mut a), "connection A is closed after its answer");

    // B: the server has started the review (100 Continue) before the listener closes.
    let uid = unique("in-flight");
    let body = review(&uid);
    let (first, rest) = body.split_at(body.len() / 2);
    b.write_all(&post(&body, "Expect: 100-continue\r\n"))
        .expect("send a review's head");
    let interim = read_head(&mut b);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    b.write_all(first).expect("send half the review");
    support::poll(
        "the webhook to stop accepting connections",
        Duration::from_secs(15),
        || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_err()
                .then_some(())
        },
    )
    .await;
    b.write_all(rest).unwrap_or_else(|e| {
        panic!(
            "send the rest of the review while draining: {e}\n{}",
            controller.logs()
        )
    });
    let (head, answer) = read_http_response(&mut b);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{head}\n{}",
        controller.logs()
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert_eq!(answer["response"]["uid"], uid.as_str(), "{answer}");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(closed(&mut b), "connection B is closed after its answer");

    let status = controller
        .wait_exit(Duration::from_secs(20))
        .expect("the controller exits after draining");
    assert!(status.success(), "{status}\n{}", controller.logs());
    let logs = controller.logs();
    assert!(
        logs.contains("finishing in-flight reviews") && logs.contains("stopped"),
        "{logs}"
    );
    // No watch broke on this quiet loopback cluster. (They did when a failed certificate check
    // left OpenSSL's per-thread error queue dirty: the next TLS read on that thread, the
    // watch's, failed with it, and the replica reloaded its Secret a second late.)
    let broken: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("watching") && l.contains("failed; retrying"))
        .collect();
    assert!(broken.is_empty(), "{broken:#?}");
}

/// The head of a POST to the webhook path; `extra` is more header lines, each ending in CRLF.
fn post_head(content_type: &str, length: usize, extra: &str) -> Vec<u8> {
    format!(
        "POST /validate/certificatesigningrequests HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: {content_type}\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A whole POST to the webhook path with `body`.
fn bad_post(content_type: &str, body: &[u8]) -> Vec<u8> {
    [post_head(content_type, body.len(), ""), body.to_vec()].concat()
}

/// An AdmissionReview as kube-apiserver sends it for the creation of a CSR with `pem`.
fn admission_review(uid: &str, pem: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "certificates.k8s.io", "version": "v1", "kind": "CertificateSigningRequest"},
            "resource": {"group": "certificates.k8s.io", "version": "v1", "resource": "certificatesigningrequests"},
            "name": uid,
            "operation": "CREATE",
            "userInfo": {"username": "drain-test"},
            "object": {
                "apiVersion": "certificates.k8s.io/v1",
                "kind": "CertificateSigningRequest",
                "metadata": {"name": uid},
                "spec": {
                    "request": openssl::base64::encode_block(pem),
                    "signerName": DEFAULT_SIGNER_NAME,
                    "usages": ["digital signature", "client auth"]
                }
            }
        }
    })
}

/// Reads an HTTP/1.1 response head, up to and including the blank line.
fn read_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "no complete HTTP response head ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8_lossy(&head).to_string()
}

/// Reads one HTTP/1.1 response (head, and its Content-Length body as JSON).
fn read_http_response(stream: &mut impl Read) -> (String, serde_json::Value) {
    let head = read_head(stream);
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("response body");
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (head, json)
}
