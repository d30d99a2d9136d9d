//! Parse and verify a PEM PKCS#10 certificate request into a typed [`ParsedRequest`].
//!
//! The structure is read with `x509-parser` (a pure-Rust DER parser, safe on hostile input);
//! the signature is checked and the key measured with OpenSSL, which also signs later, so the
//! key certpair accepts is exactly the key it will certify.

use std::{fmt, net::IpAddr};

use super::rsa_key::{self, RsaKeyProblem};
use std::sync::OnceLock;

use openssl::{
    bn::BigNumContext,
    ec::{EcGroup, EcKey, EcPoint},
    ecdsa::EcdsaSig,
    hash::MessageDigest,
    nid::Nid,
    pkey::{Id, PKey, Public},
    rsa::Rsa,
    sign::Verifier,
    x509::X509Req,
};
use x509_parser::{
    certification_request::X509CertificationRequest,
    der_parser::oid::Oid,
    extensions::{GeneralName, ParsedExtension},
    oid_registry,
    pem::Pem,
    prelude::FromDer,
};

/// Largest PEM request accepted. A real request with a 4096-bit key and a few SANs is under
/// 4 KiB; the cap keeps hostile input from costing memory or parse time.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// Why a request cannot be read. Each message names what was found and what is required.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("spec.request is empty; it must hold one PEM block \"CERTIFICATE REQUEST\"")]
    Empty,
    #[error("spec.request is {0} bytes; at most {MAX_PEM_BYTES} are accepted")]
    TooLarge(usize),
    #[error("spec.request is not PEM: {0}")]
    NotPem(String),
    #[error("spec.request holds {0} PEM blocks; it must hold exactly one \"CERTIFICATE REQUEST\"")]
    MultipleBlocks(usize),
    #[error("spec.request holds a PEM block \"{0}\"; it must be \"CERTIFICATE REQUEST\"")]
    WrongLabel(String),
    #[error("spec.request is not a valid PKCS#10 request: {0}")]
    Malformed(String),
    #[error("spec.request has {0} bytes after the PKCS#10 structure")]
    TrailingData(usize),
    #[error(
        "spec.request's signature does not verify with its own public key (tampered or forged request)"
    )]
    BadSignature,
    #[error("spec.request's subject attribute {attribute} is not a text string")]
    SubjectNotText { attribute: String },
    #[error(
        "spec.request's subject cannot be read in full: it must be DER, RDNs of one or more attributes, each an OID and one value"
    )]
    UnreadableSubject,
    #[error("spec.request's subject alternative name {0} cannot be read")]
    BadSan(String),
    #[error("spec.request's RSA key is unsafe: {0}")]
    UnsafeRsaKey(RsaKeyProblem),
}

/// Kinds of subject attribute certpair knows by name; anything else keeps its OID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttributeKind {
    CommonName,
    Organization,
    OrganizationalUnit,
    Locality,
    Province,
    Country,
    Other(String),
}

impl AttributeKind {
    fn from_oid(oid: &Oid<'_>) -> Self {
        use oid_registry::*;
        match oid {
            o if *o == OID_X509_COMMON_NAME => Self::CommonName,
            o if *o == OID_X509_ORGANIZATION_NAME => Self::Organization,
            o if *o == OID_X509_ORGANIZATIONAL_UNIT => Self::OrganizationalUnit,
            o if *o == OID_X509_LOCALITY_NAME => Self::Locality,
            o if *o == OID_X509_STATE_OR_PROVINCE_NAME => Self::Province,
            o if *o == OID_X509_COUNTRY_NAME => Self::Country,
            other => Self::Other(other.to_id_string()),
        }
    }

    /// The short name used in distinguished names (`CN`, `O`, ...), or the OID.
    pub fn short_name(&self) -> &str {
        match self {
            Self::CommonName => "CN",
            Self::Organization => "O",
            Self::OrganizationalUnit => "OU",
            Self::Locality => "L",
            Self::Province => "ST",
            Self::Country => "C",
            Self::Other(oid) => oid,
        }
    }

