//! Shared harness for tests that run against the real control plane named by `KUBECONFIG`
//! (start one with `hack/control-plane.sh up`).
//!
//! - every test makes its own objects with [`unique`] names, so tests run in parallel;
//! - waits are conditions with a deadline ([`wait_for`]), never bare sleeps;
//! - [`Cluster::user`] and [`Cluster::service_account`] act as identities outside
//!   `system:masters`, so RBAC and the CSR admission plugins really apply.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod audit;
pub mod burst;
pub mod csr;
pub mod failover;
pub mod flood;
pub mod pairing;
pub mod webhook;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
};
use kube::{
    Api, Client, Config, Resource,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{Condition, await_condition},
};
use openssl::{
    asn1::Asn1Time,
    bn::{BigNum, MsbOption},
    hash::MessageDigest,
    nid::Nid,
    pkey::{PKey, Private},
    x509::{X509, X509NameBuilder, extension},
};
use serde::de::DeserializeOwned;

/// Repository root (tests run with the package root as working directory, but be explicit).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kubectl to use: the one built by `hack/control-plane.sh build` when present.
pub fn kubectl_path() -> PathBuf {
    let built = repo_root().join("hack/bin/kubectl");
    if built.exists() {
        built
    } else {
        PathBuf::from("kubectl")
    }
}

/// A name no other test (or earlier run) uses: `<prefix>-<10 hex digits>`.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 5];
    openssl::rand::rand_bytes(&mut bytes).expect("random bytes");
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{suffix}")
}

/// Waits for `cond` on the named object, failing the test with `what` after `timeout`.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(Ok(None)) => panic!("{name} was deleted while waiting for {what}"),
        Ok(Err(e)) => panic!("watching {name} while waiting for {what}: {e}"),
        Err(_) => panic!("timed out after {timeout:?} waiting for {name}: {what}"),
    }
}

/// Waits until the object with this uid is gone.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, uid: &str, timeout: Duration)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let gone = await_condition(
        api.clone(),
        name,
        kube::runtime::conditions::is_deleted(uid),
    );
    match tokio::time::timeout(timeout, gone).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("watching {name} while waiting for its deletion: {e}"),
        Err(_) => panic!("timed out after {timeout:?} waiting for {name} to be deleted"),
    }
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `timeout`. For things
/// that cannot be watched (an HTTP endpoint, a process).
pub async fn poll<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The control plane under test.
pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
    /// Directory of the control plane's state (holds `pki/ca.{crt,key}`).
    pub state_dir: PathBuf,
}

impl Cluster {
    /// Connects as the admin of the control plane named by `KUBECONFIG`.
    pub async fn connect() -> Cluster {
        let kubeconfig = PathBuf::from(std::env::var_os("KUBECONFIG").expect(
            "KUBECONFIG is not set: these tests need a real control plane; start one with \
             `hack/control-plane.sh up` and export the KUBECONFIG it prints (hack/test.sh does both)",
        ));
        let state_dir = kubeconfig
            .parent()
            .expect("kubeconfig has a parent")
            .to_path_buf();
        let client = client_from_file(&kubeconfig).await;
        Cluster {
            client,
            kubeconfig,
            state_dir,
        }
    }

    /// `kubectl --kubeconfig <admin>`; add arguments and run with [`run`].
    pub fn kubectl(&self) -> Command {
        kubectl_as(&self.kubeconfig)
    }

    /// Installs certpair's CRD from the committed manifest (as a user would) and waits until
    /// it is established. Safe to call from many tests at once.
    pub async fn ensure_crd(&self) {
        let manifest = repo_root().join("manifests/crd/certpair.dev.yaml");
        let out = run(self
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(&manifest));
        assert!(
            out.status.success(),
            "installing the CRD failed: {}",
            stderr(&out)
        );
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(self.client.clone());
        for crd in [
            "applications.certpair.dev",
            "tokenrequests.certpair.dev",
            "revocations.certpair.dev",
        ] {
            wait_for(
                &crds,
                crd,
                "CRD established",
                Duration::from_secs(30),
                kube::runtime::conditions::is_crd_established(),
            )
            .await;
        }
    }

