//! Builds PKCS#10 requests: any key, subject and requested extensions. Tests, benchmarks and
//! the pairing client (`certpair pair`) use it; what certpair accepts is decided elsewhere, so
//! it can also build the requests policy must refuse (CA:TRUE, SANs, serverAuth). Also what a
//! client needs to follow the connector's CSR info: its subject string parsed, and a key made
//! for its `key-algorithm`.

use openssl::{
    ec::{EcGroup, EcKey},
    error::ErrorStack,
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

    /// A request for the connector's subject string (`O=Acme,OU=Payments,C=DE,CN=billing`,
    /// Kyma's and Compass's form), attributes in the order given.
    pub fn from_subject(subject: &str) -> Result<Self, ClientInputError> {
        Ok(Self {
            subject: parse_subject(subject)?,
            ..Default::default()
        })
    }

    /// [`Self::to_pem`] for unit tests.
    #[cfg(test)]
    pub fn pem(&self, key: &PKey<Private>) -> Vec<u8> {
        self.to_pem(key).expect("a request")
    }
}

/// What a connector's CSR info can hold that a client cannot follow.
#[derive(Debug, thiserror::Error)]
pub enum ClientInputError {
    #[error("the subject {0:?} is not a list of KEY=value attributes (O, OU, L, ST, C, CN)")]
    Subject(String),
    #[error("the subject {0:?} has no CN")]
    NoCommonName(String),
    #[error(
        "key algorithm {0:?} is not one certpair knows (rsa2048, rsa3072, rsa4096, rsa8192, ecdsa-p256, ecdsa-p384)"
    )]
    KeyAlgorithm(String),
    #[error("generating the key failed: {0}")]
    Generate(#[from] ErrorStack),
}

/// The attributes the connector announces, by their short names.
fn attribute(name: &str) -> Option<Nid> {
    Some(match name {
        "CN" => Nid::COMMONNAME,
        "O" => Nid::ORGANIZATIONNAME,
        "OU" => Nid::ORGANIZATIONALUNITNAME,
        "L" => Nid::LOCALITYNAME,
        "ST" => Nid::STATEORPROVINCENAME,
        "C" => Nid::COUNTRYNAME,
        _ => return None,
    })
}

/// `O=Acme, Inc.,OU=Payments,CN=billing` → `[(O, "Acme, Inc."), (OU, ..), (CN, ..)]`. The
/// connector's form does not escape commas (neither did Kyma's), so a comma starts a new
/// attribute only where `KEY=` follows it; otherwise it belongs to the value.
pub fn parse_subject(subject: &str) -> Result<Vec<(Nid, String)>, ClientInputError> {
    let bad = || ClientInputError::Subject(subject.to_owned());
    let mut attributes: Vec<(Nid, String)> = Vec::new();
    for part in subject.split(',') {
        let starts_attribute = part
            .split_once('=')
            .and_then(|(k, _)| attribute(k.trim()))
            .is_some();
        match (starts_attribute, attributes.last_mut()) {
            (true, _) => {
                let (k, v) = part.split_once('=').ok_or_else(bad)?;
                let nid = attribute(k.trim()).ok_or_else(bad)?;
                attributes.push((nid, v.to_owned()));
            }
            (false, Some((_, value))) => {
                value.push(',');
                value.push_str(part);
            }
            (false, None) => return Err(bad()),
        }
    }
    if !attributes.iter().any(|(nid, _)| *nid == Nid::COMMONNAME) {
        return Err(ClientInputError::NoCommonName(subject.to_owned()));
    }
    Ok(attributes)
}

/// A new private key for Kyma's `key-algorithm` name.
pub fn key_for_algorithm(algorithm: &str) -> Result<PKey<Private>, ClientInputError> {
    let rsa = |bits| -> Result<_, ClientInputError> { Ok(PKey::from_rsa(Rsa::generate(bits)?)?) };
    let ec = |nid| -> Result<_, ClientInputError> {
        let group = EcGroup::from_curve_name(nid)?;
        Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
    };
    match algorithm {
        "rsa2048" => rsa(2048),
        "rsa3072" => rsa(3072),
        "rsa4096" => rsa(4096),
        "rsa8192" => rsa(8192),
        "ecdsa-p256" => ec(Nid::X9_62_PRIME256V1),
        "ecdsa-p384" => ec(Nid::SECP384R1),
        other => Err(ClientInputError::KeyAlgorithm(other.to_owned())),
    }
}

/// Kyma's `key-algorithm` name of an existing key (a renewal keeps the kind unless told).
pub fn algorithm_of(key: &PKey<Private>) -> Option<&'static str> {
    if let Ok(rsa) = key.rsa() {
        return match rsa.size() * 8 {
            2048 => Some("rsa2048"),
            3072 => Some("rsa3072"),
            4096 => Some("rsa4096"),
            8192 => Some("rsa8192"),
            _ => None,
        };
    }
    match key.ec_key().ok()?.group().curve_name()? {
        Nid::X9_62_PRIME256V1 => Some("ecdsa-p256"),
        Nid::SECP384R1 => Some("ecdsa-p384"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_in_order_with_commas_in_values() {
        let parsed = parse_subject("O=Acme, Inc.,OU=Payments,L=Waldorf,ST=BW,C=DE,CN=billing")
            .expect("parses");
        assert_eq!(
            parsed,
            vec![
                (Nid::ORGANIZATIONNAME, "Acme, Inc.".to_owned()),
                (Nid::ORGANIZATIONALUNITNAME, "Payments".to_owned()),
                (Nid::LOCALITYNAME, "Waldorf".to_owned()),
                (Nid::STATEORPROVINCENAME, "BW".to_owned()),
                (Nid::COUNTRYNAME, "DE".to_owned()),
                (Nid::COMMONNAME, "billing".to_owned()),
            ]
        );
        assert_eq!(
            parse_subject("CN=a=b").expect("parses"),
            vec![(Nid::COMMONNAME, "a=b".to_owned())]
        );
        assert!(matches!(
            parse_subject("garbage"),
            Err(ClientInputError::Subject(_))
        ));
        assert!(matches!(
            parse_subject("X=1,CN=a"),
            Err(ClientInputError::Subject(_))
        ));
        assert!(matches!(
            parse_subject("O=Acme"),
            Err(ClientInputError::NoCommonName(_))
        ));
    }

    #[test]
    fn keys_follow_the_announced_algorithm() {
        for name in ["rsa2048", "ecdsa-p256", "ecdsa-p384"] {
            let key = key_for_algorithm(name).expect("key");
            assert_eq!(algorithm_of(&key), Some(name));
        }
        assert!(matches!(
            key_for_algorithm("dsa1024"),
            Err(ClientInputError::KeyAlgorithm(_))
        ));
    }
}
