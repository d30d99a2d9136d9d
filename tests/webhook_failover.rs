//! The webhook's backing replica dies under steady admission traffic: two controller replicas
//! serve the webhook behind a Service (a round-robin TCP proxy in the test, see
//! `support::failover`: this control plane has no kube-proxy), the real apiserver calls it
//! with `failurePolicy: Fail` for every CSR of certpair's signer, and a user creates CSRs at
//! 20/s throughout. Three phases, each ending one replica and starting a replacement:
//!
//! 1. SIGKILL (a crash): admissions fail only until the Service drops the dead endpoint
//!    (its check runs every second), and none after; the count and window are printed.
//! 2. SIGTERM as Kubernetes sequences it for the Deployment: the pod's endpoint is withdrawn,
//!    the preStop hook sleeps 5 s, then SIGTERM and the drain: zero failures.
//! 3. SIGTERM alone (no endpoint withdrawal, no preStop): measured like phase 1, bounded by
//!    the same window.
//!
//! Then a probe: with every connection cut and the dead replica still listed (endpoints that
//! lag), a burst of concurrent calls measures whether the apiserver retries a connection that
//! fails (it did not: each one sent to the dead replica was a failed admission).
//!
//! Every admitted CSR is then issued, and no refused one was stored. Its own binary: the
//! webhook configuration applies to every CSR of certpair's signer while it exists.

mod support;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use certpair::api::DEFAULT_SIGNER_NAME;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use support::{
    Cluster, ControllerProcess, csr_pem, ec_key, failover::ServiceProxy, free_port, poll, run,
    stderr, unique,
};

/// Admission requests per second.
const RATE: f64 = 20.0;
/// Slack after the Service dropped an endpoint for a call already on its way there.
const SLACK: Duration = Duration::from_millis(250);
/// The Deployment's preStop sleep (manifests/deployment.yaml).
const PRE_STOP: Duration = Duration::from_secs(5);

/// One admission call: when it started and ended (from the phase's start), and its error.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    start: Instant,
    end: Instant,
    error: Option<String>,
}

/// Creates CSRs as `api`'s user at [`RATE`] until `stop`, each call on its own task so a slow
/// one does not hold up the next.
fn load(
    api: Api<CertificateSigningRequest>,
    pem: Vec<u8>,
    run_label: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Call>> {
    tokio::spawn(async move {
        let mut calls = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let (api, pem, run_label) = (api.clone(), pem.clone(), run_label.clone());
            calls.spawn(async move { create(&api, pem, &run_label).await });
        }
        calls.join_all().await.into_iter().collect::<Vec<Call>>()
    })
}

/// One CSR created as `api`'s user, labelled with the run.
async fn create(api: &Api<CertificateSigningRequest>, pem: Vec<u8>, run_label: &str) -> Call {
    let name = unique("failover");
    let csr = support::csr::csr_object(
        &name,
        pem,
        DEFAULT_SIGNER_NAME,
        &[("certpair-test/failover", run_label)],
        None,
    );
    let start = Instant::now();
    let result = api.create(&PostParams::default(), &csr).await;
    Call {
        name,
        start,
        end: Instant::now(),
        error: result.err().map(|e| match e {
            kube::Error::Api(s) => s.message,
            other => format!("(client) {other}"),
        }),
    }
}

/// The apiserver's reason, without the webhook's URL (which names the proxy's port).
fn reason(message: &str) -> String {
    let after = message
        .split_once("failed to call webhook: ")
        .map_or(message, |(_, r)| r);
    match after.split_once("\": ") {
        Some((post, rest)) if post.starts_with("Post \"") => format!("Post <webhook>: {rest}"),
        _ => after.to_owned(),
    }
}

/// Seconds from `from` to `to`, negative when `to` is earlier.
fn secs(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64()
    } else {
        -(from - to).as_secs_f64()
    }
}

struct Replicas {
    cluster: Cluster,
    ports: [u16; 2],
    processes: [Option<ControllerProcess>; 2],
}

