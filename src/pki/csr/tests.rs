use openssl::nid::Nid;

use super::*;
use crate::pki::testing::{Req, der_of, ec, p256, pem_of, rsa, tampered};

#[test]
fn reports_subject_in_order_with_duplicates() {
    let pem = Req::cn("billing")
        .with(Nid::ORGANIZATIONNAME, "Acme")
        .with(Nid::ORGANIZATIONNAME, "Acme")
        .with(Nid::COUNTRYNAME, "DE")
        .pem(&p256());
    let req = parse_pem(&pem).expect("parses");
    let kinds: Vec<_> = req
        .subject
        .iter()
        .map(|a| a.kind.short_name().to_owned())
        .collect();
    assert_eq!(kinds, ["CN", "O", "O", "C"]);
    assert_eq!(req.values(&AttributeKind::Organization), ["Acme", "Acme"]);
    assert_eq!(req.subject_line(), "CN=billing, O=Acme, O=Acme, C=DE");
    assert!(!req.multi_valued_rdn);
    assert_eq!(req.key, KeyInfo::Ecdsa { curve: Curve::P256 });
}

#[test]
fn reports_key_size_and_requested_extensions() {
    let pem = Req {
        sans: vec!["a.example".into()],
        ca: true,
        key_cert_sign: true,
        server_auth: true,
        ..Req::cn("x")
    }
    .pem(&rsa(2048));
    let req = parse_pem(&pem).expect("parses");
    assert_eq!(req.key, KeyInfo::Rsa { bits: 2048 });
    assert_eq!(req.extensions.sans, [San::Dns("a.example".into())]);
    assert_eq!(req.extensions.basic_constraints_ca, Some(true));
    assert_eq!(req.extensions.key_usages, ["keyCertSign"]);
    assert_eq!(req.extensions.extended_key_usages, ["serverAuth"]);
}

#[test]
fn refuses_bad_input_with_typed_errors() {
    let good = Req::cn("x").pem(&p256());
    assert_eq!(parse_pem(b"  \n").unwrap_err(), CsrError::Empty);
    assert!(matches!(
        parse_pem(&vec![b'A'; MAX_PEM_BYTES + 1]),
        Err(CsrError::TooLarge(_))
    ));
    assert!(matches!(
        parse_pem(b"not pem at all"),
        Err(CsrError::NotPem(_))
    ));
    assert_eq!(
        parse_pem(&[good.clone(), good.clone()].concat()).unwrap_err(),
        CsrError::MultipleBlocks(2)
    );
    let wrong = String::from_utf8_lossy(&good).replace("CERTIFICATE REQUEST", "PRIVATE KEY");
    assert_eq!(
        parse_pem(wrong.as_bytes()).unwrap_err(),
        CsrError::WrongLabel("PRIVATE KEY".into())
    );
    // Truncated base64 body: PEM framing intact, DER broken.
    let text = String::from_utf8_lossy(&good).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let truncated = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[lines.len() - 1]);
    assert!(matches!(
        parse_pem(truncated.as_bytes()),
        Err(CsrError::Malformed(_) | CsrError::NotPem(_))
    ));
}

#[test]
fn trailing_bytes_after_der_are_refused() {
    let pem = Req::cn("x").pem(&p256());
    let der = openssl::x509::X509Req::from_pem(&pem)
        .expect("req")
        .to_der()
        .expect("der");
    let mut longer = der.clone();
    longer.extend_from_slice(&[0, 0]);
    assert_eq!(parse_der(&longer).unwrap_err(), CsrError::TrailingData(2));
    assert!(parse_der(&der).is_ok());
}

