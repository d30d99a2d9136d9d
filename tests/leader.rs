//! Two controllers: only the leader writes, and when it dies mid-burst the standby takes over
//! and no request is lost or signed twice. Its own binary so no other controller competes.

mod support;

use std::{collections::HashSet, time::Duration};

use certpair::api::DEFAULT_SIGNER_NAME;
use futures::{StreamExt, stream};
use k8s_openapi::{
    ByteString,
    api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec},
};
use kube::{
    Api,
    api::{ListParams, ObjectMeta, PostParams},
};
use openssl::{pkey::PKey, x509::X509};
use support::{
    Cluster,
    csr::{Outcome, application, outcome, requester},
    csr_pem, ec_key, poll, unique,
};

const BURST: usize = 200;

#[tokio::test]
async fn burst_survives_leader_death_with_exactly_one_certificate_each() {
    let cluster = Cluster::connect().await;
    let a = cluster.start_controller(&[]).await;
    let b = cluster.start_controller(&[]).await;
    poll("one leader", Duration::from_secs(30), || {
        (a.is_leader() || b.is_leader()).then_some(())
    })
    .await;
    assert!(!(a.is_leader() && b.is_leader()), "two leaders at once");
    // The standby serves probes but writes nothing.
    let (mut leader, survivor) = if a.is_leader() { (a, b) } else { (b, a) };

    let app = unique("burst");
    application(&cluster.client, &app, None).await;
    let who = requester(&cluster, Some(&app)).await;
    // Keys prepared beforehand; the burst is only API calls.
    let batch = unique("burst");
    let requests: Vec<(String, Vec<u8>, PKey<openssl::pkey::Public>)> = (0..BURST)
        .map(|i| {
            let key = ec_key();
            let public =
                PKey::public_key_from_pem(&key.public_key_to_pem().expect("pem")).expect("pub");
            (
                format!("{batch}-{i:03}"),
                csr_pem(&key, &app, &["Acme"]),
                public,
            )
        })
        .collect();

    let api: Api<CertificateSigningRequest> = Api::all(who.client.clone());
    let creations = stream::iter(requests.iter().map(|(name, pem, _)| {
        let api = api.clone();
        async move {
            let csr = CertificateSigningRequest {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(
                        [("certpair.dev/test-batch".to_string(), batch_label(name))].into(),
                    ),
                    ..Default::default()
                },
                spec: CertificateSigningRequestSpec {
                    request: ByteString(pem.clone()),
                    signer_name: DEFAULT_SIGNER_NAME.into(),
                    usages: Some(vec!["digital signature".into(), "client auth".into()]),
                    expiration_seconds: Some(3600),
                    ..Default::default()
                },
                status: None,
            };
            api.create(&PostParams::default(), &csr)
                .await
                .expect("create CSR");
        }
    }))
    .buffer_unordered(20);

    // Kill the leader (SIGKILL: no Lease release) once a quarter of the burst is issued.
    let admin: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let selector = format!("certpair.dev/test-batch={}", batch_label(&requests[0].0));
    let count_issued = || {
        let admin = admin.clone();
        let selector = selector.clone();
        async move {
            admin
                .list(&ListParams::default().labels(&selector))
                .await
                .expect("list")
                .items
                .iter()
                .filter(|c| matches!(outcome(c), Some(Outcome::Issued(_))))
                .count()
        }
    };
    let create_all = creations.collect::<Vec<()>>();
    let killer = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while count_issued().await < BURST / 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the leader issued too little before the kill"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::join!(create_all, killer);
    assert!(
        survivor
            .metrics()
            .contains("certpair_certificates_issued_total 0"),
        "the standby must not sign while the leader lives:\n{}",
        survivor.metrics()
    );
    leader.kill_hard();
    eprintln!("killed the leader; {} issued so far", count_issued().await);

    // The standby takes over within the lease duration and finishes the burst.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let done = count_issued().await;
        if done == BURST {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done}/{BURST} issued after failover:\n{}",
            survivor.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(survivor.is_leader());

    // Exactly one certificate each: every CSR carries one leaf for its own key, and no serial
    // appears twice (a second signing would have had to replace a certificate).
    let mut serials = HashSet::new();
    for (name, _, public) in &requests {
        let csr = admin.get(name).await.expect("get");
        let Some(Outcome::Issued(chain)) = outcome(&csr) else {
            panic!("{name} not issued")
        };
        let certs = X509::stack_from_pem(&chain).expect("chain");
        assert!(
            certs[0].public_key().expect("pub").public_eq(public),
            "{name}: certificate for another key"
        );
        let serial = certs[0]
            .serial_number()
            .to_bn()
            .expect("bn")
            .to_hex_str()
            .expect("hex")
            .to_string();
        assert!(serials.insert(serial), "{name}: serial issued twice");
    }
}

fn batch_label(name: &str) -> String {
    name.rsplit_once('-')
        .map(|(b, _)| b.to_owned())
        .unwrap_or_default()
}
