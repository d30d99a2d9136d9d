//! The connector's one service: token redemption, issuance, management info, renewal and
//! revocation. The REST adapter (and the GraphQL one to come) only translate wire shapes to
//! these calls and [`ConnectorError`] to their error shapes.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::{ObjectRef, Store},
};
use openssl::x509::X509;
use serde_json::json;
use tracing::{info, warn};

use super::{
    ConnectorError,
    issuance::{self, Issuer, NewCsr, Outcome},
    tokens::{Tokens, answered_again, expire_after},
};
use crate::{
    api::{
        Application, FIELD_MANAGER, RENEWS_ANNOTATION, Revocation, RevocationSpec,
        TOKEN_REQUEST_ANNOTATION, TokenState, TokenStep,
    },
    k8s::post_params,
    pki::{
        authority::unix,
        csr::{KeyInfo, SubjectAttribute, certificate_subject, parse_pem_for_admission},
        now_unix, serial_hex, sha256_hex,
    },
    policy::{
        self, ApplicationRules, Defaults, DenyReason, RequestSpec,
        pairing::{
            PairingRefusal, announced_subject, check_identity, check_pairing, check_same_subject,
        },
    },
    slot::Slot,
    telemetry::{ConnectorMetrics, IssueLabels},
    tls::{PeerCertificate, TrustSlot},
    token,
};

/// Where the connector's answers point clients (absolute URLs, from flags).
#[derive(Debug, Clone)]
pub struct Urls {
    /// Token-secured paths (`signingRequests/info`, `certificates`).
    pub external: String,
    /// Certificate-secured paths (`management/info`, `renewals`, `revocations`).
    pub certificate_secured: String,
    /// Kyma's application gateway, for `eventsUrl` and friends (certpair does not serve them).
    pub gateway: String,
    /// Compass's Director (`managementPlaneInfo.directorURL`), when set.
    pub director: Option<String>,
}

impl Urls {
    pub fn info(&self, token: &str) -> String {
        format!(
            "{}/v1/applications/signingRequests/info?token={token}",
            self.external
        )
    }
}

/// The CSR info of one Application: what a client must request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrInfo {
    pub subject: String,
    pub key_algorithm: &'static str,
}

/// The answer of `signingRequests/info`.
#[derive(Debug, Clone)]
pub struct SigningInfo {
    pub application: String,
    pub certificate_token: String,
    pub csr: CsrInfo,
}

/// A certificate handed out: PEM of the leaf, and of the CA chain.
#[derive(Debug, Clone)]
pub struct Certificates {
    pub client: Vec<u8>,
    pub ca_chain: Vec<u8>,
}

impl Certificates {
    fn from_chain(pem: &[u8]) -> Result<Self, ConnectorError> {
        let certs = X509::stack_from_pem(pem).map_err(|e| {
            ConnectorError::Internal(format!("the issued certificate does not parse: {e}"))
        })?;
        let mut it = certs.iter();
        let Some(leaf) = it.next() else {
            return Err(ConnectorError::Internal(
                "the CSR holds no certificate".into(),
            ));
        };
        let client = leaf.to_pem().map_err(internal)?;
        let mut ca_chain = Vec::new();
        for c in it {
            ca_chain.extend(c.to_pem().map_err(internal)?);
        }
        Ok(Self { client, ca_chain })
    }

    /// Client certificate, then the CA chain (Kyma's `crt`).
    pub fn full_chain(&self) -> Vec<u8> {
        [self.client.as_slice(), self.ca_chain.as_slice()].concat()
    }
}

/// The verified client certificate of an mTLS call.
#[derive(Debug, Clone)]
pub struct Identity {
    pub application: String,
    pub rules: ApplicationRules,
    pub subject: Vec<SubjectAttribute>,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
}

impl Identity {
    /// When renewal is advised: once 70 % of the lifetime has passed (the runtime agent's
    /// rule: renew with 30 % left).
    pub fn renew_after(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 7 / 10
    }
}