    /// OpenSSL's identifier, for building the certificate's subject.
    pub fn nid(&self) -> Option<Nid> {
        Some(match self {
            Self::CommonName => Nid::COMMONNAME,
            Self::Organization => Nid::ORGANIZATIONNAME,
            Self::OrganizationalUnit => Nid::ORGANIZATIONALUNITNAME,
            Self::Locality => Nid::LOCALITYNAME,
            Self::Province => Nid::STATEORPROVINCENAME,
            Self::Country => Nid::COUNTRYNAME,
            Self::Other(_) => return None,
        })
    }
}

impl fmt::Display for AttributeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// One subject attribute, in the order the request lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectAttribute {
    pub kind: AttributeKind,
    pub value: String,
}

/// The request's public key as far as policy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyInfo {
    Rsa {
        bits: u32,
    },
    Ecdsa {
        curve: Curve,
    },
    /// Any other algorithm (Ed25519, DSA, ...), by name.
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    /// A named curve certpair never accepts (e.g. secp256k1).
    Other,
}

impl fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA-{bits}"),
            Self::Ecdsa { curve: Curve::P256 } => f.write_str("ECDSA P-256"),
            Self::Ecdsa { curve: Curve::P384 } => f.write_str("ECDSA P-384"),
            Self::Ecdsa { curve: Curve::P521 } => f.write_str("ECDSA P-521"),
            Self::Ecdsa {
                curve: Curve::Other,
            } => f.write_str("ECDSA on an unsupported curve"),
            Self::Other(name) => f.write_str(name),
        }
    }
}

/// A subject alternative name the request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Email(String),
    Uri(String),
    Other(String),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(v) => write!(f, "DNS:{v}"),
            Self::Ip(v) => write!(f, "IP:{v}"),
            Self::Email(v) => write!(f, "email:{v}"),
            Self::Uri(v) => write!(f, "URI:{v}"),
            Self::Other(v) => f.write_str(v),
        }
    }
}

/// Extensions listed in the request's extensionRequest attribute. certpair never copies them
/// into a certificate; policy looks at them to refuse what a client certificate must not ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedExtensions {
    pub sans: Vec<San>,
    /// `Some(true)` when the request asks for CA:TRUE.
    pub basic_constraints_ca: Option<bool>,
    /// Key usage names as in RFC 5280 (`digitalSignature`, `keyCertSign`, ...).
    pub key_usages: Vec<&'static str>,
    /// Extended key usage names (`clientAuth`, `serverAuth`, ...) or OIDs.
    pub extended_key_usages: Vec<String>,
    /// OIDs of any other extension.
    pub other: Vec<String>,
}

/// A request whose signature verified, with the facts policy decides on.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub subject: Vec<SubjectAttribute>,
    /// True if one RDN held several attributes (`CN=a+O=b`); certpair refuses those.
    pub multi_valued_rdn: bool,
    pub key: KeyInfo,
    pub extensions: RequestedExtensions,
    pub public_key: PKey<Public>,
    /// The SubjectPublicKeyInfo exactly as the request carries it (DER).
    pub public_key_der: Vec<u8>,
}

impl ParsedRequest {
    /// Values of one attribute kind, in request order.
    pub fn values(&self, kind: &AttributeKind) -> Vec<&str> {
        self.subject
            .iter()
            .filter(|a| &a.kind == kind)
            .map(|a| a.value.as_str())
            .collect()
    }

