//! TLS for certpair's listeners: TLS 1.2+ only, and a serving certificate that can be swapped
//! while the listener runs. Every handshake picks up the certificate current at that moment
//! (through the ClientHello callback), so a rotation needs no restart and never disturbs an
//! established connection.

use std::sync::{Arc, RwLock};

use openssl::{
    error::ErrorStack,
    pkey::{PKey, Private},
    ssl::{ClientHelloResponse, SslAcceptor, SslAcceptorBuilder, SslAlert, SslMethod, SslVersion},
    x509::X509,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
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
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let mut certs =
            X509::stack_from_pem(chain_pem).map_err(|e| TlsError::CertificatePem(e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let leaf = certs.remove(0);
        let key =
            PKey::private_key_from_pem(key_pem).map_err(|e| TlsError::KeyPem(e.to_string()))?;
        let leaf_key = leaf.public_key()?;
        if !crate::pki::openssl_check(|| key.public_eq(&leaf_key)) {
            return Err(TlsError::KeyMismatch);
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
}

/// The identity a listener presents; replace it with [`CertSlot::set`] at any time.
#[derive(Default)]
pub struct CertSlot {
    current: RwLock<Option<Arc<ServingIdentity>>>,
}

impl CertSlot {
    pub fn set(&self, identity: ServingIdentity) {
        let mut slot = match self.current.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Some(Arc::new(identity));
    }

    pub fn get(&self) -> Option<Arc<ServingIdentity>> {
        match self.current.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// An acceptor for actix's `bind_openssl`: Mozilla's intermediate profile with TLS 1.2 as the
/// floor, presenting whatever `slot` holds when each ClientHello arrives. With an empty slot
/// the handshake fails with an alert (the listener is not ready yet).
pub fn acceptor(slot: Arc<CertSlot>) -> Result<SslAcceptorBuilder, ErrorStack> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    builder.set_client_hello_callback(move |ssl, alert| {
        let Some(identity) = slot.get() else {
            *alert = SslAlert::UNRECOGNIZED_NAME;
            return Err(ErrorStack::get());
        };
        ssl.set_certificate(&identity.leaf)?;
        ssl.set_private_key(&identity.key)?;
        for cert in &identity.chain {
            ssl.add_chain_cert(cert.clone())?;
        }
        Ok(ClientHelloResponse::SUCCESS)
    });
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use std::{net::TcpStream, time::Duration};

    use actix_web::{App, HttpResponse, HttpServer, web};
    use openssl::ssl::{SslConnector, SslVerifyMode};

    use super::*;
    use crate::pki::{authority::Authority, now_unix, testing::p256};

    fn identity(ca: &Authority) -> (ServingIdentity, String) {
        let key = p256();
        let issued = ca
            .issue_server(
                "certpair-webhook",
                &["localhost".into()],
                &["127.0.0.1".parse().expect("ip")],
                &key,
                Duration::from_secs(3600),
                now_unix(),
            )
            .expect("issued");
        let identity = ServingIdentity::from_pem(
            &issued.chain_pem,
            &key.private_key_to_pem_pkcs8().expect("pem"),
        )
        .expect("identity");
        (identity, issued.serial_hex)
    }

    /// Serial of the certificate the server presents, over a fresh connection that verifies it
    /// against `ca` for 127.0.0.1; or the handshake error.
    fn served_serial(port: u16, ca: &Authority, max: Option<SslVersion>) -> Result<String, String> {
        let mut connector =
            SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
        connector
            .cert_store_mut()
            .add_cert(ca.certificate().clone())
            .map_err(|e| e.to_string())?;
        connector.set_verify(SslVerifyMode::PEER);
        if max.is_some() {
            // Let the client offer old protocols so that the refusal is the server's.
            connector.set_security_level(0);
            connector
                .set_cipher_list("DEFAULT@SECLEVEL=0")
                .map_err(|e| e.to_string())?;
            connector
                .set_min_proto_version(Some(SslVersion::TLS1))
                .map_err(|e| e.to_string())?;
        }
        connector
            .set_max_proto_version(max)
            .map_err(|e| e.to_string())?;
        let mut config = connector.build().configure().map_err(|e| e.to_string())?;
        config.set_use_server_name_indication(false);
        config
            .param_mut()
            .set_ip("127.0.0.1".parse().map_err(|_| "ip")?)
            .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        let stream = config
            .connect("127.0.0.1", tcp)
            .map_err(|e| e.to_string())?;
        let cert = stream
            .ssl()
            .peer_certificate()
            .ok_or("no peer certificate")?;
        Ok(cert
            .serial_number()
            .to_bn()
            .map_err(|e| e.to_string())?
            .to_hex_str()
            .map_err(|e| e.to_string())?
            .to_string())
    }

    #[actix_web::test]
    async fn swaps_certificates_without_restart_and_refuses_old_tls() {
        let ca = Authority::generate("test webhook CA", Duration::from_secs(86400), now_unix())
            .expect("CA");
        let slot = Arc::new(CertSlot::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(|| App::new().route("/", web::get().to(HttpResponse::Ok)))
            .workers(1)
            .disable_signals()
            .listen_openssl(listener, acceptor(slot.clone()).expect("acceptor"))
            .expect("listen")
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let check = move |ca: Arc<Authority>, max| {
            actix_web::rt::task::spawn_blocking(move || served_serial(port, &ca, max))
        };
        let ca = Arc::new(ca);

        // Nothing loaded yet: handshakes fail rather than present anything.
        assert!(check(ca.clone(), None).await.expect("join").is_err());

        let (first, first_serial) = identity(&ca);
        slot.set(first);
        assert_eq!(
            check(ca.clone(), None).await.expect("join"),
            Ok(first_serial.clone())
        );

        let (second, second_serial) = identity(&ca);
        slot.set(second);
        assert_eq!(
            check(ca.clone(), None).await.expect("join"),
            Ok(second_serial)
        );

        // TLS 1.1 is refused by the server; TLS 1.2 works.
        let old = check(ca.clone(), Some(SslVersion::TLS1_1))
            .await
            .expect("join");
        assert!(old.is_err(), "TLS 1.1 must be refused: {old:?}");
        assert!(
            check(ca.clone(), Some(SslVersion::TLS1_2))
                .await
                .expect("join")
                .is_ok()
        );

        handle.stop(true).await;
    }

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
            Err(TlsError::KeyMismatch)
        ));
        assert!(matches!(
            ServingIdentity::from_pem(b"", b""),
            Err(TlsError::NoCertificate | TlsError::CertificatePem(_))
        ));
    }
}
