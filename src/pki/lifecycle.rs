//! Pure plans for the CAs and serving certificates certpair keeps for itself: given what was
//! found (already read and parsed by the caller), what must be replaced and why. The I/O
//! shells (`managed_tls`, `controller::signing_ca`) observe, call these, and apply.

use std::time::Duration;

use super::{
    authority::Authority,
    identity::ServingIdentity,
    profile::serving::{Misfit, ServingSpec, expires_within, misfit},
};

/// What was found where a CA or a certificate is kept.
#[derive(Debug, Clone, Copy)]
pub enum Found<T> {
    /// Nothing there.
    Missing,
    /// Something there that cannot be used (unparsable, incomplete, key does not match).
    Unusable,
    Usable(T),
}

/// Why a managed CA or serving certificate is replaced, or the bundle re-injected: log field,
/// metric label and Event note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    CaMissing,
    CaUnusable,
    CaExpiring,
    ServingMissing,
    ServingUnusable,
    ServingForeignCa,
    ServingWrongNames,
    ServingExpiring,
    BundleInjected,
}

impl Repair {
    pub const ALL: [Repair; 9] = [
        Self::CaMissing,
        Self::CaUnusable,
        Self::CaExpiring,
        Self::ServingMissing,
        Self::ServingUnusable,
        Self::ServingForeignCa,
        Self::ServingWrongNames,
        Self::ServingExpiring,
        Self::BundleInjected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaMissing => "ca_missing",
            Self::CaUnusable => "ca_unusable",
            Self::CaExpiring => "ca_expiring",
            Self::ServingMissing => "serving_missing",
            Self::ServingUnusable => "serving_unusable",
            Self::ServingForeignCa => "serving_foreign_ca",
            Self::ServingWrongNames => "serving_wrong_names",
            Self::ServingExpiring => "serving_expiring",
            Self::BundleInjected => "bundle_injected",
        }
    }

    pub fn replaces_ca(self) -> bool {
        matches!(self, Self::CaMissing | Self::CaUnusable | Self::CaExpiring)
    }
}

/// Whether a managed CA must be replaced, and why: missing, unusable, or expiring within the
/// look-ahead. The caller replaces it, injects the bundle, and then plans the serving
/// certificate against the CA now in force ([`plan_serving`]), so clients already trust
/// whatever the listeners load next.
pub fn plan_ca(ca: Found<&Authority>, look_ahead: Duration, now: i64) -> Option<Repair> {
    match ca {
        Found::Missing => Some(Repair::CaMissing),
        Found::Unusable => Some(Repair::CaUnusable),
        Found::Usable(ca) if expires_within(ca.window().not_after, look_ahead, now) => {
            Some(Repair::CaExpiring)
        }
        Found::Usable(_) => None,
    }
}

/// Whether the serving certificate must be replaced, and why, given the CA in force. (After a
/// CA was replaced, any certificate found is from another CA: a new key signed nothing yet.)
pub fn plan_serving(
    serving: Found<&ServingIdentity>,
    ca: &Authority,
    spec: &ServingSpec<'_>,
    now: i64,
) -> Option<Repair> {
    match serving {
        Found::Missing => Some(Repair::ServingMissing),
        Found::Unusable => Some(Repair::ServingUnusable),
        Found::Usable(identity) => misfit(identity, ca.certificate(), spec, now).map(|m| match m {
            Misfit::ForeignCa => Repair::ServingForeignCa,
            Misfit::WrongNames => Repair::ServingWrongNames,
            Misfit::Expiring => Repair::ServingExpiring,
        }),
    }
}

/// What is known of the published trust bundle when the signing CA is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleSeen {
    Absent,
    Present,
    /// Not read, or reading it failed.
    Unknown,
}

/// What to do when the signing CA is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingCaPlan {
    /// First install: generate one.
    Generate,
    /// Certificates were issued by a CA that is gone: never replace it silently (every one of
    /// them would stop verifying, and an operator deleting the Secret to rotate it must not
    /// lose a race against certpair).
    RefuseBundleExists,
    /// Cannot tell whether certificates were issued: do not guess.
    RefuseBundleUnknown,
    /// `--generate-ca=false`: the operator brings the CA.
    RefuseGenerationOff,
}

