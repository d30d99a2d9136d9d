//! Certificate revocation lists (RFC 5280 §5): sign a v2 CRL with a CA's key, and read one back.
//!
//! The ASN.1 structure is RustCrypto's `x509-cert` (typed `TbsCertList`, so no DER is written by
//! hand); OpenSSL signs it. Reading goes through `x509-parser` instead: a second, independent
//! implementation, so a round trip catches an encoder that only agrees with itself.

use std::cmp::Ordering;

use openssl::{
    error::ErrorStack,
    pkey::{PKeyRef, Private},
    x509::{X509KeyUsage, X509Ref},
};
use x509_cert::{
    Version,
    crl::{CertificateList, RevokedCert, TbsCertList},
    der::{
        Decode, Encode,
        asn1::{BitString, OctetString, Uint},
        oid::AssociatedOid,
    },
    ext::{
        Extension,
        pkix::{AuthorityKeyIdentifier, CrlNumber},
    },
    name::Name,
    serial_number::SerialNumber,
    time::Time,
};
use x509_parser::{
    oid_registry::OID_X509_EXT_CRL_NUMBER,
    prelude::{FromDer, ParsedExtension, X509Version},
    revocation_list::CertificateRevocationList,
};

use super::leaf;

/// One revoked certificate: its serial (unsigned big-endian magnitude, as openssl's
/// `BigNum::to_vec` gives) and when it was revoked (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    pub serial: Vec<u8>,
    pub revoked_at: i64,
}

/// What to put in a CRL. Times are Unix seconds.
#[derive(Clone, Copy, Debug)]
pub struct CrlSpec<'a> {
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub revoked: &'a [Revoked],
}

