//! Kubernetes plumbing every part of certpair shares: writes under certpair's field manager,
//! watching one object by name, certpair's labels, Secrets' values, and Events.

pub mod events;
pub mod fence;

use std::{collections::BTreeMap, fmt::Debug};

use futures::{Stream, StreamExt};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Resource,
    api::{ObjectMeta, PatchParams, PostParams},
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;

use crate::api::{FIELD_MANAGER, NAME_LABEL};

/// Parameters for a create or replace (PUT) by certpair: its one field manager.
pub fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Parameters for a server-side apply by certpair (its one field manager).
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER)
}

/// Metadata for an object certpair creates, labelled as certpair's.
pub fn owned_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(BTreeMap::from([(
            NAME_LABEL.0.to_owned(),
            NAME_LABEL.1.to_owned(),
        )])),
        ..Default::default()
    }
}

/// Watch events of the one object `name` in `api`, retried with kube's default backoff.
pub fn watch_named<K>(
    api: Api<K>,
    name: &str,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(
        api,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
}

/// A cache of the objects `config` selects in `api`, each passed through `slim` before it is
/// stored, and the task that keeps it (run it for as long as the cache is read). `synced` runs
/// once, when the cache holds its first full list.
pub fn cache<K>(
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
    synced: impl FnOnce() + Send + 'static,
) -> (Store<K>, impl std::future::Future<Output = ()> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let reader = store.clone();
    let kind = K::kind(&()).into_owned();
    let task = async move {
        let ready = reader.clone();
        // The one waiter on this store (kube's Store keeps a single waker).
        tokio::spawn(async move {
            if ready.wait_until_ready().await.is_ok() {
                synced();
            }
        });
        watcher(api, config)
            .default_backoff()
            .modify(slim)
            .reflect(writer)
            .for_each(|event| {
                if let Err(e) = event {
                    tracing::warn!(%kind, error = %e, "watching failed; retrying");
                }
                futures::future::ready(())
            })
            .await;
    };
    (store, task)
}

/// One value of a Secret's `data`.
pub fn secret_value<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret.data.as_ref()?.get(key).map(|v| v.0.as_slice())
}

/// Writes `data` into Secret `name`: replaces `existing` with the resourceVersion read with it
/// (a concurrent writer makes this conflict instead of being overwritten; the next pass sees
/// their version), or creates it labelled as certpair's.
pub async fn put_secret(
    secrets: &Api<Secret>,
    name: &str,
    existing: Option<Secret>,
    type_: Option<&str>,
    data: BTreeMap<String, ByteString>,
) -> Result<(), kube::Error> {
    match existing {
        Some(mut secret) => {
            secret.data = Some(data);
            secret.string_data = None;
            secrets.replace(name, &post_params(), &secret).await?;
        }
        None => {
            let secret = Secret {
                metadata: owned_meta(name),
                type_: type_.map(str::to_owned),
                data: Some(data),
                ..Default::default()
            };
            secrets.create(&post_params(), &secret).await?;
        }
    }
    Ok(())
}
