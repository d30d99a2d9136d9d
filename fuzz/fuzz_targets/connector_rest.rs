#![no_main]
//! Any bytes as a body of the connector's REST API: `{"csr"}` (certificates, renewals) decoded
//! and checked as the connector checks a pairing, and `{"hash"}` (the internal revocation);
//! as text, a token (`?token=`, `Connector-Token`) and the subject string the client reads
//! from `signingRequests/info`. Nothing here may panic.

use certpair::{
    connector::{internal::revocation_hash, rest::csr_from_json},
    pki::{csr, csr_builder::parse_subject},
    policy::{self, ApplicationRules, Defaults, RequestSpec, SubjectRules, pairing},
    token,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pem) = csr_from_json(data) {
        pairing_checks(&pem);
    }
    let _ = revocation_hash(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if token::well_formed(text) {
            let _ = token::hash(text);
        }
        let _ = parse_subject(text);
    }
});

/// The checks `connector::service` makes of a CSR redeemed with a token for `billing`.
fn pairing_checks(pem: &[u8]) {
    let Ok(parsed) = csr::parse_pem_for_admission(pem) else {
        return;
    };
    let usages = pairing::usages(&parsed.key);
    let spec = RequestSpec {
        usages: &usages,
        expiration_seconds: None,
    };
    let Ok(checked) = policy::check_request(&parsed, spec) else {
        return;
    };
    let app = ApplicationRules {
        subject: SubjectRules {
            organization: Some("Acme".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let defaults = Defaults::default();
    let _ = pairing::check_pairing(&checked, "billing", Some(&app), &defaults);
    let _ = pairing::check_same_subject(&checked, &parsed.subject);
    // The subject as an mTLS identity would carry it.
    let _ = pairing::check_identity(&parsed.subject, |_| Some(app), &defaults);
}
