#![no_main]
//! Any bytes into certpair's CSR parsers, as DER and as PEM, then into the request checks
//! every caller runs on what parses. Nothing here may panic.

use certpair::{
    pki::csr::{self, ParsedRequest},
    policy::{self, RequestSpec},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for parsed in [
        csr::parse_der(data),
        csr::parse_pem(data),
        csr::parse_pem_for_admission(data),
        // The DER inside a well-formed PEM frame, so mutations reach the DER parser through
        // the PEM path too.
        csr::parse_pem_for_admission(&pem(data)),
    ]
    .into_iter()
    .flatten()
    {
        check(&parsed);
    }
    let _ = csr::certificate_subject(data);
});

fn check(parsed: &ParsedRequest) {
    let _ = (parsed.subject_line(), parsed.key.to_string());
    for san in &parsed.extensions.sans {
        let _ = san.to_string();
    }
    let usages = ["digital signature".to_owned(), "client auth".to_owned()];
    let spec = RequestSpec {
        usages: &usages,
        expiration_seconds: Some(3600),
    };
    if let Err(denial) = policy::check_request(parsed, spec) {
        let _ = denial.to_string();
    }
}

fn pem(der: &[u8]) -> Vec<u8> {
    certpair::pki::leaf::pem("CERTIFICATE REQUEST", der)
}
