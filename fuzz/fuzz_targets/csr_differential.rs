#![no_main]
//! certpair's CSR path (x509-parser, then its fast RSA/ECDSA verification or OpenSSL's
//! general one) against OpenSSL's general path alone (`X509Req::from_der`, `public_key`,
//! `verify`):
//! - certpair never accepts what OpenSSL refuses, and reports the key OpenSSL reads;
//! - what OpenSSL accepts with a key certpair supports (RSA of 2048 bits and more, P-256,
//!   P-384, P-521, Ed25519) certpair accepts too, unless it refuses on purpose (`deliberate`);
//! - the webhook's parse (no prime-modulus test) accepts whatever the approver's accepts.
//!
//! Input: byte 0 picks the mode. Mode 0: the rest is a DER request, taken as is. Modes 1
//! and 2: byte 1 picks one of the fixed keys in `fuzz/keys` and a digest, and the rest is a
//! CertificationRequestInfo that is signed here, so that mutated subjects, attributes and
//! extensions still carry a valid signature. Mode 1 puts the key's SubjectPublicKeyInfo in
//! place of the info's third element; mode 2 keeps the info's own (another encoding of the
//! same key must verify too).

use std::sync::LazyLock;

use certpair::pki::csr::{self, CsrError, Curve, KeyInfo, MAX_PEM_BYTES, der_tlv};
use der::{Decode, Encode};
use libfuzzer_sys::fuzz_target;
use openssl::{
    error::ErrorStack,
    hash::MessageDigest,
    nid::Nid,
    pkey::{Id, PKey, Private, Public},
    sign::Signer,
    x509::X509Req,
};

static KEYS: LazyLock<Vec<PKey<Private>>> = LazyLock::new(|| {
    [
        &include_bytes!("../keys/rsa2048.pem")[..],
        include_bytes!("../keys/p256.pem"),
        include_bytes!("../keys/p384.pem"),
        include_bytes!("../keys/p521.pem"),
        include_bytes!("../keys/ed25519.pem"),
    ]
    .iter()
    .map(|pem| PKey::private_key_from_pem(pem).unwrap())
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let der = match (mode % 3, rest.split_first()) {
        (0, _) | (_, None) => rest.to_vec(),
        (mode, Some((&pick, info))) => match signed(info, pick, mode == 1) {
            Some(der) => der,
            None => return,
        },
    };
    compare(&der);
});

fn compare(der: &[u8]) {
    let ours = csr::parse_der(der);
    let theirs = openssl_path(der);
    match (&ours, &theirs) {
        (Ok(req), Err(why)) => panic!(
            "certpair accepts a {} request that OpenSSL refuses ({why})",
            req.key
        ),
        (Ok(req), Ok(key)) => {
            assert!(
                req.public_key.public_eq(key),
                "certpair reports another key than OpenSSL"
            );
            assert_eq!(req.key, key_info(key), "certpair names the key otherwise");
        }
        (Err(e), Ok(key)) if supported(key) && !deliberate(e, der) => panic!(
            "OpenSSL accepts a {:?} request that certpair refuses: {e}",
            key_info(key)
        ),
        _ => {}
    }
    admission_agrees(der, &ours);
}

/// The webhook skips only the prime and prime-power modulus test; anything else it decides
/// as the approver does (on the same bytes in a PEM frame).
fn admission_agrees(der: &[u8], full: &Result<csr::ParsedRequest, CsrError>) {
    let pem = pem(der);
    if pem.len() > MAX_PEM_BYTES {
        return;
    }
    let admission = csr::parse_pem_for_admission(&pem);
    match (full, &admission) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) if a == b => {}
        (Err(CsrError::UnsafeRsaKey(_)), Ok(_) | Err(CsrError::BadSignature)) => {}
        (Err(CsrError::UnsafeRsaKey(_)), Err(CsrError::UnsafeRsaKey(_))) => {}
        _ => panic!(
            "the webhook and the approver disagree: approver {:?}, webhook {:?}",
            full.as_ref().map(|r| &r.key),
            admission.as_ref().map(|r| &r.key)
        ),
    }
}

/// Refusals certpair makes on purpose of requests OpenSSL takes.
fn deliberate(e: &CsrError, der: &[u8]) -> bool {
    match e {
        // OpenSSL's d2i reads one request and ignores what follows.
        CsrError::TrailingData(_) => true,
        // SP 800-56B partial public-key validation; OpenSSL verifies any RSA key.
        CsrError::UnsafeRsaKey(_) => true,
        // Policy decides on the subject and the SANs, read in full, as text; OpenSSL does not
        // read them to verify.
        CsrError::SubjectNotText { .. } | CsrError::UnreadableSubject | CsrError::BadSan(_) => true,
        // Policy decides on the requested extensions; OpenSSL does not read them to verify.
        CsrError::Malformed(m) if m.starts_with("unreadable requested extension") => true,
        // x509-parser reads DER, OpenSSL some BER too; and x509-parser reads the attributes
        // it knows by their type, OpenSSL takes an attribute's values as they come.
        CsrError::Malformed(_) => !strict_der(der) || !readable_known_attributes(der),
        _ => false,
    }
}

/// Whether the attributes x509-parser reads by type hold what their type says: extensions in
/// strict DER (extensionRequest), a string (challengePassword).
fn readable_known_attributes(der: &[u8]) -> bool {
    use der::{Tag, Tagged, oid::ObjectIdentifier};
    const EXTENSION_REQUEST: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
    const CHALLENGE_PASSWORD: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");
    let Ok(req) = x509_cert::request::CertReq::from_der(der) else {
        return false;
    };
    req.info.attributes.iter().all(|attribute| {
        attribute.values.iter().all(|value| match attribute.oid {
            EXTENSION_REQUEST => {
                let tlv = value.to_der().unwrap_or_default();
                x509_cert::ext::Extensions::from_der(&tlv)
                    .and_then(|extensions| extensions.to_der())
                    .is_ok_and(|again| again == tlv)
            }
            CHALLENGE_PASSWORD => matches!(
                value.tag(),
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString
            ),
            _ => true,
        })
    })
}

