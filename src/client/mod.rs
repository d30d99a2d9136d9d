//! The client commands of the one `certpair` binary, for people and pipelines: `token
//! create` (a TokenRequest through the Kubernetes API), `pair`, `renew`, `info` and `revoke`
//! (the connector, over TLS and then mTLS), and `revoke --serial|--sha256` (an operator,
//! through the Kubernetes API). Results go to stdout (text, or JSON with `-o json`),
//! progress and errors to stderr; exit codes say whether to retry ([`error::exit`]).
//!
//! - `connection`: trust (a pinned CA), the HTTP client, and both APIs' calls;
//! - `store`: the pairing directory, switched atomically;
//! - `progress`: one line per step; `error`: what failed, where, and what to do.

pub mod connection;
pub mod error;
pub mod progress;
pub mod store;

use std::{path::Path, process::ExitCode, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api as KubeApi, Client, ResourceExt,
    api::{ObjectMeta, PostParams},
};
use openssl::{
    pkey::{PKey, Private},
    x509::X509,
};
use reqwest::Url;
use serde_json::{Value, json};

use self::{
    connection::{INFO_STEP, Issued, MANAGEMENT_STEP, SIGN_STEP},
    error::ClientError,
    progress::Progress,
    store::{Api, Files, Meta},
};
use crate::{
    api::{RevocationSpec, TokenRequest, TokenRequestSpec, TokenState},
    cli::{
        ClientOutput, InfoArgs, Output, PairArgs, RenewArgs, RevokeArgs, TokenCommand,
        TokenCreateArgs,
    },
    pki::{
        authority::unix,
        csr_builder::{RequestBuilder, algorithm_of, key_for_algorithm},
        now_unix, serial_hex, signed_by,
    },
};

