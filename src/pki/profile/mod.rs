//! Certificate profiles: what each kind of certificate certpair issues looks like. One module
//! owns each profile, so a change to a profile is a change to one file:
//! - [`client`]: application client certificates (the signer's; lifetime rules included);
//! - [`serving`]: TLS serving certificates of certpair's own listeners (the webhook's);
//! - CA certificates certpair generates for itself ([`Profile::Ca`]).
//!
//! Here: what every profile shares, the validity window as pure arithmetic on seconds (testable
//! without clocks or keys), and the CA profile's extensions. Every leaf carries basicConstraints
//! (not a CA), keyUsage (digitalSignature, and keyEncipherment for RSA keys), the extended key
//! usage its profile module names, subject and authority key identifiers; `pki::leaf` encodes
//! them.

pub mod client;
pub mod serving;

use std::{net::IpAddr, time::Duration};

use openssl::{
    error::ErrorStack,
    x509::{
        X509Builder, X509Ref,
        extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier},
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

/// Adds the extensions of a CA certificate certpair generates ([`Profile::Ca`]): may sign
/// leaves (and CRLs) only, with a subject key identifier. Leaves are encoded by
/// [`crate::pki::leaf`], with the extended key usage their profile module names.
pub(crate) fn add_ca_extensions(b: &mut X509Builder) -> Result<(), ErrorStack> {
    b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)
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
