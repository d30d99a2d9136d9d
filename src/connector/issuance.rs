//! Issuance through native CSRs: the connector creates a CertificateSigningRequest as its
//! ServiceAccount, the controller approves and signs it like any other, and the connector
//! waits for the outcome. One watch of the connector's own CSRs serves every waiter, so a
//! pairing costs the apiserver a create and nothing per poll.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec},
};
use kube::{
    Api, Client, ResourceExt,
    api::ObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{
    api::{CONNECTOR_CSR_LABEL, NAME_LABEL},
    k8s::post_params,
};

/// How a CSR ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `.status.certificate`: the leaf, then the CA chain (PEM).
    Issued(Vec<u8>),
    Denied {
        reason: String,
        message: String,
    },
    Failed {
        reason: String,
        message: String,
    },
}

/// The outcome a CSR shows, if it has one yet.
pub fn outcome(csr: &CertificateSigningRequest) -> Option<Outcome> {
    let status = csr.status.as_ref()?;
    if let Some(cert) = status.certificate.as_ref().filter(|c| !c.0.is_empty()) {
        return Some(Outcome::Issued(cert.0.clone()));
    }
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        let reason = c.reason.clone().unwrap_or_default();
        let message = c.message.clone().unwrap_or_default();
        match c.type_.as_str() {
            "Denied" => return Some(Outcome::Denied { reason, message }),
            "Failed" => return Some(Outcome::Failed { reason, message }),
            _ => {}
        }
    }
    None
}

type Waiters = HashMap<String, watch::Sender<Option<Outcome>>>;

pub struct Issuer {
    client: Client,
    pub signer_name: String,
    /// How long a request waits for its certificate.
    pub timeout: Duration,
    waiters: Mutex<Waiters>,
}

/// What the connector puts on a CSR it creates.
pub struct NewCsr<'a> {
    pub name: &'a str,
    pub pem: &'a [u8],
    pub rsa: bool,
    pub annotations: BTreeMap<String, String>,
}

impl Issuer {
    pub fn new(client: Client, signer_name: String, timeout: Duration) -> Self {
        Self {
            client,
            signer_name,
            timeout,
            waiters: Mutex::default(),
        }
    }

    fn api(&self) -> Api<CertificateSigningRequest> {
        Api::all(self.client.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        match self.waiters.lock() {
            Ok(w) => w,
            // A panicking holder cannot leave a map of senders half-updated.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Starts waiting for CSR `name` (before creating or reading it, so no update is missed).
    pub fn register(self: &Arc<Self>, name: &str) -> Waiter {
        let rx = self
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe();
        Waiter {
            issuer: self.clone(),
            name: name.to_owned(),
            rx,
        }
    }

    /// Creates the CSR: `true` when this call created it, `false` when it existed already.
    pub async fn create(&self, csr: NewCsr<'_>) -> Result<bool, kube::Error> {
        let mut usages = vec!["digital signature".to_owned()];
        if csr.rsa {
            usages.push("key encipherment".into());
        }
        usages.push("client auth".into());
        let object = CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some(csr.name.to_owned()),
                labels: Some(BTreeMap::from([
                    (NAME_LABEL.0.to_owned(), NAME_LABEL.1.to_owned()),
                    (
                        CONNECTOR_CSR_LABEL.0.to_owned(),
                        CONNECTOR_CSR_LABEL.1.to_owned(),
                    ),
                ])),
                annotations: Some(csr.annotations),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(csr.pem.to_vec()),
                signer_name: self.signer_name.clone(),
                usages: Some(usages),
                ..Default::default()
            },
            status: None,
        };
        match self.api().create(&post_params(), &object).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<CertificateSigningRequest>, kube::Error> {
        self.api().get_opt(name).await
    }

    /// Passes every outcome of the connector's CSRs to whoever waits for it. Runs until
    /// dropped.
    pub async fn watch(self: Arc<Self>) {
        let config = watcher::Config::default()
            .labels(&format!(
                "{}={}",
                CONNECTOR_CSR_LABEL.0, CONNECTOR_CSR_LABEL.1
            ))
            .fields(&format!("spec.signerName={}", self.signer_name))
            .page_size(50);
        let mut events = watcher(self.api(), config)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(csr) => {
                    let Some(outcome) = outcome(&csr) else {
                        continue;
                    };
                    if let Some(tx) = self.lock().get(&csr.name_any()) {
                        tx.send_replace(Some(outcome));
                    }
                }
                Err(e) => warn!(error = %e, "watching the connector's CSRs failed; retrying"),
            }
        }
    }
}

/// One wait for a CSR's outcome. Dropping it stops waiting.
pub struct Waiter {
    issuer: Arc<Issuer>,
    name: String,
    rx: watch::Receiver<Option<Outcome>>,
}

impl Waiter {
    /// The outcome, once the watch reports one, or `None` after the issuer's timeout. A last
    /// read covers a watch that is behind.
    pub async fn wait(mut self) -> Result<Option<Outcome>, kube::Error> {
        let timeout = self.issuer.timeout;
        // The watch's guard is dropped before the next await (it is not `Send`).
        let reported = tokio::time::timeout(timeout, self.rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().map(|outcome| outcome.clone()));
        if let Some(outcome) = reported {
            return Ok(outcome);
        }
        debug!(csr = %self.name, "no outcome reported in time; reading the CSR");
        Ok(self
            .issuer
            .get(&self.name)
            .await?
            .as_ref()
            .and_then(outcome))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut waiters = self.issuer.lock();
        // This receiver still counts while it is being dropped.
        if waiters
            .get(&self.name)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            waiters.remove(&self.name);
        }
    }
}
