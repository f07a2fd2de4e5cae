//! The mail that time causes (reminders before a coupon expires, announcements when a
//! campaign becomes active), and the contact and subscription APIs behind them. Real
//! server, real sled, real SMTP on loopback (`smtp.rs`), and a `ManualClock`.
//!
//! # Proving that nothing was sent
//!
//! Reminders and announcements are written by a campaign actor's timer tick (once a
//! second, real time), which reads the clock when it runs. Moving the `ManualClock`
//! therefore does nothing at once, and "no mail" cannot be checked right after moving it:
//! the tick may simply not have run yet. Nor can it be checked after a sleep (a slow
//! machine makes any sleep too short). Instead each negative check waits for a *witness*:
//! a mail that only a tick of the same campaign actor, running at the clock as it now is,
//! can cause, and whose job would be written in the same batch as the mail that must not
//! exist. Then it waits for an empty outbox with no dead letters: every job written so
//! far has been sent (a job leaves the outbox only once its send succeeded, or as a dead
//! letter). Only then are the received mails counted.
//!
//! The witnesses are reminders of other coupons of the same campaign, issued at times
//! chosen so that each comes due exactly at the step that needs it. One tick handles
//! every reminder due at its clock reading in one round and commits their jobs in one
//! batch; so had the reminder under test been (wrongly) due, it would be in the witness's
//! batch, and the empty outbox means it would have been delivered by then.

use std::sync::Arc;

use firstcome_api::config::MailSettings;
use firstcome_engine::ManualClock;
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestServer, assert_problem, eventually, send, smtp_mail};
use crate::smtp::{ReceivedMail, SmtpServer};

const HOUR: i64 = 3_600;
const DAY: i64 = 24 * HOUR;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs)).unwrap()
}

/// A server mailing to `smtp`, reading time from `clock`, reminding 24 h before expiry.
async fn mail_server(smtp: &SmtpServer, clock: &ManualClock) -> TestServer {
    let mail = MailSettings {
        reminder_before_secs: DAY as u64,
        ..smtp_mail(smtp.port())
    };
    TestServer::start_with_mail(tempfile::tempdir().unwrap(), Arc::new(clock.clone()), mail).await
}

