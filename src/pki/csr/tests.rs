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
