//! A serving identity: a certificate chain (leaf first) and the private key that matches it,
//! checked when loaded so a listener never presents a pair that cannot complete a handshake.

use openssl::{
    error::ErrorStack,
    pkey::{PKey, Private},
    x509::X509,
};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the serving certificate is not valid PEM: {0}")]
    CertificatePem(String),
    #[error("the serving certificate PEM holds no certificate")]
    NoCertificate,
    #[error("the serving key is not valid PEM: {0}")]
    KeyPem(String),
    #[error("the serving key does not match the serving certificate")]
    KeyMismatch,
    #[error("OpenSSL failed: {0}")]
    OpenSsl(#[from] ErrorStack),
}

/// A certificate chain (leaf first) and its key, ready to present.
pub struct ServingIdentity {
    leaf: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
}

impl std::fmt::Debug for ServingIdentity {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingIdentity")
            .field(
                "leaf_serial",
                &self
                    .leaf
                    .serial_number()
                    .to_bn()
                    .ok()
                    .and_then(|b| b.to_hex_str().ok())
                    .map(|s| s.to_string()),
            )
            .finish_non_exhaustive()
    }
}

impl ServingIdentity {
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, IdentityError> {
        let mut certs = X509::stack_from_pem(chain_pem)
            .map_err(|e| IdentityError::CertificatePem(e.to_string()))?;
        if certs.is_empty() {
            return Err(IdentityError::NoCertificate);
        }
        let leaf = certs.remove(0);
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| IdentityError::KeyPem(e.to_string()))?;
        let leaf_key = leaf.public_key()?;
        if !super::openssl_check(|| key.public_eq(&leaf_key)) {
            return Err(IdentityError::KeyMismatch);
        }
        Ok(Self {
            leaf,
            chain: certs,
            key,
        })
    }

    pub fn leaf(&self) -> &X509 {
        &self.leaf
    }

    /// Intermediates presented after the leaf.
    pub fn chain(&self) -> &[X509] {
        &self.chain
    }

    /// The private key. It stays in this process: for the TLS handshake only, never logged.
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pki::{authority::Authority, now_unix, testing::p256};

    #[test]
    fn mismatched_key_is_refused() {
        let ca = Authority::generate("ca", Duration::from_secs(86400), now_unix()).expect("CA");
        let key = p256();
        let other = p256();
        let issued = ca
            .issue_server("x", &[], &[], &key, Duration::from_secs(600), now_unix())
            .expect("issued");
        assert!(matches!(
            ServingIdentity::from_pem(
                &issued.chain_pem,
                &other.private_key_to_pem_pkcs8().expect("pem")
            ),
            Err(IdentityError::KeyMismatch)
        ));
        assert!(matches!(
            ServingIdentity::from_pem(b"", b""),
            Err(IdentityError::NoCertificate | IdentityError::CertificatePem(_))
        ));
    }
}