/// The plan for a missing signing CA: generated only when allowed and only on first install.
pub fn plan_missing_signing_ca(generate: bool, bundle: BundleSeen) -> MissingCaPlan {
    match (generate, bundle) {
        (false, _) => MissingCaPlan::RefuseGenerationOff,
        (true, BundleSeen::Absent) => MissingCaPlan::Generate,
        (true, BundleSeen::Present) => MissingCaPlan::RefuseBundleExists,
        (true, BundleSeen::Unknown) => MissingCaPlan::RefuseBundleUnknown,
    }
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, time::Duration};

    use super::*;
    use crate::pki::testing::serving_identity;

    const NOW: i64 = 1_900_000_000;
    const DAY: u64 = 86_400;

    fn ca(name: &str, validity: u64) -> Authority {
        Authority::generate(name, Duration::from_secs(validity), NOW).expect("CA")
    }

    fn serving(ca: &Authority, dns: &[String], ips: &[IpAddr], secs: u64) -> ServingIdentity {
        serving_identity(ca, dns, ips, secs, NOW)
    }

    /// Both plans as `managed_tls` runs them: the CA first, then the serving certificate
    /// against the CA in force (a new one when the CA was replaced).
    fn plan(
        ca: Found<&Authority>,
        serving: Found<&ServingIdentity>,
        spec: &ServingSpec<'_>,
    ) -> (Option<Repair>, Option<Repair>) {
        let new_ca = plan_ca(ca, spec.look_ahead, NOW);
        let replacement =
            Authority::generate("new", Duration::from_secs(30 * DAY), NOW).expect("CA");
        let in_force = match (new_ca, ca) {
            (None, Found::Usable(ca)) => ca,
            _ => &replacement,
        };
        (new_ca, plan_serving(serving, in_force, spec, NOW))
    }

    /// Every repair cause, and the quiet case, from one table.
    #[test]
    fn serving_plan_covers_every_cause() {
        use Found::*;
        use Repair::*;
        let dns = vec!["certpair-webhook.certpair-system.svc".to_string()];
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("ip")];
        let spec = ServingSpec {
            dns_names: &dns,
            ips: &ips,
            look_ahead: Duration::from_secs(DAY),
        };
        let current = ca("current", 30 * DAY);
        let expiring = ca("expiring", DAY / 2);
        let foreign = ca("foreign", 30 * DAY);
        let good = serving(&current, &dns, &ips, 10 * DAY);
        let from_foreign = serving(&foreign, &dns, &ips, 10 * DAY);
        let other_names = serving(&current, &["elsewhere".to_string()], &ips, 10 * DAY);
        let short = serving(&current, &dns, &ips, DAY / 2);
        let from_expiring = serving(&expiring, &dns, &ips, DAY / 4);

        type Want = (Option<Repair>, Option<Repair>);
        let cases: Vec<(&str, Found<&Authority>, Found<&ServingIdentity>, Want)> = vec![
            ("all good", Usable(&current), Usable(&good), (None, None)),
            (
                "from nothing",
                Missing,
                Missing,
                (Some(CaMissing), Some(ServingMissing)),
            ),
            (
                "CA deleted, serving kept",
                Missing,
                Usable(&good),
                (Some(CaMissing), Some(ServingForeignCa)),
            ),
            (
                "CA unusable",
                Unusable,
                Usable(&good),
                (Some(CaUnusable), Some(ServingForeignCa)),
            ),
            (
                "CA expiring",
                Usable(&expiring),
                Usable(&from_expiring),
                (Some(CaExpiring), Some(ServingForeignCa)),
            ),
            (
                "CA unusable, serving missing",
                Unusable,
                Missing,
                (Some(CaUnusable), Some(ServingMissing)),
            ),
            (
                "serving deleted",
                Usable(&current),
                Missing,
                (None, Some(ServingMissing)),
            ),
            (
                "serving unusable",
                Usable(&current),
                Unusable,
                (None, Some(ServingUnusable)),
            ),
            (
                "serving from a foreign CA",
                Usable(&current),
                Usable(&from_foreign),
                (None, Some(ServingForeignCa)),
            ),
            (
                "serving with other names",
                Usable(&current),
                Usable(&other_names),
                (None, Some(ServingWrongNames)),
            ),
            (
                "serving expiring",
                Usable(&current),
                Usable(&short),
                (None, Some(ServingExpiring)),
            ),
        ];
        for (name, ca, serving, want) in cases {
            assert_eq!(plan(ca, serving, &spec), want, "{name}");
        }
    }

    /// "CA Secret gone but bundle exists → never regenerate", and `--generate-ca=false`.
    #[test]
    fn a_missing_signing_ca_is_generated_only_on_first_install() {
        use BundleSeen::*;
        use MissingCaPlan::*;
        let cases = [
            (true, Absent, Generate),
            (true, Present, RefuseBundleExists),
            (true, Unknown, RefuseBundleUnknown),
            (false, Absent, RefuseGenerationOff),
            (false, Present, RefuseGenerationOff),
            (false, Unknown, RefuseGenerationOff),
        ];
        for (generate, bundle, want) in cases {
            assert_eq!(
                plan_missing_signing_ca(generate, bundle),
                want,
                "generate={generate}, bundle {bundle:?}"
            );
        }
    }

    #[test]
    fn repair_labels_are_distinct() {
        let all = Repair::ALL;
        let mut labels: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
        assert_eq!(
            all.iter().filter(|r| r.replaces_ca()).count(),
            3,
            "ca_* causes"
        );
    }
}