    /// A user outside `system:masters`, authenticated by a client certificate that the control
    /// plane's client CA signed. Returns a client and a kubeconfig file for kubectl.
    pub async fn user(&self, name: &str, groups: &[&str]) -> Identity {
        let ca_dir = self.state_dir.join("pki");
        let ca_cert =
            X509::from_pem(&std::fs::read(ca_dir.join("ca.crt")).expect("read pki/ca.crt"))
                .expect("parse ca.crt");
        let ca_key = PKey::private_key_from_pem(
            &std::fs::read(ca_dir.join("ca.key")).expect("read pki/ca.key"),
        )
        .expect("parse ca.key");
        let key = ec_key();
        let cert = client_certificate(name, groups, &key, &ca_cert, &ca_key);
        let b64 = |pem: Vec<u8>| openssl::base64::encode_block(&pem);
        let mut config = Kubeconfig::read_from(&self.kubeconfig).expect("read admin kubeconfig");
        let auth = config.auth_infos[0].auth_info.as_mut().expect("auth info");
        auth.client_certificate_data = Some(b64(cert.to_pem().expect("pem")));
        auth.client_key_data = Some(b64(key.private_key_to_pem_pkcs8().expect("pem")).into());
        self.identity(name, config).await
    }

    /// A ServiceAccount (created if needed) authenticated by a bound token from the
    /// TokenRequest API, as `kubectl create token` would issue.
    pub async fn service_account(&self, namespace: &str, name: &str) -> Identity {
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let sa = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match sas.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("creating ServiceAccount {namespace}/{name}: {e}"),
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let token = sas
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .expect("TokenRequest")
            .status
            .expect("token status")
            .token;
        let mut config = Kubeconfig::read_from(&self.kubeconfig).expect("read admin kubeconfig");
        let auth = config.auth_infos[0].auth_info.as_mut().expect("auth info");
        auth.client_certificate_data = None;
        auth.client_key_data = None;
        auth.token = Some(token.clone().into());
        let mut identity = self
            .identity(&format!("system:serviceaccount:{namespace}:{name}"), config)
            .await;
        identity.token = Some(token);
        identity
    }

    async fn identity(&self, username: &str, config: Kubeconfig) -> Identity {
        let dir = self.state_dir.join("identities");
        std::fs::create_dir_all(&dir).expect("identities dir");
        // One file per call: tests run in parallel and may ask for the same identity at once.
        let file = dir.join(format!(
            "{}.kubeconfig",
            unique(&username.replace(':', "_"))
        ));
        std::fs::write(&file, serde_yaml::to_string(&config).expect("yaml"))
            .expect("write kubeconfig");
        let client = client_from_file(&file).await;
        Identity {
            username: username.to_owned(),
            client,
            kubeconfig: file,
            token: None,
        }
    }

    /// The server version kubectl reports, e.g. `v1.35.4`.
    pub fn server_version(&self) -> String {
        let out = run(self.kubectl().args(["version", "-o", "json"]));
        assert!(out.status.success(), "kubectl version: {}", stderr(&out));
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("kubectl version json");
        v["serverVersion"]["gitVersion"]
            .as_str()
            .expect("gitVersion")
            .to_owned()
    }
}

/// Someone acting against the cluster with their own credentials.
pub struct Identity {
    pub username: String,
    pub client: Client,
    pub kubeconfig: PathBuf,
    /// The bearer token of a ServiceAccount identity.
    pub token: Option<String>,
}

impl Identity {
    pub fn kubectl(&self) -> Command {
        kubectl_as(&self.kubeconfig)
    }
}

fn kubectl_as(kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(kubectl_path());
    cmd.arg("--kubeconfig").arg(kubeconfig);
    cmd
}

async fn client_from_file(path: &Path) -> Client {
    let kubeconfig =
        Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    Client::try_from(config).expect("client")
}

/// Runs a command, capturing its output; panics only if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn ec_key() -> PKey<Private> {
    certpair::pki::generate_p256().expect("P-256 key")
}

/// A PKCS#10 request for `O=<org>` for each organization, then `CN=<cn>`, signed by `key`.
pub fn csr_pem(key: &PKey<Private>, cn: &str, organizations: &[&str]) -> Vec<u8> {
    let mut subject: Vec<(Nid, String)> = organizations
        .iter()
        .map(|o| (Nid::ORGANIZATIONNAME, o.to_string()))
        .collect();
    subject.push((Nid::COMMONNAME, cn.to_owned()));
    certpair::pki::csr_builder::RequestBuilder {
        subject,
        ..Default::default()
    }
    .to_pem(key)
    .expect("a PKCS#10 request")
}