async fn put_contact(s: &TestServer, user: &str, email: &str) {
    let (status, v) = send(
        s.issuer(Method::PUT, &format!("/v1/users/{user}/contact"))
            .json(&json!({ "email": email })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

fn email_of(user: &str) -> String {
    format!("{user}@example.com")
}

/// Waits until every job written so far has left the outbox, and checks that none of
/// them did so as a dead letter: so each was sent, and is in the SMTP server's record.
async fn outbox_empty(s: &TestServer) {
    eventually("an empty outbox", || async {
        (s.server.engine.outbox_len().await.unwrap() == 0).then_some(())
    })
    .await;
    let (status, v) = send(s.admin(Method::GET, "/v1/mail/dead")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["dead_letters"], json!([]), "no mail was given up on");
}

fn kind(m: &ReceivedMail) -> &str {
    m.header("X-Firstcome-Kind").unwrap_or_default()
}

/// The received mails of one kind, in order of arrival.
fn of_kind(smtp: &SmtpServer, k: &str) -> Vec<ReceivedMail> {
    smtp.received()
        .into_iter()
        .filter(|m| kind(m) == k)
        .collect()
}

/// The Message-IDs of the received mails of one kind, in order of arrival.
fn ids_of_kind(smtp: &SmtpServer, k: &str) -> Vec<String> {
    of_kind(smtp, k).into_iter().map(|m| m.message_id).collect()
}

/// Waits for `n` mails of kind `k` (at least), then for an empty outbox.
async fn wait_kind(s: &TestServer, smtp: &SmtpServer, k: &str, n: usize) {
    eventually(&format!("{n} {k} mails"), || async {
        (of_kind(smtp, k).len() >= n).then_some(())
    })
    .await;
    outbox_empty(s).await;
}

/// Waits for the mail with this Message-ID (the witness), then for an empty outbox (see
/// the module's comment); returns the witness.
async fn witness(s: &TestServer, smtp: &SmtpServer, message_id: &str) -> ReceivedMail {
    let m = eventually(message_id, || async {
        smtp.received()
            .into_iter()
            .find(|m| m.message_id == message_id)
    })
    .await;
    outbox_empty(s).await;
    m
}

fn reminder_id(coupon_id: &str) -> String {
    format!("reminder.{coupon_id}@shop.test")
}

fn confirmation_id(coupon_id: &str) -> String {
    format!("confirmation.{coupon_id}@shop.test")
}

fn new_campaign_id(campaign_id: &str, user: &str) -> String {
    format!("new_campaign.{campaign_id}.{user}@shop.test")
}

fn str_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_string()
}

/// Issues to `user` and returns the coupon, asserting 201.
async fn issue_ok(s: &TestServer, campaign_id: &str, user: &str) -> Value {
    let (status, v) = s.issue(campaign_id, user).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v["coupon"].clone()
}

async fn get_coupon(s: &TestServer, coupon_id: &str) -> Value {
    let (status, v) = send(s.issuer(Method::GET, &format!("/v1/coupons/{coupon_id}"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

async fn subscribe(s: &TestServer, user: &str, store: &str) -> (StatusCode, Value) {
    send(
        s.issuer(Method::POST, "/v1/subscriptions")
            .json(&json!({ "user_id": user, "store_id": store })),
    )
    .await
}

async fn subscriptions(s: &TestServer, user: &str) -> Value {
    let (status, v) = send(s.issuer(Method::GET, &format!("/v1/users/{user}/subscriptions"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn a_reminder_is_sent_once_at_its_time_and_not_for_a_redeemed_coupon() {
    let t0 = at("2026-11-20T12:00:00Z");
    let clock = ManualClock::new(t0);
    let smtp = SmtpServer::start();
    let s = mail_server(&smtp, &clock).await;
    for u in ["u1", "u2", "u3", "u4", "u5"] {
        put_contact(&s, u, &email_of(u)).await;
    }
    let c = s
        .create_campaign(json!({
            "name": "Three Days", "total_stock": 10, "coupon_valid_for_secs": 3 * DAY,
        }))
        .await;
    let cid = str_of(&c, "id");

    // Every coupon is valid 3 days and reminded 2 days after its issue. u1 and u2 (at
    // T0+1h) are the coupons under test; u3, u4 and u5 are witnesses (see the module's
    // comment), issued so that their reminders come due at T0+2d (before u1's), T0+2d+2h
    // (after u1's, while u1's coupon is still valid) and T0+2d+12h (after u1's expiry
    // at T0+3d+1h).
    let c3 = str_of(&issue_ok(&s, &cid, "u3").await, "id");
    clock.set(plus(t0, HOUR));
    let coupon1 = issue_ok(&s, &cid, "u1").await;
    let coupon2 = issue_ok(&s, &cid, "u2").await;
    let (c1, c2) = (str_of(&coupon1, "id"), str_of(&coupon2, "id"));
    let expires = at(coupon1["expires_at"].as_str().unwrap());
    assert_eq!(expires, plus(t0, HOUR + 3 * DAY));
    assert_eq!(coupon2["expires_at"], coupon1["expires_at"]);
    wait_kind(&s, &smtp, "confirmation", 3).await;
    let confirmations = ids_of_kind(&smtp, "confirmation");
    for c in [&c3, &c1, &c2] {
        assert!(
            confirmations.contains(&confirmation_id(c)),
            "{confirmations:?}"
        );
    }
    let (status, v) = send(
        s.issuer(Method::POST, &format!("/v1/coupons/{c2}/redeem"))
            .json(&json!({ "user_id": "u2" })),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::OK, Some("redeemed")),
        "{v}"
    );
    clock.set(plus(t0, 2 * HOUR));
    let c4 = str_of(&issue_ok(&s, &cid, "u4").await, "id");
    clock.set(plus(t0, 12 * HOUR));
    let c5 = str_of(&issue_ok(&s, &cid, "u5").await, "id");
    wait_kind(&s, &smtp, "confirmation", 5).await;
    assert!(of_kind(&smtp, "reminder").is_empty());

    // One second before u1's reminder is due: u3's is due, so a tick at this time has
    // run once it arrives; u1's (and u2's) were not sent with it.
    let remind_at = plus(expires, -DAY);
    clock.set(plus(remind_at, -1));
    witness(&s, &smtp, &reminder_id(&c3)).await;
    assert_eq!(ids_of_kind(&smtp, "reminder"), vec![reminder_id(&c3)]);

    // Past it: u1's reminder, and none for u2, whose coupon is redeemed (its reminder
    // came due in the same round as u1's).
    clock.set(plus(remind_at, 1));
    let m = witness(&s, &smtp, &reminder_id(&c1)).await;
    assert_eq!(
        ids_of_kind(&smtp, "reminder"),
        vec![reminder_id(&c3), reminder_id(&c1)],
        "exactly one more: u1's, none for u2's redeemed coupon"
    );
    assert_eq!(m.to, vec![email_of("u1")]);
    assert_eq!(kind(&m), "reminder");
    let code = coupon1["code"].as_str().unwrap();
    assert!(m.text.contains(code), "the code: {}", m.text);
    let expiry = expires.strftime("%Y-%m-%d %H:%M UTC").to_string();
    assert!(m.subject.contains(&expiry), "{}", m.subject);
    assert!(m.text.contains("Three Days"), "{}", m.text);

    // Later, while u1's coupon is still valid: a tick that runs after u1's reminder (it
    // sends u4's) does not send u1's again.
    clock.set(plus(t0, 2 * DAY + 2 * HOUR + 1));
    witness(&s, &smtp, &reminder_id(&c4)).await;
    assert_eq!(
        ids_of_kind(&smtp, "reminder"),
        vec![reminder_id(&c3), reminder_id(&c1), reminder_id(&c4)]
    );

    // Past u1's expiry: the tick that sends u5's reminder also expires u1's coupon (and
    // u3's); still one reminder for u1, in total.
    clock.set(plus(expires, 1));
    witness(&s, &smtp, &reminder_id(&c5)).await;
    assert_eq!(
        ids_of_kind(&smtp, "reminder"),
        vec![
            reminder_id(&c3),
            reminder_id(&c1),
            reminder_id(&c4),
            reminder_id(&c5),
        ]
    );
    assert_eq!(get_coupon(&s, &c1).await["status"], "expired");
    assert_eq!(get_coupon(&s, &c3).await["status"], "expired");
    assert_eq!(get_coupon(&s, &c2).await["status"], "redeemed");
    assert_eq!(get_coupon(&s, &c4).await["status"], "issued");
    let (status, stats) = send(s.admin(Method::GET, &format!("/v1/campaigns/{cid}/stats"))).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        (&stats["issued"], &stats["redeemed"], &stats["expired"]),
        (&json!(5), &json!(1), &json!(2)),
        "{stats}"
    );
    // Each reminder once, to its holder; nothing but confirmations and reminders.
    let all = smtp.received();
    assert_eq!(all.len(), 9, "5 confirmations and 4 reminders");
    for (c, u) in [(&c3, "u3"), (&c1, "u1"), (&c4, "u4"), (&c5, "u5")] {
        let to: Vec<_> = all
            .iter()
            .filter(|m| m.message_id == reminder_id(c))
            .map(|m| m.to.clone())
            .collect();
        assert_eq!(to, vec![vec![email_of(u)]], "{c}");
    }
    s.server.shutdown().await;
}

#[tokio::test]
async fn a_coupon_issued_inside_its_reminder_window_gets_no_reminder() {
    let t0 = at("2026-11-20T12:00:00Z");
    let clock = ManualClock::new(t0);
    let smtp = SmtpServer::start();
    let s = mail_server(&smtp, &clock).await;
    put_contact(&s, "u1", &email_of("u1")).await;
    put_contact(&s, "u2", &email_of("u2")).await;
    // Coupons valid until the campaign ends: 12 h from now, inside the 24 h window.
    let c = s
        .create_campaign(json!({
            "name": "Short", "total_stock": 10, "ends_at": plus(t0, 12 * HOUR).to_string(),
        }))
        .await;
    let cid = str_of(&c, "id");
    let short = issue_ok(&s, &cid, "u1").await;
    let short_id = str_of(&short, "id");
    assert_eq!(
        at(short["expires_at"].as_str().unwrap()),
        plus(t0, 12 * HOUR)
    );
    // Its confirmation says when it expires instead.
    let confirmation = witness(&s, &smtp, &confirmation_id(&short_id)).await;
    assert!(
        confirmation
            .text
            .contains("Valid until: 2026-11-21 00:00 UTC"),
        "{}",
        confirmation.text
    );

    // The witness: the campaign is extended to T0+26h, so a coupon issued now is
    // reminded at T0+2h. Had u1's coupon a reminder, it would be due by then at the
    // latest (its expiry less 24 h is in the past), in the same round as u2's.
    let (status, v) = send(
        s.admin(Method::PATCH, &format!("/v1/campaigns/{cid}"))
            .json(&json!({ "ends_at": plus(t0, 26 * HOUR).to_string() })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let long_id = str_of(&issue_ok(&s, &cid, "u2").await, "id");
    clock.set(plus(t0, 2 * HOUR + 1));
    witness(&s, &smtp, &reminder_id(&long_id)).await;
    assert_eq!(ids_of_kind(&smtp, "reminder"), vec![reminder_id(&long_id)]);
    assert_eq!(
        get_coupon(&s, &short_id).await["expires_at"],
        short["expires_at"],
        "the extension does not change an issued coupon"
    );
    s.server.shutdown().await;
}

#[tokio::test]
async fn subscribers_get_one_new_campaign_mail_per_campaign() {
    let t0 = at("2026-11-20T12:00:00Z");
    let clock = ManualClock::new(t0);
    let smtp = SmtpServer::start();
    let s = mail_server(&smtp, &clock).await;
    for u in ["u1", "u2", "u4"] {
        put_contact(&s, u, &email_of(u)).await;
    }
    // u3 subscribes without a contact; u4 subscribes to another store.
    for (u, store) in [("u1", "s1"), ("u2", "s1"), ("u3", "s1"), ("u4", "s2")] {
        let (status, v) = subscribe(&s, u, store).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(v, json!({ "user_id": u, "store_id": store }));
    }
    let (status, v) = subscribe(&s, "u1", "s1").await;
    assert_eq!(status, StatusCode::OK, "already subscribed: {v}");
    assert_eq!(v, json!({ "user_id": "u1", "store_id": "s1" }));
    let subs = subscriptions(&s, "u1").await;
    assert_eq!(
        subs["subscriptions"],
        json!([{ "user_id": "u1", "store_id": "s1" }]),
        "{subs}"
    );

    // Active at creation: announced at once to u1 and u2. Their two jobs are written in
    // one batch (one fan-out round), so once both arrived and the outbox is empty no
    // other job of this announcement exists.
    let a = s
        .create_campaign(json!({ "name": "Spring Sale", "total_stock": 10, "store_id": "s1" }))
        .await;
    let a_id = str_of(&a, "id");
    wait_kind(&s, &smtp, "new_campaign", 2).await;
    let got = of_kind(&smtp, "new_campaign");
    assert_eq!(got.len(), 2);
    for u in ["u1", "u2"] {
        let m = got
            .iter()
            .find(|m| m.to == vec![email_of(u)])
            .unwrap_or_else(|| panic!("{u}: {got:?}"));
        assert_eq!(m.message_id, new_campaign_id(&a_id, u));
        assert!(m.subject.contains("Spring Sale"), "{}", m.subject);
    }

    // Starting in an hour: nothing yet. The actor's first tick (cast when it starts,
    // before any request reaches it) is done once a request through the same actor is
    // answered (GET); its announcement, had it made one, was committed before that
    // answer. A confirmation committed after it is sent by a dispatcher round that
    // first expands pending announcements, so once it has arrived and the outbox is
    // empty an early announcement would have been delivered.
    let b = s
        .create_campaign(json!({
            "name": "Summer Sale", "total_stock": 10, "store_id": "s1",
            "starts_at": plus(t0, HOUR).to_string(),
        }))
        .await;
    let b_id = str_of(&b, "id");
    assert_eq!(s.campaign(&b_id).await["status"], "scheduled");
    let c4 = str_of(&issue_ok(&s, &a_id, "u4").await, "id");
    witness(&s, &smtp, &confirmation_id(&c4)).await;
    assert_eq!(
        of_kind(&smtp, "new_campaign").len(),
        2,
        "nothing before starts_at"
    );

    // Once it has started: one each for u1 and u2.
    clock.set(plus(t0, HOUR + 1));
    wait_kind(&s, &smtp, "new_campaign", 4).await;
    let mut ids = ids_of_kind(&smtp, "new_campaign");
    ids.sort();
    let mut want = vec![
        new_campaign_id(&a_id, "u1"),
        new_campaign_id(&a_id, "u2"),
        new_campaign_id(&b_id, "u1"),
        new_campaign_id(&b_id, "u2"),
    ];
    want.sort();
    assert_eq!(ids, want);
    for m in of_kind(&smtp, "new_campaign") {
        if m.message_id.contains(&b_id) {
            assert!(m.subject.contains("Summer Sale"), "{}", m.subject);
        }
    }

    // After a restart neither campaign is announced again. Had one forgotten that it
    // was announced, its actor would announce on its first tick, cast before any
    // request reaches it; so once u1's coupons of both (issued after the restart) are
    // confirmed and the outbox is empty, any second announcement would have arrived.
    let s = s.restart_with_clock(clock.clone()).await;
    let ua = str_of(&issue_ok(&s, &a_id, "u1").await, "id");
    let ub = str_of(&issue_ok(&s, &b_id, "u1").await, "id");
    witness(&s, &smtp, &confirmation_id(&ua)).await;
    witness(&s, &smtp, &confirmation_id(&ub)).await;
    assert_eq!(
        of_kind(&smtp, "new_campaign").len(),
        4,
        "nothing sent again"
    );

    // Unsubscribing: 204, then 404; u2 hears nothing of a later campaign (u1, still
    // subscribed, does, in the same fan-out round).
    let (status, body) = send(s.issuer(Method::DELETE, "/v1/subscriptions/u2/s1")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = send(s.issuer(Method::DELETE, "/v1/subscriptions/u2/s1")).await;
    assert_problem(status, &body, 404, "subscription_not_found");
    let subs = subscriptions(&s, "u2").await;
    assert_eq!(subs["subscriptions"], json!([]), "{subs}");
    let c = s
        .create_campaign(json!({ "name": "Autumn Sale", "total_stock": 10, "store_id": "s1" }))
        .await;
    let c_id = str_of(&c, "id");
    witness(&s, &smtp, &new_campaign_id(&c_id, "u1")).await;
    let ids = ids_of_kind(&smtp, "new_campaign");
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert!(!ids.contains(&new_campaign_id(&c_id, "u2")), "{ids:?}");
    // u3 (no contact) and u4 (another store) never got one.
    let to: Vec<_> = of_kind(&smtp, "new_campaign")
        .into_iter()
        .flat_map(|m| m.to)
        .collect();
    assert!(
        !to.contains(&email_of("u3")) && !to.contains(&email_of("u4")),
        "{to:?}"
    );
    s.server.shutdown().await;
}

#[tokio::test]
async fn contacts_are_validated_and_can_be_read_and_deleted() {
    let smtp = SmtpServer::start();
    let clock = ManualClock::new(at("2026-11-20T12:00:00Z"));
    let s = mail_server(&smtp, &clock).await;
    let put = |user: &str, body: Value| {
        send(
            s.issuer(Method::PUT, &format!("/v1/users/{user}/contact"))
                .json(&body),
        )
    };
    let get = |user: &str| send(s.issuer(Method::GET, &format!("/v1/users/{user}/contact")));

    let long = format!("{}@example.com", "a".repeat(288));
    assert_eq!(long.len(), 300);
    for email in ["not-an-email", "a@", "", &long] {
        let (status, body) = put("u1", json!({ "email": email })).await;
        assert_problem(status, &body, 400, "invalid_request");
        let (status, body) = get("u1").await;
        assert_problem(status, &body, 404, "contact_not_found");
    }
    for locale in ["k", "ko_KR", "1ko"] {
        let (status, body) =
            put("u1", json!({ "email": "u1@example.com", "locale": locale })).await;
        assert_problem(status, &body, 400, "invalid_request");
        let (status, body) = get("u1").await;
        assert_problem(status, &body, 404, "contact_not_found");
    }

    // An issue request with a bad contact is refused whole: no coupon, no contact.
    let c = s
        .create_campaign(json!({ "name": "Contacts", "total_stock": 10 }))
        .await;
    let cid = str_of(&c, "id");
    let issue = |body: Value| {
        send(
            s.issuer(Method::POST, &format!("/v1/campaigns/{cid}/issue"))
                .json(&body),
        )
    };
    let (status, body) = issue(json!({ "user_id": "u9", "email": "not-an-email" })).await;
    assert_problem(status, &body, 400, "invalid_request");
    let (status, body) = issue(json!({ "user_id": "u9", "locale": "en" })).await;
    assert_problem(status, &body, 400, "invalid_request");
    let (status, body) =
        issue(json!({ "user_id": "u9", "email": "u9@example.com", "locale": "ko_KR" })).await;
    assert_problem(status, &body, 400, "invalid_request");
    assert!(s.user_coupons("u9").await.is_empty());
    let (status, body) = get("u9").await;
    assert_problem(status, &body, 404, "contact_not_found");
    assert_eq!(s.campaign(&cid).await["issued"], 0);

    // A good one: 200 with what was stored; GET gives the same.
    let (status, v) = put(
        "u1",
        json!({ "email": "u1@example.com", "locale": "ko-KR" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user_id"], "u1");
    assert_eq!(v["email"], "u1@example.com");
    assert_eq!(v["locale"], "ko-KR");
    assert_eq!(
        at(v["updated_at"].as_str().unwrap()),
        at("2026-11-20T12:00:00Z")
    );
    let (status, got) = get("u1").await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, v);
    // A bad one does not replace it.
    let (status, body) = put("u1", json!({ "email": "a@" })).await;
    assert_problem(status, &body, 400, "invalid_request");
    assert_eq!(get("u1").await.1, v);
    // Without a locale, the locale is none.
    let (status, v2) = put("u2", json!({ "email": "u2@example.com" })).await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    assert_eq!(v2["locale"], Value::Null);

    // The issuer key is required.
    let url = format!("{}/v1/users/u1/contact", s.base);
    for req in [
        s.client.get(&url),
        s.client.delete(&url),
        s.client
            .put(&url)
            .json(&json!({ "email": "x@example.com" })),
    ] {
        let (status, body) = send(req).await;
        assert_problem(status, &body, 401, "unauthorized");
    }
    assert_eq!(get("u1").await.1, v, "unchanged by the refused requests");

    // Delete: 204, then it is gone (404 to GET and to a second DELETE).
    let (status, body) = send(s.issuer(Method::DELETE, "/v1/users/u1/contact")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = get("u1").await;
    assert_problem(status, &body, 404, "contact_not_found");
    let (status, body) = send(s.issuer(Method::DELETE, "/v1/users/u1/contact")).await;
    assert_problem(status, &body, 404, "contact_not_found");
    s.server.shutdown().await;
}

#[tokio::test]
async fn concurrent_identical_requests_make_their_change_once() {
    let smtp = SmtpServer::start();
    let clock = ManualClock::new(at("2026-11-20T12:00:00Z"));
    let s = mail_server(&smtp, &clock).await;
    let statuses = |reqs: Vec<reqwest::RequestBuilder>| async move {
        let answers = futures::future::join_all(reqs.into_iter().map(send)).await;
        let mut counts = std::collections::BTreeMap::new();
        for (status, _) in answers {
            *counts.entry(status.as_u16()).or_insert(0) += 1;
        }
        counts
    };
    for round in 0..5 {
        let user = format!("r{round}");
        let subscribe = (0..16)
            .map(|_| {
                s.issuer(Method::POST, "/v1/subscriptions")
                    .json(&json!({ "user_id": user, "store_id": "s1" }))
            })
            .collect();
        let counts = statuses(subscribe).await;
        assert_eq!(counts.get(&201), Some(&1), "one creates: {counts:?}");
        assert_eq!(counts.get(&200), Some(&15), "{counts:?}");
        let unsubscribe = (0..16)
            .map(|_| s.issuer(Method::DELETE, &format!("/v1/subscriptions/{user}/s1")))
            .collect();
        let counts = statuses(unsubscribe).await;
        assert_eq!(counts.get(&204), Some(&1), "one removes: {counts:?}");
        assert_eq!(counts.get(&404), Some(&15), "{counts:?}");
        put_contact(&s, &user, &email_of(&user)).await;
        let delete = (0..16)
            .map(|_| s.issuer(Method::DELETE, &format!("/v1/users/{user}/contact")))
            .collect();
        let counts = statuses(delete).await;
        assert_eq!(counts.get(&204), Some(&1), "one deletes: {counts:?}");
        assert_eq!(counts.get(&404), Some(&15), "{counts:?}");
    }
    s.server.shutdown().await;
}
