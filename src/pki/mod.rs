//! All X.509 work. No Kubernetes, HTTP or command-line types here: the controller, the webhook
//! (and the connector) hand in bytes and get back typed facts, so everything in this module is
//! tested with plain unit tests (`crate::tests::no_layer_leaks` keeps it so).
//!
//! - `csr`: parse and verify PKCS#10 requests; `csr_builder`: make them (tests, benches, clients)
//! - `authority`: a CA: load, generate, issue by a profile
//! - `profile`: what each kind of certificate looks like (client, serving, CA)
//! - `identity`: a serving certificate chain with its matching key
//! - `bundle`: trust bundles that keep earlier CAs while they are valid
//! - `lifecycle`: pure plans for the CAs and serving certificates certpair keeps itself
//! - `rsa_key`: partial public-key validation of RSA keys (no prime moduli, sane exponents)

pub mod authority;
pub mod bundle;
pub mod crl;
pub mod csr;
pub mod csr_builder;
pub mod identity;
pub mod leaf;
pub mod lifecycle;
pub mod profile;
pub mod rsa_key;

use openssl::{
    ec::{EcGroup, EcKey},
    error::ErrorStack,
    nid::Nid,
    pkey::{PKey, Private},
    x509::X509Ref,
};

/// Runs an OpenSSL check whose "no" (a signature that does not verify, keys that differ) can
/// leave entries in OpenSSL's per-thread error queue, and empties the queue afterwards.
///
/// Why: a stale entry makes the next TLS read on the same thread fail as if it were its own.
/// Seen here: after the webhook's readiness check tried the serving certificate against a CA
/// that did not sign it, the kube client's watch connection on that tokio thread died with
/// "ASN1_item_verify_ctx: EVP lib" and the replica missed the new serving Secret for a second.
pub fn openssl_check<T>(check: impl FnOnce() -> T) -> T {
    let out = check();
    let _ = openssl::error::ErrorStack::get();
    out
}

/// Whether `ca`'s key verifies `leaf`'s signature (a "no" leaves no stale OpenSSL error).
pub fn signed_by(leaf: &X509Ref, ca: &X509Ref) -> bool {
    ca.public_key()
        .ok()
        .and_then(|k| openssl_check(|| leaf.verify(&k).ok()))
        .unwrap_or(false)
}

/// A new ECDSA P-256 key: what certpair generates for its own CAs and serving certificates
/// (cheap to sign with, about 40,000 signatures/s per core).
pub fn generate_p256() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, lower-case hex (certificate fingerprints, token hashes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&openssl::sha::sha256(bytes))
}

/// kubeadm's CA pin: `sha256:` and the hex SHA-256 of the certificate's DER
/// SubjectPublicKeyInfo (it survives re-issuing the CA certificate with the same key).
pub fn spki_pin(cert: &X509Ref) -> Result<String, ErrorStack> {
    Ok(format!(
        "sha256:{}",
        sha256_hex(&cert.public_key()?.public_key_to_der()?)
    ))
}

/// A certificate's serial number as certpair writes it everywhere: upper-case hex of whole
/// bytes, as `openssl x509 -serial` prints it (so `0BA2...`, not `BA2...`). Compare serials
/// from elsewhere with leading zeros ignored.
pub fn serial_hex(cert: &X509Ref) -> Result<String, ErrorStack> {
    Ok(cert.serial_number().to_bn()?.to_hex_str()?.to_string())
}

/// Seconds since the Unix epoch, from the system clock.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
#[cfg(test)]
pub mod testing;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openssl::error::ErrorStack;

    use super::*;

    #[test]
    fn openssl_check_leaves_no_stale_errors() {
        let now = now_unix();
        let a = authority::Authority::generate("a", Duration::from_secs(600), now).expect("CA");
        let b = authority::Authority::generate("b", Duration::from_secs(600), now).expect("CA");
        let other_key = b.certificate().public_key().expect("key");
        let _ = ErrorStack::get();
        // The premise: a signature that does not verify answers Ok(false) and leaves errors.
        assert!(!a.certificate().verify(&other_key).expect("verify"));
        assert!(!ErrorStack::get().errors().is_empty());
        assert!(!openssl_check(|| a
            .certificate()
            .verify(&other_key)
            .expect("verify")));
        assert!(ErrorStack::get().errors().is_empty());

        // Loading a good CA pair leaves nothing behind either.
        let key = a.key_pem().expect("key");
        authority::Authority::from_pem(&a.chain_pem().expect("chain"), &key).expect("load");
        let queued = ErrorStack::get();
        assert!(queued.errors().is_empty(), "{queued}");
    }
}
