//! Tokens as the connector sees them: TokenRequests in a cache that holds only token hashes,
//! and redemption by a write conditional on the version read, so that of many concurrent
//! uses of one token (on any replica) exactly one succeeds.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::Store,
};
use serde_json::{Value, json};

use super::ConnectorError;
use crate::{
    api::{FIELD_MANAGER, TokenRequest, TokenState, TokenStep},
    token,
};

/// Drops what the connector must never hold: the plaintext token (also inside the URL), and
/// metadata it never reads.
pub fn slim(tr: &mut TokenRequest) {
    tr.metadata.managed_fields = None;
    tr.metadata.annotations = None;
    if let Some(status) = tr.status.as_mut() {
        status.token = None;
        status.url = None;
    }
}

pub struct Tokens {
    pub client: Client,
    pub store: Store<TokenRequest>,
}

/// Pauses before a token missing from the cache is called invalid (0.3 s in all: a watch
/// event takes milliseconds, and a request waiting here holds a connection slot).
const CACHE_LAG: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(150),
];

/// How many times a redemption re-reads after a conflict that was not someone else's
/// redemption (e.g. the controller refreshing the pin in between).
const ATTEMPTS: usize = 3;

impl Tokens {
    /// The TokenRequest whose current token is `token`, good now for `step`.
    pub async fn find(
        &self,
        token: Option<&str>,
        step: TokenStep,
    ) -> Result<Arc<TokenRequest>, ConnectorError> {
        let token = match token {
            None | Some("") => return Err(ConnectorError::TokenMissing),
            Some(t) => t,
        };
        if !token::well_formed(token) {
            return Err(ConnectorError::InvalidToken(None));
        }
        let hash = token::hash(token);
        // Every candidate is compared in constant time.
        let lookup = || self.store.find(|tr| holds(tr, &hash, step));
        let mut found = lookup();
        // A token handed out by another replica a moment ago may not have reached this
        // replica's cache yet (a watch event takes milliseconds): look again briefly before
        // calling it invalid. Only waits, so a flood of bad tokens costs no API calls.
        for wait in CACHE_LAG {
            if found.is_some() {
                break;
            }
            tokio::time::sleep(wait).await;
            found = lookup();
        }
        let Some(tr) = found else {
            return Err(ConnectorError::InvalidToken(None));
        };
        usable(&tr, &hash, step)?;
        Ok(tr)
    }

