//! `GET /v1/campaigns/{id}/coupons`: a campaign's coupons as JSON pages and as CSV.

use std::time::Duration;

use firstcome_engine::ManualClock;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestServer, all_coupons, assert_problem, send};

async fn issue_batch(t: &TestServer, cid: &str, users: &[String]) {
    let (status, body) = send(
        t.admin(Method::POST, &format!("/v1/campaigns/{cid}/issue-batch"))
            .json(&json!({ "user_ids": users })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued"], users.len(), "{body}");
}

async fn page(t: &TestServer, cid: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    send(
        t.admin(Method::GET, &format!("/v1/campaigns/{cid}/coupons"))
            .query(query),
    )
    .await
}

async fn csv(t: &TestServer, cid: &str, query: &[(&str, &str)]) -> Vec<csv::StringRecord> {
    let resp = t
        .admin(Method::GET, &format!("/v1/campaigns/{cid}/coupons"))
        .header(header::ACCEPT, "text/csv")
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        firstcome_api::routes::export::CSV_COLUMNS
    );
    reader.records().map(Result::unwrap).collect()
}

/// A coupon as a CSV row gives it.
fn as_row(c: &Value) -> Vec<String> {
    firstcome_api::routes::export::CSV_COLUMNS
        .iter()
        .map(|col| match &c[*col] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_lists_every_coupon_in_seq_order_as_json_pages_and_as_csv() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "export", "total_stock": 5000}))
        .await;
    let cid = c["id"].as_str().unwrap();
    // 2,500 coupons in groups of 1,000 and fewer, some with a comma or a quote in the
    // user id, which CSV must quote.
    for b in 0..3 {
        let n = if b == 2 { 500 } else { 1000 };
        let users: Vec<String> = (0..n).map(|i| format!("u{b},{i}\"x")).collect();
        issue_batch(&t, cid, &users).await;
    }
    // Every seventh coupon redeemed: those are `k` records, the rest group entries.
    let mut redeemed = Vec::new();
    for seq in (0..2500).step_by(7) {
        let id = format!("{cid}-{seq}");
        let (_, coupon) = send(t.issuer(Method::GET, &format!("/v1/coupons/{id}"))).await;
        let (status, body) = send(
            t.issuer(Method::POST, &format!("/v1/coupons/{id}/redeem"))
                .json(&json!({"user_id": coupon["user_id"], "order_id": format!("o-{seq}")})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        redeemed.push(body);
    }

    let all = all_coupons(&t.client, &t.base, cid).await;
    assert_eq!(all.len(), 2500);
    for (seq, coupon) in all.iter().enumerate() {
        assert_eq!(coupon["id"], format!("{cid}-{seq}"));
    }
    // Each as the coupon route reads it.
    for seq in [0, 1, 7, 999, 1000, 2499] {
        let (_, one) = send(t.issuer(Method::GET, &format!("/v1/coupons/{cid}-{seq}"))).await;
        assert_eq!(all[seq], one, "{seq}");
    }
    // Pages of the default size hold 100, and the cursor goes on after the last one.
    let (status, first) = page(&t, cid, &[]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["coupons"].as_array().unwrap().len(), 100);
    assert_eq!(first["next_cursor"], format!("{cid}-99"));

    let (_, only_redeemed) = page(&t, cid, &[("status", "redeemed"), ("limit", "1000")]).await;
    assert_eq!(only_redeemed["coupons"], json!(redeemed));
    assert_eq!(only_redeemed["next_cursor"], Value::Null);

    // The CSV holds the same coupons, row for row, and `limit` caps it.
    let rows = csv(&t, cid, &[]).await;
    assert_eq!(rows.len(), 2500);
    for (row, coupon) in rows.iter().zip(&all) {
        assert_eq!(row.iter().collect::<Vec<_>>(), as_row(coupon));
    }
    let rows = csv(
        &t,
        cid,
        &[("cursor", &format!("{cid}-2000")), ("limit", "300")],
    )
    .await;
    assert_eq!(rows.len(), 300);
    assert_eq!(&rows[0][0], format!("{cid}-2001"));
    let rows = csv(&t, cid, &[("status", "redeemed")]).await;
    assert_eq!(rows.len(), redeemed.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_filters_by_issue_time_and_by_status_as_of_now() {
    let clock = ManualClock::new("2026-11-22T09:00:00Z".parse().unwrap());
    let t = TestServer::start_with_clock(tempfile::tempdir().unwrap(), clock.clone()).await;
    let c = t
        .create_campaign(json!({
            "name": "timed", "total_stock": 100, "coupon_valid_for_secs": 3600
        }))
        .await;
    let cid = c["id"].as_str().unwrap();
    for u in ["early-1", "early-2"] {
        t.issue(cid, u).await;
    }
    clock.advance(Duration::from_secs(1800));
    for u in ["late-1", "late-2", "late-3"] {
        t.issue(cid, u).await;
    }
    let users = |v: &Value| -> Vec<String> {
        v["coupons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, late) = page(&t, cid, &[("issued_after", "2026-11-22T09:30:00Z")]).await;
    assert_eq!(users(&late), ["late-1", "late-2", "late-3"]);
    let (_, early) = page(&t, cid, &[("issued_before", "2026-11-22T09:30:00Z")]).await;
    assert_eq!(users(&early), ["early-1", "early-2"]);
    // An hour after the first issues, those have expired; the others have not.
    clock.advance(Duration::from_secs(1801));
    let (_, expired) = page(&t, cid, &[("status", "expired")]).await;
    assert_eq!(users(&expired), ["early-1", "early-2"]);
    let (_, issued) = page(&t, cid, &[("status", "issued"), ("limit", "2")]).await;
    assert_eq!(users(&issued), ["late-1", "late-2"]);
    assert_eq!(issued["next_cursor"], format!("{cid}-3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_export_request_is_a_problem_before_anything_is_streamed() {
    let t = TestServer::start().await;
    let a = t
        .create_campaign(json!({"name": "a", "total_stock": 5}))
        .await;
    let b = t
        .create_campaign(json!({"name": "b", "total_stock": 5}))
        .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let other_cursor = format!("{b}-0");
    for query in [
        vec![("limit", "0")],
        vec![("limit", "1001")],
        vec![("status", "lost")],
        vec![("cursor", "nonsense")],
        vec![("cursor", other_cursor.as_str())],
        vec![("issued_after", "yesterday")],
        vec![("colour", "red")],
    ] {
        for accept in ["application/json", "text/csv"] {
            let (status, body) = send(
                t.admin(Method::GET, &format!("/v1/campaigns/{a}/coupons"))
                    .header(header::ACCEPT, accept)
                    .query(&query),
            )
            .await;
            assert_problem(status, &body, 400, "invalid_request");
        }
    }
    for accept in ["application/json", "text/csv"] {
        let (status, body) = send(
            t.admin(Method::GET, "/v1/campaigns/0000000000000000/coupons")
                .header(header::ACCEPT, accept),
        )
        .await;
        assert_problem(status, &body, 404, "campaign_not_found");
        let (status, body) = send(
            t.issuer(Method::GET, &format!("/v1/campaigns/{a}/coupons"))
                .header(header::ACCEPT, accept),
        )
        .await;
        assert_problem(status, &body, 403, "forbidden");
    }
    // An empty campaign: an empty page, and a CSV of its header alone.
    let (_, empty) = page(&t, a, &[]).await;
    assert_eq!(empty, json!({"coupons": [], "next_cursor": null}));
    assert!(csv(&t, a, &[]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_passes_few_coupons_ends_a_page_early_with_a_cursor() {
    let t = TestServer::start().await;
    let c = t
        .create_campaign(json!({"name": "sparse", "total_stock": 25_000}))
        .await;
    let cid = c["id"].as_str().unwrap();
    for b in 0..25 {
        let users: Vec<String> = (0..1000).map(|i| format!("s{b}-{i}")).collect();
        issue_batch(&t, cid, &users).await;
    }
    // The last coupon redeemed: a page reads 20,000 coupons at most, so the first page
    // is empty and says where to go on; the second finds it.
    let last = format!("{cid}-24999");
    let (status, body) = send(
        t.issuer(Method::POST, &format!("/v1/coupons/{last}/redeem"))
            .json(&json!({"user_id": "s24-999"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, first) = page(&t, cid, &[("status", "redeemed")]).await;
    assert_eq!(first["coupons"], json!([]));
    assert_eq!(first["next_cursor"], format!("{cid}-19999"));
    let (_, second) = page(
        &t,
        cid,
        &[("status", "redeemed"), ("cursor", &format!("{cid}-19999"))],
    )
    .await;
    assert_eq!(second["coupons"], json!([body]));
    assert_eq!(second["next_cursor"], Value::Null);
    // CSV goes through in one answer; `text/csv;q=0` asks for anything but CSV.
    assert_eq!(csv(&t, cid, &[("status", "redeemed")]).await.len(), 1);
    let (status, json_page) = send(
        t.admin(Method::GET, &format!("/v1/campaigns/{cid}/coupons"))
            .header(header::ACCEPT, "text/csv;q=0, application/json")
            .query(&[("limit", "1")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_page["coupons"].as_array().unwrap().len(), 1);
}
