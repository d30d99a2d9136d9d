//! Revocations, on the leader: the CRL of the signing CA, published in ConfigMap
//! `certpair-crl` (`crl.der` in binaryData, `crl.pem` in data) whenever the set of revoked
//! serials or the CA changes and again before it goes stale; and Revocation objects deleted
//! once the certificate they name has expired (it is refused by every client then anyway).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt};
use k8s_openapi::{ByteString, api::core::v1::ConfigMap};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch},
    runtime::{WatchStreamExt, reflector, watcher},
};
use openssl::bn::BigNum;
use tracing::{info, warn};

use super::signing_ca::SigningCa;
use crate::{
    api::{CRL_CONFIGMAP, CRL_DER_KEY, CRL_PEM_KEY, Revocation},
    k8s::{apply_params, owned_meta, watch_named},
    pki::{
        crl::{self, Revoked},
        now_unix,
    },
};

pub struct Settings {
    pub namespace: String,
    /// nextUpdate − thisUpdate of each CRL; it is published again at half of it.
    pub validity: Duration,
    /// Longest lifetime certpair can issue (the client profile's bound, whatever an Application
    /// or flag allows now): a Revocation without notAfter is kept this long.
    pub max_lifetime: Duration,
}

/// What was last published: by which CA, listing which serials, when it goes stale, and
/// the DER (to tell our own write from someone else's when the watch reports it).
struct Published {
    ca: Vec<u8>,
    serials: Vec<Vec<u8>>,
    next_update: i64,
    der: Vec<u8>,
}

/// Runs until dropped.
pub async fn run(client: Client, settings: Settings, ca: Arc<SigningCa>) {
    let revocations: Api<Revocation> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let changes = watcher(revocations.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .map(|_| ())
        .boxed();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &settings.namespace);
    // Frequent ticks cost nothing while the CRL is current (the check below is in memory),
    // and pick up a newly loaded CA and certificates expiring out of the list within seconds.
    let ticks = futures::stream::unfold(
        tokio::time::interval(Duration::from_secs(5)),
        |mut i| async move {
            i.tick().await;
            Some(((), i))
        },
    )
    .boxed();
    let mut triggers = futures::stream::select_all([changes, ticks]);
    // The CRL's own ConfigMap: a deleted or edited CRL is published again.
    let mut published_changed = watch_named(maps.clone(), CRL_CONFIGMAP).boxed();
    let mut ready = false;
    let mut last: Option<Published> = None;
    loop {
        tokio::select! {
            trigger = triggers.next() => if trigger.is_none() { return },
            event = published_changed.next() => {
                let seen = match event {
                    Some(Ok(watcher::Event::Apply(map) | watcher::Event::InitApply(map))) => map
                        .binary_data
                        .and_then(|mut d| d.remove(CRL_DER_KEY))
                        .map(|der| der.0),
                    Some(Ok(watcher::Event::Delete(_))) => None,
                    _ => continue,
                };
                // Our own write comes back too; anything else means publishing again.
                if last.as_ref().map(|l| &l.der) != seen.as_ref() {
                    last = None;
                }
            }
        }
        // Not awaited: the reflector only moves while `triggers` is polled, here.
        if !ready {
            match store.wait_until_ready().now_or_never() {
                Some(Ok(())) => ready = true,
                Some(Err(_)) => return,
                None => continue,
            }
        }
        let Some(authority) = ca.get() else {
            continue;
        };
        let now = now_unix();
        let mut revoked = Vec::new();
        for r in store.state() {
            if expired(&r, now, settings.max_lifetime) {
                match revocations
                    .delete(&r.name_any(), &DeleteParams::default())
                    .await
                {
                    Ok(_) => {
                        info!(revocation = %r.name_any(), "the revoked certificate has expired; Revocation pruned")
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        warn!(revocation = %r.name_any(), error = %e, "pruning a Revocation failed")
                    }
                }
                continue;
            }
            let Some(serial) = r.spec.serial_number.as_deref() else {
                continue;
            };
            match BigNum::from_hex_str(serial).map(|n| n.to_vec()) {
                // A serial is positive (RFC 5280): one that is not cannot be listed, and must
                // not stop the CRL of every other revocation.
                Ok(serial) if serial.is_empty() => {
                    warn!(revocation = %r.name_any(), "serial number 0 cannot be listed in a CRL")
                }
                Ok(serial) => revoked.push(Revoked {
                    serial,
                    revoked_at: r
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.as_second())
                        .unwrap_or(now),
                }),
                Err(e) => warn!(revocation = %r.name_any(), error = %e, "serial number is not hex"),
            }
        }
        revoked.sort_by(|a, b| a.serial.cmp(&b.serial));
        revoked.dedup_by(|a, b| a.serial == b.serial);
        let serials: Vec<Vec<u8>> = revoked.iter().map(|r| r.serial.clone()).collect();
        let ca_der = authority.certificate().to_der().unwrap_or_default();
        let validity = i64::try_from(settings.validity.as_secs()).unwrap_or(86_400);
        let current = last.as_ref().is_some_and(|l| {
            l.ca == ca_der && l.serials == serials && l.next_update - now > validity / 2
        });
        if current {
            continue;
        }
        // The number continues from what is published (a new leader, a restart).
        let published = match maps.get_opt(CRL_CONFIGMAP).await {
            Ok(map) => map,
            Err(e) => {
                warn!(error = %e, "reading the published CRL failed");
                continue;
            }
        };
        let info = published
            .as_ref()
            .and_then(|m| m.binary_data.as_ref())
            .and_then(|d| d.get(CRL_DER_KEY))
            .and_then(|der| crl::read(&der.0).ok());
        let number = info
            .and_then(|i| i.number)
            .map_or(1, |n| n.saturating_add(1));
        // Backdated like certificates, for clients whose clock is a little behind.
        let next_update = now + validity;
        let der = match authority.sign_crl(number, now - 300, next_update, &revoked) {
            Ok(der) => der,
            Err(e) => {
                warn!(error = %e, "signing the CRL failed");
                continue;
            }
        };
        let map = ConfigMap {
            metadata: owned_meta(CRL_CONFIGMAP),
            data: Some(BTreeMap::from([(
                CRL_PEM_KEY.to_owned(),
                String::from_utf8_lossy(&crl::to_pem(&der)).into_owned(),
            )])),
            binary_data: Some(BTreeMap::from([(
                CRL_DER_KEY.to_owned(),
                ByteString(der.clone()),
            )])),
            ..Default::default()
        };
        match maps
            .patch(CRL_CONFIGMAP, &apply_params().force(), &Patch::Apply(&map))
            .await
        {
            Ok(_) => {
                info!(number, revoked = revoked.len(), "CRL published");
                last = Some(Published {
                    ca: ca_der,
                    serials,
                    next_update,
                    der,
                });
            }
            Err(e) => warn!(error = %e, "publishing the CRL failed"),
        }
    }
}

/// The certificate a Revocation names has expired: by its notAfter, or without one, once the
/// longest lifetime certpair issues has passed since it was revoked.
fn expired(r: &Revocation, now: i64, max_lifetime: Duration) -> bool {
    let until = match &r.spec.not_after {
        Some(t) => t.0.as_second(),
        None => match &r.metadata.creation_timestamp {
            Some(t) => {
                t.0.as_second() + i64::try_from(max_lifetime.as_secs()).unwrap_or(i64::MAX / 2)
            }
            None => return false,
        },
    };
    until < now
}
