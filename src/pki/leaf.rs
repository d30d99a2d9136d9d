//! Leaf certificates as DER: the TBSCertificate is typed (RustCrypto's `der` and `x509-cert`,
//! so no DER is written by hand) and OpenSSL signs it, as [`super::crl`] does for CRLs.
//!
//! Why not OpenSSL's `X509Builder`, which certpair used before: measured with
//! `valgrind --tool=callgrind` on 2,000 P-256 client certificates, the builder path cost
//! 772,000 instructions per certificate, of which the ECDSA signature was 247,000. The rest was
//! the builder duplicating names and extensions into its own structures, re-encoding the whole
//! certificate to sign it, to DER and to PEM, and re-encoding the CA chain as PEM every time.
//! Here what is the same for every certificate of a CA (issuer name, signature algorithm,
//! authority key identifier, chain PEM) is encoded once per CA ([`LeafTemplate`]), and each
//! certificate is encoded once.
//!
//! The output is byte-for-byte what the builder made (same subject string types, extension
//! order and encodings): `tests::same_tbs_as_openssls_builder` compares the two.

use std::{net::IpAddr, time::Duration};

use der::{
    Decode, Encode, Sequence,
    asn1::{AnyRef, BitStringRef, Ia5String, OctetString, Utf8StringRef},
};
use openssl::{
    ec::EcKey,
    ecdsa::EcdsaSig,
    error::ErrorStack,
    hash::{MessageDigest, hash},
    nid::Nid,
    pkey::{Id, PKeyRef, Private},
    sha,
    sign::Signer,
    x509::X509Ref,
};
use x509_cert::{
    AlgorithmIdentifier, Version,
    attr::AttributeTypeAndValue,
    der::{
        Any, DateTime,
        asn1::PrintableStringRef,
        oid::{
            AssociatedOid, ObjectIdentifier,
            db::{rfc4519, rfc5280, rfc5912, rfc8410},
        },
    },
    ext::{
        Extension,
        pkix::{
            AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
            SubjectAltName, name::GeneralName,
        },
    },
    name::RelativeDistinguishedName,
    serial_number::SerialNumber,
    time::{Time, Validity},
};

use super::{
    csr::{AttributeKind, SubjectAttribute},
    profile::{self, Window},
};

