//! The connector end to end: a real apiserver, `certpair controller` and two `certpair
//! connector` replicas as their ServiceAccounts, and curl and openssl as the application.
//! One controller and one pair of connectors serve every test in this binary ([`setup`]);
//! each test pairs its own Application.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod client;
mod graphql;
mod internal;
mod pairing;
mod revocation;
mod tokens;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use certpair::api::{Application, ApplicationSpec, SubjectRequirements, TokenRequest};
use kube::{Api, Client, api::PostParams};
use serde_json::Value;
use support::{Cluster, ControllerProcess, free_port, poll, run, stderr, unique};

/// What every test shares: the processes and the files a client needs.
pub struct Setup {
    pub controller: ControllerProcess,
    /// Two replicas: `https://127.0.0.1:<port>` each.
    pub connectors: Vec<ControllerProcess>,
    pub urls: Vec<String>,
    /// Their internal API, `http://127.0.0.1:<port>`.
    pub internal: Vec<String>,
    /// The connector's CA (ConfigMap certpair-connector-ca): what curl trusts.
    pub connector_ca: PathBuf,
    /// The signing CA bundle (ConfigMap certpair-ca-bundle).
    pub signing_ca: PathBuf,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

pub fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    assert!(
        !FAILED.load(std::sync::atomic::Ordering::Relaxed),
        "the shared set-up failed in an earlier test; see its output"
    );
    SETUP.get_or_init(|| {
        // Its own thread and runtime: a test's runtime ends with that test.
        let started = std::thread::spawn(|| {
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(start())
        })
        .join();
        match started {
            Ok(setup) => setup,
            Err(_) => {
                FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
                panic!("starting the controller and connectors failed (see above)");
            }
        }
    })
}

async fn start() -> Setup {
    let cluster = Cluster::connect().await;
    cluster.install_connector_manifests().await;
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|(p, _)| format!("https://127.0.0.1:{p}"))
        .collect();
    let controller = cluster
        .start_controller(&[
            "--connector-url",
            &urls[0],
            "--connector-ips",
            "127.0.0.1",
            "--connector-dns-names",
            "localhost",
        ])
        .await;
    controller.wait_leader().await;
    let mut connectors = Vec::new();
    for (i, (port, internal)) in ports.iter().enumerate() {
        connectors.push(
            cluster
                .start_connector(&[
                    "--connector-addr",
                    &format!("127.0.0.1:{port}"),
                    "--internal-addr",
                    &format!("127.0.0.1:{internal}"),
                    "--external-url",
                    &urls[i],
                    "--issue-timeout-seconds",
                    "5",
                ])
                .await,
        );
    }
    let dir = cluster.state_dir.join(unique("connector-test"));
    std::fs::create_dir_all(&dir).expect("test dir");
    let connector_ca = dir.join("connector-ca.crt");
    let signing_ca = dir.join("signing-ca.crt");
    for (map, file) in [
        ("certpair-connector-ca", &connector_ca),
        ("certpair-ca-bundle", &signing_ca),
    ] {
        std::fs::write(file, cluster.published_ca(map)).expect("write CA");
    }
    Setup {
        controller,
        connectors,
        urls,
        internal: ports
            .iter()
            .map(|(_, i)| format!("http://127.0.0.1:{i}"))
            .collect(),
        connector_ca,
        signing_ca,
        dir,
        kubeconfig: cluster.kubeconfig.clone(),
    }
}

