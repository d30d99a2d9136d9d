//! Builds PKCS#10 requests: any key, subject and requested extensions. Tests, benchmarks and
//! (later) the pairing client use it; what certpair accepts is decided elsewhere, so it can
//! also build the requests policy must refuse (CA:TRUE, SANs, serverAuth).

use openssl::{
    error::ErrorStack,
    hash::MessageDigest,
    nid::Nid,
    pkey::{PKey, Private},
    stack::Stack,
    x509::{
        X509Extension, X509NameBuilder, X509ReqBuilder,
        extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName},
    },
};

/// A request to build: subject attributes in order, and what extensions to ask for.
#[derive(Default, Clone)]
pub struct RequestBuilder {
    pub subject: Vec<(Nid, String)>,
    pub sans: Vec<String>,
    pub ca: bool,
    pub key_cert_sign: bool,
    pub server_auth: bool,
    /// Digest to sign with; SHA-256 (or none for EdDSA) when unset.
    pub digest: Option<MessageDigest>,
}

impl RequestBuilder {
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

    /// The request signed by `key`, as PEM.
    pub fn to_pem(&self, key: &PKey<Private>) -> Result<Vec<u8>, ErrorStack> {
        let mut name = X509NameBuilder::new()?;
        for (nid, value) in &self.subject {
            name.append_entry_by_nid(*nid, value)?;
        }
        let mut b = X509ReqBuilder::new()?;
        b.set_subject_name(&name.build())?;
        b.set_pubkey(key)?;
        let mut exts = Stack::<X509Extension>::new()?;
        let ctx = b.x509v3_context(None);
        if !self.sans.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for s in &self.sans {
                san.dns(s);
            }
            exts.push(san.build(&ctx)?)?;
        }
        if self.ca {
            exts.push(BasicConstraints::new().critical().ca().build()?)?;
        }
        if self.key_cert_sign {
            exts.push(KeyUsage::new().key_cert_sign().build()?)?;
        }
        if self.server_auth {
            exts.push(ExtendedKeyUsage::new().server_auth().build()?)?;
        }
        if !exts.is_empty() {
            b.add_extensions(&exts)?;
        }
        // EdDSA signs the message itself, without a separate digest.
        let digest = match self.digest {
            Some(d) => d,
            None if key.id() == openssl::pkey::Id::ED25519 => MessageDigest::null(),
            None => MessageDigest::sha256(),
        };
        b.sign(key, digest)?;
        b.build().to_pem()
    }

    /// [`Self::to_pem`] for unit tests.
    #[cfg(test)]
    pub fn pem(&self, key: &PKey<Private>) -> Vec<u8> {
        self.to_pem(key).expect("a request")
    }
}
