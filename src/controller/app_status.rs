//! Application status: issued count and the last issued serial and expiry. Issuances are
//! coalesced per Application for a second, so a burst of N certificates costs about one status
//! write per Application per second instead of N.

use std::{collections::HashMap, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client,
    api::Patch,
    runtime::reflector::{ObjectRef, Store},
};
use tokio::sync::mpsc;
use tracing::warn;

use crate::{api::Application, k8s::apply_params};

/// One certificate issued for an Application.
#[derive(Debug, Clone)]
pub struct IssuedNote {
    pub application: String,
    pub serial_hex: String,
    pub not_after: i64,
}

#[derive(Default)]
struct Pending {
    count: i64,
    last: Option<IssuedNote>,
}

/// Drains `rx` until every sender is gone, writing coalesced status patches.
pub async fn run(
    client: Client,
    apps: Store<Application>,
    mut rx: mpsc::UnboundedReceiver<IssuedNote>,
) {
    let api: Api<Application> = Api::all(client);
    // What we last wrote per Application: the cache may lag our own writes by a moment.
    let mut written: HashMap<String, i64> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: HashMap<String, Pending> = HashMap::new();
    loop {
        tokio::select! {
            note = rx.recv() => match note {
                Some(note) => {
                    let p = pending.entry(note.application.clone()).or_default();
                    p.count += 1;
                    p.last = Some(note);
                }
                None => {
                    flush(&api, &apps, &mut written, &mut pending).await;
                    return;
                }
            },
            _ = ticker.tick() => flush(&api, &apps, &mut written, &mut pending).await,
        }
    }
}

async fn flush(
    api: &Api<Application>,
    apps: &Store<Application>,
    written: &mut HashMap<String, i64>,
    pending: &mut HashMap<String, Pending>,
) {
    for (name, p) in pending.drain() {
        let Some(app) = apps.get(&ObjectRef::new(&name)) else {
            continue; // deleted meanwhile
        };
        let cached = app
            .status
            .as_ref()
            .and_then(|s| s.issued_count)
            .unwrap_or(0);
        let base = cached.max(written.get(&name).copied().unwrap_or(0));
        let count = base + p.count;
        let mut status = serde_json::json!({
            "issuedCount": count,
            "observedGeneration": app.metadata.generation,
        });
        if let Some(last) = &p.last {
            status["lastIssuedSerial"] = last.serial_hex.clone().into();
            if let Ok(t) = Timestamp::from_second(last.not_after) {
                status["lastIssuedNotAfter"] = serde_json::to_value(Time(t)).unwrap_or_default();
            }
        }
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_status(&name, &apply_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                written.insert(name, count);
            }
            Err(e) => warn!(application = %name, error = %e, "updating Application status failed"),
        }
    }
}
