//! A write that fails (here: a file past the process's size limit, as a full disk would)
//! stops the store: every later request is `500 store_failed` without an invitation to
//! retry, `/readyz` is 503, the failure is logged once (not once per request), and a
//! restart with room serves everything that was acknowledged.

use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::crash::{Process, terminate};
use crate::helpers::{
    ADMIN_KEY, all_coupons, assert_problem, client, create_campaign_at, issue_thousand,
    listening_address, serve_command, serve_command_under,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_stops_the_store_with_one_log_line_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // Files may grow to 6 MB: enough to start, not enough for the coupons below.
    let mut child = serve_command_under(&["prlimit", "--fsize=6000000", "--"], dir.path())
        .env("FIRSTCOME_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the binary");
    let base = listening_address(&mut child).await;
    let mut stderr = child.stderr.take().unwrap();
    let http = client();
    let cid = create_campaign_at(&http, &base, "full", 1_000_000).await;
    let mut acked: Vec<Value> = Vec::new();
    let mut failed = None;
    for b in 0..1000 {
        match issue_thousand(&http, &base, &cid, b).await {
            Ok(coupons) => acked.extend(coupons),
            Err(refused) => {
                failed = Some(refused);
                break;
            }
        }
    }
    let (status, body) = failed.expect("the size limit was never reached");
    assert_problem(status, &body, 500, "store_failed");
    assert!(!acked.is_empty(), "nothing was issued before the limit");

    // From now on: the same answer for every request that needs the store, no
    // Retry-After, and not ready.
    for _ in 0..200 {
        let resp = http
            .post(format!("{base}/v1/campaigns/{cid}/issue"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"user_id": "late"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!resp.headers().contains_key("retry-after"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "store_failed", "{body}");
    }
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // SIGTERM; the log holds the failure once, and no line per refused request.
    terminate_child(child).await;
    let mut log = String::new();
    stderr.read_to_string(&mut log).await.unwrap();
    let failures = log
        .matches("group commit failed; refusing all further writes")
        .count();
    assert_eq!(failures, 1, "{log}");
    assert!(
        log.lines().count() < 50,
        "{} log lines:\n{log}",
        log.lines().count()
    );

    // With room again, everything acknowledged is there.
    let mut child = serve_command(dir.path())
        .env("FIRSTCOME_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = listening_address(&mut child).await;
    let coupons = all_coupons(&http, &base, &cid).await;
    assert!(
        coupons.len() >= acked.len(),
        "{} < {}",
        coupons.len(),
        acked.len()
    );
    assert_eq!(coupons[..acked.len()], acked[..]);
    terminate(Process { child, base }).await;
}

/// SIGTERM, then the exit; whatever the status (a failed store may not stop cleanly).
async fn terminate_child(mut child: tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
        .await
        .expect("firstcome stops after SIGTERM")
        .unwrap();
}