pub struct Service {
    pub client: Client,
    pub defaults: Defaults,
    pub apps: Store<Application>,
    pub tokens: Tokens,
    pub revocations: Store<Revocation>,
    pub issuer: Arc<Issuer>,
    pub urls: Urls,
    pub metrics: Arc<ConnectorMetrics>,
    /// The signing CA's CRL, DER, as the leader published it.
    pub crl: Arc<Slot<Vec<u8>>>,
    /// The signing CA bundle: client certificates must be issued directly by one of these.
    pub trust: Arc<TrustSlot>,
    heartbeats: Mutex<HashMap<String, Instant>>,
}

/// An Application's last-seen time is written at most this often.
const HEARTBEAT_WRITE_EVERY: Duration = Duration::from_secs(60);
/// An Application counts as seen for this long after its last call.
const SEEN_RECENTLY: Duration = Duration::from_secs(300);

impl Service {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        defaults: Defaults,
        apps: Store<Application>,
        tokens: Tokens,
        revocations: Store<Revocation>,
        issuer: Arc<Issuer>,
        urls: Urls,
        metrics: Arc<ConnectorMetrics>,
        crl: Arc<Slot<Vec<u8>>>,
        trust: Arc<TrustSlot>,
    ) -> Self {
        Self {
            client,
            defaults,
            apps,
            tokens,
            revocations,
            issuer,
            urls,
            metrics,
            crl,
            trust,
            heartbeats: Mutex::default(),
        }
    }

    fn application(&self, name: &str) -> Option<ApplicationRules> {
        self.apps
            .get(&ObjectRef::new(name))
            .map(|a| (&a.spec).into())
    }

    /// What a client of `application` must request, or why it cannot pair.
    pub fn csr_info(&self, application: &str) -> Result<CsrInfo, ConnectorError> {
        let Some(app) = self.application(application) else {
            return Err(ConnectorError::Refused {
                reason: DenyReason::UnknownApplication,
                message: format!(
                    "Application {application:?} does not exist; the TokenRequest cannot be served"
                ),
            });
        };
        if app.disabled {
            return Err(ConnectorError::Refused {
                reason: DenyReason::ApplicationDisabled,
                message: format!("Application {application:?} is disabled (spec.disabled: true)"),
            });
        }
        Ok(self.csr_info_of(application, &app))
    }

    fn csr_info_of(&self, application: &str, app: &ApplicationRules) -> CsrInfo {
        CsrInfo {
            subject: policy::pairing::subject_string(&announced_subject(
                application,
                app,
                &self.defaults,
            )),
            key_algorithm: policy::pairing::key_algorithm(&app.keys),
        }
    }

    /// `signingRequests/info`: redeems the first token and hands out the certificate token.
    pub async fn signing_info(&self, token: Option<&str>) -> Result<SigningInfo, ConnectorError> {
        let tr = self.tokens.find(token, TokenStep::Info).await?;
        let token = token.unwrap_or_default();
        let application = tr.spec.application.clone();
        let csr = self.csr_info(&application)?;
        // Derived from the info token, so a retry after a lost answer gets the same one.
        let next = token::derive(token, &tr.uid().unwrap_or_default()).map_err(internal)?;
        let next_hash = token::hash(&next);
        let info_hash = token::hash(token);
        let ttl = tr.spec.ttl_seconds;
        self.tokens
            .redeem(&tr, token, TokenStep::Info, |current| {
                // Answered before (the answer was lost, or a concurrent call won): the same
                // certificate token again, and nothing to write.
                if answered_again(current, &info_hash, TokenStep::Info) {
                    return None;
                }
                let until = expire_after(ttl);
                Some(json!({
                    "state": TokenState::Ready.as_str(),
                    "step": "Certificate",
                    "token": null,
                    // It carries the first token, now used.
                    "url": null,
                    "tokenHash": next_hash,
                    "infoTokenHash": info_hash,
                    "expireAfter": until,
                    "message": format!("signingRequests/info answered; the certificate token is good until {}", until.0),
                }))
            })
            .await?;
        info!(token_request = %tr.name_any(), namespace = %tr.namespace().unwrap_or_default(), %application, "CSR info handed out");
        Ok(SigningInfo {
            application,
            certificate_token: next,
            csr,
        })
    }

    /// `certificates`: signs a CSR with the certificate token. The CSR is checked like the
    /// admission webhook checks it (everything but the RSA prime-power test, a modular
    /// exponentiation of 3 ms at 2,048 bits and 135 ms at 8,192 that anyone holding a token or
    /// a certificate could make the connector run on made-up keys); the controller runs that
    /// test too before it approves.
    ///
    /// The first call that passes the checks creates the pairing's one CSR (named after the
    /// TokenRequest), which fixes the key; a retry with the same token and key picks up that
    /// CSR's certificate; the first call that receives the certificate marks the token used.
    pub async fn issue(
        &self,
        token: Option<&str>,
        csr_pem: &[u8],
    ) -> Result<Certificates, ConnectorError> {
        let tr = self.tokens.find(token, TokenStep::Certificate).await?;
        let token = token.unwrap_or_default();
        let application = tr.spec.application.clone();
        let parsed =
            parse_pem_for_admission(csr_pem).map_err(|e| refused(policy::unreadable(&e)))?;
        let usages = policy::pairing::usages(&parsed.key);
        let checked = check_request(&parsed, &usages)?;
        check_pairing(
            &checked,
            &application,
            self.application(&application).as_ref(),
            &self.defaults,
        )
        .map_err(pairing_refused)?;

        // One CSR per TokenRequest, named after it: creating it is the claim (the apiserver
        // creates a name once), so of racing callers exactly one key gets a CSR, with no write
        // to the TokenRequest on the way.
        let name = tr
            .status
            .as_ref()
            .and_then(|s| s.certificate_signing_request.clone())
            .unwrap_or_else(|| pairing_csr_name(&application, &tr));
        let started = Instant::now();
        let annotations = BTreeMap::from([(
            TOKEN_REQUEST_ANNOTATION.to_owned(),
            format!("{}/{}", tr.namespace().unwrap_or_default(), tr.name_any()),
        )]);
        let outcome = match self
            .obtain(&name, csr_pem, &parsed, annotations, &application)
            .await
        {
            Err(ObtainError::OtherKey) => {
                return Err(ConnectorError::InvalidToken(Some(format!(
                    "It has been used to request a certificate for another key (CSR {name})."
                ))));
            }
            Err(ObtainError::Connector(e)) => return Err(e),
            Ok(outcome) => outcome,
        };
        let certs = self.settle(&name, outcome).await;
        match &certs {
            Ok(certs) => {
                let serial = X509::from_pem(&certs.client)
                    .ok()
                    .and_then(|c| serial_hex(&c).ok());
                // Marked used once, by the first call that holds the certificate; a retry
                // by the same key fetches it again.
                self.tokens
                    .redeem(&tr, token, TokenStep::Certificate, |current| {
                        let used = current
                            .status
                            .as_ref()
                            .is_some_and(|s| s.state == Some(TokenState::Used));
                        (!used).then(|| json!({
                            "state": TokenState::Used.as_str(),
                            "step": null,
                            "token": null,
                            "url": null,
                            "serialNumber": serial,
                            "certificateSigningRequest": name,
                            "endedAt": Time(Timestamp::now()),
                            "message": format!("certificate serial {} issued through CSR {name}", serial.as_deref().unwrap_or("?")),
                        }))
                    })
                    .await?;
                self.issued("pairing", started);
            }
            Err(ConnectorError::Pending { .. }) => {
                // The token now has a CSR waiting: record it, so the TokenRequest shows which
                // and it is not expired while the certificate is still to be fetched.
                let claimed = self
                    .tokens
                    .redeem(&tr, token, TokenStep::Certificate, |current| {
                        let recorded = current
                            .status
                            .as_ref()
                            .is_some_and(|s| s.certificate_signing_request.is_some());
                        (!recorded).then(|| {
                            json!({
                                "certificateSigningRequest": name,
                                "message": format!("CSR {name} awaits its certificate; a retry with the certificate token and the same key fetches it"),
                            })
                        })
                    })
                    .await;
                if let Err(e) = claimed {
                    warn!(error = %e, csr = %name, "recording the pending CSR on the TokenRequest failed");
                }
            }
            Err(ConnectorError::Denied {
                reason, message, ..
            }) => {
                let why = format!("CSR {name} was refused: {reason}: {message}");
                if let Err(e) = self.tokens.finish(&tr, TokenState::Error, &why, None).await {
                    warn!(error = %e, "recording the refusal on the TokenRequest failed");
                }
            }
            Err(_) => {}
        }
        certs
    }

    /// Creates CSR `name` for `csr_pem`, or joins the one that exists (a retry), which must
    /// carry the same key; then its outcome: at once if it has one, else when the watch
    /// reports it, or `None` after the issuer's timeout.
    async fn obtain(
        &self,
        name: &str,
        csr_pem: &[u8],
        parsed: &crate::pki::csr::ParsedRequest,
        annotations: BTreeMap<String, String>,
        application: &str,
    ) -> Result<Option<Outcome>, ObtainError> {
        let waiter = self.issuer.register(name);
        let mut existing = self.issuer.get(name).await.map_err(ConnectorError::from)?;
        if existing.is_none() {
            let created = self
                .issuer
                .create(NewCsr {
                    name,
                    pem: csr_pem,
                    rsa: matches!(parsed.key, KeyInfo::Rsa { .. }),
                    annotations,
                })
                .await
                .map_err(ConnectorError::from)?;
            if created {
                info!(csr = %name, %application, "CSR created");
            } else {
                existing = self.issuer.get(name).await.map_err(ConnectorError::from)?;
            }
        }
        if let Some(existing) = existing {
            // Whoever created the CSR first chose the key; a retry must send the same one.
            let same_key = parse_pem_for_admission(&existing.spec.request.0)
                .ok()
                .and_then(|p| p.public_key.public_key_to_der().ok())
                == parsed.public_key.public_key_to_der().ok();
            if !same_key {
                return Err(ObtainError::OtherKey);
            }
            if let Some(outcome) = issuance::outcome(&existing) {
                return Ok(Some(outcome));
            }
        }
        Ok(waiter.wait().await.map_err(ConnectorError::from)?)
    }

    /// Turns a CSR's outcome into certificates or the error a client sees.
    async fn settle(
        &self,
        name: &str,
        outcome: Option<Outcome>,
    ) -> Result<Certificates, ConnectorError> {
        match outcome {
            Some(Outcome::Issued(pem)) => Certificates::from_chain(&pem),
            Some(Outcome::Denied { reason, message } | Outcome::Failed { reason, message }) => {
                Err(ConnectorError::Denied {
                    csr: name.to_owned(),
                    reason,
                    message,
                })
            }
            None => Err(ConnectorError::Pending {
                csr: name.to_owned(),
                waited: self.issuer.timeout,
            }),
        }
    }

    fn issued(&self, kind: &'static str, started: Instant) {
        self.metrics
            .certificates
            .get_or_create(&IssueLabels { kind })
            .inc();
        self.metrics
            .issue_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// Who is calling over mTLS: a verified, unexpired, unrevoked certificate of an existing,
    /// enabled Application whose subject is still what that Application requires.
    pub fn identify(&self, peer: Option<&PeerCertificate>) -> Result<Identity, ConnectorError> {
        let Some(peer) = peer else {
            return Err(ConnectorError::ClientCertificate(
                "this path needs the client certificate certpair issued (e.g. curl --cert tls.crt --key tls.key)".into(),
            ));
        };
        let cert = &peer.certificate;
        let not_after = unix(cert.not_after()).map_err(internal)?;
        let not_before = unix(cert.not_before()).map_err(internal)?;
        if not_after <= now_unix() {
            return Err(ConnectorError::ClientCertificate(format!(
                "the client certificate expired at {}; pair again with a new token",
                timestamp(not_after)
            )));
        }
        if let Err(why) = &peer.verified {
            return Err(ConnectorError::ClientCertificate(format!(
                "the client certificate was not issued by certpair's signing CA ({why})"
            )));
        }
        // Checked again per request, against the bundle as it is now (a session resumed or a
        // connection kept alive since the bundle changed), and for the direct issuer: a chain
        // through another CA under a common root is not certpair's.
        let issued_by_certpair = self
            .trust
            .get()
            .is_some_and(|cas| cas.iter().any(|ca| crate::pki::signed_by(cert, ca)));
        if !issued_by_certpair {
            return Err(ConnectorError::ClientCertificate(
                "the client certificate was not issued by certpair's signing CA".into(),
            ));
        }
        let der = cert.to_der().map_err(internal)?;
        let serial = serial_hex(cert).map_err(internal)?;
        if self.is_revoked(&serial, &sha256_hex(&der)) {
            return Err(ConnectorError::Revoked);
        }
        let subject = certificate_subject(&der).map_err(|e| {
            ConnectorError::ClientCertificate(format!(
                "the client certificate's subject cannot be read: {e}"
            ))
        })?;
        let (application, rules) =
            check_identity(&subject, |name| self.application(name), &self.defaults)
                .map_err(|d| ConnectorError::Forbidden(d.to_string()))?;
        Ok(Identity {
            application: application.to_owned(),
            rules,
            subject,
            serial,
            not_before,
            not_after,
        })
    }

    fn is_revoked(&self, serial: &str, sha256: &str) -> bool {
        let serial = normalize_serial(serial);
        self.revocations
            .find(|r| {
                r.spec
                    .serial_number
                    .as_deref()
                    .is_some_and(|s| normalize_serial(s) == serial)
                    || r.spec
                        .sha256
                        .as_deref()
                        .is_some_and(|h| h.eq_ignore_ascii_case(sha256))
            })
            .is_some()
    }

    /// `management/info`: what the identified client may do next. Also its heartbeat.
    pub fn management_info(&self, identity: &Identity) -> CsrInfo {
        self.heartbeat(&identity.application);
        self.csr_info_of(&identity.application, &identity.rules)
    }

    /// Records that `application` called, in its status at most once a minute.
    fn heartbeat(&self, application: &str) {
        let now = Instant::now();
        let write = {
            let mut seen = match self.heartbeats.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            let due = seen
                .get(application)
                .is_none_or(|last| now.duration_since(*last) >= HEARTBEAT_WRITE_EVERY);
            if due {
                seen.insert(application.to_owned(), now);
            }
            seen.retain(|_, last| {
                now.duration_since(*last) < SEEN_RECENTLY.max(HEARTBEAT_WRITE_EVERY)
            });
            self.metrics
                .applications_seen
                .set(i64::try_from(seen.len()).unwrap_or(i64::MAX));
            due
        };
        if !write {
            return;
        }
        let api: Api<Application> = Api::all(self.client.clone());
        let name = application.to_owned();
        tokio::spawn(async move {
            let patch = json!({ "status": { "lastSeen": Time(Timestamp::now()) } });
            if let Err(e) = api
                .patch_status(&name, &patch_params(), &Patch::Merge(&patch))
                .await
            {
                warn!(application = %name, error = %e, "recording the heartbeat failed");
            }
        });
    }

    /// `renewals`: a new certificate for the identified client, same subject, new key allowed.
    pub async fn renew(
        &self,
        identity: &Identity,
        csr_pem: &[u8],
    ) -> Result<Certificates, ConnectorError> {
        let parsed =
            parse_pem_for_admission(csr_pem).map_err(|e| refused(policy::unreadable(&e)))?;
        let usages = policy::pairing::usages(&parsed.key);
        let checked = check_request(&parsed, &usages)?;
        check_same_subject(&checked, &identity.subject).map_err(refused)?;
        check_pairing(
            &checked,
            &identity.application,
            Some(&identity.rules),
            &self.defaults,
        )
        .map_err(pairing_refused)?;
        // One renewal per certificate: a retry (same key) joins it, anything else is told to
        // renew with the certificate it produced. So a client cannot mint certificates in a
        // loop with one certificate.
        let name = format!(
            "renew-{}-{}",
            identity.application,
            identity.serial.to_lowercase()
        );
        let started = Instant::now();
        let annotations = BTreeMap::from([(RENEWS_ANNOTATION.to_owned(), identity.serial.clone())]);
        let outcome = match self
            .obtain(&name, csr_pem, &parsed, annotations, &identity.application)
            .await
        {
            Err(ObtainError::OtherKey) => {
                return Err(ConnectorError::Conflict(format!(
                    "this certificate (serial {}) has been renewed already with another key (CSR {name}); renew with the certificate that renewal gave",
                    identity.serial
                )));
            }
            Err(ObtainError::Connector(e)) => return Err(e),
            Ok(outcome) => outcome,
        };
        let certs = self.settle(&name, outcome).await?;
        self.issued("renewal", started);
        Ok(certs)
    }

    /// `revocations`: revokes the certificate the client presents. Revoking twice is revoking
    /// once.
    pub async fn revoke(&self, peer: Option<&PeerCertificate>) -> Result<(), ConnectorError> {
        let identity = match self.identify(peer) {
            Err(ConnectorError::Revoked) => return Ok(()),
            other => other?,
        };
        let der = peer
            .map(|p| p.certificate.to_der())
            .transpose()
            .map_err(internal)?
            .unwrap_or_default();
        let sha256 = sha256_hex(&der);
        let spec = RevocationSpec {
            serial_number: Some(identity.serial.clone()),
            sha256: Some(sha256),
            application: Some(identity.application.clone()),
            not_after: Some(Time(
                Timestamp::from_second(identity.not_after).map_err(internal)?,
            )),
            reason: Some("revoked by its holder through the connector".into()),
        };
        create_revocation(&self.client, spec).await?;
        info!(application = %identity.application, serial = %identity.serial, "certificate revoked by its holder");
        Ok(())
    }
}

