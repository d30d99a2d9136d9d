//! One-time pairing tokens: 64 random bytes, base64url (88 characters, as Kyma's). Only their
//! SHA-256 is stored where the connector reads it, and comparisons take constant time.

use base64::{Engine, engine::general_purpose::URL_SAFE};

use crate::pki::sha256_hex;

/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 64;
/// Characters in a token (base64 of [`TOKEN_BYTES`], padded).
pub const TOKEN_CHARS: usize = 88;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw random bytes for a token: {0}")]
pub struct TokenError(#[from] openssl::error::ErrorStack);

/// A new token from OpenSSL's CSPRNG.
pub fn generate() -> Result<String, TokenError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(URL_SAFE.encode(bytes))
}

/// The certificate token that `signingRequests/info` hands out for `info_token`: HMAC-SHA512
/// keyed with the info token over `context` (the TokenRequest's uid), as a token. The same
/// info token always gets the same certificate token, so the answer can be given again when
/// the first was lost on the way, without storing the certificate token anywhere; without
/// the info token (64 random bytes) it cannot be computed.
pub fn derive(info_token: &str, context: &str) -> Result<String, TokenError> {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let key = PKey::hmac(info_token.as_bytes())?;
    let mut mac = Signer::new(MessageDigest::sha512(), &key)?;
    mac.update(b"certpair certificate token\0")?;
    mac.update(context.as_bytes())?;
    let bytes = mac.sign_to_vec()?;
    Ok(URL_SAFE.encode(bytes))
}

/// What is stored of a token: SHA-256, hex.
pub fn hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Whether `token` hashes to `stored`, in time independent of where they differ.
pub fn matches(stored: &str, token: &str) -> bool {
    same_hash(stored, &hash(token))
}

/// Whether two token hashes are equal, in time independent of where they differ (hash the
/// presented token once with [`hash`], then compare it with every candidate).
pub fn same_hash(stored: &str, computed: &str) -> bool {
    stored.len() == computed.len() && openssl::memcmp::eq(stored.as_bytes(), computed.as_bytes())
}

/// A value that may be a token: the right length and alphabet. Anything else is refused
/// before hashing or looking anything up.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_matched_by_hash() {
        let a = generate().expect("token");
        let b = generate().expect("token");
        assert_eq!(a.len(), TOKEN_CHARS);
        assert!(well_formed(&a), "{a}");
        assert_ne!(a, b);
        let stored = hash(&a);
        assert_eq!(stored.len(), 64);
        assert!(matches(&stored, &a));
        assert!(!matches(&stored, &b));
        assert!(!matches("", &a));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}%", &a[1..])));
    }

    #[test]
    fn derived_tokens_are_stable_well_formed_and_depend_on_both_inputs() {
        let info = generate().expect("token");
        let next = derive(&info, "uid-1").expect("derive");
        assert!(well_formed(&next), "{next}");
        assert_eq!(next, derive(&info, "uid-1").expect("derive"), "stable");
        assert_ne!(next, derive(&info, "uid-2").expect("derive"));
        assert_ne!(
            next,
            derive(&generate().expect("token"), "uid-1").expect("derive")
        );
        assert_ne!(next, info);
    }
}
