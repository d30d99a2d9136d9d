#![no_main]
//! Any bytes as the PEM and DER certpair reads back from the cluster: a CRL (`crl::read`), a
//! published trust bundle (`bundle::merge`), a CA or serving chain with its key, a public key
//! and a certificate's subject. Nothing here may panic.

use std::{sync::LazyLock, time::Duration};

use certpair::pki::{
    authority::{self, Authority},
    bundle, crl, csr,
    identity::ServingIdentity,
    now_unix,
};
use libfuzzer_sys::fuzz_target;

static CA: LazyLock<Authority> =
    LazyLock::new(|| Authority::generate("fuzz", Duration::from_secs(3600), now_unix()).unwrap());

fuzz_target!(|data: &[u8]| {
    let _ = crl::read(data);
    let current = std::slice::from_ref(CA.certificate());
    let merged = bundle::merge(current, Some(data), now_unix(), |_| true).unwrap();
    assert!(merged.starts_with(&CA.certificate().to_pem().unwrap()));
    let _ = Authority::from_pem(data, data);
    let _ = ServingIdentity::from_pem(data, data);
    let _ = authority::public_key_from_pem(data);
    let _ = csr::certificate_subject(data);
});
