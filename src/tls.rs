//! TLS for certpair's listeners: TLS 1.2+ only, and a serving certificate that can be swapped
//! while the listener runs. Every handshake picks up the certificate current at that moment
//! (through the ClientHello callback), so a rotation needs no restart and never disturbs an
//! established connection.

use std::{any::Any, sync::Arc};

use actix_web::dev::Extensions;
use openssl::{
    error::ErrorStack,
    ssl::{
        ClientHelloResponse, SslAcceptor, SslAcceptorBuilder, SslAlert, SslMethod, SslVerifyMode,
        SslVersion,
    },
    x509::{X509, X509VerifyResult, store::X509StoreBuilder},
};

pub use crate::pki::identity::{IdentityError, ServingIdentity};

/// The identity a listener presents; replace it with [`CertSlot::set`] at any time.
pub type CertSlot = crate::slot::Slot<ServingIdentity>;

/// An acceptor for actix's `bind_openssl`: Mozilla's intermediate profile with TLS 1.2 as the
/// floor, presenting whatever `slot` holds when each ClientHello arrives. With an empty slot
/// the handshake fails with an alert (the listener is not ready yet).
pub fn acceptor(slot: Arc<CertSlot>) -> Result<SslAcceptorBuilder, ErrorStack> {
    build(slot, None)
}

/// CA certificates that client certificates are verified against; replaced as the published
/// bundle changes.
pub type TrustSlot = crate::slot::Slot<Vec<X509>>;

/// [`acceptor`] that also asks every client for a certificate and verifies one that is sent
/// against what `trust` holds at that handshake. The handshake completes whatever the outcome
/// (and without a certificate): the outcome is recorded for the request handlers
/// ([`PeerCertificate`], installed by [`record_peer_certificate`]), so a path that needs a
/// client certificate answers with a JSON error saying what is wrong with it (expired, from
/// another CA) instead of a bare TLS alert, and token paths work without one.
pub fn mtls_acceptor(
    slot: Arc<CertSlot>,
    trust: Arc<TrustSlot>,
) -> Result<SslAcceptorBuilder, ErrorStack> {
    let mut builder = build(slot, Some(trust))?;
    builder.set_verify_callback(SslVerifyMode::PEER, |_preverified, _ctx| true);
    // Sessions resumed with a client certificate need a context, or OpenSSL refuses them.
    builder.set_session_id_context(b"certpair-connector")?;
    Ok(builder)
}

fn build(
    slot: Arc<CertSlot>,
    trust: Option<Arc<TrustSlot>>,
) -> Result<SslAcceptorBuilder, ErrorStack> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    // mozilla_intermediate_v5 already sets SSL_MODE_RELEASE_BUFFERS: an idle connection holds
    // no record buffers (about 34 KiB otherwise), which is what lets a listener hold a thousand
    // idle connections within its memory limit.
    builder.set_client_hello_callback(move |ssl, alert| {
        let Some(identity) = slot.get() else {
            *alert = SslAlert::UNRECOGNIZED_NAME;
            return Err(ErrorStack::get());
        };
        ssl.set_certificate(identity.leaf())?;
        ssl.set_private_key(identity.key())?;
        for cert in identity.chain() {
            ssl.add_chain_cert(cert.clone())?;
        }
        if let Some(trust) = &trust {
            // A store per handshake: the bundle changes without a restart, and a handful of
            // CA certificates costs microseconds to load.
            let mut store = X509StoreBuilder::new()?;
            for ca in trust.get().iter().flat_map(|certs| certs.iter()) {
                store.add_cert(ca.clone())?;
            }
            ssl.set_verify_cert_store(store.build())?;
        }
        Ok(ClientHelloResponse::SUCCESS)
    });
    Ok(builder)
}

/// The client certificate of a connection, and whether it verified against the trust bundle
/// at the handshake (`Err` holds OpenSSL's reason, e.g. "certificate has expired").
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    pub certificate: X509,
    pub verified: Result<(), String>,
}

/// For `HttpServer::on_connect`: keeps the client certificate of a TLS connection, if any, in
/// the connection's data, where handlers read it with `req.conn_data::<PeerCertificate>()`.
pub fn record_peer_certificate(connection: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::openssl::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(tls) = connection.downcast_ref::<Tls>() else {
        return;
    };
    let ssl = tls.ssl();
    if let Some(certificate) = ssl.peer_certificate() {
        let result = ssl.verify_result();
        data.insert(PeerCertificate {
            certificate,
            verified: if result == X509VerifyResult::OK {
                Ok(())
            } else {
                Err(result.error_string().to_owned())
            },
        });
    }
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
}
