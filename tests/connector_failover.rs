//! A connector replica killed (SIGKILL) mid-pairing, with a second replica serving the same
//! cluster: the client's retry with the same token on the other replica finishes the pairing
//! (or gets a clear answer), and no token is burnt without a certificate being obtainable.
//! `kubectl get csr` is the audit log: one CSR per pairing, whatever was retried.
//!
//! Kill points, one test each:
//! - while the certificate is awaited (the CSR created, nothing signs it yet);
//! - after `signingRequests/info` answered (the client holds the certificate token);
//! - after `signingRequests/info` redeemed the token but before its answer reached the client.
//!
//! Its own binary: each test stops and starts the controller (the tests take turns).

mod support;

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use certpair::api::{TOKEN_REQUEST_ANNOTATION, TokenRequest, TokenState, TokenStep};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Api;
use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};
use serde_json::Value;
use support::{
    Cluster, ControllerProcess, free_port,
    pairing::{csr_body, curl, curl_command, curled, token_request},
    poll, unique,
};

/// The tests stop and start the one controller, so they take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Upper-case hex without leading zeros: how serials compare.
fn serial_of(cert: &X509) -> String {
    certpair::pki::serial_hex(cert)
        .expect("serial")
        .trim_start_matches('0')
        .to_uppercase()
}

/// A controller and two connector replicas on one cluster, an Application to pair, and the
/// connector's CA for curl.
struct Setup {
    cluster: Cluster,
    controller: Option<ControllerProcess>,
    controller_flags: Vec<String>,
    replicas: Vec<ControllerProcess>,
    urls: Vec<String>,
    ca: PathBuf,
    app: String,
    trs: Api<TokenRequest>,
}

impl Setup {
    /// Replica 0 waits `first_timeout` seconds for a certificate, replica 1 the default.
    async fn start(first_timeout: &str) -> Setup {
        let cluster = Cluster::connect().await;
        cluster.install_connector_manifests().await;
        let ports = [free_port(), free_port()];
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("https://127.0.0.1:{p}"))
            .collect();
        // TokenRequests' URLs name replica 0: that is where a client starts.
        let controller_flags = vec![
            "--connector-url".to_owned(),
            urls[0].clone(),
            "--connector-ips".into(),
            "127.0.0.1".into(),
        ];
        let controller = start_controller(&cluster, &controller_flags).await;
        let replicas = vec![
            cluster
                .start_connector_at(ports[0], &["--issue-timeout-seconds", first_timeout])
                .await,
            cluster.start_connector_at(ports[1], &[]).await,
        ];
        let dir = cluster.state_dir.join(unique("connector-failover"));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("connector-ca.crt");
        std::fs::write(&ca, cluster.published_ca("certpair-connector-ca")).expect("write");
        let app = unique("failover");
        support::csr::application(&cluster.client, &app, None).await;
        let trs = Api::namespaced(cluster.client.clone(), "default");
        Setup {
            cluster,
            controller: Some(controller),
            controller_flags,
            replicas,
            urls,
            ca,
            app,
            trs,
        }
    }

    /// A new TokenRequest for the Application: its name and the URL its token starts at.
    async fn token_request(&self) -> (String, String) {
        let name = unique("failover-pairing");
        let url = token_request(&self.cluster.client, &self.app, &name).await;
        (name, url)
    }

    /// `url` (on replica 0) pointed at replica `i` instead.
    fn on(&self, i: usize, url: &str) -> String {
        url.replacen(&self.urls[0], &self.urls[i], 1)
    }

    async fn tr_status(&self, name: &str) -> certpair::api::TokenRequestStatus {
        self.trs
            .get(name)
            .await
            .expect("get TokenRequest")
            .status
            .expect("status")
    }

    async fn stop_controller(&mut self) {
        let mut controller = self.controller.take().expect("a controller runs");
        controller.send_term();
        let exited = tokio::task::block_in_place(|| controller.wait_exit(Duration::from_secs(20)));
        assert!(exited.is_some(), "the controller stopped");
    }

    async fn start_controller(&mut self) {
        self.controller = Some(start_controller(&self.cluster, &self.controller_flags).await);
    }

    /// The CSRs created for TokenRequest `name`, as `kubectl get csr` lists them.
    fn csrs_of(&self, name: &str) -> Vec<Value> {
        let out = support::run(self.cluster.kubectl().args(["get", "csr", "-o", "json"]));
        assert!(out.status.success(), "{}", support::stderr(&out));
        let list: Value = serde_json::from_slice(&out.stdout).expect("json");
        let wanted = format!("default/{name}");
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|c| c["metadata"]["annotations"][TOKEN_REQUEST_ANNOTATION] == wanted.as_str())
            .cloned()
            .collect()
    }

    /// After a pairing of TokenRequest `name` gave `cert` for `key`: the TokenRequest is Used
    /// with that serial, kubectl shows exactly one CSR for it (holding that certificate),
    /// another key is refused with a clear JSON 403, and the same key fetches the same
    /// certificate again.
    async fn assert_paired(
        &self,
        name: &str,
        csr_url: &str,
        key: &PKey<Private>,
        answer: &Value,
    ) -> X509 {
        let client = answer["clientCrt"].as_str().expect("clientCrt");
        let cert = X509::from_pem(&openssl::base64::decode_block(client).expect("base64"))
            .expect("certificate");
        assert!(
            cert.public_key().expect("key").public_eq(key),
            "the certificate is for the client's key"
        );
        let status = self.tr_status(name).await;
        assert_eq!(status.state, Some(TokenState::Used), "{status:?}");
        assert_eq!(
            status
                .serial_number
                .as_deref()
                .map(|s| s.trim_start_matches('0').to_uppercase()),
            Some(serial_of(&cert)),
            "{status:?}"
        );
        let csrs = self.csrs_of(name);
        assert_eq!(
            csrs.len(),
            1,
            "one CSR per pairing: {:?}",
            csrs.iter()
                .map(|c| c["metadata"]["name"].clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            status.certificate_signing_request.as_deref(),
            csrs[0]["metadata"]["name"].as_str()
        );
        let issued = openssl::base64::decode_block(
            csrs[0]["status"]["certificate"].as_str().expect("issued"),
        )
        .expect("base64");
        assert_eq!(
            X509::stack_from_pem(&issued).expect("pem")[0]
                .to_der()
                .expect("der"),
            cert.to_der().expect("der")
        );

        for i in 0..self.replicas.len() {
            if self.replicas[i].controller_pid().is_none() {
                continue; // the killed one
            }
            let url = self.on(i, csr_url);
            let other = curl(
                &self.ca,
                &["-d", &csr_body(&self.app, &support::ec_key()), &url],
            );
            assert_eq!(other.code, 403, "another key: {}", other.body);
            let message = other.body["error"].as_str().unwrap_or_default();
            assert!(
                other.body["code"] == 403 && message.contains("another key"),
                "a clear refusal: {}",
                other.body
            );
            let again = curl(&self.ca, &["-d", &csr_body(&self.app, key), &url]);
            assert_eq!(again.code, 201, "the same key again: {}", again.body);
            assert_eq!(again.body["clientCrt"], answer["clientCrt"]);
        }
        cert
    }
}