    /// The subject as a one-line DN, in request order (`CN=billing, O=Acme`).
    pub fn subject_line(&self) -> String {
        self.subject
            .iter()
            .map(|a| format!("{}={}", a.kind, a.value))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parses one PEM `CERTIFICATE REQUEST`, verifies its self-signature and reports its contents,
/// with every RSA key check (the approver's and signer's).
pub fn parse_pem(pem: &[u8]) -> Result<ParsedRequest, CsrError> {
    parse_pem_checking(pem, rsa_key::MAX_CHECKED_BITS)
}

/// [`parse_pem`] for a caller anyone may reach (the admission webhook): every RSA check but the
/// costly structure test (see [`rsa_key::ADMISSION_STRUCTURE_BITS`]).
pub fn parse_pem_for_admission(pem: &[u8]) -> Result<ParsedRequest, CsrError> {
    parse_pem_checking(pem, rsa_key::ADMISSION_STRUCTURE_BITS)
}

fn parse_pem_checking(pem: &[u8], structure_bits: i32) -> Result<ParsedRequest, CsrError> {
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Err(CsrError::Empty);
    }
    if pem.len() > MAX_PEM_BYTES {
        return Err(CsrError::TooLarge(pem.len()));
    }
    let blocks: Vec<Pem> = Pem::iter_from_buffer(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CsrError::NotPem(e.to_string()))?;
    let block = match blocks.as_slice() {
        [] => return Err(CsrError::NotPem("no -----BEGIN line found".into())),
        [one] => one,
        many => return Err(CsrError::MultipleBlocks(many.len())),
    };
    if block.label != "CERTIFICATE REQUEST" {
        return Err(CsrError::WrongLabel(block.label.clone()));
    }
    parse_der_checking(&block.contents, structure_bits)
}

/// The subject of a DER certificate, attribute by attribute (how the connector reads the
/// identity of a client certificate).
pub fn certificate_subject(der: &[u8]) -> Result<Vec<SubjectAttribute>, CsrError> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    Ok(subject_of(cert.subject())?.0)
}

/// A name's attributes in order, and whether any RDN held more than one.
fn subject_of(
    name: &x509_parser::x509::X509Name<'_>,
) -> Result<(Vec<SubjectAttribute>, bool), CsrError> {
    let mut subject = Vec::new();
    let mut multi_valued_rdn = false;
    for rdn in name.iter_rdn() {
        multi_valued_rdn |= rdn.iter().count() > 1;
        for attr in rdn.iter() {
            let kind = AttributeKind::from_oid(attr.attr_type());
            let not_text = || CsrError::SubjectNotText {
                attribute: kind.to_string(),
            };
            // x509-parser reads a value by its tag number alone, so a context-specific [12]
            // passes for a UTF8String; OpenSSL refuses it (found by fuzzing).
            if attr.attr_value().header.class() != x509_parser::asn1_rs::Class::Universal {
                return Err(not_text());
            }
            let value = attr.as_str().map_err(|_| not_text())?;
            subject.push(SubjectAttribute {
                kind,
                value: value.to_owned(),
            });
        }
    }
    // x509-parser stops at the first RDN it cannot read (an empty one, say) and passes over
    // the rest of the name, and over whatever follows the type and value of an attribute;
    // OpenSSL reads on. A subject read in part must not be decided on as if it were the whole
    // (found by fuzzing: `fuzz/`, csr_differential).
    if attribute_count(name.as_raw()) != Some(subject.len()) {
        return Err(CsrError::UnreadableSubject);
    }
    Ok((subject, multi_valued_rdn))
}

/// The attributes of a DER Name, counted on its bare structure: a SEQUENCE of non-empty SETs
/// of SEQUENCEs of exactly an OID and one value, nothing else at any level. `None` if it is
/// not that shape.
fn attribute_count(name: &[u8]) -> Option<usize> {
    use der::{Decode, Reader, SliceReader, Tag, Tagged, asn1::AnyRef};
    fn within(tlv: AnyRef<'_>, tag: Tag) -> Option<SliceReader<'_>> {
        (tlv.tag() == tag)
            .then(|| SliceReader::new(tlv.value()).ok())
            .flatten()
    }
    let mut rdns = within(AnyRef::from_der(name).ok()?, Tag::Sequence)?;
    let mut count = 0;
    while !rdns.is_finished() {
        let mut attributes = within(AnyRef::decode(&mut rdns).ok()?, Tag::Set)?;
        if attributes.is_finished() {
            return None;
        }
        while !attributes.is_finished() {
            let mut parts = within(AnyRef::decode(&mut attributes).ok()?, Tag::Sequence)?;
            let oid = AnyRef::decode(&mut parts).ok()?;
            AnyRef::decode(&mut parts).ok()?;
            if oid.tag() != Tag::ObjectIdentifier || !parts.is_finished() {
                return None;
            }
            count += 1;
        }
    }
    Some(count)
}

/// Parses a DER PKCS#10 request (see [`parse_pem`]).
pub fn parse_der(der: &[u8]) -> Result<ParsedRequest, CsrError> {
    parse_der_checking(der, rsa_key::MAX_CHECKED_BITS)
}

fn parse_der_checking(der: &[u8], structure_bits: i32) -> Result<ParsedRequest, CsrError> {
    let (rest, req) =
        X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::TrailingData(rest.len()));
    }

    let public_key = match verify_common(der, &req, structure_bits) {
        Some(verified) => verified?,
        None => verify_any(der, structure_bits)?,
    };
    let key = key_info(&public_key);

    let info = &req.certification_request_info;
    let (subject, multi_valued_rdn) = subject_of(&info.subject)?;

    let extensions = match req.requested_extensions() {
        Some(exts) => requested_extensions(exts)?,
        None => RequestedExtensions::default(),
    };

    Ok(ParsedRequest {
        subject,
        multi_valued_rdn,
        key,
        extensions,
        public_key,
        public_key_der: info.subject_pki.raw.to_vec(),
    })
}

