//! Pairing through the connector: what it announces to a client (the subject to request, the
//! key algorithm), and the two checks it makes with the same rules as the approver: a request
//! redeemed with a token must fit that token's Application, and a client certificate presented
//! over mTLS must still be one certpair would issue to its Application.

use super::{
    ApplicationRules, CheckedRequest, Decision, Defaults, Denial, DenyReason, Facts, KeyAlgorithm,
    KeyRules, decide,
};
use crate::pki::csr::{AttributeKind, KeyInfo, SubjectAttribute};

/// Kyma's words for a CSR whose CN is not the token's Application; clients match on them.
pub const INVALID_COMMON_NAME: &str = "CSR: Invalid common name provided.";

/// The subject a certificate for `application` carries: each required attribute (the
/// Application's, else the controller default), in Kyma's order O, OU, L, ST, C, then CN.
pub fn announced_subject(
    application: &str,
    app: &ApplicationRules,
    defaults: &Defaults,
) -> Vec<SubjectAttribute> {
    let mut out: Vec<SubjectAttribute> = app
        .subject
        .required(&defaults.subject)
        .into_iter()
        .filter_map(|(kind, value)| {
            value.map(|value| SubjectAttribute {
                kind,
                value: value.to_owned(),
            })
        })
        .collect();
    out.push(SubjectAttribute {
        kind: AttributeKind::CommonName,
        value: application.to_owned(),
    });
    out
}

/// Kyma's subject string: `O=Acme,OU=..,L=..,ST=..,C=DE,CN=billing`.
pub fn subject_string(subject: &[SubjectAttribute]) -> String {
    subject
        .iter()
        .map(|a| format!("{}={}", a.kind, a.value))
        .collect::<Vec<_>>()
        .join(",")
}

/// Kyma's `key-algorithm`: RSA of the smallest usual size at or above the Application's
/// minimum when RSA is allowed (what Kyma's clients generate), else the ECDSA curve allowed.
pub fn key_algorithm(keys: &KeyRules) -> &'static str {
    if keys.allowed.contains(&KeyAlgorithm::Rsa) {
        return match keys.min_rsa_bits {
            0..=2048 => "rsa2048",
            2049..=3072 => "rsa3072",
            3073..=4096 => "rsa4096",
            _ => "rsa8192",
        };
    }
    if keys.allowed.contains(&KeyAlgorithm::EcdsaP256) {
        "ecdsa-p256"
    } else {
        "ecdsa-p384"
    }
}

/// Why a request redeemed with a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingRefusal {
    /// The CN names another Application than the token's (Kyma answers 403 for this).
    OtherApplication(String),
    /// What the approver would deny it for.
    Denied(Denial),
}

/// The usages a pairing certificate is issued with (on its CSR): client authentication, and
/// key encipherment for an RSA key as RFC 5280 expects of a TLS client key.
pub fn usages(key: &KeyInfo) -> Vec<String> {
    let mut u = vec!["digital signature".to_owned()];
    if matches!(key, KeyInfo::Rsa { .. }) {
        u.push("key encipherment".into());
    }
    u.push("client auth".into());
    u
}

/// A request redeemed with a token for `application`: its CN must name that Application, and
/// it must be one the approver would approve (the Application exists, is enabled, the subject
/// and key fit). The connector is the requester and may request every Application; whether it
/// really may is the approver's SubjectAccessReview to find.
pub fn check_pairing(
    req: &CheckedRequest<'_>,
    application: &str,
    app: Option<&ApplicationRules>,
    defaults: &Defaults,
) -> Result<(), PairingRefusal> {
    if req.cn != application {
        return Err(PairingRefusal::OtherApplication(format!(
            "{INVALID_COMMON_NAME} The subject's CN is {:?}; this token pairs Application {application:?}",
            req.cn
        )));
    }
    let facts = Facts {
        application: app,
        requester_authorized: true,
        requester: "",
    };
    match decide(
        req,
        &facts,
        &Defaults {
            // A connector request names an Application by its token: never leave it pending.
            unmatched: super::Unmatched::Deny,
            ..defaults.clone()
        },
    ) {
        Decision::Approve { .. } => Ok(()),
        Decision::Deny(d) => Err(PairingRefusal::Denied(d)),
        Decision::Pending { message } => Err(PairingRefusal::Denied(Denial::new(
            DenyReason::UnknownApplication,
            message,
        ))),
    }
}

/// A client certificate presented over mTLS: its subject has exactly one CN, which names an
/// existing, enabled Application, and every other attribute is what that Application requires
/// now. Returns the Application's name.
pub fn check_identity<'s>(
    subject: &'s [SubjectAttribute],
    lookup: impl FnOnce(&str) -> Option<ApplicationRules>,
    defaults: &Defaults,
) -> Result<(&'s str, ApplicationRules), Denial> {
    let cns: Vec<&str> = subject
        .iter()
        .filter(|a| a.kind == AttributeKind::CommonName)
        .map(|a| a.value.as_str())
        .collect();
    let [cn] = cns.as_slice() else {
        return Err(Denial::new(
            DenyReason::SubjectMismatch,
            format!(
                "client certificate: {} CNs in its subject; exactly one (the Application) is required",
                cns.len()
            ),
        ));
    };
    let Some(app) = lookup(cn) else {
        return Err(Denial::new(
            DenyReason::UnknownApplication,
            format!("client certificate: Application {cn:?} does not exist (any more)"),
        ));
    };
    if app.disabled {
        return Err(Denial::disabled(cn));
    }
    let mut want = announced_subject(cn, &app, defaults);
    let mut have = subject.to_vec();
    want.sort_by(|a, b| a.kind.cmp(&b.kind));
    have.sort_by(|a, b| a.kind.cmp(&b.kind));
    if want != have {
        return Err(Denial::new(
            DenyReason::SubjectMismatch,
            format!(
                "client certificate: subject {}; Application {cn:?} now requires {}",
                subject_string(subject),
                subject_string(&announced_subject(cn, &app, defaults))
            ),
        ));
    }
    Ok((cn, app))
}

