//! A certificate authority: load one from PEM (a Secret's `tls.crt` + `tls.key`), generate a
//! self-signed root, and issue certificates by a profile (`profile`). Just over 600 lines:
//! half of it is its tests, which build CAs and leaves in the shapes operators bring.

use std::time::Duration;

use openssl::{
    asn1::{Asn1Time, Asn1TimeRef},
    bn::{BigNum, MsbOption},
    hash::MessageDigest,
    nid::Nid,
    pkey::{HasPublic, Id, PKey, PKeyRef, Private, Public},
    x509::{X509, X509Builder, X509NameBuilder},
};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use super::{
    csr::{AttributeKind, SubjectAttribute},
    leaf::{self, LeafError, LeafSpec, LeafTemplate, LeafUsage},
    profile::{self, Profile, Window, WindowError},
};

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("the CA certificate is not valid PEM: {0}")]
    CertificatePem(String),
    #[error("the CA certificate PEM holds no certificate")]
    NoCertificate,
    #[error("the CA private key is not valid PEM: {0}")]
    KeyPem(String),
    #[error("the CA private key does not match the CA certificate's public key")]
    KeyMismatch,
    #[error("the CA certificate is not a CA (needs basicConstraints CA:TRUE and keyCertSign)")]
    NotACa,
    #[error("the CA certificate cannot be read: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("the CA certificate expired at {0} (Unix time)")]
    Expired(i64),
    #[error("the CA certificate is not valid before {0} (Unix time)")]
    NotYetValid(i64),
    #[error(transparent)]
    Leaf(#[from] LeafError),
    #[error("OpenSSL failed: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

impl AuthorityError {
    /// Static category for metric labels and Event reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CertificatePem(_) | Self::NoCertificate | Self::Unreadable(_) => {
                "certificate_unreadable"
            }
            Self::KeyPem(_) => "key_unreadable",
            Self::KeyMismatch => "key_mismatch",
            Self::NotACa => "not_a_ca",
            Self::Expired(_) | Self::Window(WindowError::CaExpired { .. }) => "expired",
            Self::NotYetValid(_) | Self::Window(WindowError::CaNotYetValid { .. }) => {
                "not_yet_valid"
            }
            Self::Leaf(LeafError::UnsupportedKey(_)) => "unsupported_key",
            Self::Leaf(LeafError::Attribute { .. }) => "unsupported_subject",
            Self::Leaf(_) | Self::OpenSsl(_) => "openssl",
        }
    }
}

/// A loaded CA: the signing certificate first, then any intermediates up to (not necessarily
/// including) the root.
pub struct Authority {
    chain: Vec<X509>,
    key: PKey<Private>,
    window: Window,
    /// What every leaf shares, encoded once (see [`super::leaf`]).
    template: LeafTemplate,
    /// The chain as PEM, appended to every certificate issued.
    chain_pem: Vec<u8>,
}

impl std::fmt::Debug for Authority {
    // The key stays out of Debug output (and so out of logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("subject", &self.subject_line())
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// A signed certificate and what status and metrics report about it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Leaf followed by the CA chain, PEM.
    pub chain_pem: Vec<u8>,
    /// Serial number, upper-case hex.
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// What to certify: the subject (already accepted by policy), the key and the lifetime.
pub struct LeafRequest<'a, K: HasPublic> {
    pub subject: &'a [SubjectAttribute],
    pub public_key: &'a PKeyRef<K>,
    /// `public_key`'s SubjectPublicKeyInfo as the request carried it, when at hand: used as
    /// is when it is strict DER, which saves re-encoding the key (for an EC key, a third of
    /// what the signature costs: OpenSSL converts the point to affine coordinates again).
    pub public_key_der: Option<&'a [u8]>,
    pub lifetime: Duration,
}

