//! TokenRequests, on the leader: issues each new request's first token (with the URL to
//! start pairing at and the pin of the connector's CA), expires tokens nobody used in time
//! (clearing them), and deletes ended requests after the retention period. The connector
//! redeems tokens; it never issues the first one.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde_json::json;
use tracing::{info, instrument, warn};

use k8s_openapi::api::core::v1::ConfigMap;
use openssl::x509::X509;

use crate::{
    api::{
        Application, CA_CERT_KEY, CONNECTOR_CA_CONFIGMAP, FIELD_MANAGER, TokenRequest, TokenState,
    },
    k8s::watch_named,
    pki::spki_pin,
    slot::Slot,
    token,
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// The connector's external URL; a token's URL is its `signingRequests/info`.
    pub connector_url: String,
    /// How long an ended TokenRequest is kept.
    pub retention: Duration,
}

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub apps: Store<Application>,
    /// `sha256:<hex>` of the connector's serving CA, when it is published.
    pub pin: Arc<Slot<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Token(#[from] token::TokenError),
}

/// Keeps `pin` at the pin of the first CA in ConfigMap `certpair-connector-ca` (`ca.crt`).
pub async fn watch_pin(client: Client, namespace: String, pin: Arc<Slot<String>>) {
    let maps: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let mut events = watch_named(maps, CONNECTOR_CA_CONFIGMAP).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(map) | watcher::Event::InitApply(map)) => {
                let first = map
                    .data
                    .as_ref()
                    .and_then(|d| d.get(CA_CERT_KEY))
                    .and_then(|pem| X509::from_pem(pem.as_bytes()).ok())
                    .and_then(|ca| spki_pin(&ca).ok());
                match first {
                    Some(p) => pin.set(p),
                    None => pin.clear(),
                }
            }
            Ok(watcher::Event::Delete(_)) => pin.clear(),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "watching the connector CA ConfigMap failed; retrying"),
        }
    }
}

/// Runs until dropped.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<TokenRequest> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[instrument(skip_all, fields(token_request = %tr.name_any(), namespace = %tr.namespace().unwrap_or_default()))]
async fn reconcile(tr: Arc<TokenRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<TokenRequest> =
        Api::namespaced(ctx.client.clone(), &tr.namespace().unwrap_or_default());
    let name = tr.name_any();
    let now = Timestamp::now();
    let status = tr.status.clone().unwrap_or_default();
    let application = &tr.spec.application;
    let write = |status: serde_json::Value| {
        let patch = json!({
            "metadata": { "resourceVersion": tr.resource_version() },
            "status": status,
        });
        let api = api.clone();
        let name = name.clone();
        async move {
            api.patch_status(&name, &patch_params(), &Patch::Merge(&patch))
                .await
        }
    };
    match status.state {
        None => {
            if ctx.apps.get(&ObjectRef::new(application)).is_none() {
                write(json!({
                    "state": TokenState::Error.as_str(),
                    "message": format!("Application {application:?} does not exist; create it, then a new TokenRequest"),
                    "endedAt": Time(now),
                }))
                .await?;
                info!(%application, "no such Application; TokenRequest not served");
                return Ok(Action::requeue(ctx.settings.retention));
            }
            let value = token::generate()?;
            let expire = now
                .checked_add(Duration::from_secs(
                    tr.spec.ttl_seconds.max(1).unsigned_abs(),
                ))
                .unwrap_or(now);
            let url = format!(
                "{}/v1/applications/signingRequests/info?token={value}",
                ctx.settings.connector_url
            );
            let mut issued = json!({
                "state": TokenState::Ready.as_str(),
                "step": "Info",
                "token": value,
                "tokenHash": token::hash(&value),
                "url": url,
                "expireAfter": Time(expire),
                "message": format!("token issued for Application {application:?}; good until {expire}"),
            });
            match ctx.pin.get() {
                Some(pin) => issued["caCertHash"] = json!(*pin),
                None => {
                    issued["message"] = json!(format!(
                        "token issued for Application {application:?}; good until {expire}; no pin of the connector's CA is published (ConfigMap certpair-connector-ca)"
                    ))
                }
            }
            write(issued).await?;
            info!(%application, "token issued");
            Ok(Action::requeue(until(expire, now)))
        }
        // A certificate token that has claimed a CSR is past expiry: its certificate is being
        // signed (or waits to be fetched again), and the connector ends it once delivered.
        Some(TokenState::Ready) if status.certificate_signing_request.is_some() => {
            Ok(Action::requeue(ctx.settings.retention))
        }
        Some(TokenState::Ready) => {
            let expire = status.expire_after.map(|t| t.0).unwrap_or(now);
            if expire > now {
                return Ok(Action::requeue(until(expire, now)));
            }
            // Conditional: a redemption that lands first wins, and this pass sees it next.
            write(json!({
                "state": TokenState::Expired.as_str(),
                "token": null,
                "url": null,
                "step": null,
                "endedAt": Time(now),
                "message": format!("the token expired at {expire} unused; create a new TokenRequest"),
            }))
            .await?;
            info!(%application, "token expired");
            Ok(Action::requeue(ctx.settings.retention))
        }
        Some(TokenState::Used | TokenState::Expired | TokenState::Error) => {
            let ended = status
                .ended_at
                .map(|t| t.0)
                .or_else(|| tr.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .unwrap_or(now);
            let delete_at = ended.checked_add(ctx.settings.retention).unwrap_or(ended);
            if delete_at > now {
                return Ok(Action::requeue(until(delete_at, now)));
            }
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    info!(state = ?status.state, "ended TokenRequest deleted after its retention")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            Ok(Action::await_change())
        }
    }
}

fn until(at: Timestamp, now: Timestamp) -> Duration {
    at.duration_since(now)
        .unsigned_abs()
        .max(Duration::from_millis(100))
}

fn error_policy(tr: Arc<TokenRequest>, err: &Error, _ctx: Arc<Context>) -> Action {
    match err {
        Error::Kube(kube::Error::Api(e)) if e.code == 409 => {
            Action::requeue(Duration::from_millis(200))
        }
        _ => {
            warn!(token_request = %tr.name_any(), error = %err, "reconciling TokenRequest failed");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}
