//! The mailer across SIGKILL: the real `firstcome` binary, configured by a TOML file
//! whose `[mail.smtp]` table points at an SMTP server on loopback (`smtp.rs`), killed
//! with a full outbox (the SMTP server down) or in the middle of sending (the server
//! up), then restarted on the same data dir. What must hold: every acknowledged
//! coupon's confirmation arrives to its holder, and a resend (delivery is at least
//! once) carries the Message-ID of the original, never a new one.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::crash::{spawn_configured, terminate};
use crate::helpers::{ADMIN_KEY, ISSUER_KEY, client, eventually, send};
use crate::smtp::{Behaviour, ReceivedMail, SmtpServer, free_port};

/// Coupons issued, each with its user's address: as many confirmations.
const N: usize = 300;
/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(60);

/// The configuration file: everything but the mail comes from the environment.
fn write_config(dir: &Path, smtp_port: u16) -> PathBuf {
    let path = dir.join("firstcome.toml");
    let toml = format!(
        r#"[mail]
from = "Shop <coupons@shop.test>"
message_id_domain = "shop.test"
retry_base_ms = 20
retry_max_delay_secs = 1
poll_interval_ms = 20

[mail.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout_secs = 2
send_timeout_secs = 5
pool_max = 8
"#
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// The value of the series `series` (name and labels, as rendered) in the process's
/// `/metrics`. The recorder is the child's own, so the values are this test's alone.
async fn metric(http: &Client, base: &str, series: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .unwrap();
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The outbox depth gauge (refreshed at every dispatcher tick, every 20 ms here).
async fn outbox_depth(http: &Client, base: &str) -> Option<f64> {
    metric(http, base, "firstcome_mail_outbox_depth").await
}

async fn dead_letters(http: &Client, base: &str) -> Vec<Value> {
    let (status, v) = send(
        http.get(format!("{base}/v1/mail/dead"))
            .bearer_auth(ADMIN_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["dead_letters"].as_array().unwrap().clone()
}

/// Creates a campaign of `N` coupons and issues all of them, each request carrying its
/// user's address. Returns (address, coupon id) for every coupon, all answered 201.
async fn issue_all(http: &Client, base: &str) -> Vec<(String, String)> {
    let (status, c) = send(
        http.post(format!("{base}/v1/campaigns"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "mail crash", "total_stock": N})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    let coupons: Vec<(String, String)> = futures::stream::iter(0..N)
        .map(|i| {
            let req = http
                .post(format!("{base}/v1/campaigns/{cid}/issue"))
                .bearer_auth(ISSUER_KEY)
                .json(&json!({ "user_id": format!("u{i}"), "email": format!("u{i}@example.com") }));
            async move {
                let (status, v) = send(req).await;
                assert_eq!(status, StatusCode::CREATED, "u{i}: {v}");
                (
                    format!("u{i}@example.com"),
                    v["coupon"]["id"].as_str().unwrap().to_string(),
                )
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let ids: HashSet<&str> = coupons.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), N, "every coupon has its own id");
    coupons
}

/// Checks `received` against the issued coupons: every mail went to a coupon holder
/// under the Message-ID of that holder's confirmation, and every holder got theirs.
/// Returns how many mails were resends (same Message-ID as an earlier one).
fn check_mail(received: &[ReceivedMail], coupons: &[(String, String)]) -> usize {
    let expected: HashMap<&str, String> = coupons
        .iter()
        .map(|(to, id)| (to.as_str(), format!("confirmation.{id}@shop.test")))
        .collect();
    let mut ids_by_to: HashMap<&str, HashSet<&str>> = HashMap::new();
    for m in received {
        assert_eq!(m.to.len(), 1, "one recipient per mail: {:?}", m.to);
        let to = m.to[0].as_str();
        let Some(want) = expected.get(to) else {
            panic!(
                "a mail to {to}, who holds no coupon (Message-ID {})",
                m.message_id
            );
        };
        assert_eq!(
            &m.message_id, want,
            "the mail to {to} has an unexpected Message-ID"
        );
        ids_by_to.entry(to).or_default().insert(&m.message_id);
    }
    for (to, want) in &expected {
        let ids = ids_by_to
            .get(to)
            .unwrap_or_else(|| panic!("no confirmation arrived for {to}"));
        assert_eq!(
            ids,
            &HashSet::from([want.as_str()]),
            "{to}: one Message-ID, however often it was sent"
        );
    }
    received.len() - expected.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_full_outbox_loses_no_mail() {
    let started = Instant::now();
    // A port nothing listens on yet: every attempt fails (connection refused) and every
    // job stays in the outbox, rescheduled again and again.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), port);
    let data = dir.path().join("data");
    let http = client();

    let mut p1 = spawn_configured(&data, Some(&config)).await;
    let coupons = issue_all(&http, &p1.base).await;
    // The outbox is full (N jobs) and the mailer is busy retrying them.
    eventually("a full outbox, retried", || async {
        let depth = outbox_depth(&http, &p1.base).await?;
        let retried = metric(
            &http,
            &p1.base,
            "firstcome_mail_retried_total{kind=\"confirmation\"}",
        )
        .await?;
        (depth == N as f64 && retried >= N as f64).then_some(())
    })
    .await;
    assert!(
        dead_letters(&http, &p1.base).await.is_empty(),
        "a refused connection is transient"
    );
    p1.child.kill().await.unwrap(); // SIGKILL with N jobs in the outbox
    let killed_at = started.elapsed();

    let smtp = SmtpServer::start_on(port);
    let p2 = spawn_configured(&data, Some(&config)).await;
    let restarted = Instant::now();
    smtp.wait_for(N, WAIT).await;
    let all_sent_in = restarted.elapsed();
    eventually("an empty outbox", || async {
        (outbox_depth(&http, &p2.base).await? == 0.0).then_some(())
    })
    .await;
    let received = smtp.received();
    let resent = check_mail(&received, &coupons);
    assert!(dead_letters(&http, &p2.base).await.is_empty());
    let stopping = Instant::now();
    terminate(p2).await;
    let stopped_in = stopping.elapsed();

    // Every "sent" mark is durable: a third run sends nothing again.
    let p3 = spawn_configured(&data, Some(&config)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // 25 poll intervals
    assert_eq!(outbox_depth(&http, &p3.base).await, Some(0.0));
    assert_eq!(smtp.received().len(), received.len(), "nothing sent again");
    terminate(p3).await;
    eprintln!(
        "mail_crash (full outbox): {N} coupons, killed after {killed_at:?}; after the \
         restart all sent in {all_sent_in:?}, {} mails received ({resent} resent); \
         SIGTERM took {stopped_in:?}; done in {:?}",
        received.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_sending_resends_with_the_same_message_id() {
    let started = Instant::now();
    // The SMTP server is up throughout, but answers 451 during the burst: the jobs are
    // tried and rescheduled with jitter, so once it accepts, the sending is spread out
    // and the kill lands in the middle of it.
    let smtp = SmtpServer::start();
    smtp.set_behaviour(Behaviour::Transient);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), smtp.port());
    let data = dir.path().join("data");
    let http = client();

    let mut p1 = spawn_configured(&data, Some(&config)).await;
    let coupons = issue_all(&http, &p1.base).await;
    eventually("three refused attempts per job on average", || async {
        (smtp.attempts() >= 3 * N).then_some(())
    })
    .await;
    assert!(smtp.received().is_empty());
    smtp.set_behaviour(Behaviour::Accept);
    eventually("a third of the mail sent", || async {
        (smtp.received().len() >= N / 3).then_some(())
    })
    .await;
    p1.child.kill().await.unwrap(); // SIGKILL while mail is being sent
    let at_kill = smtp.received().len();
    // Mail the server accepted in the meantime was sent before the kill (the process is
    // gone now), and its "sent" mark may not have been durable.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before_restart = smtp.received().len();

    let p2 = spawn_configured(&data, Some(&config)).await;
    let expected: HashSet<String> = coupons.iter().map(|(to, _)| to.clone()).collect();
    eventually(
        "a confirmation for every coupon, and an empty outbox",
        || async {
            let got: HashSet<String> = smtp.received().iter().map(|m| m.to[0].clone()).collect();
            let depth = outbox_depth(&http, &p2.base).await?;
            (got.is_superset(&expected) && depth == 0.0).then_some(())
        },
    )
    .await;
    let received = smtp.received();
    let resent = check_mail(&received, &coupons);
    assert!(dead_letters(&http, &p2.base).await.is_empty());
    terminate(p2).await;
    eprintln!(
        "mail_crash (mid-sending): {N} coupons, {at_kill} mails received at the kill \
         ({before_restart} before the restart), {} in all ({resent} resent), done in {:?}",
        received.len(),
        started.elapsed()
    );
    assert!(
        before_restart < N,
        "the kill came after all the mail was sent ({before_restart} of {N}): not mid-sending"
    );
}