/// Both signature paths (the common algorithms and the general fallback) accept a good
/// request, refuse the same request tampered after signing, and report the same key.
#[test]
fn every_signature_path_verifies_and_refuses_tampering() {
    let cases = [
        ("RSA SHA-256", rsa(2048), Some(MessageDigest::sha256())),
        ("RSA SHA-384", rsa(2048), Some(MessageDigest::sha384())),
        ("RSA SHA-512", rsa(2048), Some(MessageDigest::sha512())),
        ("P-256 SHA-256", p256(), Some(MessageDigest::sha256())),
        (
            "P-384 SHA-384",
            ec(Nid::SECP384R1),
            Some(MessageDigest::sha384()),
        ),
        ("P-256 SHA-512", p256(), Some(MessageDigest::sha512())),
        // Not on the common path: verified by OpenSSL's general X509_REQ_verify.
        ("RSA SHA-1", rsa(2048), Some(MessageDigest::sha1())),
        ("Ed25519", PKey::generate_ed25519().expect("ed25519"), None),
    ];
    for (label, key, digest) in cases {
        let pem = Req {
            digest,
            ..Req::cn("billing")
        }
        .pem(&key);
        let req = parse_pem(&pem).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(
            req.public_key.public_eq(
                &PKey::public_key_from_der(&key.public_key_to_der().expect("der")).expect("key")
            ),
            "{label}: reported key differs from the signing key"
        );
        assert_eq!(
            parse_pem(&tampered(&pem, "billing")).unwrap_err(),
            CsrError::BadSignature,
            "{label}"
        );
    }
}

/// The digest comes from the request's signature algorithm: relabelling a SHA-256
/// signature as SHA-384 must not verify, nor a request signed by another key.
#[test]
fn signature_algorithm_and_key_must_match_the_signature() {
    let pem = Req::cn("billing").pem(&rsa(2048));
    let mut der = der_of(&pem);
    // sha256WithRSAEncryption 1.2.840.113549.1.1.11 → .12 (sha384WithRSAEncryption).
    let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    let at = der
        .windows(oid.len())
        .rposition(|w| w == oid)
        .expect("signature algorithm");
    der[at + oid.len() - 1] = 0x0c;
    assert_eq!(parse_der(&der).unwrap_err(), CsrError::BadSignature);

    // Another key's SubjectPublicKeyInfo spliced in over the signer's.
    let signer = rsa(2048);
    let other = rsa(2048);
    let mut der = der_of(&Req::cn("billing").pem(&signer));
    let (a, b) = (
        signer.public_key_to_der().expect("der"),
        other.public_key_to_der().expect("der"),
    );
    assert_eq!(a.len(), b.len());
    let at = der
        .windows(a.len())
        .position(|w| w == a.as_slice())
        .expect("spki");
    der[at..at + b.len()].copy_from_slice(&b);
    assert_eq!(
        parse_pem(&pem_of(&der)).unwrap_err(),
        CsrError::BadSignature
    );
}

/// Content of the DER TLV at the start of `der`, and the length of the whole TLV.
fn tlv_content(der: &[u8]) -> (&[u8], usize) {
    let (header, len) = if der[1] < 0x80 {
        (2, der[1] as usize)
    } else {
        let n = (der[1] & 0x7f) as usize;
        (
            2 + n,
            der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | *b as usize),
        )
    };
    (&der[header..header + len], header + len)
}

/// The CertificationRequestInfo `info` with its SubjectPublicKeyInfo `old` replaced by `new`.
fn with_spki(info: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    let (body, _) = tlv_content(info);
    let at = body
        .windows(old.len())
        .position(|w| w == old)
        .expect("spki in info");
    der_tlv(0x30, &[&body[..at], new, &body[at + old.len()..]].concat())
}