/// Signature check for the algorithms nearly every request uses (RSA PKCS#1 v1.5 and ECDSA,
/// with SHA-256/384/512), or `None` to leave the request to [`verify_any`].
///
/// Why not `X509Req::from_der` for everything: OpenSSL 3.0 decodes the embedded public key
/// through its provider decoder chain, which costs about 200 µs per request here (measured:
/// 190 µs for `X509Req::from_der` against 4 µs for `d2i_RSA_PUBKEY`), seven times the RSA-2048
/// verification itself. The webhook answers every CSR creation, so that cost was most of its
/// CPU. The typed legacy decoders read the same SubjectPublicKeyInfo bytes, and OpenSSL still
/// does the verification.
///
/// The fast path must never accept what the general path refuses, so it only takes requests
/// whose key type is the plain one for the signature algorithm (an RSA-PSS key reads as an
/// RSA key too) and whose DER is exactly the canonical encoding of their parts: x509-parser
/// tolerates extra elements at the end of a SEQUENCE and nonzero unused bits in the
/// signature, which OpenSSL refuses; the CertificationRequestInfo must be strict DER too
/// ([`is_strict_der_info`]). Everything else takes the general path.
fn verify_common(
    der: &[u8],
    req: &X509CertificationRequest<'_>,
    structure_bits: i32,
) -> Option<Result<PKey<Public>, CsrError>> {
    use oid_registry::{
        OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
    };
    let algorithm = &req.signature_algorithm.algorithm;
    let (rsa, digest) = if *algorithm == OID_PKCS1_SHA256WITHRSA {
        (true, MessageDigest::sha256())
    } else if *algorithm == OID_PKCS1_SHA384WITHRSA {
        (true, MessageDigest::sha384())
    } else if *algorithm == OID_PKCS1_SHA512WITHRSA {
        (true, MessageDigest::sha512())
    } else if *algorithm == OID_SIG_ECDSA_WITH_SHA256 {
        (false, MessageDigest::sha256())
    } else if *algorithm == OID_SIG_ECDSA_WITH_SHA384 {
        (false, MessageDigest::sha384())
    } else if *algorithm == OID_SIG_ECDSA_WITH_SHA512 {
        (false, MessageDigest::sha512())
    } else {
        return None;
    };
    let info = req.certification_request_info.raw;
    let spki = &req.certification_request_info.subject_pki;
    let key_type = if rsa {
        OID_PKCS1_RSAENCRYPTION
    } else {
        OID_KEY_TYPE_EC_PUBLIC_KEY
    };
    if spki.algorithm.algorithm != key_type {
        return None;
    }
    let signature = &req.signature_value.data;
    if der != canonical_request(info, algorithm.as_bytes(), rsa, signature)
        || !is_strict_der_info(info)
    {
        return None;
    }
    if !rsa && let Some(key) = named_curve_key(spki) {
        return Some(verify_ecdsa(key, digest, signature, info));
    }
    // A key that does not decode takes the general path, which words the error the same way
    // for every algorithm.
    let key = if rsa {
        let key = Rsa::public_key_from_der(spki.raw).ok()?;
        // Before the signature: the exponent bounds what verifying costs.
        if let Err(problem) = rsa_key::check(key.n(), key.e(), structure_bits) {
            return Some(Err(CsrError::UnsafeRsaKey(problem)));
        }
        PKey::from_rsa(key)
    } else {
        EcKey::public_key_from_der(spki.raw).and_then(PKey::from_ec_key)
    };
    let key = key.ok()?;
    let verified = super::openssl_check(|| {
        Verifier::new(digest, &key)
            .and_then(|mut v| v.verify_oneshot(signature, info))
            .unwrap_or(false)
    });
    Some(if verified {
        Ok(key)
    } else {
        Err(CsrError::BadSignature)
    })
}

