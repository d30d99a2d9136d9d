//! Certificate profiles: what each kind of certificate certpair issues looks like. One module
//! owns each profile, so a change to a profile is a change to one file:
//! - [`client`]: application client certificates (the signer's; lifetime rules included);
//! - [`serving`]: TLS serving certificates of certpair's own listeners (the webhook's);
//! - CA certificates certpair generates for itself ([`Profile::Ca`]).
//!
//! Here: what every profile shares, the validity window as pure arithmetic on seconds (testable
//! without clocks or keys), and the extensions each profile puts into a certificate.

pub mod client;
pub mod serving;

use std::{net::IpAddr, time::Duration};

use openssl::{
    asn1::{Asn1Object, Asn1OctetString},
    error::ErrorStack,
    x509::{
        X509Builder, X509Extension, X509Ref,
        extension::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier},
    },
};
use x509_parser::{prelude::FromDer, x509::SubjectPublicKeyInfo};

/// How far NotBefore is set in the past, to tolerate clock skew between certpair and clients
/// (a client certificate is backdated by a tenth of its lifetime when that is less).
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Which profile a certificate is issued by.
#[derive(Debug, Clone, Copy)]
pub enum Profile<'a> {
    /// A self-signed root certpair generates (signing CA, webhook CA): may sign leaves only.
    Ca,
    /// An application's client certificate.
    Client,
    /// A TLS serving certificate for these names.
    Serving {
        dns_names: &'a [String],
        ips: &'a [IpAddr],
    },
}

impl Profile<'_> {
    /// Adds the profile's extensions. `issuer` is the signing CA (`None`: self-signed);
    /// `rsa_key` whether the certified key is RSA (which also gets keyEncipherment).
    pub(crate) fn add_extensions(
        &self,
        b: &mut X509Builder,
        issuer: Option<&X509Ref>,
        rsa_key: bool,
    ) -> Result<(), ErrorStack> {
        if let Self::Ca = self {
            b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()?,
            )?;
            let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
            return b.append_extension(ski);
        }
        // Every leaf: never a CA, signatures (+ key transport for RSA) only.
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        let mut ku = KeyUsage::new();
        ku.critical().digital_signature();
        if rsa_key {
            ku.key_encipherment();
        }
        b.append_extension(ku.build()?)?;
        match *self {
            Self::Client => client::add_extensions(b)?,
            Self::Serving { dns_names, ips } => serving::add_extensions(b, issuer, dns_names, ips)?,
            Self::Ca => {}
        }
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer, None))?;
        b.append_extension(ski)?;
        let aki = authority_key_identifier(b, issuer)?;
        b.append_extension(aki)
    }
}

/// The AKI of a leaf: the issuer's SKI when it has one. A brought-your-own CA may have none
/// (OpenSSL's "keyid:always" then fails every signing), so the identifier is derived as
/// [`key_identifier`] does.
fn authority_key_identifier(
    b: &X509Builder,
    issuer: Option<&X509Ref>,
) -> Result<X509Extension, ErrorStack> {
    let Some(ca) = issuer.filter(|ca| ca.subject_key_id().is_none()) else {
        return AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(issuer, None));
    };
    let keyid = key_identifier(ca)?;
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
    let mut der = vec![0x30, 2 + keyid.len() as u8, 0x80, keyid.len() as u8];
    der.extend_from_slice(&keyid);
    let oid = Asn1Object::from_str("2.5.29.35")?;
    let contents = Asn1OctetString::new_from_bytes(&der)?;
    X509Extension::new_from_der(&oid, false, &contents)
}

/// The key identifier of a CA, for the AKI of what it signs (certificates, CRLs): its SKI, or
/// where it has none, SHA-1 of its subjectPublicKey (RFC 5280 4.2.1.2 method 1, what its SKI
/// would most likely have been; 4.2.1.1 allows deriving it so).
pub fn key_identifier(ca: &X509Ref) -> Result<Vec<u8>, ErrorStack> {
    if let Some(ski) = ca.subject_key_id() {
        return Ok(ski.as_slice().to_vec());
    }
    let spki = ca.public_key()?.public_key_to_der()?;
    let Ok((_, parsed)) = SubjectPublicKeyInfo::from_der(&spki) else {
        // OpenSSL wrote this DER itself; failing to read it back is OpenSSL's own failure.
        return Err(ErrorStack::get());
    };
    Ok(openssl::sha::sha1(&parsed.subject_public_key.data).to_vec())
}

/// A validity window in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub not_before: i64,
    pub not_after: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("the signing CA expired at {ca_not_after} (Unix time); it cannot sign")]
    CaExpired { ca_not_after: i64 },
    #[error("the signing CA is not valid before {ca_not_before} (Unix time); it cannot sign yet")]
    CaNotYetValid { ca_not_before: i64 },
}

