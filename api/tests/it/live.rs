//! The live streams (`/v1/campaigns/{id}/events`, `/v1/stores/{id}/events`) and the
//! live page, over real HTTP. The page in a real browser is `live_browser`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestServer, assert_problem, send};

/// One server-sent event.
#[derive(Debug)]
pub struct Event {
    pub id: Option<String>,
    pub name: String,
    pub data: Value,
}

/// A stream being read, event by event.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// Opens `path` with no key, as a shop's page would.
    pub async fn open(base: &str, path: &str, last_event_id: Option<&str>) -> Events {
        let mut req = reqwest::Client::new().get(format!("{base}{path}"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{path}"
        );
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event with data (comments and `retry:` skipped); `None` once the stream
    /// has ended. Waits at most 10 s.
    pub async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if let Some(event) = parse(&block) {
                        return Some(event);
                    }
                }
                match self.response.chunk().await.unwrap() {
                    Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                    None => return None,
                }
            }
        })
        .await
        .expect("an event (or the end of the stream) within 10 s")
    }

    /// Events until one satisfies `done`, which is returned.
    pub async fn until(&mut self, mut done: impl FnMut(&Event) -> bool) -> Event {
        loop {
            let event = self.next().await.expect("the stream goes on");
            if done(&event) {
                return event;
            }
        }
    }
}

fn parse(block: &str) -> Option<Event> {
    let (mut id, mut name, mut data) = (None, "message".to_string(), None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("event: ") {
            name = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            assert!(data.is_none(), "one data line per event: {block}");
            data = Some(serde_json::from_str(v).unwrap());
        }
    }
    Some(Event {
        id,
        name,
        data: data?,
    })
}

async fn server() -> TestServer {
    TestServer::start_configured(|c| firstcome_api::Config {
        live_interval_ms: 20,
        ..c
    })
    .await
}