/// A status code and the body of a curl call.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.code, self.body))
    }

    /// A Kyma error: `{"code": <status>, "error": "..."}` with `code` equal to the status.
    pub fn error(&self) -> String {
        let json = self.json();
        assert_eq!(json["code"], self.code, "{}", self.body);
        json["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// curl with the connector's CA trusted, `args` appended; the status code and body.
pub fn curl(args: &[&str]) -> Reply {
    let s = setup();
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(&s.connector_ca)
        .args(args));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Reply {
        code: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

/// curl with a client certificate.
pub fn curl_with(cert: &Path, key: &Path, args: &[&str]) -> Reply {
    let cert = cert.to_string_lossy().into_owned();
    let key = key.to_string_lossy().into_owned();
    let mut all = vec!["--cert", &cert, "--key", &key];
    all.extend_from_slice(args);
    curl(&all)
}

/// `openssl <args>` in `dir`; whether it succeeded and what it printed.
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = run(Command::new("openssl").current_dir(dir).args(args));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub async fn admin() -> Client {
    Cluster::connect().await.client
}

/// An Application spec requiring O=Acme, OU=Payments, C=DE.
pub fn application_spec() -> ApplicationSpec {
    ApplicationSpec {
        subject: Some(SubjectRequirements {
            organization: Some("Acme".into()),
            organizational_unit: Some("Payments".into()),
            country: Some("DE".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Application `name` with `spec`.
pub async fn application_with(client: &Client, name: &str, spec: ApplicationSpec) {
    Api::<Application>::all(client.clone())
        .create(&PostParams::default(), &Application::new(name, spec))
        .await
        .expect("create Application");
}

/// A fresh Application named after `prefix` (O=Acme, OU=Payments, C=DE), the admin client,
/// and a directory of its own for the test's files.
pub async fn fresh_application(prefix: &str) -> (Client, String, PathBuf) {
    let admin = admin().await;
    let app = unique(prefix);
    application(&admin, &app).await;
    let dir = setup().dir.join(&app);
    std::fs::create_dir_all(&dir).expect("dir");
    (admin, app, dir)
}

/// Application `name` requiring O=Acme, OU=Payments, C=DE.
pub async fn application(client: &Client, name: &str) {
    application_with(client, name, application_spec()).await;
}

/// Creates a TokenRequest for `application` in `default` as the admin and waits for its
/// token; returns its name and status.
pub async fn token_request(client: &Client, application: &str) -> (String, Value) {
    let name = unique("pairing");
    let api: Api<TokenRequest> = Api::namespaced(client.clone(), "default");
    let tr: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "certpair.dev/v1alpha1",
        "kind": "TokenRequest",
        "metadata": {"name": name},
        "spec": {"application": application},
    }))
    .expect("TokenRequest");
    api.create(&PostParams::default(), &tr)
        .await
        .expect("create TokenRequest");
    let status = token_status(client, &name, |s| s["url"].is_string()).await;
    (name, status)
}

/// Waits (bounded) until TokenRequest `name`'s status satisfies `ok`.
pub async fn token_status(client: &Client, name: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let api: Api<TokenRequest> = Api::namespaced(client.clone(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let tr = api.get(name).await.expect("get TokenRequest");
        let status = serde_json::to_value(&tr.status).expect("status");
        if ok(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "TokenRequest {name} never reached the state awaited: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A key and CSR made with openssl, as Kyma's tutorial does, for `subject` (`/O=../CN=..`).
pub fn key_and_csr(dir: &Path, name: &str, subject: &str, bits: u32) -> (PathBuf, PathBuf) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let (ok, out) = openssl(dir, &["genrsa", "-out", &key, &bits.to_string()]);
    assert!(ok, "{out}");
    let (ok, out) = openssl(
        dir,
        &["req", "-new", "-key", &key, "-subj", subject, "-out", &csr],
    );
    assert!(ok, "{out}");
    (dir.join(key), dir.join(csr))
}

/// `{"csr": "<base64 of the PEM>"}` for the CSR file.
pub fn csr_body(csr: &Path) -> String {
    let pem = std::fs::read(csr).expect("read CSR");
    serde_json::json!({ "csr": openssl::base64::encode_block(&pem) }).to_string()
}

/// Decodes a 201's `crt`, `clientCrt` and `caCrt` into `<name>.chain.crt`, `<name>.crt`,
/// `<name>.ca.crt`; returns the chain's path and the client certificate's.
pub fn save_certificates(dir: &Path, name: &str, reply: &Reply) -> (PathBuf, PathBuf) {
    assert_eq!(reply.code, 201, "{}", reply.body);
    let json = reply.json();
    let decode = |field: &str| {
        openssl::base64::decode_block(json[field].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{field} is not base64: {e}"))
    };
    let chain = dir.join(format!("{name}.chain.crt"));
    let client = dir.join(format!("{name}.crt"));
    std::fs::write(&chain, decode("crt")).expect("write");
    std::fs::write(&client, decode("clientCrt")).expect("write");
    std::fs::write(dir.join(format!("{name}.ca.crt")), decode("caCrt")).expect("write");
    assert_eq!(
        decode("crt"),
        [decode("clientCrt"), decode("caCrt")].concat(),
        "crt is the client certificate then the CA chain"
    );
    (chain, client)
}

/// The serial of a PEM certificate file, upper-case hex.
pub fn serial_of(cert: &Path) -> String {
    let pem = std::fs::read(cert).expect("read certificate");
    let x509 = openssl::x509::X509::from_pem(&pem).expect("certificate");
    certpair::pki::serial_hex(&x509).expect("serial")
}

/// Waits up to `timeout` for `probe` to return Some.
pub async fn within<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll(what, timeout, probe).await
}
