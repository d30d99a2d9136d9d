//! Events, created directly through `events.k8s.io/v1`.
//!
//! kube's `Recorder` keeps every published Event in memory for six minutes (to aggregate
//! repeats into a series) and scans that cache on each publish. certpair reports each decision
//! once per CSR, so there is nothing to aggregate, and during a burst of thousands of CSRs that
//! cache dominated the controller's memory and CPU. This publisher keeps nothing.

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tracing::warn;

/// Normal or Warning, as `kubectl describe` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

pub struct Publisher {
    client: Client,
    instance: String,
}

/// The apiserver limits an Event's note to 1 KiB.
const MAX_NOTE_CHARS: usize = 1000;

impl Publisher {
    pub fn new(client: Client, instance: String) -> Self {
        Self { client, instance }
    }

    pub async fn publish(
        &self,
        regarding: ObjectReference,
        kind: Kind,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        // Events about cluster-scoped objects (CSRs) live in `default`.
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        // `<object>.<nanoseconds in hex>`, like kubectl and kube's Recorder: unique enough, and
        // a valid name (a generateName ending in '.' is not). Object names may use all 253
        // characters, so leave room for the suffix.
        let now = Timestamp::now();
        let object: String = regarding
            .name
            .as_deref()
            .unwrap_or("certpair")
            .chars()
            .take(230)
            .collect();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(match kind {
                Kind::Normal => "Normal".into(),
                Kind::Warning => "Warning".into(),
            }),
            reason: Some(reason.into()),
            action: Some(action.into()),
            note: Some(note.chars().take(MAX_NOTE_CHARS).collect()),
            regarding: Some(regarding),
            reporting_controller: Some("certpair".into()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        Ok(())
    }

    /// [`Self::publish`] for callers whose work must not fail because reporting did: a failure
    /// is logged and dropped.
    pub async fn report(
        &self,
        regarding: ObjectReference,
        kind: Kind,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        if let Err(e) = self.publish(regarding, kind, reason, action, note).await {
            warn!(error = %e, "publishing an Event failed");
        }
    }
}
