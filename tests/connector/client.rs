//! The `certpair` client commands as a person or pipeline runs them: `token create`, `pair`
//! (REST and `--graphql`), `info`, `renew` (not due, forced, `--watch` across a connector
//! restart), `revoke` (self over mTLS, operator by serial), with curl using the files
//! written, a pin mismatch that keeps the token unsent, and exit codes.

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    process::{Child, Stdio},
    sync::mpsc,
    time::Instant,
};

use certpair::api::Revocation;

use super::*;

/// `certpair <args>` as the cluster admin: exit code, stdout, stderr.
fn certpair(args: &[&str]) -> (i32, String, String) {
    let s = setup();
    let out = run(Command::new(env!("CARGO_BIN_EXE_certpair"))
        .env("KUBECONFIG", &s.kubeconfig)
        .args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `certpair <args> -o json` that must succeed; its JSON.
fn certpair_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-o", "json"]);
    let (code, stdout, stderr) = certpair(&all);
    assert_eq!(code, 0, "certpair {args:?}:\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// `certpair token create APP -n default -o json`.
fn token_create(app: &str) -> Value {
    let token = certpair_json(&["token", "create", app, "-n", "default"]);
    assert_eq!(token["token"].as_str().map(str::len), Some(88), "{token}");
    assert!(
        token["caCertHash"]
            .as_str()
            .is_some_and(|p| p.starts_with("sha256:")),
        "{token}"
    );
    token
}

fn management_info(dir: &Path) -> Reply {
    curl_with(
        &dir.join("tls.crt"),
        &dir.join("tls.key"),
        &[&format!(
            "{}/v1/applications/management/info",
            setup().urls[0]
        )],
    )
}

#[tokio::test]
async fn client_commands_pair_info_renew_and_revoke() {
    let s = setup();
    let (admin, app, base) = fresh_application("client").await;
    let dir = base.join("pairing");
    let dir_arg = dir.to_string_lossy().into_owned();

    let token = token_create(&app);
    let url = token["url"].as_str().expect("url").to_owned();
    let pin = token["caCertHash"].as_str().expect("pin").to_owned();
    let tr = token["name"].as_str().expect("name").to_owned();

    // A pin that is not the connector's CA: refused before the token is sent.
    let wrong_pin = format!("sha256:{}", "0".repeat(64));
    let other_dir = base.join("nowhere").to_string_lossy().into_owned();
    let (code, _, stderr) = certpair(&[
        "pair",
        &url,
        "--ca-cert-hash",
        &wrong_pin,
        "--out",
        &other_dir,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the token was not sent"), "{stderr}");
    let status = token_status(&admin, &tr, |_| true).await;
    assert_eq!(
        (status["state"].as_str(), status["step"].as_str()),
        (Some("Ready"), Some("Info")),
        "the token is untouched: {status}"
    );
    // No trust at all: refused the same way.
    let (code, _, stderr) = certpair(&["pair", &url, "--out", &other_dir]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--ca-cert-hash"), "{stderr}");

    // The pairing.
    let paired = certpair_json(&["pair", &url, "--ca-cert-hash", &pin, "--out", &dir_arg]);
    assert_eq!(paired["application"], app.as_str());
    let key_mode = std::fs::metadata(dir.join("tls.key"))
        .expect("tls.key")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let (ok, out) = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            &s.signing_ca.to_string_lossy(),
            "tls.crt",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl(&dir, &["verify", "-CAfile", "ca.crt", "tls.crt"]);
    assert!(ok, "{out}");
    let first_serial = serial_of(&dir.join("tls.crt"));
    assert_eq!(paired["serialNumber"], first_serial.as_str());
    let reply = management_info(&dir);
    assert_eq!(
        reply.code, 200,
        "curl --cert with the files: {}",
        reply.body
    );
    assert_eq!(reply.json()["clientIdentity"]["application"], app.as_str());

    // The used token, and a second pairing into the same directory.
    let (code, _, stderr) = certpair(&["pair", &url, "--ca-cert-hash", &pin, "--out", &other_dir]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("Invalid token.") && stderr.contains("certpair token create"),
        "{stderr}"
    );
    let (code, _, stderr) = certpair(&["pair", &url, "--ca-cert-hash", &pin, "--out", &dir_arg]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already holds a pairing"), "{stderr}");

    // info, renew (not due), renew --force.
    let info = certpair_json(&["info", "--dir", &dir_arg]);
    assert_eq!(info["application"], app.as_str());
    assert_eq!(info["subject"], format!("O=Acme,OU=Payments,C=DE,CN={app}"));
    let not_due = certpair_json(&["renew", "--dir", &dir_arg]);
    assert_eq!(not_due["renewed"], false, "{not_due}");
    let renewed = certpair_json(&["renew", "--dir", &dir_arg, "--force"]);
    assert_eq!(renewed["renewed"], true, "{renewed}");
    let second_serial = serial_of(&dir.join("tls.crt"));
    assert_ne!(first_serial, second_serial);
    assert_eq!(renewed["serialNumber"], second_serial.as_str());
    let (ok, out) = openssl(&dir, &["verify", "-CAfile", "ca.crt", "tls.crt"]);
    assert!(ok, "{out}");
    assert_eq!(management_info(&dir).code, 200);

    // revoke --dir: the certificate is refused at once, and renewing it says what to do.
    let revoked = certpair_json(&["revoke", "--dir", &dir_arg]);
    assert_eq!(revoked["serialNumber"], second_serial.as_str());
    let reply = within(
        "the revocation to reach the replica",
        Duration::from_secs(5),
        || {
            let reply = management_info(&dir);
            (reply.code == 403).then_some(reply)
        },
    )
    .await;
    assert_eq!(reply.error(), "Certificate has been revoked.");
    let (code, _, stderr) =
        certpair(&["renew", "--dir", &dir_arg, "--force", "--wait-seconds", "0"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("management info failed") && stderr.contains("pair again"),
        "{stderr}"
    );
    // Revoking twice is fine.
    certpair_json(&["revoke", "--dir", &dir_arg]);
}

#[tokio::test]
async fn client_graphql_pairing_and_operator_revocation() {
    let (admin, app, dir) = fresh_application("clientgql").await;
    let dir = dir.join("pairing");
    let dir_arg = dir.to_string_lossy().into_owned();
    let token = token_create(&app);
    let url = token["url"].as_str().expect("url");
    let pin = token["caCertHash"].as_str().expect("pin");
    // The TokenRequest's URL names the REST path; --graphql goes to /graphql on its origin,
    // with the token from the URL, and a key of the kind asked for.
    let paired = certpair_json(&[
        "pair",
        url,
        "--graphql",
        "--ca-cert-hash",
        pin,
        "--key-algorithm",
        "rsa3072",
        "--out",
        &dir_arg,
    ]);
    let serial = paired["serialNumber"].as_str().expect("serial").to_owned();
    let (_, text) = openssl(&dir, &["x509", "-in", "tls.crt", "-noout", "-text"]);
    assert!(text.contains("3072 bit"), "{text}");
    let pairing: Value =
        serde_json::from_slice(&std::fs::read(dir.join("pairing.json")).expect("pairing.json"))
            .expect("JSON");
    assert_eq!(pairing["api"], "graphql");
    let info = certpair_json(&["info", "--dir", &dir_arg]);
    assert!(info["connector"]["token"].is_null(), "{info}");
    let renewed = certpair_json(&["renew", "--dir", &dir_arg, "--force"]);
    let serial = {
        assert_ne!(renewed["serialNumber"], serial.as_str());
        renewed["serialNumber"].as_str().expect("serial").to_owned()
    };

    // The operator revokes it by serial, through the Kubernetes API.
    let (code, _, stderr) = certpair(&["revoke", "--serial", "not hex"]);
    assert_eq!(code, 1, "{stderr}");
    let revoked = certpair_json(&["revoke", "--serial", &serial, "--reason", "key lost"]);
    assert_eq!(revoked["serialNumber"], serial.as_str());
    let revocation = Api::<Revocation>::all(admin.clone())
        .get(&format!("serial-{}", serial.to_lowercase()))
        .await
        .expect("the Revocation exists");
    assert_eq!(revocation.spec.reason.as_deref(), Some("key lost"));
    let stderr = within(
        "the revocation to reach the replica",
        Duration::from_secs(5),
        || {
            let (code, _, stderr) = certpair(&["info", "--dir", &dir_arg]);
            (code == 3).then_some(stderr)
        },
    )
    .await;
    assert!(stderr.contains("Certificate has been revoked."), "{stderr}");
}

/// Reads JSON lines from a child's stdout on a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<Value> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(value);
            }
        }
    });
    rx
}

/// `renew --watch` with 2-minute certificates (an Application may set that) renews each at
/// 70 % of its lifetime, at least twice, and rides out a connector that is down when a
/// renewal is due.
#[tokio::test]
async fn renew_watch_renews_two_minute_certificates_across_a_connector_restart() {
    let s = setup();
    let admin = admin().await;
    let cluster = Cluster::connect().await;
    let app = unique("watch");
    application_with(
        &admin,
        &app,
        ApplicationSpec {
            default_expiration_seconds: Some(120),
            max_expiration_seconds: Some(120),
            ..application_spec()
        },
    )
    .await;
    // A connector of its own, so that stopping it disturbs no other test.
    let port = free_port();
    let origin = format!("https://127.0.0.1:{port}");
    let mut connector = cluster.start_connector_at(port, &[]).await;
    let dir = s.dir.join(&app).join("pairing");
    let dir_arg = dir.to_string_lossy().into_owned();
    let token = token_create(&app);
    let url = token["url"]
        .as_str()
        .expect("url")
        .replacen(&s.urls[0], &origin, 1);
    let pin = token["caCertHash"].as_str().expect("pin");
    let paired = certpair_json(&["pair", &url, "--ca-cert-hash", pin, "--out", &dir_arg]);
    let first = paired["serialNumber"].as_str().expect("serial").to_owned();
    let leaf = openssl::x509::X509::from_pem(&std::fs::read(dir.join("tls.crt")).expect("crt"))
        .expect("certificate");
    let lifetime = certpair::pki::authority::unix(leaf.not_after()).expect("time")
        - certpair::pki::authority::unix(leaf.not_before()).expect("time");
    assert_eq!(lifetime, 120, "the Application's 2 minutes");

    let mut watch = Command::new(env!("CARGO_BIN_EXE_certpair"))
        .args(["renew", "--dir", &dir_arg, "--watch", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("certpair renew --watch");
    let renewals = lines(&mut watch);
    let started = Instant::now();
    let next = |what: &str| {
        renewals
            .recv_timeout(Duration::from_secs(150))
            .unwrap_or_else(|_| panic!("no {what} within 150 s"))
    };
    let one = next("first renewal");
    assert_eq!(one["previousSerialNumber"], first.as_str(), "{one}");
    let second_serial = one["serialNumber"].as_str().expect("serial").to_owned();

    // The connector goes away until a few seconds after the next renewal is due.
    connector.kill_hard();
    let due = one["renewAfter"]
        .as_str()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .expect("renewAfter")
        .as_second();
    let down_until = due + 5;
    while certpair::pki::now_unix() < down_until {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _connector = cluster.start_connector_at(port, &[]).await;
    let two = next("second renewal");
    assert_eq!(two["previousSerialNumber"], second_serial.as_str(), "{two}");
    assert_ne!(two["serialNumber"], second_serial.as_str());
    let _ = Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status();
    let out = watch.wait_with_output().expect("watch ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("renewal failed, retrying in"),
        "the watch retried while the connector was down:\n{stderr}"
    );
    eprintln!(
        "two renewals of 2-minute certificates in {} s",
        started.elapsed().as_secs()
    );
}