/// The EC key of a SubjectPublicKeyInfo on P-256, P-384 or P-521 in strict DER, decoded on the
/// curve's group made once; `None` leaves the key to OpenSSL's general decoder.
///
/// Why: `d2i_EC_PUBKEY` builds the curve's group anew for every key, and verifying through EVP
/// exports the key to a provider, which builds it again: measured with callgrind, 470,000 of
/// the 1.3 million instructions a P-256 request cost, more than half the ECDSA verification.
/// The point is decoded by the same `EC_POINT_oct2point` (which checks it is on the curve).
fn named_curve_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Option<EcKey<Public>> {
    use oid_registry::{OID_EC_P256, OID_NIST_EC_P384, OID_NIST_EC_P521};
    static GROUPS: OnceLock<Vec<(Nid, EcGroup)>> = OnceLock::new();
    if !super::leaf::is_strict_der_spki(spki.raw) || spki.subject_public_key.unused_bits != 0 {
        return None;
    }
    let parameters = spki.algorithm.parameters.as_ref()?;
    // `as_oid` reads the content whatever the tag: a NULL holding a curve's OID bytes would
    // pass for the curve; OpenSSL refuses it (found by fuzzing).
    let header = &parameters.header;
    if header.class() != x509_parser::asn1_rs::Class::Universal
        || header.tag() != x509_parser::asn1_rs::Tag::Oid
        || header.is_constructed()
    {
        return None;
    }
    let curve = parameters.as_oid().ok()?;
    let nid = if curve == OID_EC_P256 {
        Nid::X9_62_PRIME256V1
    } else if curve == OID_NIST_EC_P384 {
        Nid::SECP384R1
    } else if curve == OID_NIST_EC_P521 {
        Nid::SECP521R1
    } else {
        return None;
    };
    let groups = GROUPS.get_or_init(|| {
        [Nid::X9_62_PRIME256V1, Nid::SECP384R1, Nid::SECP521R1]
            .into_iter()
            .filter_map(|nid| EcGroup::from_curve_name(nid).ok().map(|g| (nid, g)))
            .collect()
    });
    let (_, group) = groups.iter().find(|(n, _)| *n == nid)?;
    super::openssl_check(|| {
        let mut ctx = BigNumContext::new().ok()?;
        let point = EcPoint::from_bytes(group, &spki.subject_public_key.data, &mut ctx).ok()?;
        EcKey::from_public_key(group, &point).ok()
    })
}

/// An ECDSA signature over `info` checked by `ECDSA_do_verify` on a decoded key (no EVP
/// context). Like OpenSSL's `ECDSA_verify`, a signature that is not exactly its own DER
/// encoding does not verify.
fn verify_ecdsa(
    key: EcKey<Public>,
    digest: MessageDigest,
    signature: &[u8],
    info: &[u8],
) -> Result<PKey<Public>, CsrError> {
    let verified = super::openssl_check(|| {
        let Ok(sig) = EcdsaSig::from_der(signature) else {
            return false;
        };
        if sig.to_der().ok().as_deref() != Some(signature) {
            return false;
        }
        super::leaf::digest(digest, info)
            .and_then(|d| sig.verify(&d, &key))
            .unwrap_or(false)
    });
    if !verified {
        return Err(CsrError::BadSignature);
    }
    PKey::from_ec_key(key).map_err(|e| CsrError::Malformed(format!("unreadable public key: {e}")))
}

