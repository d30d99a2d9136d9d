//! The ValidatingWebhookConfiguration as certpair ships it, and what drifted from it.
//!
//! Where the apiserver must call the webhook (a Service in the cluster, or a URL for a
//! controller run outside) and for which signer are deployment facts, kept in ConfigMap
//! `certpair-webhook` (see `manifests/webhook.yaml`): the leader reads them to repair the
//! configuration, and the ValidatingAdmissionPolicy `certpair-webhook-configuration` takes
//! the same ConfigMap as its parameter, so that certpair's own ServiceAccount can write no
//! configuration but this one (with any caBundle). Everything else is fixed here and in that
//! policy's CEL, and the two must agree (`tests/webhook.rs` checks them against each other
//! through the apiserver).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::admissionregistration::v1::{
        MatchCondition, RuleWithOperations, ServiceReference, ValidatingWebhook,
        WebhookClientConfig,
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};

/// Name of the one webhook in the configuration.
pub const WEBHOOK_NAME: &str = "csr.certpair.dev";
/// Name of the ConfigMap that says where the webhook is served and for which signer.
pub const SHIPPED_CONFIGMAP: &str = "certpair-webhook";

/// The deployment facts of the shipped configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipped {
    /// Without caBundle: certpair injects that.
    pub client_config: WebhookClientConfig,
    pub signer_name: String,
}

impl Shipped {
    /// From the ConfigMap's data: `url`, or `service.name`, `service.namespace`, `service.path`
    /// and `service.port`; and `signerName`.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, String> {
        let get = |key: &str| {
            data.get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("ConfigMap {SHIPPED_CONFIGMAP} lacks {key}"))
        };
        let client_config = match data.get("url") {
            Some(url) => WebhookClientConfig {
                url: Some(url.clone()),
                ..Default::default()
            },
            None => WebhookClientConfig {
                service: Some(ServiceReference {
                    name: get("service.name")?,
                    namespace: get("service.namespace")?,
                    path: Some(get("service.path")?),
                    port: Some(get("service.port")?.parse().map_err(|_| {
                        format!("ConfigMap {SHIPPED_CONFIGMAP}: service.port is not a port")
                    })?),
                }),
                ..Default::default()
            },
        };
        Ok(Self {
            client_config,
            signer_name: get("signerName")?,
        })
    }

    /// The webhooks as shipped, with the values the apiserver would default spelled out, so
    /// that a configuration read back compares equal.
    pub fn webhooks(&self) -> Vec<ValidatingWebhook> {
        vec![ValidatingWebhook {
            name: WEBHOOK_NAME.into(),
            client_config: self.client_config.clone(),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["certificates.k8s.io".into()]),
                api_versions: Some(vec!["v1".into()]),
                operations: Some(vec!["CREATE".into()]),
                resources: Some(vec!["certificatesigningrequests".into()]),
                scope: Some("*".into()),
            }]),
            // Only certpair's signer: every other CSR never reaches the webhook.
            match_conditions: Some(vec![MatchCondition {
                name: "certpair-signer-only".into(),
                expression: format!("object.spec.signerName == '{}'", self.signer_name),
            }]),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            timeout_seconds: Some(5),
            admission_review_versions: vec!["v1".into()],
            match_policy: Some("Equivalent".into()),
            namespace_selector: Some(LabelSelector::default()),
            object_selector: Some(LabelSelector::default()),
        }]
    }
}

/// The fields of `observed` (caBundle aside) that differ from `shipped`, by name; empty when
/// the configuration is as shipped.
pub fn drift(observed: &[ValidatingWebhook], shipped: &[ValidatingWebhook]) -> Vec<&'static str> {
    if observed.len() != shipped.len()
        || observed.iter().zip(shipped).any(|(o, s)| o.name != s.name)
    {
        return vec!["webhooks"];
    }
    let mut fields = Vec::new();
    for (o, s) in observed.iter().zip(shipped) {
        let o = defaulted(o);
        let checks: [(&'static str, bool); 9] = [
            ("clientConfig", o.client_config == s.client_config),
            ("rules", o.rules == s.rules),
            ("matchConditions", o.match_conditions == s.match_conditions),
            ("failurePolicy", o.failure_policy == s.failure_policy),
            ("sideEffects", o.side_effects == s.side_effects),
            ("timeoutSeconds", o.timeout_seconds == s.timeout_seconds),
            (
                "admissionReviewVersions",
                o.admission_review_versions == s.admission_review_versions,
            ),
            ("matchPolicy", o.match_policy == s.match_policy),
            (
                "selectors",
                o.namespace_selector == s.namespace_selector
                    && o.object_selector == s.object_selector,
            ),
        ];
        for (field, same) in checks {
            if !same && !fields.contains(&field) {
                fields.push(field);
            }
        }
    }
    fields
}