/// Where a profile's lifetime counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeFrom {
    /// NotAfter = NotBefore + lifetime: both ends backdated, as kube-controller-manager does for
    /// CSRs, so a certificate is never valid longer than its requester asked (client profile).
    NotBefore,
    /// NotAfter = now + lifetime: certpair's own serving certificates, whose lifetimes may be
    /// shorter than the backdating (a minute, in tests) and must still be usable for it.
    Now,
}

impl Profile<'_> {
    pub(crate) fn lifetime_from(&self) -> LifetimeFrom {
        match self {
            Self::Client => LifetimeFrom::NotBefore,
            Self::Ca | Self::Serving { .. } => LifetimeFrom::Now,
        }
    }
}

/// NotBefore = now − 5 min (for a client certificate, − a tenth of the lifetime when that is
/// less) but never before the CA's NotBefore; NotAfter = NotBefore or now (see
/// [`LifetimeFrom`]) + lifetime, truncated to the CA's NotAfter. A CA that is expired (or not
/// yet valid) signs nothing.
///
/// Why a tenth: kube-controller-manager backdates every certificate by 5 min, so its 10-minute
/// certificates have 5 usable minutes left; with the tenth, a 10-minute certificate keeps 9,
/// and a 2-minute one (an Application may set that) still has 108 s ahead of it, renewed at 70 %
/// of its lifetime like any other. From 50 min up both rules agree.
pub fn window(
    now: i64,
    lifetime: Duration,
    from: LifetimeFrom,
    ca: Window,
) -> Result<Window, WindowError> {
    if now >= ca.not_after {
        return Err(WindowError::CaExpired {
            ca_not_after: ca.not_after,
        });
    }
    if now < ca.not_before {
        return Err(WindowError::CaNotYetValid {
            ca_not_before: ca.not_before,
        });
    }
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let mut backdate = i64::try_from(BACKDATE.as_secs()).unwrap_or(0);
    if from == LifetimeFrom::NotBefore {
        backdate = backdate.min(lifetime / 10);
    }
    let not_before = (now - backdate).max(ca.not_before);
    let start = match from {
        LifetimeFrom::NotBefore => not_before,
        LifetimeFrom::Now => now,
    };
    Ok(Window {
        not_before,
        not_after: start.saturating_add(lifetime).min(ca.not_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_backdates_and_truncates() {
        let ca = Window {
            not_before: 1_000,
            not_after: 100_000,
        };
        let w = window(
            50_000,
            Duration::from_secs(3600),
            LifetimeFrom::NotBefore,
            ca,
        )
        .expect("valid");
        assert_eq!(
            w,
            Window {
                not_before: 49_700,
                not_after: 53_300
            },
            "valid for exactly the lifetime"
        );
        // Never before the CA's own NotBefore.
        let w = window(
            1_100,
            Duration::from_secs(3600),
            LifetimeFrom::NotBefore,
            ca,
        )
        .expect("valid");
        assert_eq!(w.not_before, 1_000);
        assert_eq!(w.not_after - w.not_before, 3600);
        // A short client certificate is backdated by a tenth of its lifetime.
        let w = window(
            50_000,
            Duration::from_secs(120),
            LifetimeFrom::NotBefore,
            ca,
        )
        .expect("valid");
        assert_eq!((w.not_before, w.not_after), (49_988, 50_108));
        let w = window(
            50_000,
            Duration::from_secs(600),
            LifetimeFrom::NotBefore,
            ca,
        )
        .expect("valid");
        assert_eq!((w.not_before, w.not_after), (49_940, 50_540));
        // A serving certificate's lifetime counts from now: a minute is a usable minute.
        let w = window(50_000, Duration::from_secs(60), LifetimeFrom::Now, ca).expect("valid");
        assert_eq!((w.not_before, w.not_after), (49_700, 50_060));
        // Truncated to the CA's NotAfter.
        let w = window(
            99_000,
            Duration::from_secs(3600),
            LifetimeFrom::NotBefore,
            ca,
        )
        .expect("valid");
        assert_eq!(w.not_after, 100_000);
    }

    #[test]
    fn expired_or_future_ca_refuses() {
        let ca = Window {
            not_before: 1_000,
            not_after: 2_000,
        };
        assert!(matches!(
            window(2_000, Duration::from_secs(600), LifetimeFrom::Now, ca),
            Err(WindowError::CaExpired { .. })
        ));
        assert!(matches!(
            window(999, Duration::from_secs(600), LifetimeFrom::Now, ca),
            Err(WindowError::CaNotYetValid { .. })
        ));
    }
}