async fn start_controller(cluster: &Cluster, flags: &[String]) -> ControllerProcess {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let controller = cluster.start_controller(&flags).await;
    controller.wait_leader().await;
    controller
}

/// Posts the CSR until a replica answers 201 (a 503 says the CSR is not signed yet).
async fn fetch_certificate(s: &Setup, url: &str, key: &PKey<Private>) -> Value {
    let mut last = None;
    let answer = poll(
        "the retry to get the certificate",
        Duration::from_secs(40),
        || {
            let got = curl(&s.ca, &["-d", &csr_body(&s.app, key), url]);
            if got.code == 201 {
                return Some(got.body);
            }
            assert!(
                got.code == 503,
                "a retry is answered 201, or 503 while the CSR awaits its certificate: {} {}",
                got.code,
                got.body
            );
            last = Some(got.body);
            None
        },
    )
    .await;
    if let Some(pending) = last {
        eprintln!("while the CSR awaited its certificate the retry was told: {pending}");
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_the_certificate_is_awaited() {
    let _turn = TURN.lock().await;
    let began = Instant::now();
    // Replica 0 would wait 30 s for the certificate: the kill comes long before.
    let mut s = Setup::start("30").await;
    let (name, info_url) = s.token_request().await;
    let info = curl(&s.ca, &[&info_url]);
    assert_eq!(info.code, 200, "{}", info.body);
    let csr_url = info.body["csrUrl"].as_str().expect("csrUrl").to_owned();
    assert!(csr_url.starts_with(&s.urls[0]), "{csr_url}");

    // Nothing signs: replica 0 creates the CSR and waits for its certificate.
    s.stop_controller().await;
    let key = support::ec_key();
    let mut in_flight = curl_command(&s.ca, &["-d", &csr_body(&s.app, &key), &csr_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    let uid = s
        .trs
        .get(&name)
        .await
        .expect("get")
        .metadata
        .uid
        .expect("uid");
    let csr_name = format!("pair-{}-{uid}", s.app);
    let csrs: Api<CertificateSigningRequest> = Api::all(s.cluster.client.clone());
    let mut created = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !created {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica 0 never created CSR {csr_name}:\n{}",
            s.replicas[0].logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        created = csrs.get_opt(&csr_name).await.expect("get CSR").is_some();
    }
    // Past the create, into the wait (its log line follows the create's answer).
    poll(
        "replica 0 to report the CSR created",
        Duration::from_secs(5),
        || s.replicas[0].logs().contains("CSR created").then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    tokio::task::block_in_place(|| s.replicas[0].kill_hard());

    // The client sees its connection fail, at once rather than after any timeout.
    let ended = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if in_flight.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    if !ended {
        let _ = in_flight.kill();
    }
    let cut = curled(in_flight.wait_with_output().expect("curl output"));
    assert!(ended, "curl still waits after the replica died");
    eprintln!(
        "in-flight request: curl exit {:?} after {:.2} s: {}",
        cut.exit,
        killed.elapsed().as_secs_f64(),
        cut.stderr.trim()
    );
    assert!(
        cut.code == 0 && cut.exit.is_some_and(|e| e != 0),
        "the client sees a connection error, no answer: exit {:?}, HTTP {}, {}",
        cut.exit,
        cut.code,
        cut.body
    );
    let status = s.tr_status(&name).await;
    eprintln!(
        "TokenRequest after the kill: state {:?}, step {:?}, CSR recorded: {:?}",
        status.state, status.step, status.certificate_signing_request
    );
    assert_eq!(status.state, Some(TokenState::Ready), "{status:?}");

    // A controller signs; the retry with the same token and key, on replica 1, gets it.
    s.start_controller().await;
    let retry = s.on(1, &csr_url);
    let answer = fetch_certificate(&s, &retry, &key).await;
    let cert = s.assert_paired(&name, &csr_url, &key, &answer).await;
    let csr = csrs.get(&csr_name).await.expect("the pairing's CSR");
    assert!(
        csr.status
            .and_then(|st| st.certificate)
            .is_some_and(
                |c| X509::stack_from_pem(&c.0).expect("pem")[0].to_der().ok() == cert.to_der().ok()
            ),
        "the certificate is the one CSR {csr_name} holds"
    );
    eprintln!("test took {:.1} s", began.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_after_answering_info() {
    let _turn = TURN.lock().await;
    let began = Instant::now();
    let mut s = Setup::start("10").await;
    let (name, info_url) = s.token_request().await;
    let info = curl(&s.ca, &[&info_url]);
    assert_eq!(info.code, 200, "{}", info.body);
    let csr_url = info.body["csrUrl"].as_str().expect("csrUrl").to_owned();
    tokio::task::block_in_place(|| s.replicas[0].kill_hard());

    // The client goes on with the certificate token on the other replica.
    let key = support::ec_key();
    let answer = fetch_certificate(&s, &s.on(1, &csr_url), &key).await;
    s.assert_paired(&name, &csr_url, &key, &answer).await;
    eprintln!("test took {:.1} s", began.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_after_redeeming_info_before_its_answer_arrives() {
    use std::io::Write;
    let _turn = TURN.lock().await;
    let began = Instant::now();
    let mut s = Setup::start("10").await;
    let (name, info_url) = s.token_request().await;

    // The client sends signingRequests/info to replica 0 and has not read the answer when
    // replica 0 dies right after redeeming the token: the answer is lost with it.
    let port: u16 = s.urls[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let path = &info_url[s.urls[0].len()..];
    let mut stream = support::webhook::tls_connect(port).expect("TLS to replica 0");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the info request");
    stream.flush().expect("flush");
    let mut redeemed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !redeemed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica 0 never redeemed the token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        redeemed = s.tr_status(&name).await.step == Some(TokenStep::Certificate);
    }
    tokio::task::block_in_place(|| s.replicas[0].kill_hard());
    drop(stream);

    // The client retries with the token it holds, on replica 1.
    let retry = curl(&s.ca, &[&s.on(1, &info_url)]);
    let status = s.tr_status(&name).await;
    eprintln!(
        "retry of signingRequests/info after its answer was lost: HTTP {} {}; TokenRequest: \
         state {:?}, step {:?}, message {:?}",
        retry.code, retry.body, status.state, status.step, status.message
    );
    // Whatever it is told, the token must not be burnt: the retry's answer must lead to a
    // certificate. No other request can: the certificate token was only in the lost answer.
    assert_eq!(
        retry.code, 200,
        "the token is burnt without a certificate being obtainable: replica 0 redeemed the \
         info token (TokenRequest {name} now at step {:?}, message {:?}) and died before the \
         client read the answer, and the retry with that token is refused: HTTP {} {}",
        status.step, status.message, retry.code, retry.body
    );
    let csr_url = retry.body["csrUrl"].as_str().expect("csrUrl").to_owned();
    let key = support::ec_key();
    let answer = fetch_certificate(&s, &s.on(1, &csr_url), &key).await;
    s.assert_paired(&name, &csr_url, &key, &answer).await;
    eprintln!("test took {:.1} s", began.elapsed().as_secs_f64());
}
