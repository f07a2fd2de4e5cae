//! The kill -9 soak: the real binary killed with SIGKILL at random moments, during
//! start-up and recovery as well as under mixed load, again and again on one data dir;
//! then every acknowledged answer is checked against what the last start serves.
//!
//! `FIRSTCOME_SOAK_CYCLES` sets the cycles (CI runs a few; `loadtest/soak.sh` runs many,
//! on a release build). The report line gives cycles, acknowledged, lost, oversold,
//! duplicates and idempotency mismatches; every count but the first two must be 0.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::crash::{Process, terminate};
use crate::helpers::{ADMIN_KEY, ISSUER_KEY, all_coupons, client, send, serve_command};

const STOCK: u64 = 1_000_000;
const WORKERS: usize = 8;

/// One acknowledged request, to replay under its key at the end.
#[derive(Clone)]
struct Acked {
    path: String,
    key: String,
    body: Value,
    status: u16,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Ledger {
    /// Acknowledged coupons by id, as answered.
    coupons: HashMap<String, Value>,
    /// The ids of the coupons each worker was given: a worker changes only its own, so
    /// the changes of one coupon are decided in the order their answers arrive.
    by_worker: HashMap<usize, Vec<String>>,
    /// Every acknowledged keyed answer.
    answers: Vec<Acked>,
    /// Coupon id -> its last acknowledged status, and whether a change of it was left
    /// unanswered after that (then either state is right).
    last_use: HashMap<String, (String, bool)>,
    /// Requests the kill took the answer of.
    lost: u64,
}

/// Starts the binary; `None` if it was killed before it listened.
async fn spawn(dir: &std::path::Path, kill_after: Duration) -> Option<Process> {
    let mut child = serve_command(dir)
        .env("FIRSTCOME_LOG", "error")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let listening = async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("firstcome listening on ") {
                let addr = addr.trim().to_string();
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Some(addr);
            }
        }
        None
    };
    match tokio::time::timeout(kill_after, listening).await {
        Ok(Some(base)) => Some(Process { child, base }),
        // It stopped by itself before listening: never right, whatever the last kill left.
        Ok(None) => {
            let status = child.wait().await.unwrap();
            panic!("firstcome exited while starting: {status:?} (its stderr is above)");
        }
        // Killed during start-up or recovery.
        Err(_) => {
            child.kill().await.unwrap();
            None
        }
    }
}