fn client_certificate(
    cn: &str,
    groups: &[&str],
    key: &PKey<Private>,
    ca: &X509,
    ca_key: &PKey<Private>,
) -> X509 {
    let mut name = X509NameBuilder::new().expect("name");
    for g in groups {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, g)
            .expect("O");
    }
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("CN");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bn");
    serial
        .rand(127, MsbOption::MAYBE_ZERO, false)
        .expect("rand");
    b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(ca.subject_name()).expect("issuer");
    b.set_pubkey(key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("nbf");
    b.set_not_after(&Asn1Time::days_from_now(1).expect("time"))
        .expect("naf");
    b.append_extension(
        extension::BasicConstraints::new()
            .critical()
            .build()
            .expect("bc"),
    )
    .expect("bc");
    b.append_extension(
        extension::KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .expect("ku"),
    )
    .expect("ku");
    b.append_extension(
        extension::ExtendedKeyUsage::new()
            .client_auth()
            .build()
            .expect("eku"),
    )
    .expect("eku");
    b.sign(ca_key, MessageDigest::sha256()).expect("sign");
    b.build()
}

/// `certpair controller` running as the ServiceAccount that `manifests/rbac.yaml` binds —
/// never as an admin — against the control plane. Killed when dropped, and also when the test
/// process exits (a watchdog shell ends it), so a panicking test leaves nothing behind.
pub struct ControllerProcess {
    child: std::process::Child,
    pub http_addr: String,
    pub log_file: PathBuf,
    /// The ServiceAccount token it runs with: its `jti` names this process in the apiserver's
    /// audit log (see [`audit`]).
    pub token: Option<String>,
}

impl Cluster {
    /// Waits (bounded) until the Events about object `name` in `namespace`, as kubectl lists
    /// them, show every one of `needles` in their `field` (`reason` or `note`).
    pub async fn wait_event(&self, namespace: &str, name: &str, field: &str, needles: &[&str]) {
        let selector = format!("regarding.name={name}");
        let jsonpath = format!("jsonpath={{.items[*].{field}}}");
        poll(
            &format!("Events on {name} with {needles:?}"),
            Duration::from_secs(15),
            || {
                let out = run(self.kubectl().args([
                    "get",
                    "events.events.k8s.io",
                    "-n",
                    namespace,
                    "--field-selector",
                    &selector,
                    "-o",
                    &jsonpath,
                ]));
                let seen = String::from_utf8_lossy(&out.stdout).to_string();
                needles.iter().all(|n| seen.contains(n)).then_some(())
            },
        )
        .await;
    }
}

impl Cluster {
    /// Installs the CRD, namespace and RBAC from `manifests/` with kubectl, as an operator would.
    pub async fn install_manifests(&self) {
        self.ensure_crd().await;
        let root = repo_root();
        let out = run(self
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(root.join("manifests/namespace.yaml"))
            .arg("-f")
            .arg(root.join("manifests/rbac.yaml"))
            .arg("-f")
            .arg(root.join("manifests/csr-cleanup-policy.yaml"))
            .arg("-f")
            .arg(root.join("manifests/webhook-policy.yaml")));
        assert!(out.status.success(), "applying manifests: {}", stderr(&out));
        // The policy's parameter with it: a ValidatingAdmissionPolicy whose parameter is
        // missing denies every write to any webhook configuration (its parameter is resolved
        // before its match conditions), for admins too. Created only when absent, so a test
        // that installed its own (URL) version keeps it.
        let webhook = std::fs::read_to_string(root.join("manifests/webhook.yaml"))
            .expect("read manifests/webhook.yaml");
        let configmap = webhook
            .split("\n---\n")
            .find(|doc| doc.contains("kind: ConfigMap"))
            .expect("the ConfigMap in webhook.yaml");
        let file = self
            .state_dir
            .join(format!("{}.yaml", unique("webhook-configmap")));
        std::fs::write(&file, configmap).expect("write");
        let out = run(self.kubectl().args(["create", "-f"]).arg(&file));
        assert!(
            out.status.success() || stderr(&out).contains("AlreadyExists"),
            "creating ConfigMap certpair-webhook: {}",
            stderr(&out)
        );
    }

    /// Starts a controller with `args` and waits until it is ready.
    pub async fn start_controller(&self, args: &[&str]) -> ControllerProcess {
        self.install_manifests().await;
        self.start_certpair("controller", "certpair-controller", args)
            .await
    }