impl Replicas {
    /// Starts a replica serving the webhook on slot `i`'s port (a new identity each time, as
    /// a new pod would have).
    async fn start(&mut self, i: usize) -> String {
        let flags = [
            "--identity".to_owned(),
            unique(&format!("replica-{i}")),
            "--webhook-addr".into(),
            format!("127.0.0.1:{}", self.ports[i]),
            "--webhook-ips=127.0.0.1".into(),
            "--webhook-dns-names=localhost".into(),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let process = self.cluster.start_controller(&flags).await;
        let readyz = process.http_addr.clone();
        self.processes[i] = Some(process);
        readyz
    }

    fn process(&mut self, i: usize) -> &mut ControllerProcess {
        self.processes[i].as_mut().expect("replica running")
    }

    fn logs(&self) -> String {
        self.processes
            .iter()
            .flatten()
            .map(|p| p.logs())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
}

/// The replica the apiserver's traffic reaches now: most connections through the Service
/// open to it (the apiserver keeps connections alive, so one replica may carry it all).
fn busiest(proxy: &ServiceProxy) -> usize {
    if proxy.stats(1).live > proxy.stats(0).live {
        1
    } else {
        0
    }
}

/// What one phase measured.
struct Measured {
    calls: Vec<Call>,
    /// The fault (SIGKILL, SIGTERM, or the endpoint's withdrawal).
    fault: Instant,
    /// When the Service stopped sending new connections to the victim.
    dropped: Instant,
}

impl Measured {
    fn failed(&self) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.error.is_some()).collect()
    }

    fn report(&self, phase: &str, proxy_refused: u64) {
        let failed = self.failed();
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for c in &failed {
            *reasons
                .entry(reason(c.error.as_deref().unwrap_or_default()))
                .or_default() += 1;
        }
        let window = failed
            .iter()
            .map(|c| c.start)
            .min()
            .zip(failed.iter().map(|c| c.end).max());
        eprintln!(
            "[{phase}] {} admission calls, {} failed; the Service dropped the endpoint {:.2} s \
             after the fault; {proxy_refused} connections sent to the victim were refused",
            self.calls.len(),
            failed.len(),
            secs(self.fault, self.dropped),
        );
        if let Some((first, last)) = window {
            eprintln!(
                "[{phase}] failed calls started {:.2} s .. ended {:.2} s after the fault",
                secs(self.fault, first),
                secs(self.fault, last)
            );
        }
        for (r, n) in &reasons {
            eprintln!("[{phase}]   {n} × {r}");
        }
    }

