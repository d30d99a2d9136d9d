//! The TLS serving certificate profile of certpair's own listeners (the admission webhook's
//! now, the connector's next): CN and SANs as configured, EKU serverAuth; and the checks that
//! say whether a certificate in hand still fits it.

use std::{net::IpAddr, time::Duration};

use openssl::x509::{X509, X509Ref};
use x509_cert::der::oid::{ObjectIdentifier, db::rfc5280};

use crate::pki::{authority::unix, identity::ServingIdentity, signed_by};

/// What a serving certificate must look like.
#[derive(Debug, Clone, Copy)]
pub struct ServingSpec<'a> {
    pub dns_names: &'a [String],
    pub ips: &'a [IpAddr],
    /// Renew what expires within this window.
    pub look_ahead: Duration,
}

/// Why a serving certificate in hand no longer fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfit {
    /// Not signed by the CA the listener's clients trust.
    ForeignCa,
    /// Other SANs than configured.
    WrongNames,
    /// Expires within the look-ahead (or its expiry cannot be read).
    Expiring,
}

/// The extended key usage of a serving certificate: serverAuth (its subjectAltName holds the
/// configured names).
pub const EXTENDED_KEY_USAGE: ObjectIdentifier = rfc5280::ID_KP_SERVER_AUTH;

/// The first way `identity` fails to fit `spec` as a certificate of `ca`, if any.
pub fn misfit(
    identity: &ServingIdentity,
    ca: &X509,
    spec: &ServingSpec<'_>,
    now: i64,
) -> Option<Misfit> {
    let leaf = identity.leaf();
    if !signed_by(leaf, ca) {
        return Some(Misfit::ForeignCa);
    }
    if !names_match(leaf, spec.dns_names, spec.ips) {
        return Some(Misfit::WrongNames);
    }
    match unix(leaf.not_after()) {
        Ok(not_after) if !expires_within(not_after, spec.look_ahead, now) => None,
        _ => Some(Misfit::Expiring),
    }
}

/// Whether something valid until `not_after` expires within `look_ahead` of `now`.
pub fn expires_within(not_after: i64, look_ahead: Duration, now: i64) -> bool {
    not_after - now <= i64::try_from(look_ahead.as_secs()).unwrap_or(i64::MAX)
}

/// The leaf's SANs are exactly these DNS names and IPs, in any order.
pub fn names_match(leaf: &X509Ref, dns_names: &[String], ips: &[IpAddr]) -> bool {
    let mut dns = Vec::new();
    let mut found_ips = Vec::new();
    for name in leaf.subject_alt_names().into_iter().flatten() {
        if let Some(d) = name.dnsname() {
            dns.push(d.to_owned());
        } else if let Some(ip) = name.ipaddress() {
            match ip.len() {
                4 => found_ips.push(IpAddr::from(<[u8; 4]>::try_from(ip).unwrap_or_default())),
                16 => found_ips.push(IpAddr::from(<[u8; 16]>::try_from(ip).unwrap_or_default())),
                _ => return false,
            }
        }
    }
    let mut want_dns = dns_names.to_vec();
    let mut want_ips = ips.to_vec();
    dns.sort();
    found_ips.sort();
    want_dns.sort();
    want_ips.sort();
    dns == want_dns && found_ips == want_ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{authority::Authority, testing::serving_identity};

    const NOW: i64 = 1_900_000_000;

    fn identity(ca: &Authority, dns: &[String], ips: &[IpAddr], secs: u64) -> ServingIdentity {
        serving_identity(ca, dns, ips, secs, NOW)
    }

    #[test]
    fn misfits_in_order_of_checking() {
        let ca = Authority::generate("ca", Duration::from_secs(86_400), NOW).expect("CA");
        let other = Authority::generate("other", Duration::from_secs(86_400), NOW).expect("CA");
        let dns = vec!["a.example".to_string(), "b.example".to_string()];
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")];
        let spec = ServingSpec {
            dns_names: &dns,
            ips: &ips,
            look_ahead: Duration::from_secs(600),
        };
        let good = identity(&ca, &dns, &ips, 3600);
        assert_eq!(misfit(&good, ca.certificate(), &spec, NOW), None);
        let reversed: Vec<String> = dns.iter().rev().cloned().collect();
        let reordered = identity(&ca, &reversed, &ips, 3600);
        assert_eq!(
            misfit(&reordered, ca.certificate(), &spec, NOW),
            None,
            "order of SANs does not matter"
        );
        assert_eq!(
            misfit(&good, other.certificate(), &spec, NOW),
            Some(Misfit::ForeignCa)
        );
        let fewer = identity(&ca, &dns[..1], &ips, 3600);
        assert_eq!(
            misfit(&fewer, ca.certificate(), &spec, NOW),
            Some(Misfit::WrongNames)
        );
        let no_ip = identity(&ca, &dns, &[], 3600);
        assert_eq!(
            misfit(&no_ip, ca.certificate(), &spec, NOW),
            Some(Misfit::WrongNames)
        );
        let short = identity(&ca, &dns, &ips, 600);
        assert_eq!(
            misfit(&short, ca.certificate(), &spec, NOW),
            Some(Misfit::Expiring),
            "expires within the look-ahead"
        );
    }
}
