//! Revocations made by an operator: listed in the CRL, refused by the connector, and pruned
//! once the certificate has expired.

use std::time::Duration;

use certpair::api::{Revocation, RevocationSpec};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::api::{ListParams, PostParams};

use super::*;

#[tokio::test]
async fn an_expired_revocation_is_pruned_and_leaves_the_crl() {
    let s = setup();
    let admin = admin().await;
    let api: Api<Revocation> = Api::all(admin.clone());
    // A certificate that expired a minute ago, and one valid for a day.
    let stale = unique("serial").replace("serial-", "");
    let live = unique("serial").replace("serial-", "");
    let at = |offset: i64| {
        Time(Timestamp::from_second(Timestamp::now().as_second() + offset).expect("time"))
    };
    for (serial, not_after) in [(&stale, at(-60)), (&live, at(86_400))] {
        let mut r = Revocation::new(
            &format!("serial-{serial}"),
            RevocationSpec {
                serial_number: Some(serial.to_uppercase()),
                not_after: Some(not_after),
                reason: Some("test".into()),
                ..Default::default()
            },
        );
        r.metadata.labels = Some([("test".to_owned(), "pruning".to_owned())].into());
        api.create(&PostParams::default(), &r)
            .await
            .expect("create Revocation");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = api
            .list(&ListParams::default())
            .await
            .expect("list Revocations")
            .items
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        if !names.contains(&format!("serial-{stale}")) {
            assert!(
                names.contains(&format!("serial-{live}")),
                "the live one stays"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the expired Revocation was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = s.dir.join(unique("crl"));
    std::fs::create_dir_all(&dir).expect("dir");
    within(
        "the CRL lists the live serial only",
        Duration::from_secs(20),
        || {
            let reply = curl(&[
                "-H",
                "Accept: application/x-pem-file",
                &format!("{}/v1/crl", s.urls[0]),
            ]);
            std::fs::write(dir.join("crl.pem"), &reply.body).ok()?;
            let (_, text) = openssl(&dir, &["crl", "-in", "crl.pem", "-noout", "-text"]);
            (text.contains(&live.to_uppercase()) && !text.contains(&stale.to_uppercase()))
                .then_some(())
        },
    )
    .await;
}