/// `w` without its caBundle and with what the apiserver defaults filled in.
fn defaulted(w: &ValidatingWebhook) -> ValidatingWebhook {
    let mut w = w.clone();
    w.client_config.ca_bundle = None;
    if let Some(service) = w.client_config.service.as_mut() {
        service.port.get_or_insert(443);
    }
    for rule in w.rules.iter_mut().flatten() {
        rule.scope.get_or_insert_with(|| "*".into());
    }
    w.failure_policy.get_or_insert_with(|| "Fail".into());
    w.timeout_seconds.get_or_insert(10);
    w.match_policy.get_or_insert_with(|| "Equivalent".into());
    w.namespace_selector
        .get_or_insert_with(LabelSelector::default);
    w.object_selector.get_or_insert_with(LabelSelector::default);
    if w.match_conditions.as_ref().is_some_and(Vec::is_empty) {
        w.match_conditions = None;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> BTreeMap<String, String> {
        [
            ("service.name", "certpair-webhook"),
            ("service.namespace", "certpair-system"),
            ("service.path", "/validate/certificatesigningrequests"),
            ("service.port", "443"),
            ("signerName", "certpair.dev/application"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn shipped_from_the_configmap() {
        let shipped = Shipped::from_data(&service()).expect("service");
        let port = shipped.client_config.service.as_ref().and_then(|s| s.port);
        assert_eq!(port, Some(443));
        let mut url = BTreeMap::from([
            ("url".to_string(), "https://127.0.0.1:8443/x".to_string()),
            ("signerName".to_string(), "s".to_string()),
        ]);
        let shipped = Shipped::from_data(&url).expect("url");
        assert_eq!(
            shipped.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/x")
        );
        url.remove("signerName");
        assert!(
            Shipped::from_data(&url)
                .expect_err("no signer")
                .contains("signerName")
        );
        let mut bad = service();
        bad.insert("service.port".into(), "https".into());
        assert!(Shipped::from_data(&bad).is_err());
    }

    /// Every field that can drift is named; caBundle and server defaults are not drift.
    #[test]
    fn drift_names_each_field() {
        let shipped = Shipped::from_data(&service()).expect("shipped").webhooks();
        let as_shipped = |edit: fn(&mut ValidatingWebhook)| {
            let mut w = shipped.clone();
            edit(&mut w[0]);
            drift(&w, &shipped)
        };
        assert!(as_shipped(|_| {}).is_empty());
        assert!(
            as_shipped(|w| {
                w.client_config.ca_bundle = Some(k8s_openapi::ByteString(b"pem".to_vec()));
                w.rules.iter_mut().flatten().for_each(|r| r.scope = None);
                w.match_policy = None;
            })
            .is_empty(),
            "caBundle and defaults"
        );
        type Edit = fn(&mut ValidatingWebhook);
        let cases: [(&str, Edit); 9] = [
            ("clientConfig", |w| {
                w.client_config = WebhookClientConfig {
                    url: Some("https://evil.example/".into()),
                    ..Default::default()
                }
            }),
            ("rules", |w| {
                w.rules.get_or_insert_default().push(RuleWithOperations {
                    api_groups: Some(vec!["".into()]),
                    api_versions: Some(vec!["v1".into()]),
                    operations: Some(vec!["CREATE".into()]),
                    resources: Some(vec!["secrets".into()]),
                    scope: Some("*".into()),
                })
            }),
            ("matchConditions", |w| w.match_conditions = None),
            ("failurePolicy", |w| {
                w.failure_policy = Some("Ignore".into())
            }),
            ("sideEffects", |w| w.side_effects = "Some".into()),
            ("timeoutSeconds", |w| w.timeout_seconds = Some(30)),
            ("admissionReviewVersions", |w| {
                w.admission_review_versions = vec!["v1beta1".into()]
            }),
            ("matchPolicy", |w| w.match_policy = Some("Exact".into())),
            ("selectors", |w| {
                w.namespace_selector = Some(LabelSelector {
                    match_labels: Some([("a".into(), "b".into())].into()),
                    ..Default::default()
                })
            }),
        ];
        for (field, edit) in cases {
            assert_eq!(as_shipped(edit), [field]);
        }
        assert_eq!(drift(&[], &shipped), ["webhooks"]);
        let mut two = shipped.clone();
        two.push(shipped[0].clone());
        assert_eq!(drift(&two, &shipped), ["webhooks"]);
    }
}
