#![no_main]
//! Any bytes as the body of an AdmissionReview, through what the webhook's handler runs once
//! the body is read: JSON into a review, `answer`, and the answer back to JSON. Nothing here
//! may panic; a bad body is a 400, never a crash.

use std::sync::{Arc, LazyLock};

use certpair::{
    limits::BodyBudget,
    policy::{ApplicationRules, Defaults, SubjectRules},
    webhook::{WebhookState, review::answer},
};
use kube::core::{DynamicObject, admission::AdmissionReview};
use libfuzzer_sys::fuzz_target;

static STATE: LazyLock<WebhookState> = LazyLock::new(|| WebhookState {
    signer_name: certpair::api::DEFAULT_SIGNER_NAME.into(),
    defaults: Defaults::default(),
    // One Application that exists (so a fitting request gets no warning) and one disabled.
    applications: Arc::new(|name: &str| match name {
        "billing" => Some(ApplicationRules {
            subject: SubjectRules {
                organization: Some("Acme".into()),
                ..Default::default()
            },
            ..Default::default()
        }),
        "retired" => Some(ApplicationRules {
            disabled: true,
            ..Default::default()
        }),
        _ => None,
    }),
    draining: Arc::default(),
    budget: BodyBudget::default(),
});

fuzz_target!(|data: &[u8]| {
    let Ok(review) = serde_json::from_slice::<AdmissionReview<DynamicObject>>(data) else {
        return;
    };
    if let Ok(response) = answer(&STATE, review) {
        serde_json::to_vec(&response.into_review()).unwrap();
    }
});