    /// `ca.crt` of ConfigMap `name` in certpair-system (a CA bundle certpair publishes), as
    /// kubectl reads it.
    pub fn published_ca(&self, name: &str) -> Vec<u8> {
        let out = run(self.kubectl().args([
            "get",
            "configmap",
            "-n",
            "certpair-system",
            name,
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ]));
        assert!(out.status.success(), "reading {name}: {}", stderr(&out));
        out.stdout
    }

    /// Installs what the connector needs (its RBAC from `manifests/connector.yaml`, without
    /// the Deployment and Services, and the TokenRequest admission policy).
    pub async fn install_connector_manifests(&self) {
        self.install_manifests().await;
        let root = repo_root();
        let out = run(self
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts"])
            .args(["-l", "app.kubernetes.io/name!=certpair-connector", "-f"])
            .arg(root.join("manifests/connector.yaml"))
            .arg("-f")
            .arg(root.join("manifests/token-policy.yaml")));
        assert!(
            out.status.success(),
            "applying connector manifests: {}",
            stderr(&out)
        );
    }

    /// Starts `certpair connector` with `args` as its ServiceAccount and waits until it is
    /// ready.
    pub async fn start_connector(&self, args: &[&str]) -> ControllerProcess {
        self.install_connector_manifests().await;
        self.start_certpair("connector", "certpair-connector", args)
            .await
    }

    /// Starts a connector serving on 127.0.0.1:`port` with its external URL
    /// `https://127.0.0.1:<port>`, its internal API on a free port, and `extra` flags.
    pub async fn start_connector_at(&self, port: u16, extra: &[&str]) -> ControllerProcess {
        let addr = format!("127.0.0.1:{port}");
        let internal = format!("127.0.0.1:{}", free_port());
        let url = format!("https://{addr}");
        let mut args = vec![
            "--connector-addr",
            addr.as_str(),
            "--internal-addr",
            internal.as_str(),
            "--external-url",
            url.as_str(),
        ];
        args.extend_from_slice(extra);
        self.start_connector(&args).await
    }