/// The common-algorithm path takes ordinary requests, and never accepts a variant that the
/// general path (OpenSSL's own parser and X509_REQ_verify) refuses.
#[test]
fn the_fast_path_accepts_nothing_the_general_path_refuses() {
    let key = rsa(2048);
    let good = der_of(&Req::cn("billing").pem(&key));
    let (_, req) = X509CertificationRequest::from_der(&good).expect("parse");
    assert!(
        matches!(
            verify_common(&good, &req, rsa_key::MAX_CHECKED_BITS),
            Some(Ok(_))
        ),
        "an ordinary RSA request takes the fast path"
    );
    let info = req.certification_request_info.raw.to_vec();
    let oid = req.signature_algorithm.algorithm.as_bytes().to_vec();
    let sig = req.signature_value.data.to_vec();
    let algorithm = |extra: &[u8]| {
        let mut a = der_tlv(0x06, &oid);
        a.extend_from_slice(&[0x05, 0x00]);
        a.extend_from_slice(extra);
        der_tlv(0x30, &a)
    };
    let request = |info: &[u8], alg: Vec<u8>, bits: Vec<u8>, extra: &[u8]| {
        der_tlv(0x30, &[info, &alg, &der_tlv(0x03, &bits), extra].concat())
    };
    assert_eq!(
        request(&info, algorithm(&[]), [&[0u8][..], &sig].concat(), &[]),
        good,
        "the test's encoder reproduces the original"
    );

    // An RSA-PSS key (reads as RSA with the typed decoder) under a PKCS#1 v1.5 signature.
    let spki = req.certification_request_info.subject_pki.raw;
    let (spki_body, _) = tlv_content(spki);
    let (_, alg_len) = tlv_content(spki_body);
    let pss_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    let pss_spki = der_tlv(
        0x30,
        &[
            &der_tlv(0x30, &der_tlv(0x06, &pss_oid))[..],
            &spki_body[alg_len..],
        ]
        .concat(),
    );
    let pss_info = with_spki(&info, spki, &pss_spki);
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key).expect("signer");
    let pss_sig = signer.sign_oneshot_to_vec(&pss_info).expect("sign");

    let variants = [
        (
            "nonzero unused bits in the signature",
            request(&info, algorithm(&[]), [&[3u8][..], &sig].concat(), &[]),
        ),
        (
            "an extra element after the signature",
            request(
                &info,
                algorithm(&[]),
                [&[0u8][..], &sig].concat(),
                &[0x05, 0x00],
            ),
        ),
        (
            "an extra element in the signature algorithm",
            request(
                &info,
                algorithm(&[0x05, 0x00]),
                [&[0u8][..], &sig].concat(),
                &[],
            ),
        ),
        (
            "an RSA-PSS key with a PKCS#1 v1.5 signature",
            request(
                &pss_info,
                algorithm(&[]),
                [&[0u8][..], &pss_sig].concat(),
                &[],
            ),
        ),
    ];
    for (label, der) in variants {
        assert!(
            verify_any(&der, rsa_key::MAX_CHECKED_BITS).is_err(),
            "{label}: OpenSSL refuses it"
        );
        let result = parse_der(&der);
        assert!(
            result.is_err(),
            "{label}: accepted as {:?}",
            result.map(|r| r.key)
        );
    }
}

