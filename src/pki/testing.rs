//! Builders for certificate requests in unit tests: any key, subject and extensions, and
//! deliberately broken variants.

use openssl::{
    ec::{EcGroup, EcKey},
    hash::MessageDigest,
    nid::Nid,
    pkey::{PKey, Private},
    rsa::Rsa,
    stack::Stack,
    x509::{
        X509Extension, X509NameBuilder, X509ReqBuilder,
        extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName},
    },
};

pub fn rsa(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).expect("rsa")).expect("pkey")
}

pub fn ec(nid: Nid) -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).expect("curve")).expect("ec"))
        .expect("pkey")
}

pub fn p256() -> PKey<Private> {
    ec(Nid::X9_62_PRIME256V1)
}

#[derive(Default)]
pub struct Req {
    pub subject: Vec<(Nid, String)>,
    pub sans: Vec<String>,
    pub ca: bool,
    pub key_cert_sign: bool,
    pub server_auth: bool,
    /// Digest to sign with; SHA-256 (or none for EdDSA) when unset.
    pub digest: Option<MessageDigest>,
}

impl Req {
    pub fn cn(cn: &str) -> Self {
        Self {
            subject: vec![(Nid::COMMONNAME, cn.into())],
            ..Default::default()
        }
    }

    pub fn with(mut self, nid: Nid, value: &str) -> Self {
        self.subject.push((nid, value.into()));
        self
    }

    pub fn pem(&self, key: &PKey<Private>) -> Vec<u8> {
        let mut name = X509NameBuilder::new().expect("name");
        for (nid, value) in &self.subject {
            name.append_entry_by_nid(*nid, value).expect("entry");
        }
        let mut b = X509ReqBuilder::new().expect("req");
        b.set_subject_name(&name.build()).expect("subject");
        b.set_pubkey(key).expect("pubkey");
        let mut exts = Stack::<X509Extension>::new().expect("stack");
        let ctx = b.x509v3_context(None);
        if !self.sans.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for s in &self.sans {
                san.dns(s);
            }
            exts.push(san.build(&ctx).expect("san")).expect("push");
        }
        if self.ca {
            exts.push(BasicConstraints::new().critical().ca().build().expect("bc"))
                .expect("push");
        }
        if self.key_cert_sign {
            exts.push(KeyUsage::new().key_cert_sign().build().expect("ku"))
                .expect("push");
        }
        if self.server_auth {
            exts.push(ExtendedKeyUsage::new().server_auth().build().expect("eku"))
                .expect("push");
        }
        if !exts.is_empty() {
            b.add_extensions(&exts).expect("extensions");
        }
        // EdDSA signs the message itself, without a separate digest.
        let digest = match self.digest {
            Some(d) => d,
            None if key.id() == openssl::pkey::Id::ED25519 => MessageDigest::null(),
            None => MessageDigest::sha256(),
        };
        b.sign(key, digest).expect("sign");
        b.build().to_pem().expect("pem")
    }
}

/// The same request with one byte of its CN changed after signing: well-formed, but the
/// signature no longer matches.
pub fn tampered(pem: &[u8], cn: &str) -> Vec<u8> {
    let mut der = der_of(pem);
    let pos = der
        .windows(cn.len())
        .position(|w| w == cn.as_bytes())
        .expect("CN in DER");
    der[pos] ^= 0x01;
    pem_of(&der)
}

/// The DER inside a PEM request.
pub fn der_of(pem: &[u8]) -> Vec<u8> {
    openssl::x509::X509Req::from_pem(pem)
        .expect("req")
        .to_der()
        .expect("der")
}

/// A DER request wrapped as PEM, byte for byte (no re-encoding by OpenSSL).
pub fn pem_of(der: &[u8]) -> Vec<u8> {
    let b64 = openssl::base64::encode_block(der);
    let mut out = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("ascii"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE REQUEST-----\n");
    out.into_bytes()
}
