//! firstcome and the Redis+Lua peer agree on every outcome of the same sequential fcfs
//! run (stock 100, 300 users, each asking twice) and on the final counts.
//!
//! Needs `redis-server` on PATH; skipped with a message when it is not.

// A test crate: helpers outside `#[test]` functions panic with their message too, and
// modules share them with `pub`.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use firstcome_api::{Config, Server};
use serde_json::{Value, json};

const ADMIN: &str = "agreement-admin-key-0123456789";
const ISSUER: &str = "agreement-issuer-key-0123456789";
const STOCK: u64 = 100;
const USERS: u64 = 300;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

async fn wait_for(url: &str, client: &reqwest::Client) {
    for _ in 0..200 {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
}

fn start_redis(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    (Killed(child), port)
}

/// Runs the scenario against `base`: every answer as "status code", then the campaign.
async fn scenario(client: &reqwest::Client, base: &str) -> (Vec<String>, Value, Vec<usize>) {
    let created: Value = client
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "agreement", "total_stock": STOCK, "per_user_limit": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("campaign id").to_string();
    let mut outcomes = Vec::new();
    // Two rounds, and inside the first, every tenth user asks twice in a row.
    for round in 0..2 {
        for u in 0..USERS {
            let times = if round == 0 && u % 10 == 0 { 2 } else { 1 };
            for _ in 0..times {
                let resp = client
                    .post(format!("{base}/v1/campaigns/{id}/issue"))
                    .bearer_auth(ISSUER)
                    .json(&json!({"user_id": format!("user-{u}")}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap();
                let what = if status == 201 {
                    assert_eq!(body["coupon"]["user_id"], format!("user-{u}"));
                    let cid = body["coupon"]["id"].as_str().unwrap().to_string();
                    let seq = cid.rsplit('-').next().unwrap().to_string();
                    format!("201 seq {seq}")
                } else {
                    format!("{status} {}", body["code"].as_str().unwrap_or("?"))
                };
                outcomes.push(format!("user-{u}: {what}"));
            }
        }
    }
    let campaign: Value = client
        .get(format!("{base}/v1/campaigns/{id}"))
        .bearer_auth(ISSUER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut held = Vec::new();
    for u in [0, 1, 50, 99, 100, 101, 299] {
        let page: Value = client
            .get(format!("{base}/v1/users/user-{u}/coupons"))
            .bearer_auth(ISSUER)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        held.push(
            page["coupons"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(usize::MAX),
        );
    }
    (outcomes, campaign, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firstcome_and_redis_lua_peer_agree() {
    if !on_path("redis-server") {
        eprintln!("SKIPPED: redis-server is not on PATH (apt-get install redis-server)");
        return;
    }
    let client = reqwest::Client::new();
    let redis_dir = tempfile::tempdir().unwrap();
    let (_redis, redis_port) = start_redis(redis_dir.path());
    let peer_port = free_port();
    let _peer = Killed(
        Command::new(env!("CARGO_BIN_EXE_redis-lua-peer"))
            .args(["--listen", &format!("127.0.0.1:{peer_port}")])
            .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}/")])
            .args(["--admin-key", ADMIN, "--issuer-key", ISSUER])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-lua-peer starts"),
    );
    let peer = format!("http://127.0.0.1:{peer_port}");
    // Any answer (even 404) means it is up; redis may still be loading, so retry creation.
    wait_for(&format!("{peer}/v1/campaigns/none"), &client).await;
    for _ in 0..100 {
        let r = client
            .get(format!("{peer}/v1/campaigns/none"))
            .bearer_auth(ISSUER)
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(Config {
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_key: Some(ADMIN.into()),
        issuer_key: Some(ISSUER.into()),
        cache_capacity_mb: 16,
        ..Config::default()
    })
    .await
    .expect("firstcome starts");
    let ours = format!("http://{}", server.addr);

    let (fc_outcomes, fc_campaign, fc_held) = scenario(&client, &ours).await;
    let (peer_outcomes, peer_campaign, peer_held) = scenario(&client, &peer).await;
    server.shutdown().await;

    assert_eq!(fc_outcomes.len(), peer_outcomes.len());
    for (a, b) in fc_outcomes.iter().zip(&peer_outcomes) {
        assert_eq!(a, b, "firstcome vs peer");
    }
    let count = |o: &[String], s: &str| o.iter().filter(|x| x.contains(s)).count();
    assert_eq!(count(&fc_outcomes, " 201 "), STOCK as usize);
    // Round one: users 0, 10, .., 90 ask again (10); round two: users 0..100 again.
    assert_eq!(count(&fc_outcomes, "already_issued"), 10 + STOCK as usize);
    for key in ["issued", "remaining", "total_stock", "status"] {
        assert_eq!(fc_campaign[key], peer_campaign[key], "campaign {key}");
    }
    assert_eq!(fc_campaign["issued"], STOCK);
    assert_eq!(fc_held, peer_held);
    assert_eq!(fc_held, vec![1, 1, 1, 1, 0, 0, 0]);
}