/// What a CRL says, read back. Times are Unix seconds; serials are big-endian magnitudes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlInfo {
    pub number: Option<u64>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    pub serials: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("the CA key ({0}) cannot sign CRLs; use ECDSA P-256, P-384 or P-521, RSA, or Ed25519")]
    UnsupportedKey(String),
    #[error("the CA private key does not match the CA certificate's public key")]
    KeyMismatch,
    #[error(
        "the CA certificate's keyUsage lacks cRLSign, so clients would reject its CRLs; \
         reissue the CA with cRLSign"
    )]
    NoCrlSign,
    #[error("the CA key identifier is empty; the CA certificate needs a subjectKeyIdentifier")]
    EmptyKeyId,
    #[error("serial {serial} cannot be listed in a CRL: {reason}")]
    InvalidSerial {
        serial: String,
        reason: &'static str,
    },
    #[error("{field} {unix} (Unix time) cannot be written in a CRL: only 1970 to 9999 can")]
    TimeOutOfRange { field: &'static str, unix: i64 },
    #[error("nextUpdate {next_update} is not after thisUpdate {this_update} (Unix time)")]
    Window { this_update: i64, next_update: i64 },
    #[error(
        "the CA certificate's subject name is not canonical DER (an unsorted multi-valued RDN?), \
         so a CRL cannot repeat it byte for byte; reissue the CA"
    )]
    IssuerName,
    #[error("the CRL could not be encoded: {0}")]
    Encode(#[from] x509_cert::der::Error),
    #[error("the CRL is malformed: {0}")]
    Malformed(String),
    #[error("OpenSSL failed: {0}")]
    OpenSsl(#[from] ErrorStack),
}

impl CrlError {
    /// Static category for metric labels and Event reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnsupportedKey(_) => "unsupported_key",
            Self::KeyMismatch => "key_mismatch",
            Self::NoCrlSign | Self::EmptyKeyId | Self::IssuerName => "unsuitable_ca",
            Self::InvalidSerial { .. } => "invalid_serial",
            Self::TimeOutOfRange { .. } | Self::Window { .. } => "invalid_time",
            Self::Encode(_) | Self::OpenSsl(_) => "internal",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// RFC 5280 §4.1.2.2: conforming CAs use at most 20 octets; a 20-octet magnitude with its top
/// bit set is 21 encoded octets, which certificates in the wild carry and so a CRL must list.
const MAX_SERIAL_LEN: usize = 20;

/// A v2 CRL signed by `issuer`'s key, DER. Extensions: cRLNumber and authorityKeyIdentifier
/// (keyIdentifier = `key_id`), both non-critical. The issuer name is `issuer`'s subject DER
/// exactly. Entries are sorted by serial with duplicates removed (the earliest revocation
/// time wins); an empty list leaves out revokedCertificates, as RFC 5280 §5.1.2.6 asks.
pub fn sign(
    issuer: &X509Ref,
    key: &PKeyRef<Private>,
    key_id: &[u8],
    spec: &CrlSpec<'_>,
) -> Result<Vec<u8>, CrlError> {
    let (algorithm, digest) = leaf::signature_algorithm(key)
        .ok_or_else(|| CrlError::UnsupportedKey(leaf::key_type_name(key)))?;
    let issuer_key = issuer.public_key()?;
    if !super::openssl_check(|| issuer_key.public_eq(key)) {
        return Err(CrlError::KeyMismatch);
    }
    if issuer
        .key_usage()
        .is_some_and(|ku| !ku.contains(X509KeyUsage::CRL_SIGN))
    {
        return Err(CrlError::NoCrlSign);
    }
    if key_id.is_empty() {
        return Err(CrlError::EmptyKeyId);
    }
    if spec.next_update <= spec.this_update {
        return Err(CrlError::Window {
            this_update: spec.this_update,
            next_update: spec.next_update,
        });
    }

    let subject = issuer.subject_name().to_der()?;
    let name = Name::from_der(&subject).map_err(|_| CrlError::IssuerName)?;
    // The decoder sorts SET OF members, so a non-canonical subject would come out different;
    // clients that compare names byte for byte would then not match the CRL to its CA.
    if name.to_der()? != subject {
        return Err(CrlError::IssuerName);
    }

    let tbs = TbsCertList {
        version: Version::V2,
        signature: algorithm.clone(),
        issuer: name,
        this_update: time("thisUpdate", spec.this_update)?,
        next_update: Some(time("nextUpdate", spec.next_update)?),
        revoked_certificates: entries(spec.revoked)?,
        crl_extensions: Some(vec![
            Extension {
                extn_id: CrlNumber::OID,
                critical: false,
                extn_value: OctetString::new(
                    CrlNumber(Uint::new(&spec.number.to_be_bytes())?).to_der()?,
                )?,
            },
            Extension {
                extn_id: AuthorityKeyIdentifier::OID,
                critical: false,
                extn_value: OctetString::new(
                    AuthorityKeyIdentifier {
                        key_identifier: Some(OctetString::new(key_id)?),
                        ..Default::default()
                    }
                    .to_der()?,
                )?,
            },
        ]),
    };
    let tbs_der = tbs.to_der()?;
    let signature = leaf::sign(key, digest, &tbs_der)?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(crl.to_der()?)
}

/// PEM ("X509 CRL") of a DER CRL.
pub fn to_pem(der: &[u8]) -> Vec<u8> {
    leaf::pem("X509 CRL", der)
}

/// What a CRL says: number, thisUpdate, nextUpdate, serials. Errors on anything malformed
/// (including trailing bytes and a cRLNumber that does not fit 64 bits); never panics.
/// The signature is not checked here.
pub fn read(der: &[u8]) -> Result<CrlInfo, CrlError> {
    let (rest, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| CrlError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CrlError::Malformed(format!(
            "{} bytes follow the CRL",
            rest.len()
        )));
    }
    let tbs = &crl.tbs_cert_list;
    if let Some(v) = tbs.version
        && v != X509Version::V2
    {
        return Err(CrlError::Malformed(format!(
            "version field {} (only 1, meaning v2, is allowed)",
            v.0
        )));
    }

    let mut number = None;
    for ext in tbs.extensions() {
        if ext.oid != OID_X509_EXT_CRL_NUMBER {
            continue;
        }
        if number.is_some() {
            return Err(CrlError::Malformed("cRLNumber appears twice".into()));
        }
        let ParsedExtension::CRLNumber(n) = ext.parsed_extension() else {
            return Err(CrlError::Malformed("cRLNumber is not an INTEGER".into()));
        };
        let n = u64::try_from(n)
            .map_err(|_| CrlError::Malformed(format!("cRLNumber {n} does not fit in 64 bits")))?;
        number = Some(n);
    }

    let mut serials = Vec::with_capacity(tbs.revoked_certificates.len());
    for entry in &tbs.revoked_certificates {
        let raw = entry.raw_serial();
        match raw.first() {
            None => return Err(CrlError::Malformed("an entry has an empty serial".into())),
            Some(b) if b & 0x80 != 0 => {
                return Err(CrlError::Malformed(format!(
                    "an entry has a negative serial ({})",
                    hex(raw)
                )));
            }
            Some(_) => serials.push(magnitude(raw).to_vec()),
        }
    }

    Ok(CrlInfo {
        number,
        this_update: tbs.this_update.timestamp(),
        next_update: tbs.next_update.map(|t| t.timestamp()),
        serials,
    })
}

/// The revokedCertificates entries, sorted by serial without duplicates; `None` when empty
/// (an empty SEQUENCE is not allowed there).
fn entries(revoked: &[Revoked]) -> Result<Option<Vec<RevokedCert>>, CrlError> {
    let mut sorted: Vec<(&[u8], i64)> = Vec::with_capacity(revoked.len());
    for r in revoked {
        let serial = magnitude(&r.serial);
        let invalid = |reason| CrlError::InvalidSerial {
            serial: hex(&r.serial),
            reason,
        };
        if serial.is_empty() {
            return Err(invalid("serial numbers are positive, this one is zero"));
        }
        if serial.len() > MAX_SERIAL_LEN {
            return Err(invalid("longer than 20 octets (RFC 5280 §4.1.2.2)"));
        }
        sorted.push((serial, r.revoked_at));
    }
    // Earliest revocation first within a serial, so that dedup keeps it.
    sorted.sort_by(|a, b| cmp_magnitude(a.0, b.0).then(a.1.cmp(&b.1)));
    sorted.dedup_by(|later, first| later.0 == first.0);
    if sorted.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(sorted.len());
    for (serial, revoked_at) in sorted {
        // Through the decoder rather than `SerialNumber::new`: `new` refuses the 21 encoded
        // octets of a 20-octet serial with its top bit set, which decoding accepts.
        let serial_number = SerialNumber::from_der(&Uint::new(serial)?.to_der()?)?;
        out.push(RevokedCert {
            serial_number,
            revocation_date: time("revocationDate", revoked_at)?,
            crl_entry_extensions: None,
        });
    }
    Ok(Some(out))
}

/// RFC 5280 §5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050; before 1970 is refused,
/// not mis-encoded.
fn time(field: &'static str, unix: i64) -> Result<Time, CrlError> {
    leaf::time(unix).ok_or(CrlError::TimeOutOfRange { field, unix })
}

fn magnitude(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Numeric order of two magnitudes without leading zeros.
fn cmp_magnitude(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "0".into();
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use std::{path::Path, process::Command};

    use openssl::{
        asn1::Asn1Time,
        bn::BigNum,
        ec::{EcGroup, EcKey},
        hash::MessageDigest,
        nid::Nid,
        pkey::{Id, PKey},
        rsa::Rsa,
        ssl::SslFiletype,
        stack::Stack,
        x509::{
            X509, X509Builder, X509Crl, X509NameBuilder, X509StoreContext, X509VerifyResult,
            extension::{
                AuthorityKeyIdentifier as AkiExt, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
            },
            store::{X509Lookup, X509StoreBuilder},
            verify::X509VerifyFlags,
        },
    };

    use x509_cert::der::Any;

    use super::*;

    /// X509_V_ERR_CERT_REVOKED; `openssl` names no constant for it.
    const CERT_REVOKED: i32 = 23;

    use crate::pki::{now_unix as now, openssl_check};

    fn ec(nid: Nid) -> PKey<Private> {
        let group = EcGroup::from_curve_name(nid).expect("curve");
        PKey::from_ec_key(EcKey::generate(&group).expect("ec")).expect("pkey")
    }

    fn rsa() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey")
    }

    fn digest_for(key: &PKeyRef<Private>) -> MessageDigest {
        if key.id() == Id::ED25519 || key.id() == Id::ED448 {
            MessageDigest::null()
        } else {
            MessageDigest::sha256()
        }
    }

    /// A self-signed CA with subjectKeyIdentifier, and its SKI bytes.
    fn ca_with(key: &PKeyRef<Private>, usage: KeyUsage) -> (X509, Vec<u8>) {
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("O", "certpair tests").expect("O");
        name.append_entry_by_text("CN", "crl test CA").expect("CN");
        let name = name.build();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("version");
        let serial = BigNum::from_u32(1)
            .expect("bn")
            .to_asn1_integer()
            .expect("int");
        b.set_serial_number(&serial).expect("serial");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(key).expect("pubkey");
        b.set_not_before(&Asn1Time::from_unix(now() - 3600).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(now() + 86_400).expect("t"))
            .expect("na");
        let bc = BasicConstraints::new().critical().ca().build().expect("bc");
        b.append_extension(bc).expect("bc");
        b.append_extension(usage.build().expect("ku")).expect("ku");
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .expect("ski");
        b.append_extension(ski).expect("ski");
        b.sign(key, digest_for(key)).expect("sign");
        let cert = b.build();
        let ski = cert.subject_key_id().expect("ski").as_slice().to_vec();
        (cert, ski)
    }

    fn ca(key: &PKeyRef<Private>) -> (X509, Vec<u8>) {
        let mut usage = KeyUsage::new();
        usage.critical().key_cert_sign().crl_sign();
        ca_with(key, usage)
    }

    fn leaf(ca: &X509Ref, ca_key: &PKeyRef<Private>, serial: &[u8]) -> X509 {
        let key = ec(Nid::X9_62_PRIME256V1);
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "leaf").expect("CN");
        let name = name.build();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("version");
        let serial = BigNum::from_slice(serial).expect("bn");
        b.set_serial_number(&serial.to_asn1_integer().expect("int"))
            .expect("serial");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(ca.subject_name()).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&Asn1Time::from_unix(now() - 600).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(now() + 3600).expect("t"))
            .expect("na");
        let aki = AkiExt::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(ca), None))
            .expect("aki");
        b.append_extension(aki).expect("aki");
        b.sign(ca_key, digest_for(ca_key)).expect("sign");
        b.build()
    }

    fn spec(revoked: &[Revoked]) -> CrlSpec<'_> {
        CrlSpec {
            number: 7,
            this_update: now() - 60,
            next_update: now() + 3600,
            revoked,
        }
    }

    fn revoked(serials: &[&[u8]]) -> Vec<Revoked> {
        serials
            .iter()
            .map(|s| Revoked {
                serial: s.to_vec(),
                revoked_at: now() - 120,
            })
            .collect()
    }

    /// The verification result of `leaf` against `ca` with `crl_pem` loaded, CRL checking on.
    fn store_verify(dir: &Path, ca: &X509, crl_pem: &[u8], leaf: &X509) -> X509VerifyResult {
        let path = dir.join("store-crl.pem");
        std::fs::write(&path, crl_pem).expect("write CRL");
        let mut b = X509StoreBuilder::new().expect("store");
        b.add_cert(ca.clone()).expect("ca");
        b.add_lookup(X509Lookup::file())
            .expect("lookup")
            .load_crl_file(&path, SslFiletype::PEM)
            .expect("load CRL");
        b.set_flags(X509VerifyFlags::CRL_CHECK).expect("flags");
        let store = b.build();
        let chain = Stack::new().expect("stack");
        let mut ctx = X509StoreContext::new().expect("ctx");
        ctx.init(&store, leaf, &chain, |c| {
            c.verify_cert()?;
            Ok(c.error())
        })
        .expect("verify")
    }

    fn openssl_cli() -> bool {
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Runs `openssl args…` in `dir`: success and stdout+stderr.
    fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Everything a client does with a CRL from a CA with this key: parse, verify the
    /// signature (and fail it once tampered), match the issuer, and reject a listed leaf.
    fn check_key(key: PKey<Private>) {
        let (ca_cert, ski) = ca(&key);
        let revoked_serial: &[u8] = &[0x9A, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];
        let good_serial: &[u8] = &[0x11, 0x22, 0x33];
        let entries = revoked(&[&[0x42], revoked_serial]);
        let der = sign(&ca_cert, &key, &ski, &spec(&entries)).expect("sign");
        let ca_pub = ca_cert.public_key().expect("pub");

        let crl = X509Crl::from_der(&der).expect("openssl parses the CRL");
        assert!(crl.verify(&ca_pub).expect("verify"), "signature verifies");
        assert_eq!(
            crl.issuer_name().to_der().expect("der"),
            ca_cert.subject_name().to_der().expect("der")
        );
        assert_eq!(crl.get_revoked().map(|r| r.len()), Some(2));

        // One byte of the issuer's CN changed: still a CRL, no longer the CA's signature.
        let mut tampered = der.clone();
        let at = tampered
            .windows(b"crl test CA".len())
            .position(|w| w == b"crl test CA")
            .expect("CN in DER");
        tampered[at] ^= 0x01;
        let tampered = X509Crl::from_der(&tampered).expect("still parses");
        assert!(!openssl_check(|| tampered.verify(&ca_pub).unwrap_or(false)));

        let dir = tempfile::tempdir().expect("tempdir");
        let pem = to_pem(&der);
        let bad = leaf(&ca_cert, &key, revoked_serial);
        let ok = leaf(&ca_cert, &key, good_serial);
        let result = store_verify(dir.path(), &ca_cert, &pem, &bad);
        assert_eq!(result.as_raw(), CERT_REVOKED, "{}", result.error_string());
        let result = store_verify(dir.path(), &ca_cert, &pem, &ok);
        assert_eq!(result, X509VerifyResult::OK, "{}", result.error_string());

        if !openssl_cli() {
            eprintln!("openssl command not on PATH: command-line checks skipped");
            return;
        }
        let write =
            |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).expect("write");
        write("ca.pem", &ca_cert.to_pem().expect("pem"));
        write("crl.der", &der);
        write("crl.pem", &pem);
        write("revoked.pem", &bad.to_pem().expect("pem"));
        write("ok.pem", &ok.to_pem().expect("pem"));
        let (_, text) = cli(
            dir.path(),
            &[
                "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout", "-verify",
            ],
        );
        assert!(text.contains("verify OK"), "{text}");
        let verify = [
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "crl.pem",
        ];
        let (passed, text) = cli(dir.path(), &[&verify[..], &["revoked.pem"]].concat());
        assert!(!passed && text.contains("revoked"), "{text}");
        let (passed, text) = cli(dir.path(), &[&verify[..], &["ok.pem"]].concat());
        assert!(passed && text.contains("OK"), "{text}");
    }

    #[test]
    fn p256_crl_is_accepted_and_revokes() {
        check_key(ec(Nid::X9_62_PRIME256V1));
    }

    #[test]
    fn p384_crl_is_accepted_and_revokes() {
        check_key(ec(Nid::SECP384R1));
    }

    #[test]
    fn rsa_crl_is_accepted_and_revokes() {
        check_key(rsa());
    }

    #[test]
    fn p521_and_ed25519_crls_verify() {
        for key in [
            ec(Nid::SECP521R1),
            PKey::generate_ed25519().expect("ed25519"),
        ] {
            let (ca_cert, ski) = ca(&key);
            let der = sign(&ca_cert, &key, &ski, &spec(&revoked(&[&[1]]))).expect("sign");
            let crl = X509Crl::from_der(&der).expect("parse");
            assert!(
                crl.verify(&ca_cert.public_key().expect("pub"))
                    .expect("verify")
            );
        }
    }

    #[test]
    fn signature_algorithm_follows_the_key() {
        let cases = [
            (ec(Nid::X9_62_PRIME256V1), "1.2.840.10045.4.3.2", false),
            (ec(Nid::SECP384R1), "1.2.840.10045.4.3.3", false),
            (ec(Nid::SECP521R1), "1.2.840.10045.4.3.4", false),
            (rsa(), "1.2.840.113549.1.1.11", true),
            (PKey::generate_ed25519().expect("ed"), "1.3.101.112", false),
        ];
        for (key, oid, null_params) in cases {
            let (ca_cert, ski) = ca(&key);
            let der = sign(&ca_cert, &key, &ski, &spec(&[])).expect("sign");
            let crl =
                CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).expect("decode");
            for alg in [&crl.signature_algorithm, &crl.tbs_cert_list.signature] {
                assert_eq!(alg.oid.to_string(), oid);
                assert_eq!(alg.parameters == Some(Any::null()), null_params, "{oid}");
                assert_eq!(alg.parameters.is_none(), !null_params, "{oid}");
            }
            // Both extensions, non-critical, AKI carrying exactly the key id given.
            let exts = crl.tbs_cert_list.crl_extensions.expect("extensions");
            assert!(exts.iter().all(|e| !e.critical));
            let aki = exts
                .iter()
                .find(|e| e.extn_id == AuthorityKeyIdentifier::OID)
                .expect("AKI");
            let aki = AuthorityKeyIdentifier::from_der(aki.extn_value.as_bytes()).expect("AKI");
            assert_eq!(
                aki.key_identifier.expect("keyIdentifier").as_bytes(),
                &ski[..]
            );
            assert!(exts.iter().any(|e| e.extn_id == CrlNumber::OID));
        }
    }

    #[test]
    fn unsupported_and_mismatched_keys_are_refused() {
        for key in [ec(Nid::SECP256K1), PKey::generate_ed448().expect("ed448")] {
            let (ca_cert, ski) = ca(&key);
            let err = sign(&ca_cert, &key, &ski, &spec(&[])).expect_err("unsupported");
            assert!(matches!(err, CrlError::UnsupportedKey(_)), "{err}");
        }
        let key = ec(Nid::X9_62_PRIME256V1);
        let (ca_cert, ski) = ca(&key);
        let other = ec(Nid::X9_62_PRIME256V1);
        let err = sign(&ca_cert, &other, &ski, &spec(&[])).expect_err("mismatch");
        assert!(matches!(err, CrlError::KeyMismatch), "{err}");
        assert!(
            ErrorStack::get().errors().is_empty(),
            "no stale OpenSSL errors"
        );
        let err = sign(&ca_cert, &key, &[], &spec(&[])).expect_err("no key id");
        assert!(matches!(err, CrlError::EmptyKeyId), "{err}");

        let mut usage = KeyUsage::new();
        usage.critical().key_cert_sign();
        let (no_crl_sign, ski) = ca_with(&key, usage);
        let err = sign(&no_crl_sign, &key, &ski, &spec(&[])).expect_err("no cRLSign");
        assert!(matches!(err, CrlError::NoCrlSign), "{err}");
    }

    #[test]
    fn serials_are_sorted_deduplicated_and_round_trip() {
        let key = ec(Nid::X9_62_PRIME256V1);
        let (ca_cert, ski) = ca(&key);
        let top_bit: &[u8] = &[0x80, 0x01];
        let max: Vec<u8> = vec![0xFF; 20];
        let entries = vec![
            Revoked {
                serial: max.clone(),
                revoked_at: 1_000,
            },
            Revoked {
                serial: top_bit.to_vec(),
                revoked_at: 900,
            },
            Revoked {
                serial: vec![0x00, 0x00, 0x05],
                revoked_at: 800,
            },
            Revoked {
                serial: vec![0x05],
                revoked_at: 700,
            },
            Revoked {
                serial: vec![0x7F],
                revoked_at: 600,
            },
            Revoked {
                serial: vec![0x00, 0x80, 0x01],
                revoked_at: 500,
            },
        ];
        let der = sign(&ca_cert, &key, &ski, &spec(&entries)).expect("sign");
        let info = read(&der).expect("read");
        assert_eq!(
            info.serials,
            vec![vec![0x05], vec![0x7F], top_bit.to_vec(), max.clone()]
        );

        // On the wire: minimal positive INTEGERs, a 0x00 only before a set top bit.
        let (_, parsed) = CertificateRevocationList::from_der(&der).expect("parse");
        let raw: Vec<&[u8]> = parsed
            .iter_revoked_certificates()
            .map(|r| r.raw_serial())
            .collect();
        let mut max_raw = vec![0x00];
        max_raw.extend_from_slice(&max);
        assert_eq!(
            raw,
            vec![&[0x05][..], &[0x7F], &[0x00, 0x80, 0x01], &max_raw[..]]
        );
        // A duplicate keeps its earliest revocation time.
        let dates: Vec<i64> = parsed
            .iter_revoked_certificates()
            .map(|r| r.revocation_date.timestamp())
            .collect();
        assert_eq!(dates, vec![700, 600, 500, 1_000]);

        // OpenSSL reads the same serials.
        let crl = X509Crl::from_der(&der).expect("openssl parses");
        let serials: Vec<Vec<u8>> = crl
            .get_revoked()
            .expect("entries")
            .iter()
            .map(|r| r.serial_number().to_bn().expect("bn").to_vec())
            .collect();
        assert_eq!(serials, info.serials);
    }

    #[test]
    fn bad_serials_are_refused() {
        let key = ec(Nid::X9_62_PRIME256V1);
        let (ca_cert, ski) = ca(&key);
        for serial in [vec![], vec![0, 0], vec![0x01; 21]] {
            let entries = [Revoked {
                serial,
                revoked_at: 0,
            }];
            let err = sign(&ca_cert, &key, &ski, &spec(&entries)).expect_err("bad serial");
            assert!(matches!(err, CrlError::InvalidSerial { .. }), "{err}");
        }
    }

    #[test]
    fn number_and_times_round_trip() {
        let key = ec(Nid::X9_62_PRIME256V1);
        let (ca_cert, ski) = ca(&key);
        let last_utc = 2_524_607_999; // 2049-12-31T23:59:59Z
        for (number, this_update, next_update) in [
            (0, 0, 1),
            (1, 1_700_000_000, 1_700_086_400),
            (u64::MAX, last_utc, last_utc + 1),
            (1 << 63, last_utc + 1, 253_402_300_799), // 9999-12-31T23:59:59Z
        ] {
            let entries = [Revoked {
                serial: vec![9],
                revoked_at: this_update,
            }];
            let s = CrlSpec {
                number,
                this_update,
                next_update,
                revoked: &entries,
            };
            let der = sign(&ca_cert, &key, &ski, &s).expect("sign");
            let info = read(&der).expect("read");
            assert_eq!(
                info,
                CrlInfo {
                    number: Some(number),
                    this_update,
                    next_update: Some(next_update),
                    serials: vec![vec![9]],
                }
            );
            // UTCTime through 2049, GeneralizedTime after.
            let crl =
                CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).expect("decode");
            let utc = |t: &Time| matches!(t, Time::UtcTime(_));
            let tbs = &crl.tbs_cert_list;
            assert_eq!(utc(&tbs.this_update), this_update <= last_utc);
            assert_eq!(
                utc(&tbs.next_update.expect("nextUpdate")),
                next_update <= last_utc
            );
            let entry = &tbs.revoked_certificates.as_ref().expect("entries")[0];
            assert_eq!(utc(&entry.revocation_date), this_update <= last_utc);
        }
    }

    #[test]
    fn bad_times_are_refused() {
        let key = ec(Nid::X9_62_PRIME256V1);
        let (ca_cert, ski) = ca(&key);
        let t = now();
        let cases = [(t, t), (t, t - 1), (-1, t), (t, 253_402_300_800)];
        for (this_update, next_update) in cases {
            let s = CrlSpec {
                number: 1,
                this_update,
                next_update,
                revoked: &[],
            };
            let err = sign(&ca_cert, &key, &ski, &s).expect_err("bad window");
            assert!(
                matches!(
                    err,
                    CrlError::Window { .. } | CrlError::TimeOutOfRange { .. }
                ),
                "{err}"
            );
        }
        let entries = [Revoked {
            serial: vec![1],
            revoked_at: -5,
        }];
        let err = sign(&ca_cert, &key, &ski, &spec(&entries)).expect_err("bad date");
        assert!(matches!(
            err,
            CrlError::TimeOutOfRange {
                field: "revocationDate",
                ..
            }
        ));
    }

    #[test]
    fn empty_crl_is_valid_and_has_no_entries_field() {
        let key = ec(Nid::X9_62_PRIME256V1);
        let (ca_cert, ski) = ca(&key);
        let der = sign(&ca_cert, &key, &ski, &spec(&[])).expect("sign");
        let crl = X509Crl::from_der(&der).expect("parse");
        assert!(
            crl.verify(&ca_cert.public_key().expect("pub"))
                .expect("verify")
        );
        assert!(crl.get_revoked().is_none());
        let decoded =
            CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der).expect("decode");
        assert!(decoded.tbs_cert_list.revoked_certificates.is_none());
        let info = read(&der).expect("read");
        assert!(info.serials.is_empty());
        assert_eq!(info.number, Some(7));

        // And it leaves a listed-nowhere leaf valid under CRL checking.
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = leaf(&ca_cert, &key, &[0x33]);
        let result = store_verify(dir.path(), &ca_cert, &to_pem(&der), &ok);
        assert_eq!(result, X509VerifyResult::OK, "{}", result.error_string());
    }

    #[test]
    fn pem_wraps_the_der() {
        let key = ec(Nid::X9_62_PRIME256V1);
        let (ca_cert, ski) = ca(&key);
        let der = sign(&ca_cert, &key, &ski, &spec(&revoked(&[&[1], &[2]]))).expect("sign");
        let pem = to_pem(&der);
        let text = std::str::from_utf8(&pem).expect("ascii");
        assert!(text.starts_with("-----BEGIN X509 CRL-----\n"));
        assert!(text.ends_with("-----END X509 CRL-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
        let crl = X509Crl::from_pem(&pem).expect("openssl reads the PEM");
        assert_eq!(crl.to_der().expect("der"), der);
    }

    #[test]
    fn read_refuses_garbage_without_panicking() {
        let key = ec(Nid::X9_62_PRIME256V1);
        let (ca_cert, ski) = ca(&key);
        let der = sign(&ca_cert, &key, &ski, &spec(&revoked(&[&[1], &[0x80]]))).expect("sign");
        assert!(read(&der).is_ok());

        for garbage in [&b""[..], b"\x30", b"\x30\x00", b"garbage", &[0xFF; 64]] {
            assert!(read(garbage).is_err(), "{garbage:?}");
        }
        assert!(read(&to_pem(&der)).is_err(), "PEM is not DER");
        for len in 0..der.len() {
            assert!(read(&der[..len]).is_err(), "truncated to {len}");
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(read(&trailing).is_err(), "trailing byte");

        // Any single corrupted byte: an answer either way, never a panic.
        for i in 0..der.len() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut bent = der.clone();
                bent[i] ^= flip;
                let _ = read(&bent);
            }
        }
    }
}