#[tokio::test]
async fn a_campaign_stream_starts_with_the_state_now_and_follows_it_to_sold_out() {
    let s = server().await;
    let c = s
        .create_campaign(json!({ "name": "Spring sale", "total_stock": 5 }))
        .await;
    let id = c["id"].as_str().unwrap();
    let mut events = Events::open(&s.base, &format!("/v1/campaigns/{id}/events"), None).await;
    let first = events.next().await.unwrap();
    assert_eq!(first.name, "campaign");
    assert!(first.id.is_some());
    let d = &first.data;
    assert_eq!(
        (d["id"].as_str(), d["name"].as_str(), d["status"].as_str()),
        (Some(id), Some("Spring sale"), Some("active"))
    );
    assert_eq!(
        (d["total_stock"].as_u64(), d["issued"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(d["remaining"], 5);
    assert!(
        d.get("per_user_limit").is_none(),
        "the public view only: {d}"
    );
    let mut acknowledged = 0;
    let mut last_issued = 0;
    let mut last_id = first.id.clone();
    for user in 0..5 {
        let (status, _) = s.issue(id, &format!("u{user}")).await;
        assert_eq!(status, StatusCode::CREATED);
        acknowledged += 1;
        // Coalesced: an event may cover several coupons, never more than are durable
        // (here, acknowledged), and counts never go back. Every event read is checked.
        loop {
            let e = events.next().await.expect("the stream goes on");
            let issued = e.data["issued"].as_u64().unwrap();
            assert!(
                issued >= last_issued && issued <= acknowledged,
                "{issued} after {last_issued}, {acknowledged} acknowledged"
            );
            assert_eq!(e.data["remaining"].as_u64().unwrap(), 5 - issued);
            assert_ne!(e.id, last_id, "each event has its own id");
            assert_eq!(e.data["status"] == "sold_out", issued == 5, "{:?}", e.data);
            last_issued = issued;
            last_id = e.id;
            if issued == acknowledged {
                break;
            }
        }
    }
    assert_eq!(last_issued, 5);
    s.server.shutdown().await;
}

#[tokio::test]
async fn a_reconnect_with_the_latest_event_id_is_not_sent_that_event_again() {
    let s = server().await;
    let c = s
        .create_campaign(json!({ "name": "c", "total_stock": 5 }))
        .await;
    let id = c["id"].as_str().unwrap();
    let path = format!("/v1/campaigns/{id}/events");
    let mut events = Events::open(&s.base, &path, None).await;
    let first = events.next().await.unwrap();
    drop(events);
    let mut resumed = Events::open(&s.base, &path, first.id.as_deref()).await;
    s.issue(id, "u1").await;
    let next = resumed.next().await.unwrap();
    assert_eq!(next.data["issued"], 1, "the state it had was sent again");
    // An id from before (another start, a stale tab) gets the state now.
    let mut stale = Events::open(&s.base, &path, Some("0-1")).await;
    assert_eq!(stale.next().await.unwrap().data["issued"], 1);
    s.server.shutdown().await;
}

#[tokio::test]
async fn pausing_closing_and_deleting_are_published_and_a_delete_ends_the_stream() {
    let s = server().await;
    let c = s
        .create_campaign(json!({ "name": "c", "total_stock": 5 }))
        .await;
    let id = c["id"].as_str().unwrap();
    let mut events = Events::open(&s.base, &format!("/v1/campaigns/{id}/events"), None).await;
    events.next().await.unwrap();
    let (status, _) = send(
        s.admin(reqwest::Method::PATCH, &format!("/v1/campaigns/{id}"))
            .json(&json!({ "paused": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    events.until(|e| e.data["status"] == "paused").await;
    let (status, _) = send(
        s.admin(reqwest::Method::PATCH, &format!("/v1/campaigns/{id}"))
            .json(&json!({ "paused": false, "name": "renamed" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let e = events.until(|e| e.data["status"] == "active").await;
    assert_eq!(e.data["name"], "renamed");
    let (status, _) = send(s.admin(reqwest::Method::DELETE, &format!("/v1/campaigns/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let last = events.next().await.unwrap();
    assert_eq!(
        (last.name.as_str(), last.data["id"].as_str()),
        ("deleted", Some(id))
    );
    assert!(events.next().await.is_none(), "the stream ended");
    let (status, body) = send(s.client.get(format!("{}/v1/campaigns/{id}/events", s.base))).await;
    assert_problem(status, &body, 404, "campaign_not_found");
    s.server.shutdown().await;
}

#[tokio::test]
async fn a_store_stream_announces_its_new_campaigns_and_their_counts() {
    let s = server().await;
    let other = s
        .create_campaign(json!({ "name": "elsewhere", "total_stock": 5, "store_id": "other" }))
        .await;
    let mut events = Events::open(&s.base, "/v1/stores/shop-1/events", None).await;
    // No campaign yet: the first campaign of the store is news.
    let starts_at = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(1500);
    let later = s
        .create_campaign(json!({
            "name": "soon", "total_stock": 3, "store_id": "shop-1",
            "starts_at": starts_at.to_string(),
        }))
        .await;
    let later_id = later["id"].as_str().unwrap();
    let e = events.next().await.unwrap();
    assert_eq!(
        (e.name.as_str(), e.data["id"].as_str()),
        ("campaign", Some(later_id))
    );
    assert_eq!(e.data["status"], "scheduled");
    // Its window opens: `activated`, with its counts.
    let e = events.next().await.unwrap();
    assert_eq!(
        (e.name.as_str(), e.data["id"].as_str()),
        ("activated", Some(later_id))
    );
    assert_eq!(
        (e.data["issued"].as_u64(), e.data["remaining"].as_u64()),
        (Some(0), Some(3))
    );
    s.issue(later_id, "u1").await;
    let e = events.next().await.unwrap();
    assert_eq!(
        (e.name.as_str(), e.data["issued"].as_u64()),
        ("campaign", Some(1))
    );
    // Another store's campaign never appears here.
    s.issue(other["id"].as_str().unwrap(), "u1").await;
    // A late subscriber gets the store's campaigns at once.
    let mut late = Events::open(&s.base, "/v1/stores/shop-1/events", None).await;
    let e = late.next().await.unwrap();
    assert_eq!(
        (e.data["id"].as_str(), e.data["issued"].as_u64()),
        (Some(later_id), Some(1))
    );
    s.issue(later_id, "u2").await;
    let e = events.next().await.unwrap();
    assert_eq!(
        (e.data["id"].as_str(), e.data["issued"].as_u64()),
        (Some(later_id), Some(2))
    );
    // A campaign of the store created and deleted: activated, then deleted.
    let gone = s
        .create_campaign(json!({ "name": "gone", "total_stock": 3, "store_id": "shop-1" }))
        .await;
    let gone_id = gone["id"].as_str().unwrap();
    let e = events.next().await.unwrap();
    assert_eq!(
        (e.name.as_str(), e.data["id"].as_str()),
        ("activated", Some(gone_id))
    );
    let (status, _) =
        send(s.admin(reqwest::Method::DELETE, &format!("/v1/campaigns/{gone_id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let e = events.next().await.unwrap();
    assert_eq!(
        (e.name.as_str(), e.data["id"].as_str(), e.id),
        ("deleted", Some(gone_id), None)
    );
    s.server.shutdown().await;
}

#[tokio::test]
async fn a_shutdown_ends_every_stream() {
    let s = server().await;
    let c = s
        .create_campaign(json!({ "name": "c", "total_stock": 5 }))
        .await;
    let id = c["id"].as_str().unwrap();
    let mut campaign = Events::open(&s.base, &format!("/v1/campaigns/{id}/events"), None).await;
    let mut store = Events::open(&s.base, "/v1/stores/any/events", None).await;
    campaign.next().await.unwrap();
    // The shutdown waits up to 30 s for connections; the streams must not hold it.
    tokio::time::timeout(Duration::from_secs(10), s.server.shutdown())
        .await
        .expect("the shutdown did not wait for the streams");
    assert!(campaign.next().await.is_none());
    assert!(store.next().await.is_none());
}

#[tokio::test]
async fn streams_and_the_page_refuse_what_is_not_there() {
    let s = server().await;
    let (status, body) = send(
        s.client
            .get(format!("{}/v1/campaigns/0000000000000000/events", s.base)),
    )
    .await;
    assert_problem(status, &body, 404, "campaign_not_found");
    let (status, body) = send(s.client.get(format!("{}/v1/campaigns/nope/events", s.base))).await;
    assert_problem(status, &body, 404, "campaign_not_found");
    let (status, body) = send(s.client.get(format!("{}/v1/stores/%20/events", s.base))).await;
    assert_problem(status, &body, 400, "invalid_request");
    let (status, body) = send(s.client.get(format!("{}/live/0000000000000000", s.base))).await;
    assert_problem(status, &body, 404, "campaign_not_found");
    s.server.shutdown().await;
}

#[tokio::test]
async fn live_events_turned_off_answer_404_everywhere() {
    let s = TestServer::start_configured(|c| firstcome_api::Config {
        live_events: false,
        ..c
    })
    .await;
    let c = s
        .create_campaign(json!({ "name": "c", "total_stock": 5 }))
        .await;
    let id = c["id"].as_str().unwrap();
    for path in [
        format!("/v1/campaigns/{id}/events"),
        "/v1/stores/shop/events".to_string(),
        format!("/live/{id}"),
    ] {
        let (status, body) = send(s.client.get(format!("{}{path}", s.base))).await;
        assert_problem(status, &body, 404, "live_events_disabled");
    }
    s.server.shutdown().await;
}

#[tokio::test]
async fn the_live_page_speaks_korean_or_english_after_accept_language() {
    let s = server().await;
    let c = s
        .create_campaign(json!({ "name": "c", "total_stock": 5 }))
        .await;
    let id = c["id"].as_str().unwrap();
    let page = |lang: &'static str| {
        s.client
            .get(format!("{}/live/{id}", s.base))
            .header("accept-language", lang)
            .send()
    };
    let ko = page("ko-KR,ko;q=0.9,en;q=0.8").await.unwrap();
    assert_eq!(ko.status(), StatusCode::OK);
    assert_eq!(ko.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(ko.headers()["content-language"], "ko");
    let html = ko.text().await.unwrap();
    assert!(
        html.contains(r#"<html lang="ko">"#) && html.contains("남은 쿠폰"),
        "{html}"
    );
    assert!(html.contains(&format!(r#"data-events="/v1/campaigns/{id}/events""#)));
    let en = page("en-US,en;q=0.9").await.unwrap().text().await.unwrap();
    assert!(en.contains(r#"<html lang="en">"#) && en.contains("coupons left"));
    for (path, kind) in [
        ("/live/assets/live.js", "text/javascript; charset=utf-8"),
        ("/live/assets/live.css", "text/css; charset=utf-8"),
    ] {
        let r = s
            .client
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status(), r.headers()["content-type"].to_str().unwrap()),
            (StatusCode::OK, kind)
        );
    }
    s.server.shutdown().await;
}

#[tokio::test]
async fn streams_beyond_max_live_subscribers_are_refused_until_one_ends() {
    let s = TestServer::start_configured(|c| firstcome_api::Config {
        max_live_subscribers: 1,
        ..c
    })
    .await;
    let c = s
        .create_campaign(json!({ "name": "c", "total_stock": 5 }))
        .await;
    let path = format!("/v1/campaigns/{}/events", c["id"].as_str().unwrap());
    let mut first = Events::open(&s.base, &path, None).await;
    first.next().await.unwrap();
    for over in [path.as_str(), "/v1/stores/shop/events"] {
        let (status, body) = send(s.client.get(format!("{}{over}", s.base))).await;
        assert_problem(status, &body, 503, "overloaded");
    }
    // Issuing is not held up by the streams.
    assert_eq!(
        s.issue(c["id"].as_str().unwrap(), "u1").await.0,
        StatusCode::CREATED
    );
    drop(first);
    // The place is given back when the server sees the stream closed.
    let mut again = crate::helpers::eventually("the place to be given back", || async {
        let r = reqwest::get(format!("{}{path}", s.base)).await.ok()?;
        (r.status() == StatusCode::OK).then_some(r)
    })
    .await;
    assert!(again.chunk().await.unwrap().is_some());
    s.server.shutdown().await;
}