/// Renewal keeps the identity: the new request's subject is the presented certificate's,
/// attribute by attribute.
pub fn check_same_subject(
    req: &CheckedRequest<'_>,
    current: &[SubjectAttribute],
) -> Result<(), Denial> {
    let mut want = current.to_vec();
    let mut have = req.parsed.subject.clone();
    want.sort_by(|a, b| a.kind.cmp(&b.kind));
    have.sort_by(|a, b| a.kind.cmp(&b.kind));
    if want == have {
        return Ok(());
    }
    Err(Denial::new(
        DenyReason::SubjectMismatch,
        format!(
            "CSR: the subject {} differs from the current certificate's {}; a renewal keeps the subject",
            subject_string(&req.parsed.subject),
            subject_string(current)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use openssl::nid::Nid;

    use super::*;
    use crate::{
        pki::{
            csr::parse_pem,
            testing::{Req, p256},
        },
        policy::{KeyAlgorithm, RequestSpec, SubjectRules, check_request},
    };

    fn app() -> ApplicationRules {
        ApplicationRules {
            subject: SubjectRules {
                organization: Some("Acme".into()),
                organizational_unit: Some("Payments".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn defaults() -> Defaults {
        Defaults {
            subject: SubjectRules {
                country: Some("DE".into()),
                organization: Some("Ignored".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn announced_subject_is_in_kymas_order_with_defaults_filling_gaps() {
        let subject = announced_subject("billing", &app(), &defaults());
        assert_eq!(
            subject_string(&subject),
            "O=Acme,OU=Payments,C=DE,CN=billing"
        );
    }

    #[test]
    fn key_algorithm_follows_the_application() {
        let rules = |allowed: &[KeyAlgorithm], min| KeyRules {
            allowed: allowed.to_vec(),
            min_rsa_bits: min,
        };
        assert_eq!(key_algorithm(&KeyRules::default()), "rsa2048");
        assert_eq!(key_algorithm(&rules(&[KeyAlgorithm::Rsa], 3000)), "rsa3072");
        assert_eq!(key_algorithm(&rules(&[KeyAlgorithm::Rsa], 4096)), "rsa4096");
        assert_eq!(
            key_algorithm(&rules(
                &[KeyAlgorithm::EcdsaP384, KeyAlgorithm::EcdsaP256],
                2048
            )),
            "ecdsa-p256"
        );
        assert_eq!(
            key_algorithm(&rules(&[KeyAlgorithm::EcdsaP384], 2048)),
            "ecdsa-p384"
        );
    }

    fn check(req: Req, application: &str) -> Result<(), PairingRefusal> {
        let parsed = parse_pem(&req.pem(&p256())).expect("parses");
        let usages = vec!["digital signature".to_owned(), "client auth".to_owned()];
        let checked = check_request(
            &parsed,
            RequestSpec {
                usages: &usages,
                expiration_seconds: None,
            },
        )
        .expect("a well-formed request");
        check_pairing(&checked, application, Some(&app()), &defaults())
    }

    #[test]
    fn a_token_pairs_only_its_application_and_only_what_fits_it() {
        let fits = Req::cn("billing")
            .with(Nid::ORGANIZATIONNAME, "Acme")
            .with(Nid::ORGANIZATIONALUNITNAME, "Payments")
            .with(Nid::COUNTRYNAME, "DE");
        assert_eq!(check(fits.clone(), "billing"), Ok(()));
        match check(fits, "shipping") {
            Err(PairingRefusal::OtherApplication(m)) => {
                assert!(m.starts_with(INVALID_COMMON_NAME), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let wrong_o = Req::cn("billing")
            .with(Nid::ORGANIZATIONNAME, "Evil")
            .with(Nid::ORGANIZATIONALUNITNAME, "Payments")
            .with(Nid::COUNTRYNAME, "DE");
        match check(wrong_o, "billing") {
            Err(PairingRefusal::Denied(d)) => assert_eq!(d.reason, DenyReason::SubjectMismatch),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_client_certificate_identifies_only_a_current_enabled_application() {
        let subject = announced_subject("billing", &app(), &defaults());
        let lookup = |name: &str| (name == "billing").then(app);
        let (name, _) = check_identity(&subject, lookup, &defaults()).expect("identified");
        assert_eq!(name, "billing");

        let other = announced_subject("gone", &app(), &defaults());
        let err = check_identity(&other, lookup, &defaults()).expect_err("no Application");
        assert_eq!(err.reason, DenyReason::UnknownApplication);

        let disabled = |_: &str| {
            Some(ApplicationRules {
                disabled: true,
                ..app()
            })
        };
        let err = check_identity(&subject, disabled, &defaults()).expect_err("disabled");
        assert_eq!(err.reason, DenyReason::ApplicationDisabled);

        // The Application now requires another O: the old certificate no longer identifies.
        let changed = |_: &str| {
            let mut a = app();
            a.subject.organization = Some("NewCo".into());
            Some(a)
        };
        let err = check_identity(&subject, changed, &defaults()).expect_err("changed");
        assert_eq!(err.reason, DenyReason::SubjectMismatch);
        assert!(err.message.contains("O=NewCo"), "{}", err.message);
    }
}