/// Why a leaf could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    #[error("the CA key ({0}) cannot sign; use ECDSA P-256, P-384 or P-521, RSA, or Ed25519")]
    UnsupportedKey(String),
    #[error("subject attribute {attribute} cannot be placed in a certificate: {reason}")]
    Attribute {
        attribute: String,
        reason: &'static str,
    },
    #[error("{0} cannot be written in a certificate: only 1970 to 9999 can")]
    TimeOutOfRange(i64),
    #[error("the certificate could not be encoded: {0}")]
    Encode(#[from] der::Error),
    #[error("OpenSSL failed: {0}")]
    OpenSsl(#[from] ErrorStack),
}

/// The signatureAlgorithm for a CA key and the digest to sign with (`None`: the key hashes
/// itself, Ed25519), or `None` for a key certpair cannot sign with.
pub(crate) fn signature_algorithm(
    key: &PKeyRef<Private>,
) -> Option<(AlgorithmIdentifier, Option<MessageDigest>)> {
    let bare = |oid: ObjectIdentifier| AlgorithmIdentifier {
        oid,
        parameters: None,
    };
    match key.id() {
        Id::EC => {
            let (oid, md) = match key.ec_key().ok()?.group().curve_name()? {
                Nid::X9_62_PRIME256V1 => (rfc5912::ECDSA_WITH_SHA_256, MessageDigest::sha256()),
                Nid::SECP384R1 => (rfc5912::ECDSA_WITH_SHA_384, MessageDigest::sha384()),
                Nid::SECP521R1 => (rfc5912::ECDSA_WITH_SHA_512, MessageDigest::sha512()),
                _ => return None,
            };
            Some((bare(oid), Some(md)))
        }
        // RFC 4055 §5: the sha*WithRSAEncryption parameters are NULL, not absent.
        Id::RSA => Some((
            AlgorithmIdentifier {
                oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
            Some(MessageDigest::sha256()),
        )),
        Id::ED25519 => Some((bare(rfc8410::ID_ED_25519), None)),
        _ => None,
    }
}

/// A key's type as OpenSSL names it, for errors about unsupported keys.
pub(crate) fn key_type_name(key: &PKeyRef<Private>) -> String {
    if let Ok(ec) = key.ec_key() {
        let curve = ec.group().curve_name();
        let name = curve
            .and_then(|n| n.short_name().ok())
            .unwrap_or("explicit parameters");
        return format!("EC curve {name}");
    }
    Nid::from_raw(key.id().as_raw())
        .short_name()
        .map(str::to_owned)
        .unwrap_or_else(|_| format!("type {}", key.id().as_raw()))
}

/// Signs `tbs` with `key` (`digest` from [`signature_algorithm`]).
pub(crate) fn sign(
    key: &PKeyRef<Private>,
    digest: Option<MessageDigest>,
    tbs: &[u8],
) -> Result<Vec<u8>, ErrorStack> {
    match digest {
        Some(md) => {
            let mut signer = Signer::new(md, key)?;
            signer.update(tbs)?;
            signer.sign_to_vec()
        }
        // Ed25519 hashes internally and only signs in one shot.
        None => Signer::new_without_digest(key)?.sign_oneshot_to_vec(tbs),
    }
}

/// A validity time: RFC 5280 §4.1.2.5, UTCTime through 2049, GeneralizedTime from 2050
/// (`Time::from` picks so). The `der` crate's calendar starts at 1970.
pub(crate) fn time(unix: i64) -> Option<Time> {
    let secs = u64::try_from(unix).ok()?;
    let at = DateTime::from_unix_duration(Duration::from_secs(secs)).ok()?;
    Some(Time::from(at))
}

/// PEM of one DER block under `label`, 64 characters a line (RFC 7468).
pub fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    let b64 = openssl::base64::encode_block(der);
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.extend_from_slice(b"-----BEGIN ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
    out
}

/// What every leaf of one CA shares, encoded once when the CA is loaded.
pub(crate) struct LeafTemplate {
    /// The CA's subject DER, byte for byte (clients match issuer to subject so).
    issuer: Vec<u8>,
    /// The signatureAlgorithm, DER.
    algorithm: Vec<u8>,
    digest: Option<MessageDigest>,
    /// An ECDSA CA key, signed with directly (see [`LeafTemplate::sign`]).
    ec_key: Option<EcKey<Private>>,
    /// The authorityKeyIdentifier extension.
    authority_key_id: Extension,
    /// basicConstraints, then keyUsage for a non-RSA and for an RSA key, then the client
    /// extKeyUsage: the same for every leaf, so encoded once.
    basic_constraints: Extension,
    key_usage: [Extension; 2],
    client_usage: Extension,
}

/// What one leaf holds beyond the template.
pub(crate) struct LeafSpec<'a> {
    /// Magnitude, big-endian, non-zero, at most 20 octets.
    pub serial: &'a [u8],
    pub window: Window,
    pub subject: &'a [SubjectAttribute],
    /// The certified key's SubjectPublicKeyInfo, DER.
    pub spki: &'a [u8],
    pub rsa_key: bool,
    pub usage: LeafUsage<'a>,
}

/// The extended key usage (and names) of a leaf.
#[derive(Clone, Copy)]
pub(crate) enum LeafUsage<'a> {
    Client,
    Serving {
        dns_names: &'a [String],
        ips: &'a [IpAddr],
    },
}

/// `TBSCertificate` (RFC 5280 §4.1) with the parts that are already DER kept as they are.
#[derive(Sequence)]
struct TbsCertificate<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: Version,
    serial_number: SerialNumber,
    signature: AnyRef<'a>,
    issuer: AnyRef<'a>,
    validity: Validity,
    subject: Vec<RelativeDistinguishedName>,
    subject_public_key_info: AnyRef<'a>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: Vec<Extension>,
}

#[derive(Sequence)]
struct Certificate<'a> {
    tbs_certificate: AnyRef<'a>,
    signature_algorithm: AnyRef<'a>,
    signature: BitStringRef<'a>,
}