impl Authority {
    /// Loads a CA from a PEM chain (signing certificate first) and its PEM private key,
    /// checking that they belong together and that the certificate may sign.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, AuthorityError> {
        let chain = X509::stack_from_pem(chain_pem)
            .map_err(|e| AuthorityError::CertificatePem(e.to_string()))?;
        let Some(cert) = chain.first() else {
            return Err(AuthorityError::NoCertificate);
        };
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| AuthorityError::KeyPem(e.to_string()))?;
        let cert_key = cert.public_key()?;
        if !super::openssl_check(|| key.public_eq(&cert_key)) {
            return Err(AuthorityError::KeyMismatch);
        }
        let der = cert.to_der()?;
        let (_, parsed) = X509Certificate::from_der(&der)
            .map_err(|e| AuthorityError::Unreadable(e.to_string()))?;
        let mut is_ca = false;
        let mut may_sign = true; // absent keyUsage does not restrict
        for ext in parsed.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
                ParsedExtension::KeyUsage(ku) => may_sign = ku.key_cert_sign(),
                _ => {}
            }
        }
        if !is_ca || !may_sign {
            return Err(AuthorityError::NotACa);
        }
        let window = Window {
            not_before: unix(cert.not_before())?,
            not_after: unix(cert.not_after())?,
        };
        Self::assemble(chain, key, window)
    }

    fn assemble(
        chain: Vec<X509>,
        key: PKey<Private>,
        window: Window,
    ) -> Result<Self, AuthorityError> {
        let Some(ca) = chain.first() else {
            return Err(AuthorityError::NoCertificate);
        };
        let template = LeafTemplate::new(ca, &key)?;
        let mut chain_pem = Vec::new();
        for cert in &chain {
            chain_pem.extend(cert.to_pem()?);
        }
        Ok(Self {
            chain,
            key,
            window,
            template,
            chain_pem,
        })
    }

    /// Whether this CA can sign at `now`: a CA loaded to sign with must be within its validity.
    pub fn check_valid_at(&self, now: i64) -> Result<(), AuthorityError> {
        if now >= self.window.not_after {
            return Err(AuthorityError::Expired(self.window.not_after));
        }
        if now < self.window.not_before {
            return Err(AuthorityError::NotYetValid(self.window.not_before));
        }
        Ok(())
    }

    /// Generates a self-signed ECDSA P-256 root valid from now − 5 min for `validity`.
    pub fn generate(
        common_name: &str,
        validity: Duration,
        now: i64,
    ) -> Result<Self, AuthorityError> {
        Self::self_signed(common_name, super::generate_p256()?, validity, now)
    }

    /// A self-signed root with `key` (certpair's own CAs use P-256; benchmarks and tests bring
    /// others), valid from 5 minutes before `now` for `validity`.
    pub fn self_signed(
        common_name: &str,
        key: PKey<Private>,
        validity: Duration,
        now: i64,
    ) -> Result<Self, AuthorityError> {
        let (_, digest) = leaf::signature_algorithm(&key)
            .ok_or_else(|| LeafError::UnsupportedKey(leaf::key_type_name(&key)))?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
        let name = name.build();
        let window = Window {
            not_before: now - profile::BACKDATE.as_secs() as i64,
            not_after: now.saturating_add(validity.as_secs() as i64),
        };
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let serial = random_serial()?.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        set_window(&mut b, window)?;
        profile::add_ca_extensions(&mut b)?;
        // Ed25519 signs without a separate digest.
        b.sign(&key, digest.unwrap_or_else(MessageDigest::null))?;
        let cert = b.build();
        Self::assemble(vec![cert], key, window)
    }

    /// The certificate chain as PEM (signing certificate first).
    pub fn chain_pem(&self) -> Result<Vec<u8>, AuthorityError> {
        Ok(self.chain_pem.clone())
    }

    /// The private key as PKCS#8 PEM, for storing in a Secret. Never log it.
    pub fn key_pem(&self) -> Result<Vec<u8>, AuthorityError> {
        Ok(self.key.private_key_to_pem_pkcs8()?)
    }

    /// The signing certificate.
    pub fn certificate(&self) -> &X509 {
        &self.chain[0]
    }

    pub fn window(&self) -> Window {
        self.window
    }

    pub fn subject_line(&self) -> String {
        self.chain[0]
            .subject_name()
            .entries()
            .map(|e| {
                format!(
                    "{}={}",
                    e.object().nid().short_name().unwrap_or("?"),
                    e.data().to_string().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Issues a client certificate by the application profile ([`profile::client`]): subject
    /// as given, no requested extensions copied, 128-bit random serial, window from
    /// [`profile::window`].
    pub fn issue_client<K: HasPublic>(
        &self,
        req: &LeafRequest<'_, K>,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        self.issue_leaf(
            req.subject,
            req.public_key,
            req.public_key_der,
            req.lifetime,
            now,
            LeafUsage::Client,
        )
    }

    /// A CRL of this CA listing `revoked` (see [`super::crl::sign`]), DER.
    pub fn sign_crl(
        &self,
        number: u64,
        this_update: i64,
        next_update: i64,
        revoked: &[super::crl::Revoked],
    ) -> Result<Vec<u8>, super::crl::CrlError> {
        let ca = &self.chain[0];
        let key_id = profile::key_identifier(ca)?;
        super::crl::sign(
            ca,
            &self.key,
            &key_id,
            &super::crl::CrlSpec {
                number,
                this_update,
                next_update,
                revoked,
            },
        )
    }

    /// Issues a TLS serving certificate by [`profile::serving`]: CN and SANs as given.
    pub fn issue_server<K: HasPublic>(
        &self,
        common_name: &str,
        dns_names: &[String],
        ips: &[std::net::IpAddr],
        public_key: &PKeyRef<K>,
        lifetime: Duration,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        let subject = [SubjectAttribute {
            kind: AttributeKind::CommonName,
            value: common_name.to_owned(),
        }];
        self.issue_leaf(
            &subject,
            public_key,
            None,
            lifetime,
            now,
            LeafUsage::Serving { dns_names, ips },
        )
    }

    fn issue_leaf<K: HasPublic>(
        &self,
        subject: &[SubjectAttribute],
        public_key: &PKeyRef<K>,
        public_key_der: Option<&[u8]>,
        lifetime: Duration,
        now: i64,
        usage: LeafUsage<'_>,
    ) -> Result<Issued, AuthorityError> {
        let from = match usage {
            LeafUsage::Client => Profile::Client,
            LeafUsage::Serving { dns_names, ips } => Profile::Serving { dns_names, ips },
        }
        .lifetime_from();
        let window = profile::window(now, lifetime, from, self.window)?;
        let serial = random_serial()?;
        let encoded;
        let spki = match public_key_der.filter(|der| leaf::is_strict_der_spki(der)) {
            Some(der) => der,
            None => {
                encoded = public_key.public_key_to_der()?;
                &encoded
            }
        };
        let der = self.template.issue(
            &self.key,
            &LeafSpec {
                serial: &serial.to_vec(),
                window,
                subject,
                spki,
                rsa_key: public_key.id() == Id::RSA,
                usage,
            },
        )?;
        let mut chain_pem = leaf::pem("CERTIFICATE", &der);
        chain_pem.extend_from_slice(&self.chain_pem);
        Ok(Issued {
            chain_pem,
            serial_hex: serial.to_hex_str()?.to_string(),
            not_before: window.not_before,
            not_after: window.not_after,
        })
    }
}

fn set_window(b: &mut X509Builder, window: Window) -> Result<(), openssl::error::ErrorStack> {
    let not_before = Asn1Time::from_unix(window.not_before)?;
    let not_after = Asn1Time::from_unix(window.not_after)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)
}

/// 128 random bits, as kube-controller-manager uses; positive and non-zero.
fn random_serial() -> Result<BigNum, openssl::error::ErrorStack> {
    loop {
        let mut serial = BigNum::new()?;
        serial.rand(128, MsbOption::MAYBE_ZERO, false)?;
        if serial.num_bits() > 0 {
            return Ok(serial);
        }
    }
}

/// Seconds since the Unix epoch of an ASN.1 time.
pub fn unix(t: &Asn1TimeRef) -> Result<i64, AuthorityError> {
    let epoch = Asn1Time::from_unix(0)?;
    let diff = epoch.diff(t)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// A public key taken from PEM, for tests and callers holding a bare key.
pub fn public_key_from_pem(pem: &[u8]) -> Result<PKey<Public>, AuthorityError> {
    Ok(PKey::public_key_from_pem(pem)?)
}

#[cfg(test)]
mod tests {
    use openssl::{
        nid::Nid,
        stack::Stack,
        x509::{X509StoreContext, store::X509StoreBuilder},
    };
    use x509_parser::prelude::X509Certificate;

    use super::*;
    use crate::pki::{
        csr::parse_pem,
        testing::{Req, p256, rsa},
    };

    const NOW: i64 = 1_900_000_000;

    fn ca() -> Authority {
        Authority::generate("certpair test CA", Duration::from_secs(365 * 86400), NOW).expect("CA")
    }

    fn issue(
        ca: &Authority,
        req: &crate::pki::csr::ParsedRequest,
        lifetime_secs: u64,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        ca.issue_client(
            &LeafRequest {
                subject: &req.subject,
                public_key: &req.public_key,
                public_key_der: Some(&req.public_key_der),
                lifetime: Duration::from_secs(lifetime_secs),
            },
            now,
        )
    }

    fn verify(ca: &Authority, leaf: &X509) -> bool {
        let mut store = X509StoreBuilder::new().expect("store");
        store.add_cert(ca.certificate().clone()).expect("add");
        // Verify at the issuance time, not the wall clock.
        let mut params = openssl::x509::verify::X509VerifyParam::new().expect("params");
        params.set_time(NOW + 60);
        store.set_param(&params).expect("param");
        let store = store.build();
        let mut ctx = X509StoreContext::new().expect("ctx");
        ctx.init(&store, leaf, &Stack::new().expect("stack"), |c| {
            c.verify_cert()
        })
        .expect("verify")
    }

    #[test]
    fn issues_client_certificate_by_the_profile() {
        let ca = ca();
        for key in [p256(), rsa(2048)] {
            let req = parse_pem(
                &Req::cn("billing")
                    .with(Nid::ORGANIZATIONNAME, "Acme")
                    .pem(&key),
            )
            .expect("csr");
            let issued = issue(&ca, &req, 3600, NOW).expect("issued");
            let chain = X509::stack_from_pem(&issued.chain_pem).expect("chain");
            assert_eq!(chain.len(), 2, "leaf then CA");
            let leaf = &chain[0];
            assert!(verify(&ca, leaf));
            assert_eq!(issued.not_before, NOW - 300);
            assert_eq!(
                issued.not_after,
                NOW - 300 + 3600,
                "valid for the lifetime, no longer"
            );
            assert_eq!(unix(leaf.not_after()).expect("time"), NOW - 300 + 3600);
            assert!(
                issued.serial_hex.len() >= 30,
                "128-bit serial: {}",
                issued.serial_hex
            );

            let der = leaf.to_der().expect("der");
            let (_, cert) = X509Certificate::from_der(&der).expect("parse");
            assert_eq!(cert.subject().to_string(), "CN=billing, O=Acme");
            let bc = cert.basic_constraints().expect("bc").expect("present");
            assert!(bc.critical && !bc.value.ca);
            let ku = cert.key_usage().expect("ku").expect("present").value;
            assert!(ku.digital_signature());
            assert_eq!(ku.key_encipherment(), key.id() == Id::RSA);
            assert!(!ku.key_cert_sign());
            let eku = cert
                .extended_key_usage()
                .expect("eku")
                .expect("present")
                .value;
            assert!(eku.client_auth && !eku.server_auth);
            assert!(cert.extensions().iter().any(|e| matches!(
                e.parsed_extension(),
                ParsedExtension::SubjectKeyIdentifier(_)
            )));
            assert!(cert.extensions().iter().any(|e| matches!(
                e.parsed_extension(),
                ParsedExtension::AuthorityKeyIdentifier(_)
            )));
            assert!(cert.subject_alternative_name().expect("san").is_none());
        }
    }

    #[test]
    fn requested_extensions_are_not_copied() {
        let ca = ca();
        let key = p256();
        let req = parse_pem(
            &Req {
                sans: vec!["evil.example".into()],
                ca: true,
                ..Req::cn("x")
            }
            .pem(&key),
        )
        .expect("csr");
        let issued = issue(&ca, &req, 600, NOW).expect("issued");
        let leaf = X509::from_pem(&issued.chain_pem).expect("leaf");
        let der = leaf.to_der().expect("der");
        let (_, cert) = X509Certificate::from_der(&der).expect("parse");
        assert!(cert.subject_alternative_name().expect("san").is_none());
        assert!(
            !cert
                .basic_constraints()
                .expect("bc")
                .expect("present")
                .value
                .ca
        );
    }

    #[test]
    fn expired_ca_refuses_and_lifetime_is_truncated() {
        let ca = Authority::generate("short CA", Duration::from_secs(1000), NOW).expect("CA");
        let key = p256();
        let req = parse_pem(&Req::cn("x").pem(&key)).expect("csr");
        let leaf = |now| issue(&ca, &req, 3600, now);
        assert_eq!(leaf(NOW).expect("issued").not_after, NOW + 1000);
        assert!(matches!(
            leaf(NOW + 1000),
            Err(AuthorityError::Window(WindowError::CaExpired { .. }))
        ));
    }

    #[test]
    fn loads_from_pem_and_checks_the_pair() {
        let ca = ca();
        let loaded =
            Authority::from_pem(&ca.chain_pem().expect("pem"), &ca.key_pem().expect("pem"))
                .expect("loads");
        assert_eq!(loaded.window(), ca.window());
        assert!(format!("{loaded:?}").contains("certpair test CA"));
        assert!(!format!("{loaded:?}").contains("PRIVATE"));

        let other = Authority::generate("other", Duration::from_secs(3600), NOW).expect("CA");
        assert!(matches!(
            Authority::from_pem(
                &ca.chain_pem().expect("pem"),
                &other.key_pem().expect("pem")
            ),
            Err(AuthorityError::KeyMismatch)
        ));
        assert!(matches!(
            Authority::from_pem(b"junk", &ca.key_pem().expect("pem")),
            Err(AuthorityError::CertificatePem(_) | AuthorityError::NoCertificate)
        ));
        assert!(matches!(
            Authority::from_pem(&ca.chain_pem().expect("pem"), b"junk"),
            Err(AuthorityError::KeyPem(_))
        ));

        // A leaf certificate is not a CA.
        let key = p256();
        let req = parse_pem(&Req::cn("x").pem(&key)).expect("csr");
        let issued = issue(&ca, &req, 600, NOW).expect("issued");
        let leaf_pem = X509::from_pem(&issued.chain_pem)
            .expect("leaf")
            .to_pem()
            .expect("pem");
        assert!(matches!(
            Authority::from_pem(&leaf_pem, &key.private_key_to_pem_pkcs8().expect("pem")),
            Err(AuthorityError::NotACa)
        ));
    }

    /// A brought-your-own CA without a Subject Key Identifier (which RFC 5280 allows for a
    /// root) signs: the leaf's AKI is derived from the CA's public key, and `openssl verify`
    /// accepts the chain.
    #[test]
    fn a_ca_without_subject_key_identifier_signs_verifiably() {
        use openssl::x509::extension::{BasicConstraints, KeyUsage};
        let now = crate::pki::now_unix();
        let key = p256();
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_nid(Nid::COMMONNAME, "no SKI CA")
            .expect("cn");
        let name = name.build();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("v3");
        b.set_serial_number(
            &random_serial()
                .expect("serial")
                .to_asn1_integer()
                .expect("int"),
        )
        .expect("serial");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("key");
        set_window(
            &mut b,
            Window {
                not_before: now - 60,
                not_after: now + 86_400,
            },
        )
        .expect("window");
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("bc");
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .build()
                .expect("ku"),
        )
        .expect("ku");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        let ca_cert = b.build();
        assert!(ca_cert.subject_key_id().is_none(), "the premise: no SKI");
        let ca = Authority::from_pem(
            &ca_cert.to_pem().expect("pem"),
            &key.private_key_to_pem_pkcs8().expect("pem"),
        )
        .expect("loads");

        let req = parse_pem(&Req::cn("billing").pem(&p256())).expect("csr");
        let issued = ca
            .issue_client(
                &LeafRequest {
                    subject: &req.subject,
                    public_key: &req.public_key,
                    // OpenSSL encodes the key itself.
                    public_key_der: None,
                    lifetime: Duration::from_secs(3600),
                },
                now,
            )
            .expect("issued");
        let leaf = X509::from_pem(&issued.chain_pem).expect("leaf");
        let spki = ca_cert
            .public_key()
            .expect("key")
            .public_key_to_der()
            .expect("der");
        let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).expect("spki");
        assert_eq!(
            leaf.authority_key_id().map(|k| k.as_slice().to_vec()),
            Some(openssl::sha::sha1(&parsed.subject_public_key.data).to_vec())
        );

        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.crt"), ca_cert.to_pem().expect("pem")).expect("write");
        std::fs::write(dir.path().join("leaf.crt"), leaf.to_pem().expect("pem")).expect("write");
        let out = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(["verify", "-CAfile", "ca.crt", "leaf.crt"])
            .output()
            .expect("openssl verify runs");
        assert!(
            out.status.success(),
            "openssl verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