/// Runs a client command on its own runtime and turns its outcome into an exit code.
pub fn main(
    output: &ClientOutput,
    command: impl AsyncFnOnce() -> Result<Value, ClientError>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("certpair: error: starting: {e}");
            return ExitCode::from(error::exit::LOCAL);
        }
    };
    match runtime.block_on(command()) {
        Ok(result) => {
            print_result(output.output, &result);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("certpair: error: {e}");
            if output.output == Output::Json {
                println!("{}", e.to_json());
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// A result: JSON as is, or its `text` lines for a person.
fn print_result(output: Output, result: &Value) {
    match output {
        Output::Json => {
            let mut result = result.clone();
            if let Some(o) = result.as_object_mut() {
                o.remove("text");
            }
            println!("{result}");
        }
        Output::Text => {
            if let Some(text) = result["text"].as_str() {
                println!("{text}");
            }
        }
    }
}

fn time(unix: i64) -> String {
    Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// When a certificate valid from `not_before` to `not_after` is due for renewal: once 70 %
/// of its lifetime has passed (the runtime agent's rule, and what `management/info` advises).
pub fn renew_after(not_before: i64, not_after: i64) -> i64 {
    not_before + (not_after - not_before) * 7 / 10
}

fn kube_error(step: &'static str, e: kube::Error) -> ClientError {
    match e {
        kube::Error::Api(status) => ClientError::refused(
            step,
            status.code,
            Some(status.reason.clone()),
            status.message.clone(),
        ),
        other => ClientError::unavailable(step, other)
            .with_hint("check KUBECONFIG and that the API server is reachable"),
    }
}

async fn kube_client(step: &'static str) -> Result<Client, ClientError> {
    Client::try_default().await.map_err(|e| {
        ClientError::local(step, format!("no Kubernetes client: {e}"))
            .with_hint("set KUBECONFIG to a kubeconfig for the cluster certpair runs in")
    })
}

// `certpair token create`

pub async fn token(command: TokenCommand) -> Result<Value, ClientError> {
    match command {
        TokenCommand::Create(args) => token_create(args).await,
    }
}

async fn token_create(args: TokenCreateArgs) -> Result<Value, ClientError> {
    const STEP: &str = "TokenRequest";
    let progress = Progress::new(args.output.quiet);
    let client = kube_client(STEP).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let api: KubeApi<TokenRequest> = KubeApi::namespaced(client, &namespace);
    let step = progress.step(
        STEP,
        format!("creating one for Application {}", args.application),
    );
    let request = TokenRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", args.application)),
            ..Default::default()
        },
        spec: TokenRequestSpec {
            application: args.application.clone(),
            ttl_seconds: args.ttl.unwrap_or(crate::api::DEFAULT_TOKEN_TTL_SECONDS),
        },
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &request)
        .await
        .map_err(|e| kube_error(STEP, e))?;
    let name = created.name_any();
    step.doing(format!(
        "{namespace}/{name}: waiting for the controller's token"
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait_seconds);
    let status = loop {
        let current = api.get(&name).await.map_err(|e| kube_error(STEP, e))?;
        let status = current.status.unwrap_or_default();
        match status.state {
            Some(TokenState::Ready) if status.token.is_some() && status.url.is_some() => {
                break status;
            }
            Some(TokenState::Error | TokenState::Expired | TokenState::Used) => {
                return Err(ClientError::refused(
                    STEP,
                    409,
                    None,
                    format!(
                        "TokenRequest {namespace}/{name}: {}",
                        status.message.unwrap_or_default()
                    ),
                ));
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::unavailable(
                STEP,
                format!(
                    "TokenRequest {namespace}/{name} has no token after {} s",
                    args.wait_seconds
                ),
            )
            .with_hint("is the certpair controller running, with --connector-url? (kubectl describe tokenrequest shows its state)"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    step.done(format!("{namespace}/{name}"));
    let url = status.url.unwrap_or_default();
    let token = status.token.unwrap_or_default();
    let pin = status.ca_cert_hash.unwrap_or_default();
    let expire = status
        .expire_after
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let pair = if pin.is_empty() {
        format!(
            "certpair pair '{url}' --ca-file CONNECTOR_CA.crt --out ./{}",
            args.application
        )
    } else {
        format!(
            "certpair pair '{url}' --ca-cert-hash {pin} --out ./{}",
            args.application
        )
    };
    Ok(json!({
        "name": name,
        "namespace": namespace,
        "application": args.application,
        "url": url,
        "token": token,
        "caCertHash": pin,
        "expireAfter": expire,
        "text": format!(
            "url:         {url}\ntoken:       {token}\ncaCertHash:  {pin}\nexpires:     {expire}\nnext:        {pair}"
        ),
    }))
}

// `certpair pair`

/// Where to start for `url`: REST's info URL (a bare connector URL gets its path), or the
/// GraphQL endpoint (`/graphql` on the URL's origin unless the URL already names it).
fn endpoint(url: &Url, api: Api) -> Url {
    let mut url = url.clone();
    match api {
        Api::Rest => {
            if url.path() == "/" || url.path().is_empty() {
                url.set_path("/v1/applications/signingRequests/info");
            }
        }
        Api::Graphql => {
            if !url.path().ends_with("/graphql") {
                url.set_path("/graphql");
            }
            url.set_query(None);
        }
    }
    url
}

/// Checks the certificate the connector returned before anything is written: it is for our
/// key, for the subject we asked, and signed by the CA chain that came with it.
fn check_issued(
    step: &'static str,
    issued: &Issued,
    key: &PKey<Private>,
    subject: &str,
) -> Result<X509, ClientError> {
    let bad = |what: String| ClientError::local(step, format!("the connector returned {what}"));
    let leaf =
        X509::from_pem(&issued.client_pem).map_err(|e| bad(format!("no certificate: {e}")))?;
    let ca = X509::stack_from_pem(&issued.ca_pem).map_err(|e| bad(format!("no CA chain: {e}")))?;
    let ours = leaf.public_key().map(|k| k.public_eq(key)).unwrap_or(false);
    if !ours {
        return Err(bad("a certificate for another key".into()));
    }
    if !ca.first().is_some_and(|issuer| signed_by(&leaf, issuer)) {
        return Err(bad("a certificate its CA chain did not sign".into()));
    }
    let wanted = RequestBuilder::from_subject(subject)
        .map_err(|e| ClientError::local(step, e))?
        .subject;
    let got: Vec<(openssl::nid::Nid, String)> = leaf
        .subject_name()
        .entries()
        .filter_map(|e| Some((e.object().nid(), e.data().to_string().ok()?)))
        .collect();
    if got != wanted {
        return Err(bad(format!(
            "a certificate whose subject is not the one announced ({subject})"
        )));
    }
    Ok(leaf)
}

/// Runs `attempt` until it succeeds, fails for good, or `wait` has passed (then the last
/// error), with a backoff of 1 s doubling to 10 s.
async fn retrying<T>(
    step: &progress::Step,
    wait: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_secs(1);
    loop {
        match attempt().await {
            Err(e) if e.retryable() && tokio::time::Instant::now() + pause < deadline => {
                step.doing(format!("{}; retrying in {} s", e.message, pause.as_secs()));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

fn certificate_summary(leaf: &X509) -> (String, i64, i64) {
    let serial = serial_hex(leaf).unwrap_or_default();
    let not_before = unix(leaf.not_before()).unwrap_or_default();
    let not_after = unix(leaf.not_after()).unwrap_or_default();
    (serial, not_before, not_after)
}

pub async fn pair(args: PairArgs) -> Result<Value, ClientError> {
    let progress = Progress::new(args.output.quiet);
    let url = Url::parse(&args.url).map_err(|e| {
        ClientError::local("arguments", format!("{:?} is not a URL: {e}", args.url))
    })?;
    if url.scheme() != "https" {
        return Err(ClientError::local(
            "arguments",
            format!("{url} is not https: a token is only sent over TLS"),
        ));
    }
    let out = &args.out;
    if store::exists(out) && !args.force {
        return Err(ClientError::local(
            "arguments",
            format!("{} already holds a pairing", out.display()),
        )
        .with_hint(
            "renew it (certpair renew --dir), choose another --out, or pass --force to replace it",
        ));
    }
    let api = if args.graphql {
        Api::Graphql
    } else {
        Api::Rest
    };
    let start = endpoint(&url, api);
    let _lock = store::lock(out)?;

    let step = progress.step("connector CA", start.origin().ascii_serialization());
    let trust = connection::trust(
        &start,
        args.ca_cert_hash.as_deref(),
        args.ca_file.as_deref(),
    )
    .await?;
    step.done(&trust.described);
    let http = connection::http(&trust.pem, None)?;

    let token = args
        .token
        .clone()
        .or_else(|| {
            url.query_pairs()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ClientError::local(
                INFO_STEP,
                "no token: the URL has no token= and --token is not set",
            )
            .with_hint("pass the TokenRequest's status.url, or --token")
        })?;
    let started_with = crate::token::hash(&token);
    // A run of this same command (this token) that stopped while its certificate awaited
    // approval left its certificate token and key: this run asks again with them (a new key
    // would be refused). Another token starts afresh.
    let pending = store::pending_pairing(out).filter(|p| p.started_with == started_with);
    if pending.is_none() {
        store::clear_pending(out);
    }
    let (info, key) = match (pending, store::pending_key(out)) {
        (Some(p), Some(key)) => {
            progress.note(format!(
                "resuming the pairing started earlier (its key and certificate token are in {})",
                out.display()
            ));
            let info = connection::CsrInfo {
                subject: p.subject,
                key_algorithm: algorithm_of(&key).unwrap_or_default().to_owned(),
                token: p.token,
                sign_url: p.sign_url,
                management_url: p.management_url,
            };
            (info, key)
        }
        _ => {
            let step = progress.step(INFO_STEP, "redeeming the one-time token");
            let info = connection::csr_info(&http, api, &start, &token).await?;
            step.done(format!(
                "subject {}, key {}",
                info.subject, info.key_algorithm
            ));
            let algorithm = args.key_algorithm.as_deref().unwrap_or(&info.key_algorithm);
            let step = progress.step("key", format!("generating {algorithm}"));
            let key = key_for_algorithm(algorithm).map_err(|e| ClientError::local("key", e))?;
            store::keep_pending_key(out, &key)?;
            store::keep_pending_pairing(
                out,
                &store::PendingPairing {
                    started_with: started_with.clone(),
                    token: info.token.clone(),
                    sign_url: info.sign_url.clone(),
                    subject: info.subject.clone(),
                    management_url: info.management_url.clone(),
                },
            )?;
            step.done(format!(
                "{algorithm}, made here; it never leaves this machine"
            ));
            (info, key)
        }
    };

    let csr = RequestBuilder::from_subject(&info.subject)
        .and_then(|b| b.to_pem(&key).map_err(Into::into))
        .map_err(|e| ClientError::local("CSR", e))?;
    let step = progress.step(SIGN_STEP, "sending the CSR");
    let issued = retrying(&step, Duration::from_secs(args.wait_seconds), async || {
        connection::sign(&http, api, &info.sign_url, &info.token, &csr).await
    })
    .await
    .inspect_err(|e| {
        if matches!(&e.kind, error::Kind::Refused { code, .. } if code.as_deref() == Some("INVALID_TOKEN"))
            || e.message.starts_with("Invalid token.")
        {
            store::clear_pending(out);
        }
    })?;
    let leaf = check_issued(SIGN_STEP, &issued, &key, &info.subject)?;
    let (serial, not_before, not_after) = certificate_summary(&leaf);
    step.done(format!("serial {serial}, valid until {}", time(not_after)));
    let application = leaf
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_default();
    let meta = Meta {
        application: application.clone(),
        api,
        management_url: info.management_url.clone(),
    };
    store::write(
        out,
        &Files {
            key: &key,
            client_pem: &issued.client_pem,
            ca_pem: &issued.ca_pem,
            connector_ca_pem: &trust.pem,
            meta: &meta,
        },
    )?;
    progress.note(format!(
        "wrote {dir}/tls.key, {dir}/tls.crt, {dir}/ca.crt",
        dir = out.display()
    ));

    // The certificate works: the management info over mTLS.
    let step = progress.step(MANAGEMENT_STEP, "over mTLS with the new certificate");
    let chain = [issued.client_pem.clone(), issued.ca_pem.clone()].concat();
    let due = renew_after(not_before, not_after);
    // The pairing is done and written: a failure here is reported, not fatal (the token is
    // used, and running pair again could not help).
    let checked = match connection::http(&trust.pem, Some((&chain, &key))) {
        Ok(mtls) => connection::management(&mtls, api, &info.management_url)
            .await
            .map(drop),
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => step.done(format!("renew after {}", time(due))),
        Err(e) => {
            drop(step);
            progress.note(format!(
                "warning: the certificate is written, but the check with it failed: {e}"
            ));
        }
    }
    Ok(json!({
        "application": application,
        "dir": out,
        "serialNumber": serial,
        "notBefore": time(not_before),
        "notAfter": time(not_after),
        "renewAfter": time(due),
        "text": format!(
            "paired Application {application}: {dir}/tls.crt (serial {serial}, until {}), renew after {} (certpair renew --dir {dir})",
            time(not_after),
            time(due),
            dir = out.display()
        ),
    }))
}

// `certpair renew`, `info`, `revoke --dir`

fn mtls(pairing: &store::Pairing) -> Result<reqwest::Client, ClientError> {
    connection::http(
        &pairing.connector_ca_pem,
        Some((&pairing.chain_pem, &pairing.key)),
    )
}

/// Renews the pairing in `dir` if it is due (or `force`); `None` when it is not due.
async fn renew_once(
    dir: &Path,
    force: bool,
    key_algorithm: Option<&str>,
    wait: Duration,
    progress: &Progress,
) -> Result<Option<Value>, ClientError> {
    let _lock = store::lock(dir)?;
    let pairing = store::read(dir)?;
    let (serial, not_before, not_after) = certificate_summary(&pairing.leaf);
    let now = now_unix();
    if not_after <= now {
        return Err(ClientError::refused(
            connection::RENEW_STEP,
            403,
            Some("CERTIFICATE_EXPIRED".into()),
            format!(
                "the certificate (serial {serial}) expired at {}; pair again with a new token",
                time(not_after)
            ),
        ));
    }
    let due = renew_after(not_before, not_after);
    if now < due && !force {
        return Ok(None);
    }
    let api = pairing.meta.api;
    let http = mtls(&pairing)?;
    let step = progress.step(MANAGEMENT_STEP, format!("as serial {serial}"));
    let management = retrying(&step, wait, async || {
        connection::management(&http, api, &pairing.meta.management_url).await
    })
    .await?;
    step.done(format!("subject {}", management.subject));
    // A key kept from an attempt whose certificate did not arrive is asked for again.
    let key = match store::pending_key(dir) {
        Some(key) => key,
        None => {
            let algorithm = key_algorithm
                .map(str::to_owned)
                .unwrap_or_else(|| management.key_algorithm.clone());
            let step = progress.step("key", format!("generating {algorithm}"));
            let key = key_for_algorithm(&algorithm).map_err(|e| ClientError::local("key", e))?;
            store::keep_pending_key(dir, &key)?;
            step.done(format!("{algorithm}, made here"));
            key
        }
    };
    let csr = RequestBuilder::from_subject(&management.subject)
        .and_then(|b| b.to_pem(&key).map_err(Into::into))
        .map_err(|e| ClientError::local("CSR", e))?;
    let step = progress.step(connection::RENEW_STEP, "sending the CSR over mTLS");
    let issued = retrying(&step, wait, async || {
        connection::renew(&http, api, &management, &csr).await
    })
    .await?;
    let leaf = check_issued(connection::RENEW_STEP, &issued, &key, &management.subject)?;
    let (new_serial, not_before, not_after) = certificate_summary(&leaf);
    store::write(
        dir,
        &Files {
            key: &key,
            client_pem: &issued.client_pem,
            ca_pem: &issued.ca_pem,
            connector_ca_pem: &pairing.connector_ca_pem,
            meta: &pairing.meta,
        },
    )?;
    let due = renew_after(not_before, not_after);
    step.done(format!(
        "serial {new_serial}, valid until {}, renew after {}",
        time(not_after),
        time(due)
    ));
    Ok(Some(json!({
        "renewed": true,
        "previousSerialNumber": serial,
        "serialNumber": new_serial,
        "notBefore": time(not_before),
        "notAfter": time(not_after),
        "renewAfter": time(due),
        "text": format!(
            "renewed {}: serial {new_serial} until {}, renew after {}",
            dir.join(store::CERT).display(),
            time(not_after),
            time(due)
        ),
    })))
}

pub async fn renew(args: RenewArgs) -> Result<Value, ClientError> {
    let progress = Progress::new(args.output.quiet);
    if args.watch {
        return watch(&args, &progress).await;
    }
    match renew_once(
        &args.dir,
        args.force,
        args.key_algorithm.as_deref(),
        Duration::from_secs(args.wait_seconds),
        &progress,
    )
    .await?
    {
        Some(result) => Ok(result),
        None => {
            let pairing = store::read(&args.dir)?;
            let (serial, not_before, not_after) = certificate_summary(&pairing.leaf);
            let due = renew_after(not_before, not_after);
            Ok(json!({
                "renewed": false,
                "serialNumber": serial,
                "notAfter": time(not_after),
                "renewAfter": time(due),
                "text": format!(
                    "not due: serial {serial} is renewed after {} (70 % of its lifetime; --force renews now)",
                    time(due)
                ),
            }))
        }
    }
}

/// `renew --watch`: renews each certificate when due, for as long as it runs. A connector
/// that is away (restarting, unreachable) is retried with a backoff of 1 s doubling to 60 s;
/// a refusal (revoked, expired, policy) ends the watch with its error. Each renewal prints
/// its result (a JSON line with `-o json`).
async fn watch(args: &RenewArgs, progress: &Progress) -> Result<Value, ClientError> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = |kind| {
        signal(kind).map_err(|e| ClientError::local("watch", format!("signal handler: {e}")))
    };
    let (mut term, mut int) = (
        signals(SignalKind::terminate())?,
        signals(SignalKind::interrupt())?,
    );
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    tokio::pin!(stop);
    let mut pause = Duration::from_secs(1);
    let mut renewals = 0u64;
    // A floor after each renewal: a new certificate that is due at once (cut short by the
    // CA's own expiry, or a clock far ahead) must not turn into a loop of CSRs.
    let mut earliest = 0i64;
    loop {
        let pairing = store::read(&args.dir)?;
        let (serial, not_before, not_after) = certificate_summary(&pairing.leaf);
        let due = renew_after(not_before, not_after).max(earliest);
        if due > now_unix() && !(args.force && renewals == 0) {
            progress.note(format!(
                "serial {serial}: next renewal at {} (in {} s)",
                time(due),
                due - now_unix()
            ));
            // In steps of at most a minute against the wall clock, so that a machine that
            // was suspended renews on waking.
            while now_unix() < due {
                let step =
                    Duration::from_secs(u64::try_from(due - now_unix()).unwrap_or(0).min(60));
                tokio::select! {
                    () = &mut stop => return Ok(stopped(renewals)),
                    () = tokio::time::sleep(step) => {}
                }
            }
        }
        let attempt = renew_once(
            &args.dir,
            true,
            args.key_algorithm.as_deref(),
            Duration::ZERO,
            progress,
        );
        let outcome = tokio::select! {
            () = &mut stop => return Ok(stopped(renewals)),
            outcome = attempt => outcome,
        };
        match outcome {
            Ok(result) => {
                renewals += 1;
                pause = Duration::from_secs(1);
                earliest = now_unix() + ((not_after - not_before) / 10).max(5);
                if let Some(result) = result {
                    print_result(args.output.output, &result);
                }
            }
            Err(e) if e.retryable() => {
                progress.note(format!(
                    "renewal failed, retrying in {} s: {e}",
                    pause.as_secs()
                ));
                tokio::select! {
                    () = &mut stop => return Ok(stopped(renewals)),
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(60));
            }
            Err(e) => return Err(e),
        }
    }
}

fn stopped(renewals: u64) -> Value {
    json!({
        "renewals": renewals,
        "text": format!("stopped after {renewals} renewal(s)"),
    })
}

pub async fn info(args: InfoArgs) -> Result<Value, ClientError> {
    let progress = Progress::new(args.output.quiet);
    let pairing = store::read(&args.dir)?;
    let (serial, not_before, not_after) = certificate_summary(&pairing.leaf);
    let http = mtls(&pairing)?;
    let step = progress.step(MANAGEMENT_STEP, format!("as serial {serial}"));
    let management =
        connection::management(&http, pairing.meta.api, &pairing.meta.management_url).await?;
    step.done(&pairing.meta.management_url);
    let due = renew_after(not_before, not_after);
    Ok(json!({
        "application": pairing.meta.application,
        "api": pairing.meta.api,
        "subject": management.subject,
        "keyAlgorithm": management.key_algorithm,
        "serialNumber": serial,
        "notBefore": time(not_before),
        "notAfter": time(not_after),
        "renewAfter": time(due),
        "connector": management.raw,
        "text": format!(
            "application:  {}\nsubject:      {}\nkey:          {}\nserial:       {serial}\nvalid:        {} .. {}\nrenew after:  {}\nconnector:    {}",
            pairing.meta.application,
            management.subject,
            management.key_algorithm,
            time(not_before),
            time(not_after),
            time(due),
            pairing.meta.management_url,
        ),
    }))
}

pub async fn revoke(args: RevokeArgs) -> Result<Value, ClientError> {
    let progress = Progress::new(args.output.quiet);
    if let Some(dir) = &args.dir {
        let pairing = store::read(dir)?;
        let (serial, _, _) = certificate_summary(&pairing.leaf);
        let http = mtls(&pairing)?;
        let step = progress.step(
            connection::REVOKE_STEP,
            format!("serial {serial}, over mTLS"),
        );
        match connection::management(&http, pairing.meta.api, &pairing.meta.management_url).await {
            Ok(management) => {
                connection::revoke(&http, pairing.meta.api, &management).await?;
                step.done("revoked");
            }
            Err(e)
                if matches!(&e.kind, error::Kind::Refused { code, .. } if code.as_deref() == Some("CERTIFICATE_REVOKED"))
                    || e.message.starts_with("Certificate has been revoked.") =>
            {
                step.done("already revoked");
            }
            Err(e) => return Err(e),
        }
        return Ok(json!({
            "revoked": true,
            "serialNumber": serial,
            "text": format!("revoked serial {serial}; the connector refuses it now and the CRL lists it"),
        }));
    }
    const STEP: &str = "Revocation";
    let hex = |value: &str, what: &str, len: Option<usize>| {
        let cleaned: String = value
            .trim()
            .trim_start_matches("0x")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let ok = !cleaned.is_empty()
            && cleaned.bytes().all(|b| b.is_ascii_hexdigit())
            && len.is_none_or(|l| cleaned.len() == l);
        ok.then_some(cleaned).ok_or_else(|| {
            ClientError::local(
                STEP,
                format!(
                    "{what} {value:?} is not hex{}",
                    len.map(|l| format!(" of {l} digits")).unwrap_or_default()
                ),
            )
        })
    };
    let serial = args
        .serial
        .as_deref()
        .map(|s| hex(s, "--serial", None).map(|s| s.to_uppercase()))
        .transpose()?;
    let sha256 = args
        .sha256
        .as_deref()
        .map(|s| hex(s, "--sha256", Some(64)).map(|s| s.to_lowercase()))
        .transpose()?;
    let client = kube_client(STEP).await?;
    let step = progress.step(STEP, "creating it through the Kubernetes API");
    let spec = RevocationSpec {
        serial_number: serial.clone(),
        sha256: sha256.clone(),
        reason: Some(
            args.reason
                .clone()
                .unwrap_or_else(|| "revoked by an operator (certpair revoke)".into()),
        ),
        ..Default::default()
    };
    crate::connector::service::create_revocation(&client, spec)
        .await
        .map_err(|e| kube_error(STEP, e))?;
    let what = serial
        .as_ref()
        .map(|s| format!("serial {s}"))
        .or_else(|| sha256.as_ref().map(|h| format!("SHA-256 {h}")))
        .unwrap_or_default();
    step.done(&what);
    Ok(json!({
        "revoked": true,
        "serialNumber": serial,
        "sha256": sha256,
        "text": format!("revoked {what}; every connector refuses it now and the next CRL lists it"),
    }))
}
