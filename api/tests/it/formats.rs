//! A data dir written by the last build of each older format (`tests/fixtures/
//! make-fixture.sh`) opens with everything in it: coupons with their codes and
//! redemptions, statistics, idempotency records that replay the same bytes, a user's
//! coupons across campaigns, and the mail jobs still in the outbox. New coupons follow
//! in the current format.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use firstcome_engine::ManualClock;

use crate::helpers::{TestServer, all_coupons, send, smtp_mail};

fn fixture(name: &str) -> (tempfile::TempDir, Value) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(here.join(format!("{name}.tar.gz")))
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar runs");
    assert!(status.success(), "unpacking the fixture");
    let manifest = std::fs::read_to_string(here.join(format!("{name}.json"))).unwrap();
    (dir, serde_json::from_str(&manifest).unwrap())
}

/// A minute after the fixture's last coupon was issued: its coupons (valid for a day)
/// are still valid whatever the date the test runs on.
fn clock(m: &Value) -> ManualClock {
    let last: jiff::Timestamp = m["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["issued_at"].as_str().unwrap().parse().unwrap())
        .max()
        .unwrap();
    ManualClock::new(last + jiff::SignedDuration::from_secs(60))
}

/// Mail to a port nothing listens on, retried rarely: the outbox keeps its jobs.
async fn start(dir: tempfile::TempDir, m: &Value) -> TestServer {
    let mut mail = smtp_mail(9);
    mail.retry_base_ms = 600_000;
    TestServer::start_with_mail(dir, std::sync::Arc::new(clock(m)), mail).await
}

#[tokio::test]
async fn a_format_1_data_dir_opens_with_everything_in_it() {
    opens_with_everything_in_it("format1").await;
}

#[tokio::test]
async fn a_format_2_data_dir_opens_with_everything_in_it() {
    opens_with_everything_in_it("format2").await;
}

async fn opens_with_everything_in_it(name: &str) {
    let (dir, m) = fixture(name);
    let t = start(dir, &m).await;
    let a = m["campaign"].as_str().unwrap();

    // Every coupon as the old build showed it: code, holder, status, redemption.
    for want in m["coupons"].as_array().unwrap() {
        let id = want["id"].as_str().unwrap();
        let (status, got) = send(t.issuer(Method::GET, &format!("/v1/coupons/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{id}");
        assert_eq!(&got, want, "{id}");
    }
    // The export and the code routes read the old coupons too.
    let mut want: Vec<&Value> = m["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["campaign_id"] == a)
        .collect();
    want.sort_by_key(|c| {
        c["id"]
            .as_str()
            .unwrap()
            .rsplit_once('-')
            .unwrap()
            .1
            .parse::<u64>()
            .unwrap()
    });
    assert!(!want.is_empty());
    let exported = all_coupons(&t.client, &t.base, a).await;
    assert_eq!(exported.iter().collect::<Vec<_>>(), want);
    for c in &want {
        let code = c["code"].as_str().unwrap();
        let (status, got) = send(t.issuer(Method::GET, &format!("/v1/codes/{code}"))).await;
        assert_eq!(status, StatusCode::OK, "{code}");
        assert_eq!(&&got, c, "{code}");
    }
    let (_, stats) = send(t.admin(Method::GET, &format!("/v1/campaigns/{a}/stats"))).await;
    assert_eq!(stats, m["stats"]);

    // Keyed requests replay the old build's bytes.
    for r in m["replays"].as_array().unwrap() {
        let resp = t
            .issuer(Method::POST, r["path"].as_str().unwrap())
            .header("idempotency-key", r["key"].as_str().unwrap())
            .json(&r["request"])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16() as u64, r["status"].as_u64().unwrap());
        assert_eq!(resp.headers()["idempotent-replayed"], "true");
        assert_eq!(resp.text().await.unwrap(), r["body"].as_str().unwrap());
    }

    // The user index is rebuilt from the old coupons: u0 holds one in each campaign.
    let listed: Vec<String> = t
        .user_coupons("u0")
        .await
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");

    // The confirmation queued for u0 is still in the outbox.
    assert!(t.server.engine.outbox_len().await.unwrap() >= 1);

    // Issuing goes on after the last old coupon, and the old holders are known.
    let (status, body) = t.issue(a, "u3").await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("already_issued"))
    );
    let (status, body) = t.issue(a, "newcomer").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["coupon"]["id"], format!("{a}-5"));
    let new_code = body["coupon"]["code"].clone();

    // Redeeming an old coupon works, and all of it survives a restart.
    let (status, _) = send(
        t.issuer(Method::POST, &format!("/v1/coupons/{a}-3/redeem"))
            .json(&json!({"user_id": "u3"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let t = t.restart_with_clock(clock(&m)).await;
    let (_, c) = send(t.issuer(Method::GET, &format!("/v1/coupons/{a}-5"))).await;
    assert_eq!(
        (c["user_id"].clone(), c["code"].clone()),
        (json!("newcomer"), new_code)
    );
    let (_, c) = send(t.issuer(Method::GET, &format!("/v1/coupons/{a}-3"))).await;
    assert_eq!(c["status"], "redeemed");
    assert_eq!(t.campaign(a).await["issued"], 6);
    t.server.shutdown().await;
}