    /// Calls that started once the Service had dropped the endpoint (plus [`SLACK`]).
    fn after_drop(&self) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.start > self.dropped + SLACK)
            .collect()
    }

    /// Failures may be the calls in flight at the fault and those sent until the endpoint
    /// was dropped: none earlier, none later, every one a failed webhook call.
    fn assert_bounded(&self, phase: &str, logs: &str) {
        let failed = self.failed();
        for c in &failed {
            let message = c.error.as_deref().unwrap_or_default();
            assert!(
                message.contains("failed calling webhook"),
                "[{phase}] a failure that is not a failed webhook call: {message}"
            );
            assert!(
                c.end >= self.fault && c.start <= self.dropped + SLACK,
                "[{phase}] a call failed outside the window (started {:.2} s, ended {:.2} s \
                 after the fault; the endpoint was dropped at {:.2} s): {message}\n{logs}",
                secs(self.fault, c.start),
                secs(self.fault, c.end),
                secs(self.fault, self.dropped),
            );
        }
        // At most what was sent in the window, and the calls in flight at the fault.
        let window = secs(self.fault, self.dropped) + SLACK.as_secs_f64();
        let bound = (RATE * window).ceil() as usize + 3;
        assert!(
            failed.len() <= bound,
            "[{phase}] {} failures, more than the {bound} sent in the {window:.2} s window",
            failed.len()
        );
        let after = self.after_drop();
        assert!(
            after.len() as f64 >= RATE * 2.0,
            "[{phase}] admissions continue after the endpoint was dropped: only {} calls",
            after.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_replica_dies_under_admission_traffic() {
    let began = Instant::now();
    let cluster = Cluster::connect().await;
    support::webhook::start_from_nothing(&cluster).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = [free_port(), free_port()];
    let proxy = ServiceProxy::start(&[(ports[0], String::new()), (ports[1], String::new())]);
    // The configuration points at the Service; the leader injects its caBundle.
    let _installed = support::webhook::install(&cluster, proxy.port, dir.path());
    let app = unique("failover");
    support::csr::application(&cluster.client, &app, None).await;
    let who = support::csr::requester(&cluster, Some(&app)).await;
    let mut replicas = Replicas {
        cluster: Cluster::connect().await,
        ports,
        processes: [None, None],
    };
    for i in 0..2 {
        let readyz = replicas.start(i).await;
        proxy.replace(i, &readyz);
    }
    poll("both replicas in rotation", Duration::from_secs(10), || {
        (proxy.stats(0).in_rotation && proxy.stats(1).in_rotation).then_some(())
    })
    .await;
    // Both serve the one serving certificate the leader keeps in its Secret.
    let served = |port: u16| {
        support::webhook::tls_connect(port)
            .and_then(|s| s.ssl().peer_certificate())
            .and_then(|c| c.to_der().ok())
    };
    let same = poll(
        "both replicas to serve the same certificate",
        Duration::from_secs(15),
        || match (served(ports[0]), served(ports[1])) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        },
    )
    .await;
    assert!(!same.is_empty());

    let csrs: Api<CertificateSigningRequest> = Api::all(who.client.clone());
    let pem = csr_pem(&ec_key(), &app, &["Acme"]);
    let run_label = unique("run");
    let apply = |name: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  \
                 name: {name}\n  labels: {{certpair-test/failover: {run_label}}}\nspec:\n  \
                 signerName: {DEFAULT_SIGNER_NAME}\n  usages: [digital signature, client auth]\n  \
                 request: {}\n",
                openssl::base64::encode_block(&pem)
            ),
        )
        .expect("write");
        tokio::task::block_in_place(|| run(who.kubectl().args(["apply", "-f"]).arg(&file)))
    };
    // kubectl itself, through the Service, before anything happens.
    let name = unique("kubectl-before");
    let before = apply(&name);
    assert!(before.status.success(), "{}", stderr(&before));
    let mut kubectl_names = vec![name];
    let mut all_calls: Vec<Call> = Vec::new();

    // Phase 1: SIGKILL.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(csrs.clone(), pem.clone(), run_label.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let victim = busiest(&proxy);
    let live = proxy.stats(victim).live;
    let refused_before = proxy.stats(victim).refused;
    let fault = Instant::now();
    tokio::task::block_in_place(|| replicas.process(victim).kill_hard());
    let killed = Instant::now();
    let dropped = poll(
        "the Service to drop the killed replica",
        Duration::from_secs(5),
        || proxy.left_rotation_after(victim, fault),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let name = unique("kubectl-after-kill");
    let out = apply(&name);
    assert!(
        out.status.success(),
        "kubectl after the kill: {}",
        stderr(&out)
    );
    kubectl_names.push(name);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let phase1 = Measured {
        calls: traffic.await.expect("load"),
        fault,
        dropped,
    };
    eprintln!(
        "[SIGKILL] the victim had {live} open connections through the Service; SIGKILL took \
         {:.2} s to deliver (pkill)",
        secs(fault, killed)
    );
    phase1.report("SIGKILL", proxy.stats(victim).refused - refused_before);
    phase1.assert_bounded("SIGKILL", &replicas.logs());
    all_calls.extend(phase1.calls.iter().cloned());

    // A new replica in its place.
    let readyz = replicas.start(victim).await;
    proxy.replace(victim, &readyz);
    poll(
        "the replacement in rotation",
        Duration::from_secs(10),
        || proxy.stats(victim).in_rotation.then_some(()),
    )
    .await;

    // Phase 2: SIGTERM as the kubelet sends it to the Deployment's pod: the endpoint is
    // withdrawn (pod deleted), preStop sleeps, then SIGTERM drains the kept-alive
    // connections the apiserver still holds to it.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(csrs.clone(), pem.clone(), run_label.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let victim = busiest(&proxy);
    let withdrawn = Instant::now();
    proxy.withdraw(victim);
    let dropped = poll(
        "the Service to drop the withdrawn replica",
        Duration::from_secs(5),
        || proxy.left_rotation_after(victim, withdrawn),
    )
    .await;
    tokio::time::sleep(PRE_STOP.saturating_sub(withdrawn.elapsed())).await;
    let live = proxy.stats(victim).live;
    let term = Instant::now();
    replicas.process(victim).send_term();
    let status =
        tokio::task::block_in_place(|| replicas.process(victim).wait_exit(Duration::from_secs(15)));
    let exited = Instant::now();
    assert!(
        status.is_some_and(|s| s.success()),
        "the replica exits 0 after SIGTERM: {status:?}\n{}",
        replicas.logs()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let phase2 = Measured {
        calls: traffic.await.expect("load"),
        fault: withdrawn,
        dropped,
    };
    eprintln!(
        "[SIGTERM after withdrawal + preStop] {live} connections still open to the victim at \
         SIGTERM; it exited {:.2} s after SIGTERM",
        secs(term, exited)
    );
    phase2.report("SIGTERM after withdrawal + preStop", 0);
    assert!(
        phase2.failed().is_empty(),
        "graceful termination failed admissions: {:?}\n{}",
        phase2.failed(),
        replicas.logs()
    );
    assert!(phase2.after_drop().len() as f64 >= RATE * 4.0);
    all_calls.extend(phase2.calls.iter().cloned());

    let readyz = replicas.start(victim).await;
    proxy.replace(victim, &readyz);
    poll(
        "the replacement in rotation",
        Duration::from_secs(10),
        || proxy.stats(victim).in_rotation.then_some(()),
    )
    .await;

    // Phase 3: SIGTERM with nothing before it: the Service learns of it only from /readyz.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(csrs.clone(), pem.clone(), run_label.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let victim = busiest(&proxy);
    let refused_before = proxy.stats(victim).refused;
    let term = Instant::now();
    replicas.process(victim).send_term();
    let dropped = poll(
        "the Service to drop the terminated replica",
        Duration::from_secs(20),
        || proxy.left_rotation_after(victim, term),
    )
    .await;
    let status =
        tokio::task::block_in_place(|| replicas.process(victim).wait_exit(Duration::from_secs(15)));
    let exited = Instant::now();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let phase3 = Measured {
        calls: traffic.await.expect("load"),
        fault: term,
        dropped,
    };
    eprintln!(
        "[SIGTERM alone] it exited {:.2} s after SIGTERM",
        secs(term, exited)
    );
    phase3.report(
        "SIGTERM alone",
        proxy.stats(victim).refused - refused_before,
    );
    phase3.assert_bounded("SIGTERM alone", &replicas.logs());
    all_calls.extend(phase3.calls.iter().cloned());

    // Does the apiserver retry a connection that fails? A Service whose endpoints lag keeps
    // the dead replica in rotation; every connection is cut, so the apiserver must open new
    // ones for a burst of concurrent calls, and about half of them go to the dead replica.
    proxy.keep_stale(victim, true);
    proxy.cut_all();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused_before = proxy.stats(victim).refused;
    let burst = 10;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..burst {
        let (csrs, pem, run_label) = (csrs.clone(), pem.clone(), run_label.clone());
        set.spawn(async move { create(&csrs, pem, &run_label).await });
    }
    let probe: Vec<Call> = set.join_all().await;
    proxy.keep_stale(victim, false);
    let refused = proxy.stats(victim).refused - refused_before;
    let probe_failed = probe.iter().filter(|c| c.error.is_some()).count();
    eprintln!(
        "[retry probe] {burst} concurrent calls on fresh connections: {probe_failed} failed; the \
         Service sent {refused} connections to the dead replica ({:?})",
        probe
            .iter()
            .filter_map(|c| c.error.as_deref().map(reason))
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(refused > 0, "the probe reached the dead replica");
    // Each failure is a connection sent to the dead replica (the apiserver retried none, in
    // the runs so far: failed == refused).
    assert!(probe_failed as u64 <= refused, "{probe:?}");
    all_calls.extend(probe);

    eprintln!(
        "connections through the Service: replica slot 0: {:?}, slot 1: {:?}; with no \
         endpoint: {}",
        proxy.stats(0),
        proxy.stats(1),
        proxy.no_backend()
    );

    // Every admitted CSR is issued; no refused one was stored (failurePolicy: Fail).
    let admin: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let selector = format!("certpair-test/failover={run_label}");
    let admitted: Vec<&str> = all_calls
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| c.name.as_str())
        .chain(kubectl_names.iter().map(String::as_str))
        .collect();
    let stored = poll_issued(&admin, &selector, admitted.len()).await;
    for name in &admitted {
        assert!(
            stored.get(*name).is_some_and(|issued| *issued),
            "admitted CSR {name} was not issued"
        );
    }
    for c in all_calls.iter().filter(|c| c.error.is_some()) {
        assert!(
            !stored.contains_key(&c.name),
            "refused CSR {} was stored",
            c.name
        );
    }
    eprintln!(
        "{} CSRs admitted and issued; the test took {:.1} s",
        admitted.len(),
        began.elapsed().as_secs_f64()
    );
}

/// The CSRs with `selector` and whether each holds a certificate, once all `expected` do
/// (bounded).
async fn poll_issued(
    api: &Api<CertificateSigningRequest>,
    selector: &str,
    expected: usize,
) -> BTreeMap<String, bool> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list CSRs");
        let stored: BTreeMap<String, bool> = list
            .items
            .iter()
            .map(|c| {
                let issued = c
                    .status
                    .as_ref()
                    .and_then(|s| s.certificate.as_ref())
                    .is_some_and(|b| !b.0.is_empty());
                (c.metadata.name.clone().unwrap_or_default(), issued)
            })
            .collect();
        let issued = stored.values().filter(|i| **i).count();
        if issued >= expected || tokio::time::Instant::now() > deadline {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
