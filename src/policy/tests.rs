use std::sync::OnceLock;

use openssl::{
    nid::Nid,
    pkey::{PKey, Private},
};

use super::*;
use crate::pki::{
    csr::{AttributeKind, parse_pem},
    testing::{Req, ec, p256, rsa, tampered},
};

// Key generation dominates test time; share one key of each kind.
fn rsa2048() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(|| rsa(2048))
}
fn rsa1024() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(|| rsa(1024))
}
fn rsa3072() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(|| rsa(3072))
}
fn ec256() -> &'static PKey<Private> {
    static K: OnceLock<PKey<Private>> = OnceLock::new();
    K.get_or_init(p256)
}

fn acme(cn: &str) -> Req {
    Req::cn(cn).with(Nid::ORGANIZATIONNAME, "Acme")
}

fn app() -> ApplicationRules {
    ApplicationRules {
        subject: SubjectRules {
            organization: Some("Acme".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The approver's path, as the controller runs it: parse, check the request, decide.
fn decide_pem(
    pem: &[u8],
    spec: RequestSpec<'_>,
    facts: &Facts<'_>,
    defaults: &Defaults,
) -> Decision {
    let parsed = match parse_pem(pem) {
        Ok(parsed) => parsed,
        Err(e) => return Decision::Deny(unreadable(&e)),
    };
    match check_request(&parsed, spec) {
        Ok(req) => decide(&req, facts, defaults),
        Err(d) => Decision::Deny(d),
    }
}

fn client_usages() -> Vec<String> {
    vec!["digital signature".into(), "client auth".into()]
}

enum Expect {
    Approve,
    Pending,
    Deny(DenyReason, &'static str),
}

struct Case {
    name: &'static str,
    pem: Vec<u8>,
    usages: Vec<String>,
    expiration: Option<i32>,
    app: Option<ApplicationRules>,
    authorized: bool,
    unmatched: Unmatched,
    expect: Expect,
}

fn case(name: &'static str, pem: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        pem,
        usages: client_usages(),
        expiration: Some(3600),
        app: Some(app()),
        authorized: true,
        unmatched: Unmatched::Deny,
        expect,
    }
}

#[test]
fn decision_table() {
    use DenyReason::*;
    use Expect::*;
    let good = acme("billing").pem(ec256());
    let with_keys = |keys: KeyRules| ApplicationRules { keys, ..app() };
    let cases = vec![
        case("ECDSA P-256, matching subject", good.clone(), Approve),
        case(
            "RSA-2048, matching subject",
            acme("billing").pem(rsa2048()),
            Approve,
        ),
        case(
            "ECDSA P-384",
            acme("billing").pem(&ec(Nid::SECP384R1)),
            Approve,
        ),
        Case {
            expiration: None,
            ..case("no expirationSeconds", good.clone(), Approve)
        },
        Case {
            usages: vec!["client auth".into(), "key encipherment".into()],
            ..case(
                "key encipherment usage",
                acme("billing").pem(rsa2048()),
                Approve,
            )
        },
        case(
            "RSA-1024",
            acme("billing").pem(rsa1024()),
            Deny(KeyTooWeak, "RSA key of 1024 bits"),
        ),
        case(
            "ECDSA P-521",
            acme("billing").pem(&ec(Nid::SECP521R1)),
            Deny(UnsupportedKeyAlgorithm, "P-521"),
        ),
        case(
            "secp256k1",
            acme("billing").pem(&ec(Nid::SECP256K1)),
            Deny(UnsupportedKeyAlgorithm, "unsupported curve"),
        ),
        case(
            "Ed25519",
            acme("billing").pem(&PKey::generate_ed25519().expect("ed25519")),
            Deny(UnsupportedKeyAlgorithm, "Ed25519 key"),
        ),
        case(
            "no CN",
            Req {
                subject: vec![(Nid::ORGANIZATIONNAME, "Acme".into())],
                ..Default::default()
            }
            .pem(ec256()),
            Deny(InvalidRequest, "no CN"),
        ),
        case(
            "two CNs",
            acme("billing").with(Nid::COMMONNAME, "other").pem(ec256()),
            Deny(InvalidRequest, "2 CNs"),
        ),
        case(
            "missing O",
            Req::cn("billing").pem(ec256()),
            Deny(SubjectMismatch, "O is missing"),
        ),
        case(
            "wrong O",
            Req::cn("billing")
                .with(Nid::ORGANIZATIONNAME, "Evil")
                .pem(ec256()),
            Deny(SubjectMismatch, "O=\"Evil\""),
        ),
        case(
            "two O",
            acme("billing")
                .with(Nid::ORGANIZATIONNAME, "Acme")
                .pem(ec256()),
            Deny(SubjectMismatch, "2 O attributes"),
        ),
        case(
            "unexpected OU",
            acme("billing")
                .with(Nid::ORGANIZATIONALUNITNAME, "x")
                .pem(ec256()),
            Deny(SubjectMismatch, "OU=\"x\" is not allowed"),
        ),
        case(
            "email in subject",
            acme("billing")
                .with(Nid::PKCS9_EMAILADDRESS, "a@b.c")
                .pem(ec256()),
            Deny(SubjectMismatch, "not allowed"),
        ),
        case(
            "CA:TRUE",
            Req {
                ca: true,
                ..acme("billing")
            }
            .pem(ec256()),
            Deny(DisallowedExtensions, "CA:TRUE"),
        ),
        case(
            "SAN",
            Req {
                sans: vec!["evil.example".into()],
                ..acme("billing")
            }
            .pem(ec256()),
            Deny(DisallowedExtensions, "DNS:evil.example"),
        ),
        case(
            "keyCertSign",
            Req {
                key_cert_sign: true,
                ..acme("billing")
            }
            .pem(ec256()),
            Deny(DisallowedExtensions, "keyCertSign"),
        ),
        case(
            "serverAuth EKU",
            Req {
                server_auth: true,
                ..acme("billing")
            }
            .pem(ec256()),
            Deny(DisallowedExtensions, "serverAuth"),
        ),
        case(
            "tampered signature",
            tampered(&good, "billing"),
            Deny(InvalidRequest, "signature does not verify"),
        ),
        case(
            "not PEM",
            b"hello".to_vec(),
            Deny(InvalidRequest, "not PEM"),
        ),
        case("empty", Vec::new(), Deny(InvalidRequest, "empty")),
        case(
            "two PEM blocks",
            [good.clone(), good.clone()].concat(),
            Deny(InvalidRequest, "2 PEM blocks"),
        ),
        case(
            "certificate instead of request",
            String::from_utf8_lossy(&good)
                .replace("CERTIFICATE REQUEST", "CERTIFICATE")
                .into_bytes(),
            Deny(InvalidRequest, "\"CERTIFICATE\""),
        ),
        case(
            "garbage inside PEM",
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
                .to_vec(),
            Deny(InvalidRequest, "not a valid PKCS#10"),
        ),
        Case {
            usages: vec!["digital signature".into()],
            ..case(
                "no client auth usage",
                good.clone(),
                Deny(DisallowedUsages, "lacks \"client auth\""),
            )
        },
        Case {
            usages: vec!["client auth".into(), "server auth".into()],
            ..case(
                "server auth usage",
                good.clone(),
                Deny(DisallowedUsages, "\"server auth\""),
            )
        },
        Case {
            expiration: Some(60),
            ..case(
                "expiration too short",
                good.clone(),
                Deny(InvalidExpiration, "60"),
            )
        },
        Case {
            app: None,
            ..case(
                "unknown application, deny",
                good.clone(),
                Deny(UnknownApplication, "names no registered Application"),
            )
        },
        Case {
            app: None,
            unmatched: Unmatched::Pending,
            ..case("unknown application, pending", good.clone(), Pending)
        },
        Case {
            authorized: false,
            ..case(
                "requester not authorized",
                good.clone(),
                Deny(RequesterNotAuthorized, "verb \"request\""),
            )
        },
        Case {
            app: Some(ApplicationRules {
                disabled: true,
                ..app()
            }),
            ..case(
                "disabled",
                good.clone(),
                Deny(ApplicationDisabled, "disabled"),
            )
        },
        Case {
            app: Some(with_keys(KeyRules {
                allowed: vec![KeyAlgorithm::Rsa],
                ..Default::default()
            })),
            ..case(
                "algorithm not allowed by the Application",
                good.clone(),
                Deny(UnsupportedKeyAlgorithm, "allows RSA"),
            )
        },
        Case {
            app: Some(with_keys(KeyRules {
                min_rsa_bits: 3072,
                ..Default::default()
            })),
            ..case(
                "RSA below the Application's minimum",
                acme("billing").pem(rsa2048()),
                Deny(KeyTooWeak, "requires at least 3072"),
            )
        },
        Case {
            app: Some(with_keys(KeyRules {
                min_rsa_bits: 3072,
                ..Default::default()
            })),
            ..case(
                "RSA at the Application's minimum",
                acme("billing").pem(rsa3072()),
                Approve,
            )
        },
    ];
    assert!(cases.len() >= 25);
    for c in cases {
        let spec = RequestSpec {
            usages: &c.usages,
            expiration_seconds: c.expiration,
        };
        let facts = Facts {
            application: c.app.as_ref(),
            requester_authorized: c.authorized,
            requester: "alice",
        };
        let defaults = Defaults {
            unmatched: c.unmatched,
            ..Defaults::default()
        };
        let got = decide_pem(&c.pem, spec, &facts, &defaults);
        match (&c.expect, &got) {
            (Expect::Approve, Decision::Approve { .. })
            | (Expect::Pending, Decision::Pending { .. }) => {}
            (Expect::Deny(reason, needle), Decision::Deny(d)) => {
                assert_eq!(d.reason, *reason, "{}: {}", c.name, d.message);
                assert!(
                    d.message.contains(needle),
                    "{}: {:?} lacks {needle:?}",
                    c.name,
                    d.message
                );
            }
            _ => panic!("{}: got {got:?}", c.name),
        }
    }
}

/// OpenSSL refuses to even build such names, so other tools' requests are simulated by
/// editing a parsed one.
#[test]
fn subject_values_beyond_x520_bounds_are_refused() {
    use crate::pki::csr::SubjectAttribute;
    let base = parse_pem(&acme("billing").pem(ec256())).expect("parses");
    let usages = client_usages();
    let spec = RequestSpec {
        usages: &usages,
        expiration_seconds: None,
    };
    let cases = [
        (
            AttributeKind::CommonName,
            "a".repeat(65),
            "65 characters long; at most 64",
        ),
        (AttributeKind::Organization, "o".repeat(65), "at most 64"),
        (AttributeKind::Locality, "l".repeat(129), "at most 128"),
        (AttributeKind::Country, "DEU".to_string(), "two letters"),
        (AttributeKind::Country, "D1".to_string(), "two letters"),
        (AttributeKind::Organization, "  ".to_string(), "is empty"),
    ];
    for (kind, value, needle) in cases {
        let mut req = base.clone();
        req.subject.retain(|a| a.kind != kind);
        req.subject.push(SubjectAttribute {
            kind: kind.clone(),
            value,
        });
        let denial = check_request(&req, spec).expect_err("must refuse");
        assert_eq!(denial.reason, DenyReason::InvalidRequest, "{kind}");
        assert!(
            denial.message.contains(needle),
            "{kind}: {}",
            denial.message
        );
    }
    let mut req = base.clone();
    req.subject.push(SubjectAttribute {
        kind: AttributeKind::Locality,
        value: "l".repeat(128),
    });
    assert!(
        check_request(&req, spec).is_ok(),
        "128 characters of L are fine"
    );
}

#[test]
fn controller_defaults_fill_unset_subject_fields() {
    let pem = Req::cn("billing")
        .with(Nid::ORGANIZATIONNAME, "Acme")
        .with(Nid::COUNTRYNAME, "DE")
        .pem(ec256());
    let parsed = parse_pem(&pem).expect("parses");
    let app = ApplicationRules::default(); // requires nothing itself
    let usages = client_usages();
    let req = check_request(
        &parsed,
        RequestSpec {
            usages: &usages,
            expiration_seconds: None,
        },
    )
    .expect("a well-formed request");
    let facts = Facts {
        application: Some(&app),
        requester_authorized: true,
        requester: "alice",
    };
    let mut defaults = Defaults::default();
    defaults.subject.organization = Some("Acme".into());
    defaults.subject.country = Some("DE".into());
    assert!(matches!(
        decide(&req, &facts, &defaults),
        Decision::Approve { .. }
    ));
    defaults.subject.country = Some("FR".into());
    match decide(&req, &facts, &defaults) {
        Decision::Deny(d) => assert!(d.message.contains("requires C=\"FR\""), "{}", d.message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lifetime_uses_application_then_controller_bounds() {
    let d = Duration::from_secs;
    let defaults = Defaults {
        default_lifetime: d(7200),
        max_lifetime: d(86400),
        ..Defaults::default()
    };
    let lifetime = super::signing::lifetime;
    assert_eq!(lifetime(None, None, &defaults), d(7200));
    assert_eq!(lifetime(Some(100_000), None, &defaults), d(86400));
    let app = ApplicationRules {
        default_lifetime: Some(d(1800)),
        max_lifetime: Some(d(3600)),
        ..Default::default()
    };
    assert_eq!(lifetime(None, Some(&app), &defaults), d(1800));
    assert_eq!(lifetime(Some(7200), Some(&app), &defaults), d(3600));
    assert_eq!(lifetime(Some(900), Some(&app), &defaults), d(900));
}

#[test]
fn reasons_are_distinct_strings() {
    let mut names: Vec<&str> = DenyReason::ALL.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DenyReason::ALL.len());
}

/// The signer's own check: a disabled Application stops signing with the approver's wording;
/// otherwise the lifetime comes from the request, the Application and the defaults.
#[test]
fn may_sign_refuses_disabled_applications_and_sets_the_lifetime() {
    let parsed = parse_pem(&acme("billing").pem(ec256())).expect("parses");
    let usages = client_usages();
    let req = check_request(
        &parsed,
        RequestSpec {
            usages: &usages,
            expiration_seconds: Some(1200),
        },
    )
    .expect("well-formed");
    let defaults = Defaults::default();
    let enabled = app();
    assert_eq!(
        may_sign(&req, Some(&enabled), &defaults),
        Ok(Signing {
            lifetime: Duration::from_secs(1200)
        })
    );
    assert_eq!(
        may_sign(&req, None, &defaults).map_err(|d| d.reason),
        Err(DenyReason::UnknownApplication),
        "approved by hand, but no Application: not signed"
    );
    let disabled = ApplicationRules {
        disabled: true,
        ..app()
    };
    let refused = may_sign(&req, Some(&disabled), &defaults).expect_err("disabled");
    let facts = Facts {
        application: Some(&disabled),
        requester_authorized: true,
        requester: "alice",
    };
    assert_eq!(
        decide(&req, &facts, &defaults),
        Decision::Deny(refused.clone()),
        "approver and signer say the same"
    );
    assert_eq!(
        refused.to_string(),
        "ApplicationDisabled: Application \"billing\" is disabled (spec.disabled: true)"
    );
}

/// An approval (by hand, or by a pipeline) does not widen the profile: at signing time the
/// subject and key must fit the Application, and `system:` names are never certified.
#[test]
fn signing_rechecks_the_profile_whoever_approved() {
    let usages = client_usages();
    let spec = RequestSpec {
        usages: &usages,
        expiration_seconds: None,
    };
    let defaults = Defaults::default();
    let rsa_only = ApplicationRules {
        keys: KeyRules {
            allowed: vec![KeyAlgorithm::Rsa],
            ..Default::default()
        },
        ..app()
    };
    let cases: Vec<(&str, Vec<u8>, ApplicationRules, DenyReason, &str)> = vec![
        (
            "wrong O",
            Req::cn("billing")
                .with(Nid::ORGANIZATIONNAME, "Evil")
                .pem(ec256()),
            app(),
            DenyReason::SubjectMismatch,
            "requires O=\"Acme\"",
        ),
        (
            "key the Application does not allow",
            acme("billing").pem(ec256()),
            rsa_only,
            DenyReason::UnsupportedKeyAlgorithm,
            "allows RSA",
        ),
    ];
    for (name, pem, application, reason, needle) in cases {
        let parsed = parse_pem(&pem).expect("parses");
        let req = check_request(&parsed, spec).expect("well-formed");
        let denial = may_sign(&req, Some(&application), &defaults).expect_err(name);
        assert_eq!(denial.reason, reason, "{name}: {denial}");
        assert!(denial.message.contains(needle), "{name}: {denial}");
    }

    for (nid, value) in [
        (Nid::ORGANIZATIONNAME, "system:masters"),
        (Nid::COMMONNAME, "system:admin"),
    ] {
        let mut request = Req::default().with(nid, value);
        if nid != Nid::COMMONNAME {
            request = request.with(Nid::COMMONNAME, "ghost");
        }
        let parsed = parse_pem(&request.pem(ec256())).expect("parses");
        let denial = check_request(&parsed, spec).expect_err(value);
        assert_eq!(denial.reason, DenyReason::SubjectMismatch, "{denial}");
        assert!(denial.message.contains("reserved"), "{denial}");
    }
}
