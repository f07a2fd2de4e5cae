//! A server on port 0 with its own data dir, and a client that speaks to it.

use std::path::Path;

use firstcome_api::config::{MailSettings, SmtpSettings};
use firstcome_api::{Config, Server};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const ISSUER_KEY: &str = "test-issuer-key-0123456789";

pub fn config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_key: Some(ADMIN_KEY.into()),
        issuer_key: Some(ISSUER_KEY.into()),
        cache_capacity_mb: 16,
        ..Config::default()
    }
}

/// Mail to an SMTP server on loopback port `port`, plain SMTP, with retries fast
/// enough for tests (tens of milliseconds, at most 300 ms apart).
pub fn smtp_mail(port: u16) -> MailSettings {
    MailSettings {
        from: "Shop <coupons@shop.test>".into(),
        message_id_domain: "shop.test".into(),
        workers: 4,
        retry_base_ms: 20,
        retry_max_delay_secs: 1,
        poll_interval_ms: 20,
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security: "none".into(),
            timeout_secs: 2,
            send_timeout_secs: 5,
            ..SmtpSettings::default()
        }),
        ..MailSettings::default()
    }
}

pub struct TestServer {
    pub server: Server,
    /// Kept for restarts.
    pub mail: MailSettings,
    pub client: Client,
    pub base: String,
    // Dropped last: the data dir outlives the server that uses it.
    pub dir: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_in(tempfile::tempdir().unwrap()).await
    }

    pub async fn start_in(dir: TempDir) -> TestServer {
        TestServer::start_with_clock_in(dir, std::sync::Arc::new(firstcome_engine::SystemClock))
            .await
    }

    /// A server whose engine reads time from `clock` (tests move time instead of
    /// sleeping).
    pub async fn start_with_clock(
        dir: TempDir,
        clock: firstcome_engine::ManualClock,
    ) -> TestServer {
        TestServer::start_with_clock_in(dir, std::sync::Arc::new(clock)).await
    }

    async fn start_with_clock_in(
        dir: TempDir,
        clock: std::sync::Arc<dyn firstcome_engine::Clock>,
    ) -> TestServer {
        TestServer::start_with_mail(dir, clock, MailSettings::default()).await
    }

    /// A server with the test configuration as `change` leaves it.
    pub async fn start_configured(change: impl FnOnce(Config) -> Config) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(change(config(dir.path())))
            .await
            .expect("server starts");
        let base = format!("http://{}", server.addr);
        TestServer {
            server,
            mail: MailSettings::default(),
            client: client(),
            base,
            dir,
        }
    }

    /// A server with these mail settings (see [`smtp_mail`]).
    pub async fn start_with_mail(
        dir: TempDir,
        clock: std::sync::Arc<dyn firstcome_engine::Clock>,
        mail: MailSettings,
    ) -> TestServer {
        let cfg = Config {
            mail: mail.clone(),
            ..config(dir.path())
        };
        let server = Server::start_with_clock(cfg, clock)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.addr);
        TestServer {
            server,
            mail,
            client: client(),
            base,
            dir,
        }
    }

    /// Graceful stop, then a new server on the same data dir.
    pub async fn restart(self) -> TestServer {
        let TestServer {
            server, dir, mail, ..
        } = self;
        server.shutdown().await;
        TestServer::start_with_mail(
            dir,
            std::sync::Arc::new(firstcome_engine::SystemClock),
            mail,
        )
        .await
    }

    /// Graceful stop, then a new server on the same data dir with `clock`.
    pub async fn restart_with_clock(self, clock: firstcome_engine::ManualClock) -> TestServer {
        let TestServer {
            server, dir, mail, ..
        } = self;
        server.shutdown().await;
        TestServer::start_with_mail(dir, std::sync::Arc::new(clock), mail).await
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
    }

    pub fn issuer(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ISSUER_KEY)
    }

    pub async fn create_campaign(&self, body: Value) -> Value {
        let (status, v) = send(
            self.admin(reqwest::Method::POST, "/v1/campaigns")
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    pub async fn campaign(&self, id: &str) -> Value {
        let (status, v) =
            send(self.issuer(reqwest::Method::GET, &format!("/v1/campaigns/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    pub async fn issue(&self, campaign_id: &str, user_id: &str) -> (StatusCode, Value) {
        send(
            self.issuer(
                reqwest::Method::POST,
                &format!("/v1/campaigns/{campaign_id}/issue"),
            )
            .json(&json!({ "user_id": user_id })),
        )
        .await
    }

    /// All coupons of a user, following the cursor.
    pub async fn user_coupons(&self, user_id: &str) -> Vec<Value> {
        user_coupons(&self.client, &self.base, ISSUER_KEY, user_id).await
    }
}

pub fn client() -> Client {
    Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request reaches the server");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

pub async fn user_coupons(client: &Client, base: &str, key: &str, user_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{base}/v1/users/{user_id}/coupons"))
            .bearer_auth(key)
            .query(&[("limit", "100")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let (status, v) = send(req).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        out.extend(v["coupons"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Every coupon of a campaign, through the export.
pub async fn all_coupons(http: &Client, base: &str, cid: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{base}/v1/campaigns/{cid}/coupons"))
            .bearer_auth(ADMIN_KEY)
            .query(&[("limit", "1000")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let (status, page) = send(req).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        out.extend(page["coupons"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Creates a campaign of `stock` on the server at `base`; returns its id.
pub async fn create_campaign_at(http: &Client, base: &str, name: &str, stock: u64) -> String {
    let (status, c) = send(
        http.post(format!("{base}/v1/campaigns"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": name, "total_stock": stock})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    c["id"].as_str().unwrap().to_string()
}

/// Bulk issue `batch` of 1,000 users ("u{batch}-{i}"): the coupons issued, or the
/// status and problem of a refusal.
pub async fn issue_thousand(
    http: &Client,
    base: &str,
    cid: &str,
    batch: usize,
) -> Result<Vec<Value>, (StatusCode, Value)> {
    let users: Vec<String> = (0..1000).map(|i| format!("u{batch}-{i}")).collect();
    let (status, body) = send(
        http.post(format!("{base}/v1/campaigns/{cid}/issue-batch"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({ "user_ids": users })),
    )
    .await;
    if status != StatusCode::OK {
        return Err((status, body));
    }
    let results = body["results"].as_array().unwrap();
    Ok(results.iter().map(|r| r["coupon"].clone()).collect())
}

/// Asserts an RFC 9457 problem with the given status and code.
#[track_caller]
pub fn assert_problem(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status, "{body}");
    assert!(
        body["type"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}

/// Polls `probe` until it gives `Some`, or fails after 60 s. For state a server changes
/// in the background (the outbox draining, dead letters appearing); each poll is a real
/// request or read.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `firstcome serve` of the binary under test, in `data_dir` on port 0 with the test
/// keys and a small cache, stdout piped, and none of the caller's own `FIRSTCOME_*`
/// settings (nor `NO_COLOR`): the caller adds what it tests and spawns it.
pub fn serve_command(data_dir: &Path) -> tokio::process::Command {
    serve_command_under(&[], data_dir)
}

/// [`serve_command`] run by `wrapper` (a command and its arguments, e.g. `prlimit
/// --fsize=N --`), which execs the binary.
pub fn serve_command_under(wrapper: &[&str], data_dir: &Path) -> tokio::process::Command {
    let bin = env!("CARGO_BIN_EXE_firstcome");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => tokio::process::Command::new(bin),
    };
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FIRSTCOME_") || k == "NO_COLOR") {
        cmd.env_remove(k);
    }
    cmd.arg("serve")
        .env("FIRSTCOME_DATA_DIR", data_dir)
        .env("FIRSTCOME_LISTEN", "127.0.0.1:0")
        .env("FIRSTCOME_ADMIN_KEY", ADMIN_KEY)
        .env("FIRSTCOME_ISSUER_KEY", ISSUER_KEY)
        .env("FIRSTCOME_CACHE_CAPACITY_MB", "16")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Reads a [`serve_command`] child's stdout up to the line that names its address
/// (bounded), and keeps draining it after, so the child never blocks on a full pipe.
pub async fn listening_address(child: &mut tokio::process::Child) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("firstcome exited before listening");
            if let Some(addr) = line.strip_prefix("firstcome listening on ") {
                break addr.trim().to_string();
            }
        }
    })
    .await
    .expect("firstcome listens in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    base
}