/// Whether `der` is exactly the DER of the request it holds, as RustCrypto's strict decoder
/// reads it (lengths, integers, booleans, sets in order; attribute values not looked into).
fn strict_der(der: &[u8]) -> bool {
    x509_cert::request::CertReq::from_der(der)
        .and_then(|req| req.to_der())
        .is_ok_and(|again| again == der)
}

fn openssl_path(der: &[u8]) -> Result<PKey<Public>, &'static str> {
    let verdict = (|| {
        let req = X509Req::from_der(der).map_err(|_| "does not parse")?;
        let key = req.public_key().map_err(|_| "unreadable public key")?;
        match req.verify(&key) {
            Ok(true) => Ok(key),
            _ => Err("signature does not verify"),
        }
    })();
    let _ = ErrorStack::get();
    verdict
}

fn supported(key: &PKey<Public>) -> bool {
    match key_info(key) {
        KeyInfo::Rsa { bits } => bits >= 2048,
        KeyInfo::Ecdsa { curve } => curve != Curve::Other,
        KeyInfo::Other(name) => name == "Ed25519",
    }
}

/// What certpair should call `key`, from OpenSSL's reading of it.
fn key_info(key: &PKey<Public>) -> KeyInfo {
    match key.id() {
        Id::RSA => KeyInfo::Rsa { bits: key.bits() },
        Id::EC => KeyInfo::Ecdsa {
            curve: match key.ec_key().ok().and_then(|k| k.group().curve_name()) {
                Some(Nid::X9_62_PRIME256V1) => Curve::P256,
                Some(Nid::SECP384R1) => Curve::P384,
                Some(Nid::SECP521R1) => Curve::P521,
                _ => Curve::Other,
            },
        },
        Id::ED25519 => KeyInfo::Other("Ed25519".into()),
        Id::ED448 => KeyInfo::Other("Ed448".into()),
        Id::DSA => KeyInfo::Other("DSA".into()),
        other => KeyInfo::Other(format!("key type {}", other.as_raw())),
    }
}

/// A request of `info` signed by a fixed key: `pick` chooses the key and the digest. With
/// `own_key` the key's SubjectPublicKeyInfo replaces the info's; `None` when the info is too
/// broken to find it.
fn signed(info: &[u8], pick: u8, own_key: bool) -> Option<Vec<u8>> {
    let key = &KEYS[pick as usize % KEYS.len()];
    let digest = pick as usize / KEYS.len() % 4;
    let info = if own_key {
        let (body, _) = tlv(info, 0x30)?;
        let (_, version) = tlv(body, 0x02)?;
        let (_, subject) = tlv(&body[version..], 0x30)?;
        let at = version + subject;
        let (_, spki) = tlv(&body[at..], 0x30)?;
        let spki_der = key.public_key_to_der().ok()?;
        der_tlv(0x30, &[&body[..at], &spki_der, &body[at + spki..]].concat())
    } else {
        info.to_vec()
    };
    // Signature algorithm OIDs (content octets): RSA PKCS#1 v1.5, ECDSA, Ed25519.
    let (oid, md): (&[u8], _) = match (key.id(), digest) {
        (Id::RSA, 0) => (
            b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b",
            MessageDigest::sha256(),
        ),
        (Id::RSA, 1) => (
            b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0c",
            MessageDigest::sha384(),
        ),
        (Id::RSA, 2) => (
            b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0d",
            MessageDigest::sha512(),
        ),
        (Id::RSA, _) => (
            b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05",
            MessageDigest::sha1(),
        ),
        (Id::EC, 0) => (b"\x2a\x86\x48\xce\x3d\x04\x03\x02", MessageDigest::sha256()),
        (Id::EC, 1) => (b"\x2a\x86\x48\xce\x3d\x04\x03\x03", MessageDigest::sha384()),
        (Id::EC, 2) => (b"\x2a\x86\x48\xce\x3d\x04\x03\x04", MessageDigest::sha512()),
        (Id::EC, _) => (b"\x2a\x86\x48\xce\x3d\x04\x01", MessageDigest::sha1()),
        _ => (b"\x2b\x65\x70", MessageDigest::null()),
    };
    let signature = if key.id() == Id::ED25519 {
        Signer::new_without_digest(key)
            .unwrap()
            .sign_oneshot_to_vec(&info)
            .unwrap()
    } else {
        Signer::new(md, key)
            .unwrap()
            .sign_oneshot_to_vec(&info)
            .unwrap()
    };
    let mut algorithm = der_tlv(0x06, oid);
    if key.id() == Id::RSA {
        algorithm.extend_from_slice(&[0x05, 0x00]);
    }
    let bits = [&[0u8][..], &signature].concat();
    Some(der_tlv(
        0x30,
        &[info, der_tlv(0x30, &algorithm), der_tlv(0x03, &bits)].concat(),
    ))
}

/// The content of the TLV with `tag` at the start of `der`, and the TLV's whole length.
fn tlv(der: &[u8], tag: u8) -> Option<(&[u8], usize)> {
    let (&t, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if t != tag {
        return None;
    }
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (
            rest[..n].iter().fold(0, |acc, b| acc << 8 | *b as usize),
            2 + n,
        )
    };
    let content = der.get(header..header.checked_add(len)?)?;
    Some((content, header + len))
}

fn pem(der: &[u8]) -> Vec<u8> {
    certpair::pki::leaf::pem("CERTIFICATE REQUEST", der)
}