/// Mixed keyed load from `WORKERS` tasks until `stop`: issues to fresh users, redeems
/// and cancellations of coupons already acknowledged.
async fn load(
    http: Client,
    base: String,
    campaigns: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    cycle: usize,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (http, base, campaigns, ledger, stop) = (
            http.clone(),
            base.clone(),
            campaigns.clone(),
            ledger.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                let key = format!("c{cycle}-w{w}-{i}");
                let pick: u32 = rand::rng().random_range(0..10);
                let target = if pick < 6 {
                    None
                } else {
                    let l = ledger.lock().unwrap();
                    let mine = l.by_worker.get(&w).map_or(&[][..], Vec::as_slice);
                    (!mine.is_empty()).then(|| {
                        let id = &mine[rand::rng().random_range(0..mine.len())];
                        l.coupons[id].clone()
                    })
                };
                let (path, body, coupon_id) = match &target {
                    None => {
                        let cid = &campaigns[i as usize % campaigns.len()];
                        (
                            format!("/v1/campaigns/{cid}/issue"),
                            json!({"user_id": key.clone()}),
                            None,
                        )
                    }
                    Some(c) => {
                        let id = c["id"].as_str().unwrap().to_string();
                        let action = if pick < 8 {
                            "redeem"
                        } else {
                            "cancel-redemption"
                        };
                        (
                            format!("/v1/coupons/{id}/{action}"),
                            json!({"user_id": c["user_id"]}),
                            Some(id),
                        )
                    }
                };
                let sent = http
                    .post(format!("{base}{path}"))
                    .bearer_auth(ISSUER_KEY)
                    .header("Idempotency-Key", &key)
                    .json(&body);
                // The kill: a request still in flight is one whose answer is lost (it
                // may have been decided), like one whose connection broke.
                let answer = tokio::select! {
                    r = sent.send() => r.ok(),
                    () = stop.notified() => None,
                };
                let answered = match answer {
                    Some(r) => {
                        let status = r.status().as_u16();
                        r.bytes().await.ok().map(|b| (status, b.to_vec()))
                    }
                    None => None,
                };
                let mut l = ledger.lock().unwrap();
                let Some((status, bytes)) = answered else {
                    l.lost += 1;
                    if let Some(id) = coupon_id {
                        l.last_use.entry(id).or_insert(("issued".into(), false)).1 = true;
                    }
                    return;
                };
                if status == 503 {
                    continue; // not decided (overloaded, restarting)
                }
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if status == 201 {
                    let c = v["coupon"].clone();
                    let id = c["id"].as_str().unwrap().to_string();
                    l.by_worker.entry(w).or_default().push(id.clone());
                    l.coupons.insert(id, c);
                }
                if let (Some(id), 200) = (&coupon_id, status) {
                    l.last_use.insert(
                        id.clone(),
                        (v["status"].as_str().unwrap().to_string(), false),
                    );
                }
                l.answers.push(Acked {
                    path,
                    key,
                    body,
                    status,
                    bytes,
                });
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let cycles: usize = std::env::var("FIRSTCOME_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let p = spawn(dir.path(), Duration::from_secs(60)).await.unwrap();
    let mut campaigns = Vec::new();
    for name in ["soak-a", "soak-b"] {
        let (status, c) = send(
            http.post(format!("{}/v1/campaigns", p.base))
                .bearer_auth(ADMIN_KEY)
                .json(&json!({"name": name, "total_stock": STOCK})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        campaigns.push(c["id"].as_str().unwrap().to_string());
    }
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let mut p = Some(p);
    let mut killed_starting = 0;
    for cycle in 0..cycles {
        let proc = match p.take() {
            Some(p) => Some(p),
            // Every third start is killed at a random moment of its start-up (which
            // replays what the last kill left in the journal).
            None if cycle % 3 == 2 => {
                let after = Duration::from_millis(rand::rng().random_range(0..60));
                spawn(dir.path(), after).await
            }
            None => spawn(dir.path(), Duration::from_secs(60)).await,
        };
        let Some(mut proc) = proc else {
            killed_starting += 1;
            continue;
        };
        let stop = Arc::new(tokio::sync::Notify::new());
        let run = tokio::spawn(load(
            http.clone(),
            proc.base.clone(),
            campaigns.clone(),
            ledger.clone(),
            cycle,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(100..600))).await;
        proc.child.kill().await.unwrap(); // SIGKILL with requests in flight
        stop.notify_waiters();
        run.await.unwrap();
    }

    // A clean start, and every acknowledged answer checked against it.
    let p = spawn(dir.path(), Duration::from_secs(60)).await.unwrap();
    let l = std::mem::take(&mut *ledger.lock().unwrap());
    let mut served: BTreeMap<String, Value> = BTreeMap::new();
    let mut duplicates = 0u64;
    let mut oversold = 0u64;
    for cid in &campaigns {
        let coupons = all_coupons(&http, &p.base, cid).await;
        oversold += (coupons.len() as u64).saturating_sub(STOCK);
        let mut holders = std::collections::HashSet::new();
        for c in coupons {
            if !holders.insert(c["user_id"].as_str().unwrap().to_string()) {
                duplicates += 1;
            }
            served.insert(c["id"].as_str().unwrap().to_string(), c);
        }
    }
    let mut lost_coupons = 0u64;
    for (id, acked) in &l.coupons {
        match served.get(id) {
            Some(c) if c["user_id"] == acked["user_id"] && c["code"] == acked["code"] => {}
            _ => lost_coupons += 1,
        }
    }
    let mut lost_changes = 0u64;
    for (id, (status, unanswered_after)) in &l.last_use {
        let now = served
            .get(id)
            .map(|c| c["status"].as_str().unwrap_or_default());
        if !unanswered_after && now != Some(status.as_str()) {
            lost_changes += 1;
        }
    }
    let mut mismatches = 0u64;
    for a in &l.answers {
        let r = http
            .post(format!("{}{}", p.base, a.path))
            .bearer_auth(ISSUER_KEY)
            .header("Idempotency-Key", &a.key)
            .json(&a.body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status != a.status || r.bytes().await.unwrap().as_ref() != a.bytes.as_slice() {
            mismatches += 1;
        }
    }
    println!(
        "soak: {cycles} cycles ({killed_starting} killed while starting), {} acknowledged \
         ({} coupons), {} answers lost to kills; lost {lost_coupons} coupons and \
         {lost_changes} changes, oversold {oversold}, duplicates {duplicates}, idempotency \
         mismatches {mismatches}",
        l.answers.len(),
        l.coupons.len(),
        l.lost,
    );
    assert!(!l.coupons.is_empty(), "no coupon was acknowledged");
    assert_eq!(
        (lost_coupons, lost_changes, oversold, duplicates, mismatches),
        (0, 0, 0, 0, 0)
    );
    terminate(p).await;
}
