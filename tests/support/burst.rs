//! A burst of CSRs for certpair's signer, made to survive faults: each is created again until
//! the apiserver takes it (a create whose answer was lost is found as AlreadyExists), and the
//! checks at the end prove that every one got exactly one certificate, for its own key.

use std::{collections::HashSet, time::Duration};

use certpair::api::DEFAULT_SIGNER_NAME;
use futures::{StreamExt, stream};
use k8s_openapi::{
    ByteString,
    api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec},
};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta, PostParams},
};
use openssl::{
    pkey::{PKey, Public},
    x509::X509,
};

use super::{
    csr::{Outcome, outcome},
    csr_pem, ec_key, unique,
};

const BATCH_LABEL: &str = "certpair.dev/test-batch";

pub struct Request {
    pub name: String,
    pub pem: Vec<u8>,
    pub public: PKey<Public>,
}

pub struct Burst {
    pub batch: String,
    pub requests: Vec<Request>,
}

impl Burst {
    /// `n` requests for `CN=<app>, O=Acme`, each with a key of its own, prepared beforehand so
    /// the burst itself is only API calls.
    pub fn new(app: &str, n: usize) -> Burst {
        let batch = unique("burst");
        let requests = (0..n)
            .map(|i| {
                let key = ec_key();
                let public = PKey::public_key_from_pem(&key.public_key_to_pem().expect("pem"))
                    .expect("public key");
                Request {
                    name: format!("{batch}-{i:04}"),
                    pem: csr_pem(&key, app, &["Acme"]),
                    public,
                }
            })
            .collect();
        Burst { batch, requests }
    }

    fn object(&self, request: &Request) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some(request.name.clone()),
                labels: Some([(BATCH_LABEL.to_string(), self.batch.clone())].into()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(request.pem.clone()),
                signer_name: DEFAULT_SIGNER_NAME.into(),
                usages: Some(vec!["digital signature".into(), "client auth".into()]),
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            status: None,
        }
    }

    /// Creates every request as `who`, `concurrency` at a time. A failed or hung create (the
    /// apiserver or etcd is down) is tried again, for up to two minutes per request; returns
    /// how many creates had to be retried.
    pub async fn create_all(&self, who: &Client, concurrency: usize) -> usize {
        let api: Api<CertificateSigningRequest> = Api::all(who.clone());
        let retried = stream::iter(self.requests.iter().map(|request| {
            let api = api.clone();
            let csr = self.object(request);
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                let mut retries = 0;
                loop {
                    let attempt = tokio::time::timeout(
                        Duration::from_secs(10),
                        api.create(&PostParams::default(), &csr),
                    )
                    .await;
                    let error = match attempt {
                        Ok(Ok(_)) => return retries,
                        Ok(Err(kube::Error::Api(s))) if s.code == 409 => return retries,
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "timed out".to_string(),
                    };
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "creating {} kept failing: {error}",
                        request.name
                    );
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }))
        .buffer_unordered(concurrency)
        .collect::<Vec<usize>>()
        .await;
        retried.iter().filter(|&&r| r > 0).count()
    }

    async fn list(&self, admin: &Client) -> Option<Vec<CertificateSigningRequest>> {
        let api: Api<CertificateSigningRequest> = Api::all(admin.clone());
        let selector = format!("{BATCH_LABEL}={}", self.batch);
        let listed = tokio::time::timeout(
            Duration::from_secs(10),
            api.list(&ListParams::default().labels(&selector)),
        )
        .await;
        match listed {
            Ok(Ok(list)) => Some(list.items),
            _ => None,
        }
    }

    /// How many of the burst show a certificate now (`None` while the apiserver cannot say).
    pub async fn count_issued(&self, admin: &Client) -> Option<usize> {
        Some(
            self.list(admin)
                .await?
                .iter()
                .filter(|c| matches!(outcome(c), Some(Outcome::Issued(_))))
                .count(),
        )
    }

    /// Waits (bounded) until `at_least` of the burst are issued.
    pub async fn wait_issued(&self, admin: &Client, at_least: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let done = self.count_issued(admin).await;
            if done.is_some_and(|d| d >= at_least) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {done:?} of {} issued after {timeout:?} (waiting for {at_least})",
                self.requests.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the burst's CSRs: thousands left behind would slow every later controller's
    /// start (its initial list) in this test run.
    pub async fn delete_all(&self, admin: &Client) {
        let api: Api<CertificateSigningRequest> = Api::all(admin.clone());
        let selector = format!("{BATCH_LABEL}={}", self.batch);
        api.delete_collection(
            &kube::api::DeleteParams::default(),
            &ListParams::default().labels(&selector),
        )
        .await
        .expect("delete the burst");
    }

    /// Exactly one certificate each: every CSR carries one leaf for its own key, and no serial
    /// appears twice (a second signing would have had to replace a certificate).
    pub async fn assert_exactly_one_certificate_each(&self, admin: &Client) {
        let listed = self.list(admin).await.expect("list the burst");
        assert_eq!(
            listed.len(),
            self.requests.len(),
            "every request exists once"
        );
        let by_name: std::collections::HashMap<&str, &CertificateSigningRequest> = listed
            .iter()
            .map(|c| (c.metadata.name.as_deref().unwrap_or(""), c))
            .collect();
        let mut serials = HashSet::new();
        for request in &self.requests {
            let csr = by_name
                .get(request.name.as_str())
                .unwrap_or_else(|| panic!("{} missing", request.name));
            let Some(Outcome::Issued(chain)) = outcome(csr) else {
                panic!("{} not issued", request.name)
            };
            let certs = X509::stack_from_pem(&chain).expect("chain");
            assert!(
                certs[0]
                    .public_key()
                    .expect("public key")
                    .public_eq(&request.public),
                "{}: certificate for another key",
                request.name
            );
            let serial = certs[0]
                .serial_number()
                .to_bn()
                .expect("bn")
                .to_hex_str()
                .expect("hex")
                .to_string();
            assert!(
                serials.insert(serial),
                "{}: serial issued twice",
                request.name
            );
        }
    }
}
