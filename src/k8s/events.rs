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
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::fence::Fence;
use tracing::warn;

/// Normal or Warning, as `kubectl describe` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

#[derive(Clone)]
pub struct Publisher {
    client: Client,
    instance: String,
    /// Events being written in the background ([`Publisher::report_soon`]).
    in_flight: Arc<Semaphore>,
    /// The leader's write fence, for a publisher of the leader's work: an Event queued
    /// before a freeze is not written after it.
    fence: Option<Fence>,
}

/// Events written in the background at once; a caller beyond that waits for one to finish,
/// so a burst never queues unbounded work.
const EVENTS_IN_FLIGHT: usize = 64;

/// The apiserver limits an Event's note to 1 KiB.
const MAX_NOTE_CHARS: usize = 1000;

impl Publisher {
    pub fn new(client: Client, instance: String) -> Self {
        Self {
            client,
            instance,
            in_flight: Arc::new(Semaphore::new(EVENTS_IN_FLIGHT)),
            fence: None,
        }
    }

    /// This publisher writes only while `fence` is open.
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
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
        if let Some(fence) = &self.fence {
            fence
                .check()
                .map_err(|e| kube::Error::Service(Box::new(e)))?;
        }
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

    /// [`Self::report`] in the background: the caller's next API call need not wait for the
    /// Event's round trip (the signer signs right after approving; a pairing client waits for
    /// the certificate). At most [`EVENTS_IN_FLIGHT`] are outstanding; beyond that this waits.
    pub async fn report_soon(
        &self,
        regarding: ObjectReference,
        kind: Kind,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        let this = self.clone();
        let (reason, action, note) = (reason.to_owned(), action.to_owned(), note.to_owned());
        tokio::spawn(async move {
            this.report(regarding, kind, &reason, &action, &note).await;
            drop(permit);
        });
    }
}
