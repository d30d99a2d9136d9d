//! A pairing whose CSR is not signed in time: the connector answers 503 naming the CSR and
//! records it on the TokenRequest; once a controller signs it, a retry with the same token and
//! key receives the certificate, and another key is refused. `certpair pair` meets the same:
//! it keeps its key and certificate token, and the same command run again finishes the
//! pairing. Its own binary: it stops and starts the controller.

mod support;

use std::time::Duration;

use certpair::api::TokenRequest;
use kube::Api;
use support::{
    Cluster, free_port,
    pairing::{Curled, csr_body, curl, token_request},
    unique,
};

#[tokio::test]
async fn a_pairing_not_signed_in_time_is_picked_up_by_a_retry() {
    let cluster = Cluster::connect().await;
    cluster.install_connector_manifests().await;
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let controller_flags = [
        "--connector-url",
        url.as_str(),
        "--connector-ips",
        "127.0.0.1",
    ];
    let mut controller = cluster.start_controller(&controller_flags).await;
    controller.wait_leader().await;
    let _connector = cluster
        .start_connector_at(port, &["--issue-timeout-seconds", "1"])
        .await;
    let dir = cluster.state_dir.join(unique("pending"));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = dir.join("connector-ca.crt");
    std::fs::write(&ca, cluster.published_ca("certpair-connector-ca")).expect("write");

    let app = unique("slow");
    support::csr::application(&cluster.client, &app, None).await;
    let trs: Api<TokenRequest> = Api::namespaced(cluster.client.clone(), "default");
    let tr_name = unique("slow-pairing");
    let info_url = token_request(&cluster.client, &app, &tr_name).await;
    let Curled {
        code, body: info, ..
    } = curl(&ca, &[&info_url]);
    assert_eq!(code, 200, "{info}");
    let csr_url = info["csrUrl"].as_str().expect("csrUrl").to_owned();

    // No controller: nothing signs the CSR within the connector's 1 s.
    controller.send_term();
    assert!(
        controller.wait_exit(Duration::from_secs(20)).is_some(),
        "controller stopped"
    );
    let key = support::ec_key();
    let Curled {
        code, body: answer, ..
    } = curl(&ca, &["-d", &csr_body(&app, &key), &csr_url]);
    assert_eq!(code, 503, "{answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("CSR pair-{app}-")) && message.contains("retry the same request"),
        "{message}"
    );
    let status = trs
        .get(&tr_name)
        .await
        .expect("get")
        .status
        .expect("status");
    let csr = status
        .certificate_signing_request
        .expect("the CSR is recorded");
    assert!(message.contains(&csr), "{message} names {csr}");

    // A controller signs it; the retry with the same key gets the certificate.
    let mut second = cluster.start_controller(&controller_flags).await;
    second.wait_leader().await;
    let issued = support::poll(
        "the retry gets the certificate",
        Duration::from_secs(30),
        || {
            let Curled {
                code, body: answer, ..
            } = curl(&ca, &["-d", &csr_body(&app, &key), &csr_url]);
            (code == 201).then_some(answer)
        },
    )
    .await;
    assert!(issued["clientCrt"].is_string(), "{issued}");
    // Another key is refused: the token is bound to the first one.
    let Curled {
        code, body: answer, ..
    } = curl(&ca, &["-d", &csr_body(&app, &support::ec_key()), &csr_url]);
    assert_eq!(code, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("another key"),
        "{answer}"
    );

    // The client: `certpair pair` while nothing signs gives up after --wait-seconds with
    // what to do; run again once a controller signs, it finishes with the same key.
    let client_tr = format!("{tr_name}-client");
    let info_url = token_request(&cluster.client, &app, &client_tr).await;
    // Written with the URL, in the same status update.
    let pin = trs
        .get(&client_tr)
        .await
        .expect("get TokenRequest")
        .status
        .and_then(|s| s.ca_cert_hash)
        .expect("the CA pin beside the URL");
    second.send_term();
    assert!(second.wait_exit(Duration::from_secs(20)).is_some());
    let out_dir = dir.join("client");
    let pair = || {
        support::run(
            std::process::Command::new(env!("CARGO_BIN_EXE_certpair")).args([
                "pair",
                &info_url,
                "--ca-cert-hash",
                &pin,
                "--out",
                &out_dir.to_string_lossy(),
                "--wait-seconds",
                "3",
            ]),
        )
    };
    let out = pair();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "unavailable, retry: {stderr}");
    assert!(
        stderr.contains("certificate failed") && stderr.contains("run the same command again"),
        "{stderr}"
    );
    let third = cluster.start_controller(&controller_flags).await;
    third.wait_leader().await;
    let out = pair();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming the pairing"), "{stderr}");
    assert!(out_dir.join("tls.crt").exists());
    assert!(
        !out_dir.join(".pending.key").exists(),
        "the kept key is gone once its certificate is written"
    );
}
