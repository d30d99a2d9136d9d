//! Trust bundles that survive a change of CA: the current CA first, then the earlier ones
//! still valid, so certificates they issued keep verifying until they expire.

use openssl::{error::ErrorStack, x509::X509};

/// PEM of `current` (in order) followed by every certificate of `published` (the bundle out
/// there now) that is still valid at `now`, passes `keep`, and is not already in `current`.
/// Whatever in `published` does not parse is dropped, block by block: a bundle is
/// certificates only, and one damaged block must not cost the others.
pub fn merge(
    current: &[X509],
    published: Option<&[u8]>,
    now: i64,
    keep: impl Fn(&X509) -> bool,
) -> Result<Vec<u8>, ErrorStack> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for cert in current {
        out.extend(cert.to_pem()?);
        seen.push(cert.to_der()?);
    }
    for cert in published.map(certificates).unwrap_or_default() {
        let der = cert.to_der()?;
        let still_valid = super::authority::unix(cert.not_after()).is_ok_and(|t| t > now);
        if still_valid && keep(&cert) && !seen.contains(&der) {
            out.extend(cert.to_pem()?);
            seen.push(der);
        }
    }
    Ok(out)
}

/// Every `CERTIFICATE` block of `pem` that parses. (`X509::stack_from_pem` is all or nothing.)
fn certificates(pem: &[u8]) -> Vec<X509> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = find(rest, BEGIN) {
        let block = &rest[start..];
        let Some(end) = find(block, END).map(|e| e + END.len()) else {
            break;
        };
        if let Ok(cert) = X509::from_pem(&block[..end]) {
            out.push(cert);
        }
        rest = &block[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pki::authority::Authority;

    fn ca(name: &str, seconds: u64, now: i64) -> X509 {
        Authority::generate(name, Duration::from_secs(seconds), now)
            .expect("CA")
            .certificate()
            .clone()
    }

    fn names(pem: &[u8]) -> Vec<String> {
        X509::stack_from_pem(pem)
            .expect("pem")
            .iter()
            .map(|c| {
                c.subject_name()
                    .entries()
                    .next()
                    .and_then(|e| e.data().to_string().ok())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn current_first_then_earlier_valid_ones_once() {
        let now = crate::pki::now_unix();
        let current = ca("current", 3600, now);
        let earlier = ca("earlier", 3600, now - 60);
        // Issued two hours ago for one hour: expired now.
        let expired = ca("expired", 3600, now - 7200);
        let published: Vec<u8> = [&earlier, &expired, &current, &earlier]
            .iter()
            .flat_map(|c| c.to_pem().expect("pem"))
            .chain(b"garbage\n".iter().copied())
            .collect();
        let current = std::slice::from_ref(&current);
        let merged = |published: Option<&[u8]>| {
            names(&merge(current, published, now, |_| true).expect("merge"))
        };
        assert_eq!(merged(Some(&published)), ["current", "earlier"]);
        assert_eq!(merged(None), ["current"]);
        assert_eq!(merged(Some(b"garbage")), ["current"]);

        let out = merge(current, Some(&published), now, |c| {
            c.subject_name()
                .entries()
                .all(|e| e.data().as_slice() != b"earlier")
        })
        .expect("merge");
        assert_eq!(names(&out), ["current"], "keep() filters");

        // One damaged block costs only itself.
        let damaged = String::from_utf8(earlier.to_pem().expect("pem"))
            .expect("ascii")
            .replacen("MII", "M!I", 1);
        let published: Vec<u8> = [
            damaged.into_bytes(),
            ca("kept", 3600, now - 60).to_pem().expect("pem"),
        ]
        .concat();
        let out = names(&merge(current, Some(&published), now, |_| true).expect("merge"));
        assert_eq!(out, ["current", "kept"]);
    }
}