    /// Writes `status(tr)` onto `tr` if nobody has written it since `tr` was read (`None`:
    /// nothing to write, `tr` is returned as it is). On a conflict, re-reads it: if `token`
    /// still is its current token for `step` (the conflict was another kind of write) the
    /// write is decided again on what was read; otherwise someone else redeemed it first.
    pub async fn redeem(
        &self,
        tr: &TokenRequest,
        token: &str,
        step: TokenStep,
        status: impl Fn(&TokenRequest) -> Option<Value>,
    ) -> Result<TokenRequest, ConnectorError> {
        let api: Api<TokenRequest> =
            Api::namespaced(self.client.clone(), &tr.namespace().unwrap_or_default());
        let name = tr.name_any();
        let mut current = tr.clone();
        for _ in 0..ATTEMPTS {
            let Some(status) = status(&current) else {
                return Ok(current);
            };
            let patch = json!({
                "metadata": { "resourceVersion": current.resource_version() },
                "status": status,
            });
            match api
                .patch_status(&name, &patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(written) => return Ok(written),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let Some(fresh) = api.get_opt(&name).await? else {
                        return Err(ConnectorError::InvalidToken(None));
                    };
                    let hash = token::hash(token);
                    if !holds(&fresh, &hash, step) {
                        return Err(ConnectorError::InvalidToken(Some(
                            "It has been used.".into(),
                        )));
                    }
                    usable(&fresh, &hash, step)?;
                    current = fresh;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    return Err(ConnectorError::InvalidToken(None));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ConnectorError::Busy(format!(
            "TokenRequest {name} kept changing while redeeming its token; retry"
        )))
    }

    /// The TokenRequest as the apiserver holds it now.
    pub async fn get(&self, tr: &TokenRequest) -> Result<Option<TokenRequest>, kube::Error> {
        Api::<TokenRequest>::namespaced(self.client.clone(), &tr.namespace().unwrap_or_default())
            .get_opt(&tr.name_any())
            .await
    }

    /// Records the end of `tr`: Used (with the serial) or Error (with why). Unconditional:
    /// it only ever moves a request to a final state.
    pub async fn finish(
        &self,
        tr: &TokenRequest,
        state: TokenState,
        message: &str,
        serial: Option<&str>,
    ) -> Result<(), kube::Error> {
        let mut status = json!({
            "state": state.as_str(),
            "message": message,
            "token": null,
            "url": null,
            "step": null,
            "endedAt": Time(Timestamp::now()),
        });
        if let Some(serial) = serial {
            status["serialNumber"] = json!(serial);
        }
        Api::<TokenRequest>::namespaced(self.client.clone(), &tr.namespace().unwrap_or_default())
            .patch_status(
                &tr.name_any(),
                &patch_params(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await?;
        Ok(())
    }
}

/// Whether `hash` is the current token of `tr`, or, for `signingRequests/info`, the info
/// token it already answered while no CSR has been claimed (see [`answered_again`]). Each
/// comparison is constant-time.
fn holds(tr: &TokenRequest, hash: &str, step: TokenStep) -> bool {
    let Some(status) = tr.status.as_ref() else {
        return false;
    };
    status
        .token_hash
        .as_deref()
        .is_some_and(|h| token::same_hash(h, hash))
        || answered_again(tr, hash, step)
}

/// A second `signingRequests/info` with the info token already redeemed, before any CSR was
/// claimed: the client may never have received the first answer (the replica died, the
/// connection dropped), and the certificate token is not stored anywhere. It is answered
/// again with the same certificate token ([`crate::token::derive`]) and nothing is written:
/// the expiry stays the first answer's, so retries never extend a token's life. Once a CSR
/// is claimed, the key is fixed and the info token is used up.
pub fn answered_again(tr: &TokenRequest, hash: &str, step: TokenStep) -> bool {
    let Some(status) = tr.status.as_ref() else {
        return false;
    };
    step == TokenStep::Info
        && status.state == Some(TokenState::Ready)
        && status.step == Some(TokenStep::Certificate)
        && status.certificate_signing_request.is_none()
        && status
            .info_token_hash
            .as_deref()
            .is_some_and(|h| token::same_hash(h, hash))
}

/// Good now for `step`: Ready and not expired (whatever the controller has written yet: the
/// connector never relies on it being on time). Once a certificate token has claimed a CSR,
/// expiry and use no longer end it: the holder of the key in that CSR may fetch its
/// certificate again (a response lost on the way, a retry after the CSR was slow to sign).
fn usable(tr: &TokenRequest, hash: &str, step: TokenStep) -> Result<(), ConnectorError> {
    let Some(status) = tr.status.as_ref() else {
        return Err(ConnectorError::InvalidToken(None));
    };
    if answered_again(tr, hash, step) {
        return match status.expire_after.as_ref() {
            Some(after) if Timestamp::now() >= after.0 => Err(expired(Some(after))),
            _ => Ok(()),
        };
    }
    if status.step == Some(step) || status.state == Some(TokenState::Used) {
        let claimed =
            step == TokenStep::Certificate && status.certificate_signing_request.is_some();
        match status.state {
            Some(TokenState::Ready | TokenState::Used) if claimed => return Ok(()),
            _ => {}
        }
    }
    match status.state {
        Some(TokenState::Ready) => {}
        Some(TokenState::Used) => {
            return Err(ConnectorError::InvalidToken(Some(
                "It has been used.".into(),
            )));
        }
        Some(TokenState::Expired) => return Err(expired(status.expire_after.as_ref())),
        Some(TokenState::Error) => {
            return Err(ConnectorError::InvalidToken(Some(
                status.message.clone().unwrap_or_default(),
            )));
        }
        None => return Err(ConnectorError::InvalidToken(None)),
    }
    if let Some(after) = status.expire_after.as_ref()
        && Timestamp::now() >= after.0
    {
        return Err(expired(Some(after)));
    }
    if status.step != Some(step) {
        return Err(ConnectorError::InvalidToken(Some(match step {
            TokenStep::Info => "It is the certificate token of an earlier signingRequests/info call; post the CSR with it.".into(),
            TokenStep::Certificate => "It is good for signingRequests/info only; the certificate token comes in its csrUrl.".into(),
        })));
    }
    Ok(())
}

fn expired(after: Option<&Time>) -> ConnectorError {
    ConnectorError::InvalidToken(Some(match after {
        Some(t) => format!("It expired at {}; ask for a new TokenRequest.", t.0),
        None => "It expired; ask for a new TokenRequest.".into(),
    }))
}

/// When a token handed out now stops being good.
pub fn expire_after(ttl_seconds: i64) -> Time {
    let ttl = Duration::from_secs(ttl_seconds.max(1).unsigned_abs());
    Time(
        Timestamp::now()
            .checked_add(ttl)
            .unwrap_or_else(|_| Timestamp::now()),
    )
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}