/// Whether the CertificationRequestInfo is exactly the DER of its parts as RustCrypto's strict
/// decoder reads them. x509-parser passes over elements after the ones it expects (in the
/// info, a name, an attribute), which OpenSSL refuses; so the fast path, which verifies what
/// x509-parser read, would accept what OpenSSL refuses (found by fuzzing: `fuzz/`,
/// csr_differential).
fn is_strict_der_info(info: &[u8]) -> bool {
    use der::{Decode, Encode};
    let Ok(parsed) = x509_cert::request::CertReqInfo::from_der(info) else {
        return false;
    };
    // RustCrypto keeps an OID's bytes as they come; OpenSSL refuses an arc not in the fewest
    // octets (X.690 8.19.2), e.g. an attribute type 2A 80 00 ... (found by fuzzing).
    let names = parsed.subject.iter().map(|a| &a.oid);
    let attributes = parsed.attributes.iter().map(|a| &a.oid);
    // OpenSSL checks the content of a primitive attribute value by its type (a BOOLEAN of one
    // octet, a NULL of none, ...), RustCrypto and x509-parser take any (found by fuzzing).
    // Requests carry extensionRequest (a SEQUENCE) and at most a challengePassword (a string),
    // whose contents OpenSSL leaves unchecked.
    let plain_values = parsed
        .attributes
        .iter()
        .flat_map(|a| a.values.iter())
        .all(|value| {
            use der::{Tag, Tagged};
            matches!(
                value.tag(),
                Tag::Sequence | Tag::Set | Tag::Utf8String | Tag::PrintableString | Tag::Ia5String
            )
        });
    plain_values
        && names
            .chain(attributes)
            .all(|oid| is_minimal_oid(oid.as_bytes()))
        && parsed.to_der().is_ok_and(|again| again == info)
}

/// Whether every arc of an OID's content octets is in the fewest octets: none starts with
/// 0x80.
fn is_minimal_oid(content: &[u8]) -> bool {
    let mut starts_arc = true;
    content.iter().all(|&b| {
        let minimal = !(starts_arc && b == 0x80);
        starts_arc = b & 0x80 == 0;
        minimal
    })
}

/// DER of `SEQUENCE { info, AlgorithmIdentifier { oid [, NULL for RSA] }, BIT STRING }`: a
/// request as RFC 2986 and RFC 4055/5758 encode it, with nothing extra.
fn canonical_request(info: &[u8], oid: &[u8], rsa: bool, signature: &[u8]) -> Vec<u8> {
    let mut algorithm = der_tlv(0x06, oid);
    if rsa {
        algorithm.extend_from_slice(&[0x05, 0x00]);
    }
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature);
    let mut body = info.to_vec();
    body.extend(der_tlv(0x30, &algorithm));
    body.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

/// One DER tag-length-value with a definite, minimal length. Public for the tests and fuzz
/// targets that build requests byte by byte.
#[doc(hidden)]
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Signature check for any algorithm OpenSSL knows (RSA-PSS, Ed25519, SHA-1, ...): the
/// slow but general path (see [`verify_common`]).
fn verify_any(der: &[u8], structure_bits: i32) -> Result<PKey<Public>, CsrError> {
    let ossl = X509Req::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let public_key = ossl
        .public_key()
        .map_err(|e| CsrError::Malformed(format!("unreadable public key: {e}")))?;
    // RSA and RSA-PSS keys: checked before the signature, as on the fast path.
    if matches!(public_key.id(), Id::RSA | Id::RSA_PSS) {
        let checked = super::openssl_check(|| public_key.rsa().ok())
            .map(|rsa| rsa_key::check(rsa.n(), rsa.e(), structure_bits));
        if let Some(Err(problem)) = checked {
            return Err(CsrError::UnsafeRsaKey(problem));
        }
    }
    if !super::openssl_check(|| ossl.verify(&public_key).unwrap_or(false)) {
        return Err(CsrError::BadSignature);
    }
    Ok(public_key)
}

