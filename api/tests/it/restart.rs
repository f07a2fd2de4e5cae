//! A graceful restart on the same data dir changes nothing a client can see.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestServer, assert_problem, send};

#[tokio::test]
async fn campaigns_and_coupons_survive_a_restart_and_issuing_continues() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "durable", "total_stock": 5, "coupon_valid_for_secs": 60}))
        .await;
    let other = t
        .create_campaign(json!({"name": "untouched", "total_stock": 1}))
        .await;
    let cid = c["id"].as_str().unwrap().to_string();
    let mut before = Vec::new();
    for user in ["r1", "r2", "r3"] {
        let (status, body) = t.issue(&cid, user).await;
        assert_eq!(status, StatusCode::CREATED);
        before.push(body["coupon"].clone());
    }
    let campaign_before = t.campaign(&cid).await;
    let (_, list_before) = send(t.issuer(Method::GET, "/v1/campaigns")).await;

    let t = t.restart().await;

    assert_eq!(t.campaign(&cid).await, campaign_before);
    let (_, list_after) = send(t.issuer(Method::GET, "/v1/campaigns")).await;
    assert_eq!(list_after, list_before);
    assert_eq!(t.campaign(other["id"].as_str().unwrap()).await["issued"], 0);
    for (user, coupon) in ["r1", "r2", "r3"].iter().zip(&before) {
        assert_eq!(t.user_coupons(user).await, vec![coupon.clone()]);
        let (status, body) = t.issue(&cid, user).await;
        assert_problem(status, &body, 409, "already_issued");
        assert_eq!(body["coupon_ids"], json!([coupon["id"]]));
    }
    // Stock continues from 3 of 5: two more, then sold out.
    let (s4, b4) = t.issue(&cid, "r4").await;
    let (s5, _) = t.issue(&cid, "r5").await;
    assert_eq!((s4, s5), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(b4["coupon"]["id"], format!("{cid}-3"));
    let (s6, b6) = t.issue(&cid, "r6").await;
    assert_problem(s6, &b6, 409, "sold_out");
    let codes: std::collections::HashSet<_> = before
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .chain([b4["coupon"]["code"].as_str().unwrap().to_string()])
        .collect();
    assert_eq!(codes.len(), 4, "codes stay unique across restarts");
    t.server.shutdown().await;
}