    /// Starts `certpair <subcommand> --http-addr <free port> <args>` as ServiceAccount
    /// `service_account` of certpair-system and waits until /readyz answers 200.
    pub async fn start_certpair(
        &self,
        subcommand: &str,
        service_account: &str,
        args: &[&str],
    ) -> ControllerProcess {
        let identity = self
            .service_account("certpair-system", service_account)
            .await;
        let http_addr = format!("127.0.0.1:{}", free_port());
        let log_dir = self.state_dir.join("controller-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log_file = log_dir.join(format!("{}.log", unique(subcommand)));
        let mut cmd_line = vec![
            env!("CARGO_BIN_EXE_certpair").to_owned(),
            subcommand.into(),
            "--http-addr".into(),
            http_addr.clone(),
        ];
        // A profiler in front of the process, for benchmarks only, e.g.
        // CERTPAIR_WRAPPER='valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p'.
        // It slows the process down, so the leader Lease gets more time.
        let wrapper = std::env::var("CERTPAIR_WRAPPER").unwrap_or_default();
        if subcommand == "controller" && !args.contains(&"--lease-duration-seconds") {
            let lease = if wrapper.is_empty() { "6" } else { "60" };
            cmd_line.extend(["--lease-duration-seconds".into(), lease.into()]);
        }
        cmd_line.extend(args.iter().map(|a| a.to_string()));
        cmd_line.splice(0..0, wrapper.split_whitespace().map(str::to_owned));
        let quoted: Vec<String> = cmd_line
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        // The watchdog: run the process, pass a TERM on, TERM it when the test process is
        // gone, and exit with the process's own status.
        let script = format!(
            "{} & pid=$!; trap 'kill -TERM $pid 2>/dev/null' TERM; \
             while kill -0 {} 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.3; done; \
             kill -TERM $pid 2>/dev/null; wait $pid",
            quoted.join(" "),
            std::process::id()
        );
        let log = std::fs::File::create(&log_file).expect("log file");
        let child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("KUBECONFIG", &identity.kubeconfig)
            .env(
                "CERTPAIR_LOG",
                "info,kube_client::client::builder=off,certpair=debug",
            )
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start certpair {subcommand}: {e}"));
        let mut process = ControllerProcess {
            child,
            http_addr,
            log_file,
            token: identity.token.clone(),
        };
        let addr = process.http_addr.clone();
        let patience = if wrapper.is_empty() { 30 } else { 300 };
        let ready = tokio::time::timeout(Duration::from_secs(patience), async {
            loop {
                if let Some((200, _)) = http_get(&addr, "/readyz") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        if ready.is_err() || process.child.try_wait().ok().flatten().is_some() {
            panic!(
                "certpair {subcommand} did not become ready:\n{}",
                process.logs()
            );
        }
        process
    }
}

/// CPU time (user + system) the process at `/proc/<pid>` has used so far, in seconds.
pub fn cpu_seconds_of(proc_dir: PathBuf) -> f64 {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl ControllerProcess {
    /// Pid of the watchdog shell whose only child is the controller.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Pid of the certpair process itself (the watchdog shell's only child), while it runs.
    pub fn controller_pid(&self) -> Option<u32> {
        let pid = self.pid();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The controller's resident memory now and its peak so far (VmRSS, VmHWM), in KiB;
    /// zeros once it has exited.
    pub fn memory_kib(&self) -> (u64, u64) {
        let [rss, hwm] = self.status_kib(["VmRSS:", "VmHWM:"]);
        (rss, hwm)
    }

    /// The controller's resident memory split into anonymous memory (heap, stacks) and
    /// file-backed pages (mostly its own code): (RssAnon, RssFile) in KiB.
    pub fn rss_split_kib(&self) -> (u64, u64) {
        let [anon, file] = self.status_kib(["RssAnon:", "RssFile:"]);
        (anon, file)
    }

    /// Fields of the controller's /proc status in KiB (zeros once it has exited).
    fn status_kib<const N: usize>(&self, names: [&str; N]) -> [u64; N] {
        let Some(controller) = self.controller_pid() else {
            return [0; N];
        };
        let status =
            std::fs::read_to_string(format!("/proc/{controller}/status")).unwrap_or_default();
        names.map(|name| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        })
    }

    /// File descriptors the controller holds open now (0 once it has exited).
    pub fn open_fds(&self) -> usize {
        self.controller_pid()
            .and_then(|process| std::fs::read_dir(format!("/proc/{process}/fd")).ok())
            .map_or(0, Iterator::count)
    }

    /// CPU time the process has used so far (user + system), in seconds; 0 once it has exited.
    pub fn cpu_seconds(&self) -> f64 {
        self.controller_pid().map_or(0.0, |process| {
            cpu_seconds_of(Path::new("/proc").join(process.to_string()))
        })
    }

    pub fn metrics(&self) -> String {
        http_get(&self.http_addr, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// Waits (bounded) until the metrics contain `needle`: a metric is counted just after the
    /// write a test observes, so it may trail it by a moment.
    pub async fn wait_metric(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.metrics().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "metrics never showed {needle}:\n{}",
                self.metrics()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until this process leads.
    pub async fn wait_leader(&self) {
        poll("leadership", Duration::from_secs(30), || {
            self.is_leader().then_some(())
        })
        .await;
    }

    /// 1 when this process holds the leader Lease.
    pub fn is_leader(&self) -> bool {
        self.metrics()
            .lines()
            .any(|l| l.trim() == "certpair_leader 1")
    }

    /// SIGTERM, as the kubelet sends it (the watchdog passes it on).
    pub fn send_term(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// The controller's exit status once it has exited, or `None` if it is still running
    /// after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL: a crash, no Lease release.
    pub fn kill_hard(&mut self) {
        // The controller is the watchdog shell's only child.
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return; // already gone (killed by the test)
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_hard();
    }
}

/// Status code and body of `GET http://<addr><path>`, or None while nothing listens.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// The e2e binary's one controller (default flags), started on first use and ended by its
/// watchdog when the test process exits. One leader for every test keeps failovers out of
/// tests that are not about them.
pub fn shared_controller() -> &'static ControllerProcess {
    static SHARED: std::sync::OnceLock<ControllerProcess> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        // Its own thread and runtime: the caller's runtime belongs to one test only.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let cluster = Cluster::connect().await;
                let process = cluster.start_controller(&[]).await;
                // Wait until it leads, so the first test's CSR is not held up by an election.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while !process.is_leader() {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "controller never became leader:\n{}",
                        process.logs()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                process
            })
        })
        .join()
        .expect("starting the shared controller")
    })
}
