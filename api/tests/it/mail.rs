//! The mailer end to end: the real server, lettre's SMTP client, and a real SMTP server
//! on loopback in this process (`smtp.rs`, mailin-embedded). No mock transport.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestServer, assert_problem, eventually, send, smtp_mail};
use crate::smtp::{Behaviour, SmtpServer, free_port};

const WAIT: Duration = Duration::from_secs(30);

async fn mail_server(smtp_port: u16) -> TestServer {
    TestServer::start_with_mail(
        tempfile::tempdir().unwrap(),
        Arc::new(firstcome_engine::SystemClock),
        smtp_mail(smtp_port),
    )
    .await
}

async fn put_contact(s: &TestServer, user: &str, email: &str, locale: Option<&str>) {
    let (status, v) = send(
        s.issuer(Method::PUT, &format!("/v1/users/{user}/contact"))
            .json(&json!({ "email": email, "locale": locale })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

async fn dead_letters(s: &TestServer) -> Vec<Value> {
    let (status, v) = send(s.admin(Method::GET, "/v1/mail/dead")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["dead_letters"].as_array().unwrap().clone()
}

async fn outbox_len(s: &TestServer) -> usize {
    s.server.engine.outbox_len().await.unwrap()
}

#[tokio::test]
async fn a_confirmation_arrives_with_the_coupon_and_a_message_id_from_its_cause() {
    let smtp = SmtpServer::start();
    let s = mail_server(smtp.port()).await;
    put_contact(&s, "alice", "alice@example.com", Some("en")).await;
    let c = s
        .create_campaign(json!({
            "name": "Winter <Sale>", "total_stock": 10, "coupon_valid_for_secs": 3 * 86_400,
            "discount": { "kind": "percent", "value": 15, "max_discount_amount": 5000 }
        }))
        .await;
    let id = c["id"].as_str().unwrap();
    let (status, v) = s.issue(id, "alice").await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let coupon = &v["coupon"];
    let coupon_id = coupon["id"].as_str().unwrap();
    // Bob gives his address with the issue request itself, in Korean.
    let (status, bob) = send(
        s.issuer(Method::POST, &format!("/v1/campaigns/{id}/issue"))
            .json(&json!({ "user_id": "bob", "email": "bob@example.kr", "locale": "ko-KR" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bob}");
    // Carol has no contact: her coupon is issued and no mail is written for it.
    let (status, _) = s.issue(id, "carol").await;
    assert_eq!(status, StatusCode::CREATED);

    let got = smtp.wait_for(2, WAIT).await;
    let by_to: HashMap<&str, _> = got.iter().map(|m| (m.to[0].as_str(), m)).collect();
    let alice = by_to["alice@example.com"];
    assert_eq!(
        alice.message_id,
        format!("confirmation.{coupon_id}@shop.test"),
        "derived from the cause"
    );
    assert!(alice.from.contains("coupons@shop.test"), "{}", alice.from);
    assert!(alice.subject.contains("Winter <Sale>"), "{}", alice.subject);
    let code = coupon["code"].as_str().unwrap();
    assert!(
        alice.text.contains(code),
        "the code is in the text: {}",
        alice.text
    );
    assert!(alice.text.contains("15%"), "the discount: {}", alice.text);
    let html = alice.html.as_deref().expect("an HTML part");
    assert!(
        html.contains(code) && html.contains("Winter &lt;Sale&gt;"),
        "{html}"
    );
    let bob_mail = by_to["bob@example.kr"];
    let bob_coupon = bob["coupon"]["id"].as_str().unwrap();
    assert_eq!(
        bob_mail.message_id,
        format!("confirmation.{bob_coupon}@shop.test")
    );
    assert!(
        bob_mail.text.contains("할인"),
        "Korean for ko-KR: {}",
        bob_mail.text
    );
    // The contact set by the issue request is stored.
    let (status, contact) = send(s.issuer(Method::GET, "/v1/users/bob/contact")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contact["email"], "bob@example.kr");
    assert_eq!(contact["locale"], "ko-KR");
    // Sent mail leaves the outbox once its "sent" mark is durable.
    eventually("an empty outbox", || async {
        (outbox_len(&s).await == 0).then_some(())
    })
    .await;
    assert_eq!(smtp.received().len(), 2, "nothing for carol, nothing twice");
    // The recorder is global to this test process (other tests send mail too), so
    // only the series' presence is checked, not its value.
    let (_, metrics) = send(s.admin(Method::GET, "/metrics")).await;
    let metrics = metrics.as_str().unwrap().to_string();
    for series in [
        "firstcome_mail_sent_total{kind=\"confirmation\"}",
        "firstcome_mail_outbox_depth",
        "firstcome_mail_send_duration_seconds",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    s.server.shutdown().await;
}

#[tokio::test]
async fn a_451_is_retried_with_backoff_until_the_server_accepts() {
    let smtp = SmtpServer::start();
    smtp.set_behaviour(Behaviour::Transient);
    let s = mail_server(smtp.port()).await;
    put_contact(&s, "u1", "u1@example.com", None).await;
    let c = s
        .create_campaign(json!({ "name": "Retry", "total_stock": 5 }))
        .await;
    let (status, _) = s.issue(c["id"].as_str().unwrap(), "u1").await;
    assert_eq!(status, StatusCode::CREATED);
    // Refused with 451 several times: each refusal is a retry, not a dead letter.
    eventually("three refused attempts", || async {
        (smtp.attempts() >= 3).then_some(())
    })
    .await;
    assert!(smtp.received().is_empty());
    assert!(dead_letters(&s).await.is_empty(), "451 is transient");
    smtp.set_behaviour(Behaviour::Accept);
    let got = smtp.wait_for(1, WAIT).await;
    assert_eq!(got[0].to, vec!["u1@example.com".to_string()]);
    eventually("an empty outbox", || async {
        (outbox_len(&s).await == 0).then_some(())
    })
    .await;
    assert_eq!(smtp.received().len(), 1);
    let (_, metrics) = send(s.admin(Method::GET, "/metrics")).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("firstcome_mail_retried_total{kind=\"confirmation\"}"),
        "{metrics}"
    );
    s.server.shutdown().await;
}

#[tokio::test]
async fn a_550_is_a_dead_letter_at_once_and_the_retry_endpoint_sends_it() {
    let smtp = SmtpServer::start();
    smtp.reject_recipient("nobody@example.com");
    let s = mail_server(smtp.port()).await;
    put_contact(&s, "u1", "nobody@example.com", None).await;
    let c = s
        .create_campaign(json!({ "name": "Dead", "total_stock": 5 }))
        .await;
    let (status, v) = s.issue(c["id"].as_str().unwrap(), "u1").await;
    assert_eq!(status, StatusCode::CREATED);
    let coupon_id = v["coupon"]["id"].as_str().unwrap().to_string();
    let dead = eventually("a dead letter", || async {
        let d = dead_letters(&s).await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dead.len(), 1);
    let job = &dead[0];
    assert_eq!(job["kind"], "confirmation");
    assert_eq!(job["coupon_id"], coupon_id.as_str());
    assert_eq!(job["attempts"], 1, "5xx is permanent: no retries");
    assert!(job["last_error"].as_str().unwrap().contains("550"), "{job}");
    assert_eq!(outbox_len(&s).await, 0);
    // The issuer key may not touch the dead letters.
    let (status, body) = send(s.issuer(Method::GET, "/v1/mail/dead")).await;
    assert_problem(status, &body, 403, "forbidden");
    let (status, body) = send(s.admin(Method::POST, "/v1/mail/dead/nope/retry")).await;
    assert_problem(status, &body, 404, "dead_letter_not_found");

    smtp.allow_recipient("nobody@example.com");
    let job_id = job["id"].as_str().unwrap();
    let (status, v) = send(s.admin(Method::POST, &format!("/v1/mail/dead/{job_id}/retry"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let got = smtp.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].message_id,
        format!("confirmation.{coupon_id}@shop.test")
    );
    assert!(dead_letters(&s).await.is_empty());
    // A second retry of the same letter finds nothing.
    let (status, body) =
        send(s.admin(Method::POST, &format!("/v1/mail/dead/{job_id}/retry"))).await;
    assert_problem(status, &body, 404, "dead_letter_not_found");
    s.server.shutdown().await;
}

#[tokio::test]
async fn a_burst_while_the_server_is_down_is_all_delivered_once_it_is_back() {
    const USERS: usize = 1000;
    let port = free_port();
    let s = mail_server(port).await;
    let c = s
        .create_campaign(json!({ "name": "Burst", "total_stock": USERS }))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    // Every issue carries the user's address; the SMTP server is down throughout.
    let coupons: Vec<(String, String)> = futures::stream::iter(0..USERS)
        .map(|i| {
            let req = s
                .issuer(Method::POST, &format!("/v1/campaigns/{id}/issue"))
                .json(&json!({ "user_id": format!("u{i}"), "email": format!("u{i}@example.com") }));
            async move {
                let (status, v) = send(req).await;
                assert_eq!(status, StatusCode::CREATED, "{v}");
                (
                    format!("u{i}@example.com"),
                    v["coupon"]["id"].as_str().unwrap().to_string(),
                )
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(outbox_len(&s).await > 0, "the mail waits in the outbox");
    let smtp = SmtpServer::start_on(port);
    let got = smtp.wait_for(USERS, Duration::from_secs(120)).await;
    eventually("an empty outbox", || async {
        (outbox_len(&s).await == 0).then_some(())
    })
    .await;
    let got = smtp.received().len().max(got.len());
    let received = smtp.received();
    assert_eq!(received.len(), got);
    // Every coupon's confirmation arrived, to its holder, under the Message-ID of its
    // cause. A resend (at least once) would carry the same Message-ID, never a new one.
    let mut ids_by_to: HashMap<String, HashSet<String>> = HashMap::new();
    for m in &received {
        ids_by_to
            .entry(m.to[0].clone())
            .or_default()
            .insert(m.message_id.clone());
    }
    assert_eq!(ids_by_to.len(), USERS);
    for (to, coupon_id) in &coupons {
        let ids = &ids_by_to[to];
        assert_eq!(
            ids,
            &HashSet::from([format!("confirmation.{coupon_id}@shop.test")]),
            "{to}"
        );
    }
    assert!(dead_letters(&s).await.is_empty());
    s.server.shutdown().await;
}

#[tokio::test]
async fn without_smtp_mail_is_written_as_eml_files_in_the_data_dir() {
    // The quickstart's configuration: no [mail.smtp] table.
    let s = TestServer::start().await;
    let c = s
        .create_campaign(json!({ "name": "Files", "total_stock": 3 }))
        .await;
    let (status, v) = send(
        s.issuer(
            Method::POST,
            &format!("/v1/campaigns/{}/issue", c["id"].as_str().unwrap()),
        )
        .json(&json!({ "user_id": "u1", "email": "u1@example.com" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let coupon_id = v["coupon"]["id"].as_str().unwrap();
    let dir = s.dir.path().join("mail");
    let eml = eventually("an .eml file", || {
        let dir = dir.clone();
        async move {
            let entry = std::fs::read_dir(&dir)
                .ok()?
                .flatten()
                .find(|e| e.path().extension().is_some_and(|x| x == "eml"))?;
            std::fs::read_to_string(entry.path()).ok()
        }
    })
    .await;
    assert!(
        eml.contains(&format!("confirmation.{coupon_id}@firstcome.invalid")),
        "{eml}"
    );
    assert!(eml.contains("u1@example.com"), "{eml}");
    eventually("an empty outbox", || async {
        (outbox_len(&s).await == 0).then_some(())
    })
    .await;
    s.server.shutdown().await;
}