impl LeafTemplate {
    /// The template of CA certificate `ca` with private key `key`.
    pub(crate) fn new(ca: &X509Ref, key: &PKeyRef<Private>) -> Result<Self, LeafError> {
        let (algorithm, digest) = signature_algorithm(key)
            .ok_or_else(|| LeafError::UnsupportedKey(key_type_name(key)))?;
        let key_id = profile::key_identifier(ca)?;
        Ok(Self {
            issuer: ca.subject_name().to_der()?,
            algorithm: algorithm.to_der()?,
            digest,
            ec_key: key.ec_key().ok(),
            authority_key_id: extension(
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(OctetString::new(key_id)?),
                    ..Default::default()
                },
            )?,
            basic_constraints: extension(
                true,
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
            )?,
            key_usage: [
                extension(true, &KeyUsage(KeyUsages::DigitalSignature.into()))?,
                extension(
                    true,
                    &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
                )?,
            ],
            client_usage: extension(
                false,
                &ExtendedKeyUsage(vec![profile::client::EXTENDED_KEY_USAGE]),
            )?,
        })
    }

    /// The leaf as DER, signed with `key` (the CA's).
    pub(crate) fn issue(
        &self,
        key: &PKeyRef<Private>,
        spec: &LeafSpec<'_>,
    ) -> Result<Vec<u8>, LeafError> {
        let spki = AnyRef::from_der(spec.spki)?;
        let subject_key = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spec.spki)?;
        let validity = Validity::new(
            time(spec.window.not_before)
                .ok_or(LeafError::TimeOutOfRange(spec.window.not_before))?,
            time(spec.window.not_after).ok_or(LeafError::TimeOutOfRange(spec.window.not_after))?,
        );
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(spec.serial)?,
            signature: AnyRef::from_der(&self.algorithm)?,
            issuer: AnyRef::from_der(&self.issuer)?,
            validity,
            subject: subject(spec.subject)?,
            subject_public_key_info: spki,
            extensions: self.extensions(spec, subject_key.subject_public_key.raw_bytes())?,
        }
        .to_der()?;
        let signature = self.sign(key, &tbs)?;
        Ok(Certificate {
            tbs_certificate: AnyRef::from_der(&tbs)?,
            signature_algorithm: AnyRef::from_der(&self.algorithm)?,
            signature: BitStringRef::from_bytes(&signature)?,
        }
        .to_der()?)
    }

    /// The signature of `tbs`. An ECDSA key signs the digest through `ECDSA_do_sign`: the same
    /// OpenSSL signature code as `EVP_DigestSign`, without setting up an EVP context per
    /// certificate, which cost 45,000 instructions, a fifth of a P-256 signature.
    fn sign(&self, key: &PKeyRef<Private>, tbs: &[u8]) -> Result<Vec<u8>, ErrorStack> {
        match (&self.ec_key, self.digest) {
            (Some(ec), Some(md)) => EcdsaSig::sign(&digest(md, tbs)?, ec)?.to_der(),
            _ => sign(key, self.digest, tbs),
        }
    }

    /// The extensions of every leaf, in the order certpair has always written them:
    /// basicConstraints (critical, not a CA), keyUsage (critical: digitalSignature, and
    /// keyEncipherment for RSA keys), extKeyUsage, subjectAltName (serving), subject and
    /// authority key identifiers.
    fn extensions(
        &self,
        spec: &LeafSpec<'_>,
        subject_public_key: &[u8],
    ) -> Result<Vec<Extension>, LeafError> {
        let mut out = Vec::with_capacity(6);
        out.push(self.basic_constraints.clone());
        out.push(self.key_usage[usize::from(spec.rsa_key)].clone());
        match spec.usage {
            LeafUsage::Client => out.push(self.client_usage.clone()),
            LeafUsage::Serving { dns_names, ips } => {
                out.push(extension(
                    false,
                    &ExtendedKeyUsage(vec![profile::serving::EXTENDED_KEY_USAGE]),
                )?);
                let mut names = Vec::with_capacity(dns_names.len() + ips.len());
                for dns in dns_names {
                    names.push(GeneralName::DnsName(Ia5String::new(dns)?));
                }
                for ip in ips {
                    let octets = match ip {
                        IpAddr::V4(v4) => v4.octets().to_vec(),
                        IpAddr::V6(v6) => v6.octets().to_vec(),
                    };
                    names.push(GeneralName::IpAddress(OctetString::new(octets)?));
                }
                out.push(extension(false, &SubjectAltName(names))?);
            }
        }
        // RFC 5280 §4.2.1.2 method 1, as OpenSSL's "hash": SHA-1 of the subjectPublicKey.
        let ski = OctetString::new(openssl::sha::sha1(subject_public_key).to_vec())?;
        out.push(Extension {
            extn_id: rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(ski.to_der()?)?,
        });
        out.push(self.authority_key_id.clone());
        Ok(out)
    }
}

/// `md` of `data`; the SHA-2 digests certpair signs with without an EVP fetch per call.
pub(crate) fn digest(md: MessageDigest, data: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    Ok(match md.type_() {
        Nid::SHA256 => sha::sha256(data).to_vec(),
        Nid::SHA384 => sha::sha384(data).to_vec(),
        Nid::SHA512 => sha::sha512(data).to_vec(),
        _ => hash(md, data)?.to_vec(),
    })
}