/// Why [`Service::obtain`] did not get an outcome.
enum ObtainError {
    /// The CSR exists with another key.
    OtherKey,
    Connector(ConnectorError),
}

impl From<ConnectorError> for ObtainError {
    fn from(e: ConnectorError) -> Self {
        Self::Connector(e)
    }
}

/// Creates the Revocation for `spec`, named after what it revokes (so revoking twice is one
/// object; an existing one is success).
pub async fn create_revocation(client: &Client, spec: RevocationSpec) -> Result<(), kube::Error> {
    let name = match (&spec.serial_number, &spec.sha256) {
        (Some(serial), _) => format!("serial-{}", serial.to_lowercase()),
        (None, Some(sha)) => format!("sha256-{}", sha.to_lowercase()),
        (None, None) => {
            return Err(kube::Error::Service(
                "a revocation names a serial number or a SHA-256".into(),
            ));
        }
    };
    let object = Revocation {
        metadata: crate::k8s::owned_meta(&name),
        spec,
    };
    match Api::<Revocation>::all(client.clone())
        .create(&post_params(), &object)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Serials compare as upper-case hex without leading zeros (OpenSSL prints whole bytes, a
/// person may not).
pub fn normalize_serial(serial: &str) -> String {
    let s = serial.trim_start_matches('0').to_uppercase();
    if s.is_empty() { "0".into() } else { s }
}

/// The request-only checks, on the CSR as the connector will create it (these usages, the
/// Application's lifetime).
fn check_request<'r>(
    parsed: &'r crate::pki::csr::ParsedRequest,
    usages: &'r [String],
) -> Result<policy::CheckedRequest<'r>, ConnectorError> {
    policy::check_request(
        parsed,
        RequestSpec {
            usages,
            expiration_seconds: None,
        },
    )
    .map_err(refused)
}

/// The one CSR of a pairing: `pair-<application>-<TokenRequest uid>`.
fn pairing_csr_name(application: &str, tr: &crate::api::TokenRequest) -> String {
    format!(
        "pair-{application}-{}",
        tr.metadata.uid.as_deref().unwrap_or("unknown")
    )
}

/// The policy's refusal in a connector client's terms: policy names the CSR object's field
/// (`spec.request`), a connector client sent "the CSR".
fn refused(d: policy::Denial) -> ConnectorError {
    ConnectorError::Refused {
        reason: d.reason,
        message: d
            .message
            .replace("spec.request's", "the CSR's")
            .replace("spec.request", "CSR"),
    }
}

fn pairing_refused(r: PairingRefusal) -> ConnectorError {
    match r {
        PairingRefusal::OtherApplication(message) => ConnectorError::Forbidden(message),
        PairingRefusal::Denied(d) => refused(d),
    }
}

fn internal(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Internal(e.to_string())
}

fn timestamp(unix: i64) -> String {
    Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}