/// The ECDSA fast path (a named curve's group made once, `ECDSA_do_verify`) agrees with
/// OpenSSL's general path: on ordinary requests of every curve, on a compressed point (both
/// accept), and on a signature in BER or a point off the curve (both refuse).
#[test]
fn the_ecdsa_fast_path_agrees_with_the_general_path() {
    use openssl::{bn::BigNumContext, ec::PointConversionForm};
    for nid in [Nid::X9_62_PRIME256V1, Nid::SECP384R1, Nid::SECP521R1] {
        let key = ec(nid);
        let good = der_of(&Req::cn("billing").pem(&key));
        let (_, req) = X509CertificationRequest::from_der(&good).expect("parse");
        assert!(
            named_curve_key(&req.certification_request_info.subject_pki).is_some(),
            "{nid:?} takes the fast path"
        );
        assert!(matches!(verify_common(&good, &req, 0), Some(Ok(_))));

        let info = req.certification_request_info.raw.to_vec();
        let oid = req.signature_algorithm.algorithm.as_bytes().to_vec();
        // RequestBuilder signs with SHA-256 whatever the curve.
        let digest = MessageDigest::sha256();
        let assemble = |info: &[u8], sig: &[u8]| {
            der_tlv(
                0x30,
                &[
                    info,
                    &der_tlv(0x30, &der_tlv(0x06, &oid)),
                    &der_tlv(0x03, &[&[0u8][..], sig].concat()),
                ]
                .concat(),
            )
        };
        let sign = |info: &[u8]| {
            openssl::sign::Signer::new(digest, &key)
                .expect("signer")
                .sign_oneshot_to_vec(info)
                .expect("sign")
        };
        let sig = req.signature_value.data.to_vec();
        assert_eq!(
            assemble(&info, &sig),
            good,
            "the test's encoder reproduces it"
        );

        // The same key with its point compressed: both paths accept.
        let spki = req.certification_request_info.subject_pki.raw;
        let ec_key = key.ec_key().expect("ec");
        let mut ctx = BigNumContext::new().expect("ctx");
        let compressed = ec_key
            .public_key()
            .to_bytes(ec_key.group(), PointConversionForm::COMPRESSED, &mut ctx)
            .expect("point");
        let (spki_body, _) = tlv_content(spki);
        let (_, alg_len) = tlv_content(spki_body);
        let with_point = |point: &[u8]| {
            let new_spki = der_tlv(
                0x30,
                &[
                    &spki_body[..alg_len],
                    &der_tlv(0x03, &[&[0u8][..], point].concat())[..],
                ]
                .concat(),
            );
            with_spki(&info, spki, &new_spki)
        };
        let compressed_info = with_point(&compressed);
        let compressed_req = assemble(&compressed_info, &sign(&compressed_info));
        assert!(
            verify_any(&compressed_req, 0).is_ok(),
            "{nid:?}: OpenSSL accepts it"
        );
        assert!(
            parse_der(&compressed_req).is_ok(),
            "{nid:?}: compressed point"
        );

        // Refused by both: the signature in BER (a long-form length), a point off the curve.
        let (sig_body, _) = tlv_content(&sig);
        let mut ber = vec![0x30, 0x82];
        ber.extend_from_slice(&(sig_body.len() as u16).to_be_bytes());
        ber.extend_from_slice(sig_body);
        let mut off_curve = ec_key
            .public_key()
            .to_bytes(ec_key.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
            .expect("point");
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        let off_info = with_point(&off_curve);
        for (label, der) in [
            ("a BER signature", assemble(&info, &ber)),
            (
                "a point off the curve",
                assemble(&off_info, &sign(&off_info)),
            ),
        ] {
            assert!(
                verify_any(&der, 0).is_err(),
                "{nid:?} {label}: OpenSSL refuses it"
            );
            assert!(parse_der(&der).is_err(), "{nid:?} {label}: accepted");
        }
    }
}

/// An answer, yes or no, leaves nothing in OpenSSL's per-thread error queue: a stale entry there makes
/// the next TLS read on the same thread (the kube client's connection to the apiserver, a
/// webhook connection) fail as if it were its own error.
#[test]
fn refusals_leave_the_openssl_error_queue_empty() {
    let _ = openssl::error::ErrorStack::get();
    for (label, key) in [
        ("RSA", rsa(2048)),
        ("P-256", p256()),
        ("Ed25519", PKey::generate_ed25519().expect("ed25519")),
    ] {
        let pem = Req::cn("billing").pem(&key);
        parse_pem(&pem).expect("parses");
        let queued = openssl::error::ErrorStack::get();
        assert!(queued.errors().is_empty(), "{label}, accepted: {queued}");
        assert_eq!(
            parse_pem(&tampered(&pem, "billing")).unwrap_err(),
            CsrError::BadSignature,
            "{label}"
        );
        let queued = openssl::error::ErrorStack::get();
        assert!(queued.errors().is_empty(), "{label}: {queued}");
    }
}

/// Unsafe RSA keys are refused by name, and before the signature is looked at: every request
/// here is signed by another key, yet none is refused as forged.
#[test]
fn unsafe_rsa_keys_are_refused_before_the_signature_is_checked() {
    use openssl::bn::{BigNum, BigNumContext};

    use crate::pki::testing::{forged_rsa_request, huge_exponent};
    let prime = |bits| {
        let mut p = BigNum::new().expect("bn");
        p.generate_prime(bits, false, None, None).expect("prime");
        p
    };
    let times = |a: &BigNum, b: &BigNum| {
        let mut out = BigNum::new().expect("bn");
        out.checked_mul(a, b, &mut BigNumContext::new().expect("ctx"))
            .expect("mul");
        out
    };
    let real = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let n = real.n().to_owned().expect("n");
    let f4 = BigNum::from_u32(65537).expect("e");
    let cases = [
        (
            "prime modulus",
            prime(2048),
            f4.to_owned().expect("e"),
            "is a prime",
        ),
        (
            "small factor",
            times(&prime(2040), &BigNum::from_u32(7).expect("7")),
            f4.to_owned().expect("e"),
            "small prime factor 7",
        ),
        (
            "e = 3",
            n.to_owned().expect("n"),
            BigNum::from_u32(3).expect("3"),
            "exponent 3 is below 65537",
        ),
        (
            "even e",
            n.to_owned().expect("n"),
            BigNum::from_u32(65538).expect("e"),
            "exponent is even",
        ),
        (
            "300-bit e",
            n.to_owned().expect("n"),
            huge_exponent(),
            "has 300 bits",
        ),
    ];
    for (name, n, e, needle) in cases {
        let err = parse_pem(&forged_rsa_request(&n, &e)).expect_err(name);
        assert!(matches!(err, CsrError::UnsafeRsaKey(_)), "{name}: {err}");
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }

    // A genuine request whose key has e = 3 (its signature verifies) is refused the same way.
    let e3 = openssl::rsa::Rsa::generate_with_e(2048, &BigNum::from_u32(3).expect("3"))
        .and_then(openssl::pkey::PKey::from_rsa)
        .expect("rsa e=3");
    let err = parse_pem(&Req::cn("billing").pem(&e3)).expect_err("e = 3");
    assert!(err.to_string().contains("exponent 3"), "{err}");
    // And a real key still parses.
    assert!(parse_pem(&Req::cn("billing").pem(&rsa(2048))).is_ok());
}

/// Lower-case hex (whitespace-free, split over lines) to bytes.
fn unhex(lines: &[&str]) -> Vec<u8> {
    let hex: String = lines.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Found by fuzzing (csr_differential, minimised): a P-256 request, correctly signed, whose
/// third RDN holds `SEQUENCE { UTF8String (with a length past the SEQUENCE's end) }` and then
/// bytes that are no attribute at all. OpenSSL refuses it; x509-parser read two of the three
/// RDNs and passed over the rest, and the fast path accepted it as `C=DE, O=Acme`.
#[test]
fn fuzz_a_subject_read_in_part_is_refused() {
    let der = unhex(&[
        "3081c73070020100302e310b3009060355040613024445310d300b060355040a0c0441636d65311030040c5503060e07",
        "0362696c6c696e673039301306072a8648ce3d020106082a8648ce3d03010703220002e75a8872616799461e8b6a4abf",
        "78d8fbf6ca2042f97b2a2caf1aa780358ce2cfa000300a06082a8648ce3d04030203470030440220794fe4684ef8277b",
        "aca13ffb44328052cb2bbc0a4e8ad1b53d98c005681a311302200ab728d0ca2544dc702bd31bc854d02d8081c127cbdd",
        "e91aeffabcbcdc9e7fd3",
    ]);
    assert!(
        openssl::x509::X509Req::from_der(&der).is_err(),
        "OpenSSL refuses it"
    );
    let (_, req) = X509CertificationRequest::from_der(&der).expect("x509-parser reads it");
    assert!(
        verify_common(&der, &req, rsa_key::MAX_CHECKED_BITS).is_none(),
        "not strict DER: the fast path leaves it to OpenSSL"
    );
    assert!(parse_der(&der).is_err());
}

/// The other side of the same leniency, and why it matters: an empty RDN ends x509-parser's
/// reading of the subject, OpenSSL reads past it. certpair used to decide on `CN=billing` alone
/// while the request (as OpenSSL, `openssl req` and anyone auditing the CSR read it) also asks
/// for `O=system:masters`; now it refuses the request.
#[test]
fn a_subject_x509_parser_reads_only_in_part_is_refused() {
    let key = p256();
    let attribute = |oid: &[u8], value: &str| {
        let atv = [der_tlv(0x06, oid), der_tlv(0x0c, value.as_bytes())].concat();
        der_tlv(0x31, &der_tlv(0x30, &atv))
    };
    let name = der_tlv(
        0x30,
        &[
            attribute(&[0x55, 0x04, 0x03], "billing"),
            vec![0x31, 0x00],
            attribute(&[0x55, 0x04, 0x0a], "system:masters"),
        ]
        .concat(),
    );
    let spki = key.public_key_to_der().expect("spki");
    let info = der_tlv(0x30, &[&[2, 1, 0][..], &name, &spki, &[0xa0, 0]].concat());
    let signature = openssl::sign::Signer::new(MessageDigest::sha256(), &key)
        .and_then(|mut s| s.sign_oneshot_to_vec(&info))
        .expect("sign");
    let ecdsa_with_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let der = canonical_request(&info, &ecdsa_with_sha256, false, &signature);

    let ossl = openssl::x509::X509Req::from_der(&der).expect("OpenSSL reads it");
    assert!(
        ossl.verify(&ossl.public_key().expect("key"))
            .expect("verify"),
        "and verifies it"
    );
    assert_eq!(ossl.subject_name().entries().count(), 2, "CN and O");
    let (_, req) = X509CertificationRequest::from_der(&der).expect("parse");
    assert_eq!(
        req.certification_request_info
            .subject
            .iter_attributes()
            .count(),
        1,
        "the premise: x509-parser reads the CN only"
    );
    assert_eq!(parse_der(&der).unwrap_err(), CsrError::UnreadableSubject);
}

/// Found by fuzzing (csr_differential), a refusal kept on purpose: the extensionRequest
/// attribute holds a SEQUENCE of extensions whose third is cut short and followed by bytes
/// that are no extension. OpenSSL takes an attribute's values as they come and verifies the
/// request; certpair must read every requested extension to refuse what a client certificate
/// may not ask for, so it refuses the request as malformed.
#[test]
fn fuzz_unreadable_requested_extensions_are_refused_on_purpose() {
    let der = unhex(&[
        "308201623082010902010030123110300e06035504030c0762696c6c696e673059301306072a8648ce3d020106082a86",
        "48ce3d03010703420004e75a8872616799461e8b6a4abf78d8fbf6ca2042f97b2a2caf1aa780358ce2cf3315d39b29ac",
        "ca709be20136c00553162049db9134995e33452e65bd15c76f62a0819430819106092a864886f70d01090e3181833081",
        "80303c0603551d11043530338209612e6578616d706c6587040a000001810d61406578616d706c652e636f6d86116874",
        "7470733a2f2f612e6578616d706c65300f0603551d130101ff040530030101ff300b0603551d0f0404ffffffffffffff",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff300a06082a8648ce3d040302034700",
        "304402202cc33f05192dcbb85cdfee35e577fc1aa83d5329749f99adf3c17dafb72e144d022059ebb6b8ec73050fd614",
        "b057a43196be48732faf4d072a0bfe935c305030f936",
    ]);
    assert!(
        verify_any(&der, rsa_key::MAX_CHECKED_BITS).is_ok(),
        "OpenSSL reads and verifies it"
    );
    assert!(matches!(parse_der(&der), Err(CsrError::Malformed(_))));
}

/// Found by fuzzing (csr_differential): a P-256 request, correctly signed, with an attribute
/// whose type is an OID with an arc not in the fewest octets (`2A 80 00 ...`). OpenSSL refuses
/// it; RustCrypto's strict decoder keeps OID bytes as they come, so the fast path took it.
#[test]
fn fuzz_a_non_minimal_oid_leaves_the_fast_path() {
    let der = unhex(&[
        "308201633082010902010030123110300e06035504030c0762696c6c696e673059301306072a8648ce3d020106082a86",
        "48ce3d03010703420004e75a8872616799461e8b6a4abf78d8fbf6ca2042f97b2a2caf1aa780358ce2cf3315d39b29ac",
        "ca709be20136c00553162049db9134995e33452e65bd15c76f62a0819430819106092a80000000000000293181833081",
        "80303c0603551d110435d9994fdef15218cc3d1a85686913fb1bbd8d0304962e4bd277090534fe520902e9db08bf41db",
        "0ccf18bbd248f40a0d30fda943db4830823082010902010030123110300e0603975183a7137b994fdef15218cc3d1a85",
        "686913fb1bbd8d0304962e4bd277090534fe520902e9db08bf41db0ccf697b9386300a06082a8648ce3d040302034800",
        "3045022004cf6b01c8f4a6e4528411ba1e9c42eeaa891c8f1a4a685fa22422c92bd5e7f1022100d4ed6b0b14825810cf",
        "13f2bd418a8e036d97165dac3cfb0ad6b7ed1dd5a6e7fb",
    ]);
    assert!(
        openssl::x509::X509Req::from_der(&der).is_err(),
        "OpenSSL refuses it"
    );
    let (_, req) = X509CertificationRequest::from_der(&der).expect("x509-parser reads it");
    assert!(verify_common(&der, &req, rsa_key::MAX_CHECKED_BITS).is_none());
    assert!(parse_der(&der).is_err());
    assert!(is_minimal_oid(&[0x2a, 0x86, 0x48, 0x00, 0x7f]));
    assert!(!is_minimal_oid(&[0x2a, 0x80, 0x01]));
    assert!(!is_minimal_oid(&[0x80, 0x01]));
}

/// Found by fuzzing (csr_differential): a P-384 request, correctly signed, whose O value is
/// tagged context-specific [12] instead of UTF8String (universal 12). OpenSSL refuses it;
/// x509-parser read it as the text "Acme", and the fast path accepted `C=DE, O=Acme, CN=billing`.
#[test]
fn fuzz_a_subject_value_that_is_not_a_universal_string_is_refused() {
    let der = unhex(&[
        "308201263081ad020100302e310b3009060355040613024445310d300b060355040a8c0441636d653110300e06035504",
        "030c0762696c6c696e673076301006072a8648ce3d020106052b81040022036200045c565a2f5ae2ad5d9d6154e7d49c",
        "9b194cb1816c6877441dae9cb0a3f34b3dda3a56269ef742f8fecef353dd9de457d29602df5f9aef691db376214d0ee1",
        "846774ceca29cce33607259c2f7283470cc3c75d3977e76c009010348369a742b620a000300a06082a8648ce3d040303",
        "036800306502305a0cb12bc9711145d825ed6d5e343057bfe580c64b2ac6a72e9f1374b9c350a7bed10294e93f165f9d",
        "eeda6ee2d0e061023100f57b6807334319a849cbdbe9cc4c0b278061df9d2b218e0bb67ad5f0ad9c16d1f74757d60395",
        "62102c15146e75ce2c79",
    ]);
    assert!(
        openssl::x509::X509Req::from_der(&der).is_err(),
        "OpenSSL refuses it"
    );
    assert_eq!(
        parse_der(&der).unwrap_err(),
        CsrError::SubjectNotText {
            attribute: "O".into()
        }
    );
}

/// Found by fuzzing (csr_differential): a P-256 request, correctly signed, whose key's curve
/// parameter is tagged NULL (with the P-256 OID's bytes as its content). OpenSSL refuses it;
/// x509-parser's `as_oid` read the content as the curve, and the fast path accepted it.
#[test]
fn fuzz_a_curve_parameter_that_is_not_an_oid_leaves_the_fast_path() {
    let der = unhex(&[
        "3081c83070020100302e310b3009060355040613024445310d300b060355040a0c0441636d653110300e06035504030c",
        "0762696c6c696e673039301306072a8648ce3d020105082a8648ce3d03010703220002e75a8872616799461e8b6a4abf",
        "78d8fbf6ca2042f97b2a2caf1aa780358ce2cfa000300a06082a8648ce3d0403020348003045022100ec01ee41444726",
        "4a101526f52decf974f1ea50e5140ed3ef9fada1884a215be6022079578ed3642a2a98d72c75e5c7b8076ac37dc541eb",
        "ca17290bd933789b20e785",
    ]);
    assert!(
        openssl::x509::X509Req::from_der(&der).is_err(),
        "OpenSSL refuses it"
    );
    let (_, req) = X509CertificationRequest::from_der(&der).expect("x509-parser reads it");
    assert!(named_curve_key(&req.certification_request_info.subject_pki).is_none());
    assert!(parse_der(&der).is_err());
}

/// Found by fuzzing (csr_differential): an RSA request, correctly signed, with an attribute of
/// an unknown type whose values are a BOOLEAN of 108 octets and an application-tagged element.
/// OpenSSL checks a primitive value's content by its type and refuses it; nothing on the fast
/// path looked into it, so it accepted the request.
#[test]
fn fuzz_an_attribute_value_openssl_refuses_leaves_the_fast_path() {
    let der = unhex(&[
        "308202ec308201d402010030123110300e06035504030c0762696c6c696e6730820122300d06092a864886f70d010101",
        "05000382010f003082010a0282010100cde98c493eb72a2ab091150759d7e585fb147a6d592fd89fbf8cf6691bb4c53a",
        "9dab506c41616add58660da5cc6bb987b0ded6db2642d59d56aa0b5131bfc6bd2b04ac904729190ca405c843e8679eb7",
        "a7f97bef80bd71871716aa7bf6130e8fb8d71035c4e932dacdee7f66bdffe23faff19133d80e53f2fc9e2f375829f1c7",
        "ff688c1e0d724ec826f306f57ca2d239db30861cef5bc226a6319590878c4c3977b405d93699d573deb4782c96f18034",
        "253d90a94d523efcad58823516ae0f9bebb406934cb4620da030d30200fd2beb34f92b5fb03da21b5e2cf6baa1e82d89",
        "b45afedb8e4510ee742b0011ec9e9224c3f96214ad3b2e2173254cee90ed293b0203010001a081943081910609308648",
        "86f70d01090e318183016c0000800600810600813030033d420004726188e75a6799461e8b6a4abf78d8fbf6ca2042f9",
        "7b2a2caf1aa780348ce2cf3315d39b29acca709be20136c0053f16202cdb9134992d2d2d2d2d454e442030030101ff00",
        "3082010902010030123110300e060762696c6c696e67305913300b06038b6a4a131d0f040403020284302206300d0609",
        "2a864886f70d01010b050003820101007d81a0c9c07491bd2a466de420f9e1d0f8595325c13478c3f67f2f0926424f48",
        "d39d3c6a5acc29c37749a493a2493e3e11678e964e3bee97046a313ca65c9137f3e2f7b2ffac104f66a6dc7d4c2c0d94",
        "1283546ad8f366975c3e42a366bd99aa8a63380c38fa8a4b883a6265c2ba8ac61d8ef049eff9cef947ff9c15898b8497",
        "d0348bce3164000c5237d8258f2ee8ddf710908772f8a6e82ed2cb7fcbad5aaf266093937d762e5f32300ee7584b7650",
        "64539744da3aec6ab9d16e61dc8865337dfb2f62bca2021824a08604cc369356c1eed03dbe7b61e9b88aed1553882598",
        "97f5640dc2d6a0f81014cc50f8d05542b73e19347f7345474718c540d6f98ca1",
    ]);
    assert!(
        openssl::x509::X509Req::from_der(&der).is_err(),
        "OpenSSL refuses it"
    );
    let (_, req) = X509CertificationRequest::from_der(&der).expect("x509-parser reads it");
    assert!(verify_common(&der, &req, rsa_key::MAX_CHECKED_BITS).is_none());
    assert!(parse_der(&der).is_err());
}