/// Whether `der` is a SubjectPublicKeyInfo in strict DER (decodes, and encodes back to the
/// same bytes), so a certificate may carry it as it is. An RSA key must also carry the NULL
/// parameters RFC 3279 §2.3.1 requires (OpenSSL reads a key without them; re-encoded, the key
/// gets them).
pub(crate) fn is_strict_der_spki(der: &[u8]) -> bool {
    let Ok(spki) = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(der) else {
        return false;
    };
    let rsa_without_null = spki.algorithm.oid == rfc5912::RSA_ENCRYPTION
        && spki.algorithm.parameters.is_none_or(|p| !p.is_null());
    !rsa_without_null && spki.to_der().is_ok_and(|again| again == der)
}

fn extension<T: AssociatedOid + Encode>(
    critical: bool,
    value: &T,
) -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// The subject, one attribute per RDN in the request's order, as OpenSSL's
/// `X509_NAME_add_entry_by_NID` with its default string mask writes it: UTF8String, except
/// countryName, which X.520 makes a two-letter PrintableString. The same upper bounds
/// (RFC 5280 Appendix A) apply, counted in characters.
fn subject(attributes: &[SubjectAttribute]) -> Result<Vec<RelativeDistinguishedName>, LeafError> {
    let mut out = Vec::with_capacity(attributes.len());
    for attr in attributes {
        let refuse = |reason| LeafError::Attribute {
            attribute: attr.kind.to_string(),
            reason,
        };
        let (oid, upper) = match attr.kind {
            AttributeKind::CommonName => (rfc4519::CN, 64),
            AttributeKind::Organization => (rfc4519::O, 64),
            AttributeKind::OrganizationalUnit => (rfc4519::OU, 64),
            AttributeKind::Locality => (rfc4519::L, 128),
            AttributeKind::Province => (rfc4519::ST, 128),
            AttributeKind::Country => (rfc4519::C, 2),
            AttributeKind::Other(_) => return Err(refuse("certpair does not know its type")),
        };
        let chars = attr.value.chars().count();
        if chars == 0 {
            return Err(refuse("it is empty"));
        }
        if chars > upper {
            return Err(refuse("it is longer than RFC 5280 allows"));
        }
        let value = if attr.kind == AttributeKind::Country {
            if chars != 2 {
                return Err(refuse("a country is two letters"));
            }
            let printable = PrintableStringRef::new(&attr.value)
                .map_err(|_| refuse("a country is two letters"))?;
            Any::encode_from(&printable)?
        } else {
            Any::encode_from(&Utf8StringRef::new(&attr.value)?)?
        };
        out.push(RelativeDistinguishedName::try_from(vec![
            AttributeTypeAndValue { oid, value },
        ])?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use openssl::{
        asn1::Asn1Time,
        bn::BigNum,
        pkey::{PKey, Public},
        x509::{
            X509, X509Builder, X509NameBuilder,
            extension::{
                AuthorityKeyIdentifier as AkiExt, BasicConstraints as BcExt,
                ExtendedKeyUsage as EkuExt, KeyUsage as KuExt, SubjectAlternativeName,
                SubjectKeyIdentifier,
            },
        },
    };
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;
    use crate::pki::{
        authority::Authority,
        now_unix,
        testing::{ec, p256, rsa},
    };

    fn attr(kind: AttributeKind, value: &str) -> SubjectAttribute {
        SubjectAttribute {
            kind,
            value: value.into(),
        }
    }

    /// The leaf as OpenSSL's builder makes it (what certpair issued before this module).
    fn reference(
        ca: &X509,
        ca_key: &PKeyRef<Private>,
        md: MessageDigest,
        spec: &LeafSpec<'_>,
        key: &PKey<Public>,
    ) -> X509 {
        let mut name = X509NameBuilder::new().expect("name");
        for a in spec.subject {
            name.append_entry_by_nid(a.kind.nid().expect("nid"), &a.value)
                .expect("entry");
        }
        let name = name.build();
        let mut b = X509Builder::new().expect("builder");
        b.set_version(2).expect("v3");
        let serial = BigNum::from_slice(spec.serial).expect("serial");
        b.set_serial_number(&serial.to_asn1_integer().expect("int"))
            .expect("serial");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(ca.subject_name()).expect("issuer");
        b.set_pubkey(key).expect("key");
        b.set_not_before(&Asn1Time::from_unix(spec.window.not_before).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(spec.window.not_after).expect("t"))
            .expect("na");
        b.append_extension(BcExt::new().critical().build().expect("bc"))
            .expect("bc");
        let mut ku = KuExt::new();
        ku.critical().digital_signature();
        if spec.rsa_key {
            ku.key_encipherment();
        }
        b.append_extension(ku.build().expect("ku")).expect("ku");
        match spec.usage {
            LeafUsage::Client => b
                .append_extension(EkuExt::new().client_auth().build().expect("eku"))
                .expect("eku"),
            LeafUsage::Serving { dns_names, ips } => {
                b.append_extension(EkuExt::new().server_auth().build().expect("eku"))
                    .expect("eku");
                let mut san = SubjectAlternativeName::new();
                for dns in dns_names {
                    san.dns(dns);
                }
                for ip in ips {
                    san.ip(&ip.to_string());
                }
                let san = san.build(&b.x509v3_context(Some(ca), None)).expect("san");
                b.append_extension(san).expect("san");
            }
        }
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(Some(ca), None))
            .expect("ski");
        b.append_extension(ski).expect("ski");
        let aki = AkiExt::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(ca), None))
            .expect("aki");
        b.append_extension(aki).expect("aki");
        b.sign(ca_key, md).expect("sign");
        b.build()
    }

    /// A self-signed CA with `key`, valid for a day.
    fn test_ca(key: &PKey<Private>, now: i64) -> Authority {
        Authority::self_signed(
            "leaf test CA",
            key.clone(),
            std::time::Duration::from_secs(86400),
            now,
        )
        .expect("CA")
    }

    fn tbs_of(der: &[u8]) -> Vec<u8> {
        let (_, cert) = X509Certificate::from_der(der).expect("parse");
        cert.tbs_certificate.as_ref().to_vec()
    }

    #[test]
    fn same_tbs_as_openssls_builder() {
        let now = now_unix();
        let dns = vec!["certpair.example".to_string(), "*.svc".to_string()];
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")];
        let subject = vec![
            attr(AttributeKind::Country, "DE"),
            attr(AttributeKind::Province, "Baden-Württemberg"),
            attr(AttributeKind::Locality, "Walldorf"),
            attr(AttributeKind::Organization, "Acme, Inc."),
            attr(AttributeKind::OrganizationalUnit, "payments"),
            attr(AttributeKind::CommonName, "billing-ü-日本"),
            attr(AttributeKind::Organization, "second O"),
        ];
        let ca_keys = [
            (p256(), MessageDigest::sha256()),
            (ec(Nid::SECP384R1), MessageDigest::sha384()),
            (rsa(2048), MessageDigest::sha256()),
        ];
        for (ca_key, md) in &ca_keys {
            let ca = test_ca(ca_key, now);
            let template = LeafTemplate::new(ca.certificate(), ca_key).expect("template");
            for leaf_key in [p256(), rsa(2048)] {
                let public = PKey::public_key_from_der(&leaf_key.public_key_to_der().expect("der"))
                    .expect("public");
                let spki = public.public_key_to_der().expect("spki");
                for usage in [
                    LeafUsage::Client,
                    LeafUsage::Serving {
                        dns_names: &dns,
                        ips: &ips,
                    },
                ] {
                    let spec = LeafSpec {
                        serial: &[0x80, 0x01, 0x02, 0x03, 0xfe, 0xff],
                        window: Window {
                            not_before: now - 300,
                            // GeneralizedTime from 2050 on.
                            not_after: 2_600_000_000,
                        },
                        subject: &subject,
                        spki: &spki,
                        rsa_key: leaf_key.id() == Id::RSA,
                        usage,
                    };
                    let ours = template.issue(ca_key, &spec).expect("issue");
                    let theirs = reference(ca.certificate(), ca_key, *md, &spec, &public)
                        .to_der()
                        .expect("der");
                    assert_eq!(
                        tbs_of(&ours),
                        tbs_of(&theirs),
                        "CA {:?}, leaf {:?}",
                        ca_key.id(),
                        leaf_key.id()
                    );
                    // OpenSSL reads it, re-encodes it identically, and the signature verifies.
                    let cert = X509::from_der(&ours).expect("openssl reads it");
                    assert_eq!(cert.to_der().expect("der"), ours);
                    assert!(
                        cert.verify(&ca.certificate().public_key().expect("key"))
                            .expect("verify")
                    );
                }
            }
        }
    }

    #[test]
    fn p521_and_ed25519_cas_sign_leaves_that_verify() {
        let now = now_unix();
        let subject = [attr(AttributeKind::CommonName, "billing")];
        let ed25519 = PKey::generate_ed25519().expect("ed25519");
        for (ca_key, algorithm) in [
            (ec(Nid::SECP521R1), rfc5912::ECDSA_WITH_SHA_512),
            (ed25519, rfc8410::ID_ED_25519),
        ] {
            let ca = test_ca(&ca_key, now);
            let leaf_key = p256();
            let spki = leaf_key.public_key_to_der().expect("spki");
            let der = LeafTemplate::new(ca.certificate(), &ca_key)
                .expect("template")
                .issue(
                    &ca_key,
                    &LeafSpec {
                        serial: &[1],
                        window: Window {
                            not_before: now - 60,
                            not_after: now + 3600,
                        },
                        subject: &subject,
                        spki: &spki,
                        rsa_key: false,
                        usage: LeafUsage::Client,
                    },
                )
                .expect("issue");
            let (_, parsed) = X509Certificate::from_der(&der).expect("parse");
            assert_eq!(
                parsed.signature_algorithm.algorithm.to_id_string(),
                algorithm.to_string()
            );
            let cert = X509::from_der(&der).expect("openssl reads it");
            let ca_public = ca.certificate().public_key().expect("key");
            assert!(cert.verify(&ca_public).expect("verify"), "{algorithm}");
        }
    }

    #[test]
    fn subjects_are_refused_where_openssl_refuses_them() {
        let long = "x".repeat(65);
        let cases = [
            attr(AttributeKind::CommonName, ""),
            attr(AttributeKind::CommonName, &long),
            attr(AttributeKind::CommonName, &"é".repeat(64)),
            attr(AttributeKind::Locality, &"l".repeat(128)),
            attr(AttributeKind::Locality, &"l".repeat(129)),
            attr(AttributeKind::Country, "DEU"),
            attr(AttributeKind::Country, "D"),
            attr(AttributeKind::Country, "D*"),
            attr(AttributeKind::Country, "Dü"),
            attr(AttributeKind::Country, "de"),
        ];
        for case in cases {
            let ours = subject(std::slice::from_ref(&case)).is_ok();
            let theirs = X509NameBuilder::new()
                .expect("name")
                .append_entry_by_nid(case.kind.nid().expect("nid"), &case.value)
                .is_ok();
            let _ = ErrorStack::get();
            assert_eq!(ours, theirs, "{case:?}");
        }
        assert!(matches!(
            subject(&[attr(AttributeKind::Other("1.2.3.4".into()), "x")]),
            Err(LeafError::Attribute { .. })
        ));
    }

    #[test]
    fn spki_is_carried_only_when_strict_der() {
        let key = p256();
        let der = key.public_key_to_der().expect("der");
        assert!(is_strict_der_spki(&der));
        // A long-form length where the short form fits is BER, not DER.
        let mut ber = vec![0x30, 0x81, der[1]];
        ber.extend_from_slice(&der[2..]);
        assert!(!is_strict_der_spki(&ber));
        assert!(!is_strict_der_spki(b"junk"));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(!is_strict_der_spki(&trailing));

        // RSA: with its NULL parameters, yes; without them (strict DER, but not RFC 3279), no.
        let rsa_der = rsa(2048).public_key_to_der().expect("der");
        assert!(is_strict_der_spki(&rsa_der));
        // SEQUENCE (long length) { SEQUENCE { rsaEncryption, NULL }, BIT STRING }
        let with_null = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        assert_eq!(&rsa_der[4..19], &with_null[..]);
        // The same key with its algorithm as SEQUENCE { rsaEncryption } only.
        let body = [&[0x30, 0x0b][..], &with_null[2..13], &rsa_der[19..]].concat();
        let mut bare = vec![0x30, 0x82];
        bare.extend_from_slice(&u16::try_from(body.len()).expect("len").to_be_bytes());
        bare.extend_from_slice(&body);
        assert!(
            openssl::pkey::PKey::public_key_from_der(&bare).is_ok(),
            "OpenSSL reads an RSA key without NULL parameters"
        );
        assert!(!is_strict_der_spki(&bare));
    }

    #[test]
    fn pem_wraps_at_64() {
        let pem = pem("TEST", &[0u8; 100]);
        let text = String::from_utf8(pem).expect("ascii");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN TEST-----"));
        assert_eq!(lines.last(), Some(&"-----END TEST-----"));
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.len(), 5);
    }
}
