//! Keys and requests for unit tests, including deliberately broken variants.

use openssl::{
    ec::{EcGroup, EcKey},
    nid::Nid,
    pkey::{PKey, Private},
    rsa::Rsa,
};

pub use super::csr_builder::RequestBuilder as Req;
use super::{authority::Authority, identity::ServingIdentity};

pub fn rsa(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).expect("rsa")).expect("pkey")
}

pub fn ec(nid: Nid) -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).expect("curve")).expect("ec"))
        .expect("pkey")
}

pub fn p256() -> PKey<Private> {
    super::generate_p256().expect("P-256 key")
}

/// The same request with one byte of its CN changed after signing: well-formed, but the
/// signature no longer matches.
pub fn tampered(pem: &[u8], cn: &str) -> Vec<u8> {
    let mut der = der_of(pem);
    let pos = der
        .windows(cn.len())
        .position(|w| w == cn.as_bytes())
        .expect("CN in DER");
    der[pos] ^= 0x01;
    pem_of(&der)
}

/// The DER inside a PEM request.
pub fn der_of(pem: &[u8]) -> Vec<u8> {
    openssl::x509::X509Req::from_pem(pem)
        .expect("req")
        .to_der()
        .expect("der")
}

/// A DER request wrapped as PEM, byte for byte (no re-encoding by OpenSSL).
pub fn pem_of(der: &[u8]) -> Vec<u8> {
    super::leaf::pem("CERTIFICATE REQUEST", der)
}

/// A serving identity from `ca` for these names, valid `seconds` from `now`.
pub fn serving_identity(
    ca: &Authority,
    dns: &[String],
    ips: &[std::net::IpAddr],
    seconds: u64,
    now: i64,
) -> ServingIdentity {
    let key = p256();
    let issued = ca
        .issue_server(
            "x",
            dns,
            ips,
            &key,
            std::time::Duration::from_secs(seconds),
            now,
        )
        .expect("issued");
    ServingIdentity::from_pem(
        &issued.chain_pem,
        &key.private_key_to_pem_pkcs8().expect("pem"),
    )
    .expect("identity")
}

/// A request for `CN=billing, O=Acme` carrying the RSA public key (`n`, `e`) but signed by
/// another key: its signature never verifies, so a refusal that names the key shows the key
/// was checked before the signature.
pub fn forged_rsa_request(n: &openssl::bn::BigNumRef, e: &openssl::bn::BigNumRef) -> Vec<u8> {
    let public = Rsa::from_public_components(n.to_owned().expect("n"), e.to_owned().expect("e"))
        .expect("rsa");
    let public = PKey::from_rsa(public).expect("pkey");
    let mut name = openssl::x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, "billing")
        .expect("CN");
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Acme")
        .expect("O");
    let mut b = openssl::x509::X509ReqBuilder::new().expect("req");
    b.set_subject_name(&name.build()).expect("subject");
    b.set_pubkey(&public).expect("pubkey");
    b.sign(&rsa(2048), openssl::hash::MessageDigest::sha256())
        .expect("sign");
    b.build().to_pem().expect("pem")
}

/// A 300-bit odd public exponent: far past the 2^256 bound, cheap to build.
pub fn huge_exponent() -> openssl::bn::BigNum {
    let mut e = openssl::bn::BigNum::new().expect("bn");
    e.lshift(&openssl::bn::BigNum::from_u32(1).expect("one"), 299)
        .expect("shift");
    e.add_word(1).expect("add");
    e
}