fn key_info(key: &PKey<Public>) -> KeyInfo {
    match key.id() {
        Id::RSA => KeyInfo::Rsa { bits: key.bits() },
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|ec| ec.group().curve_name())
                .map_or(Curve::Other, |nid| match nid {
                    Nid::X9_62_PRIME256V1 => Curve::P256,
                    Nid::SECP384R1 => Curve::P384,
                    Nid::SECP521R1 => Curve::P521,
                    _ => Curve::Other,
                });
            KeyInfo::Ecdsa { curve }
        }
        Id::ED25519 => KeyInfo::Other("Ed25519".into()),
        Id::ED448 => KeyInfo::Other("Ed448".into()),
        Id::DSA => KeyInfo::Other("DSA".into()),
        other => KeyInfo::Other(format!("key type {}", other.as_raw())),
    }
}

fn requested_extensions<'a>(
    exts: impl Iterator<Item = &'a ParsedExtension<'a>>,
) -> Result<RequestedExtensions, CsrError> {
    let mut out = RequestedExtensions::default();
    for ext in exts {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    out.sans.push(general_name(name)?);
                }
            }
            ParsedExtension::BasicConstraints(bc) => out.basic_constraints_ca = Some(bc.ca),
            ParsedExtension::KeyUsage(ku) => {
                let names = [
                    (ku.digital_signature(), "digitalSignature"),
                    (ku.non_repudiation(), "nonRepudiation"),
                    (ku.key_encipherment(), "keyEncipherment"),
                    (ku.data_encipherment(), "dataEncipherment"),
                    (ku.key_agreement(), "keyAgreement"),
                    (ku.key_cert_sign(), "keyCertSign"),
                    (ku.crl_sign(), "cRLSign"),
                    (ku.encipher_only(), "encipherOnly"),
                    (ku.decipher_only(), "decipherOnly"),
                ];
                out.key_usages = names
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| *n)
                    .collect();
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let names = [
                    (eku.any, "anyExtendedKeyUsage"),
                    (eku.server_auth, "serverAuth"),
                    (eku.client_auth, "clientAuth"),
                    (eku.code_signing, "codeSigning"),
                    (eku.email_protection, "emailProtection"),
                    (eku.time_stamping, "timeStamping"),
                    (eku.ocsp_signing, "OCSPSigning"),
                ];
                out.extended_key_usages = names
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| (*n).to_owned())
                    .chain(eku.other.iter().map(|o| o.to_id_string()))
                    .collect();
            }
            ParsedExtension::ParseError { error } => {
                return Err(CsrError::Malformed(format!(
                    "unreadable requested extension: {error}"
                )));
            }
            ParsedExtension::UnsupportedExtension { oid } => out.other.push(oid.to_id_string()),
            other => out.other.push(extension_name(other)),
        }
    }
    Ok(out)
}

fn extension_name(ext: &ParsedExtension<'_>) -> String {
    // The Debug name of the variant ("NameConstraints(...)") without its contents.
    let debug = format!("{ext:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("extension")
        .to_owned()
}

fn general_name(name: &GeneralName<'_>) -> Result<San, CsrError> {
    Ok(match name {
        GeneralName::DNSName(v) => San::Dns((*v).to_owned()),
        GeneralName::RFC822Name(v) => San::Email((*v).to_owned()),
        GeneralName::URI(v) => San::Uri((*v).to_owned()),
        GeneralName::IPAddress(bytes) => San::Ip(match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).map_err(|_| bad_ip(bytes))?),
            16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).map_err(|_| bad_ip(bytes))?),
            _ => return Err(bad_ip(bytes)),
        }),
        GeneralName::Invalid(tag, _) => {
            return Err(CsrError::BadSan(format!("with tag {tag}")));
        }
        other => San::Other(format!("{other:?}").chars().take(80).collect()),
    })
}

fn bad_ip(bytes: &[u8]) -> CsrError {
    CsrError::BadSan(format!("IP address of {} bytes", bytes.len()))
}

#[cfg(test)]
mod tests;
