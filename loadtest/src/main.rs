//! `firstcome-loadtest`: drives a running firstcome (or a peer serving the same contract)
//! over HTTP/1.1 keep-alive, measures latency without coordinated omission, and verifies
//! the outcome through the API afterwards.

mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use report::{Latency, Report, Second};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// Stock 100, 1,000 users within 2 s (open loop, 500 req/s unless told).
    Fcfs,
    /// 10 campaigns x 10,000 stock, users until every campaign is sold out.
    Promo,
    /// Stock 1,000, 100,000 users, each sending its request 3 times.
    Storm,
    /// Only the --stock/--users/--repeats/--campaigns flags.
    Custom,
    /// One campaign with stock = users (10,000 unless told); each user issues once, then
    /// about half of them redeem, a tenth of those cancel the redemption, and every winner
    /// reads its coupon and the campaign.
    Mixed,
}

/// Load generator for firstcome's issue endpoint.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[arg(long, value_enum, default_value = "fcfs")]
    scenario: Scenario,
    /// Server to drive (ignored with --spawn).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    #[arg(long, env = "FIRSTCOME_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    #[arg(long, env = "FIRSTCOME_ISSUER_KEY", hide_env_values = true)]
    issuer_key: Option<String>,
    /// Closed loop with this many concurrent workers.
    #[arg(long)]
    connections: Option<usize>,
    /// Open loop at this many requests per second (latency from the intended send time).
    #[arg(long)]
    rate: Option<f64>,
    /// Coupons per campaign.
    #[arg(long)]
    stock: Option<u64>,
    /// Distinct users (over all campaigns).
    #[arg(long)]
    users: Option<u64>,
    /// Requests per user.
    #[arg(long)]
    repeats: Option<u64>,
    #[arg(long)]
    campaigns: Option<u64>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an HTML page with charts here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Start `firstcome serve` (this binary, or the one next to this executable) on a temp
    /// data dir and port 0, run against it, and stop it.
    #[arg(long, num_args = 0..=1)]
    // clap's shape for a flag with an optional value: absent, `--spawn`, `--spawn PATH`.
    #[allow(clippy::option_option)]
    spawn: Option<Option<PathBuf>>,
    /// Users whose coupon list is checked afterwards (a sample when more got a coupon).
    #[arg(long, default_value_t = 10_000)]
    verify_users: usize,
    /// Skip the verification.
    #[arg(long)]
    no_verify: bool,
}

#[derive(Debug, Clone)]
struct Plan {
    name: String,
    stock: u64,
    users: u64,
    repeats: u64,
    campaigns: u64,
    /// Stop sending to a campaign once it answered sold_out.
    until_sold_out: bool,
    /// After a 201, redeem / cancel / read as well (the mixed scenario).
    mixed: bool,
    mode: Mode,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Closed(usize),
    Open(f64),
}

impl Plan {
    fn from_args(a: &Args) -> Plan {
        let (name, stock, users, repeats, campaigns, until, mode) = match a.scenario {
            Scenario::Fcfs => ("fcfs", 100, 1_000, 1, 1, false, Mode::Open(500.0)),
            Scenario::Promo => ("promo", 10_000, 110_000, 1, 10, true, Mode::Closed(64)),
            Scenario::Storm => ("storm", 1_000, 100_000, 3, 1, false, Mode::Closed(64)),
            Scenario::Custom => ("custom", 100, 1_000, 1, 1, false, Mode::Closed(64)),
            Scenario::Mixed => ("mixed", 10_000, 10_000, 1, 1, false, Mode::Closed(64)),
        };
        let mixed = matches!(a.scenario, Scenario::Mixed);
        let mode = match (a.rate, a.connections) {
            (Some(r), _) => Mode::Open(r),
            (None, Some(c)) => Mode::Closed(c.max(1)),
            (None, None) => mode,
        };
        let users = a.users.unwrap_or(users);
        Plan {
            name: name.into(),
            // Mixed: stock follows --users, and there is one campaign.
            stock: a.stock.unwrap_or(if mixed { users } else { stock }),
            users,
            repeats: a.repeats.unwrap_or(repeats).max(1),
            campaigns: if mixed {
                1
            } else {
                a.campaigns.unwrap_or(campaigns).max(1)
            },
            until_sold_out: until,
            mixed,
            mode,
        }
    }

    fn total(&self) -> u64 {
        self.users * self.repeats
    }

    /// Request `k`: (user index, campaign index). A user's repeats are adjacent, so
    /// they race each other.
    fn request(&self, k: u64) -> (u64, usize) {
        let user = k / self.repeats;
        (user, (user % self.campaigns) as usize)
    }
}

/// Mixed: whether `user` redeems its coupon (about 50%), and whether it then cancels the
/// redemption (about 10% of those). Deterministic, so the verification knows the intent.
fn mixed_intent(user: u64) -> (bool, bool) {
    let h = user.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_right(29);
    let redeem = h % 2 == 0;
    (redeem, redeem && (h / 2) % 10 == 0)
}

/// The operations, as they are named in the report.
const OP_ISSUE: &str = "issue";
const OP_REDEEM: &str = "redeem";
const OP_CANCEL: &str = "cancel";
const OP_GET_COUPON: &str = "get_coupon";
const OP_GET_CAMPAIGN: &str = "get_campaign";

#[derive(Debug)]
struct Record {
    /// Which endpoint (one of the `OP_*` names).
    op: &'static str,
    user: u64,
    campaign: usize,
    /// 0 for a transport error.
    status: u16,
    code: String,
    coupon: Option<(String, String)>,
    latency_us: u64,
    /// Seconds since the start (of the intended send time).
    second: u64,
}

struct Target {
    client: reqwest::Client,
    base: String,
    admin: String,
    issuer: String,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Msg(String),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn err(m: impl Into<String>) -> Error {
    Error::Msg(m.into())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("firstcome-loadtest: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn random_key(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = String::from(prefix);
    for i in 0..3u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s
}

struct Spawned {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Spawned {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = self.child.kill().await;
            }
        }
    }
}

async fn spawn_firstcome(
    bin: Option<PathBuf>,
    admin: &str,
    issuer: &str,
) -> Result<(Spawned, String), Error> {
    let bin = match bin {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| err("no directory around the current executable"))?
            .join("firstcome"),
    };
    let dir = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(&bin)
        .arg("serve")
        .env("FIRSTCOME_DATA_DIR", dir.path())
        .env("FIRSTCOME_LISTEN", "127.0.0.1:0")
        .env("FIRSTCOME_ADMIN_KEY", admin)
        .env("FIRSTCOME_ISSUER_KEY", issuer)
        .env("FIRSTCOME_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| err(format!("starting {}: {e}", bin.display())))?;
    let stdout = child.stdout.take().ok_or_else(|| err("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("firstcome listening on ") {
                return Some(url.trim().to_string());
            }
        }
        None
    })
    .await;
    let url = match found {
        Ok(Some(url)) => url,
        _ => return Err(err(format!("{} did not report listening", bin.display()))),
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((Spawned { child, _dir: dir }, url))
}

async fn run(args: Args) -> Result<bool, Error> {
    let plan = Plan::from_args(&args);
    let mut admin = args.admin_key.clone();
    let mut issuer = args.issuer_key.clone();
    let mut spawned = None;
    let mut base = args.base_url.trim_end_matches('/').to_string();
    if let Some(bin) = args.spawn.clone() {
        let a = admin.clone().unwrap_or_else(|| random_key("fca_"));
        let i = issuer.clone().unwrap_or_else(|| random_key("fci_"));
        let (s, url) = spawn_firstcome(bin, &a, &i).await?;
        eprintln!("spawned firstcome at {url}");
        spawned = Some(s);
        base = url;
        admin = Some(a);
        issuer = Some(i);
    }
    let result = async {
        let admin = admin.ok_or_else(|| err("--admin-key or FIRSTCOME_ADMIN_KEY is required"))?;
        let issuer = issuer.unwrap_or_else(|| admin.clone());
        let client = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(4096)
            .timeout(Duration::from_secs(30))
            .build()?;
        let target = Arc::new(Target {
            client,
            base: base.clone(),
            admin,
            issuer,
        });
        drive(&args, plan, target).await
    }
    .await;
    if let Some(s) = spawned {
        s.stop().await;
    }
    result
}

async fn create_campaigns(t: &Target, plan: &Plan) -> Result<Vec<(String, u32)>, Error> {
    let mut out = Vec::new();
    for i in 0..plan.campaigns {
        let resp = t
            .client
            .post(format!("{}/v1/campaigns", t.base))
            .bearer_auth(&t.admin)
            .json(&json!({"name": format!("loadtest {} #{i}", plan.name), "total_stock": plan.stock, "per_user_limit": 1}))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.as_u16() != 201 {
            return Err(err(format!("creating a campaign: {status} {body}")));
        }
        let id = body["id"]
            .as_str()
            .ok_or_else(|| err("campaign without id"))?
            .to_string();
        let limit = body["per_user_limit"].as_u64().unwrap_or(1) as u32;
        out.push((id, limit));
    }
    Ok(out)
}

async fn issue_once(
    t: &Target,
    campaign_id: &str,
    user_id: &str,
) -> (u16, String, Option<(String, String)>) {
    let resp = t
        .client
        .post(format!("{}/v1/campaigns/{campaign_id}/issue", t.base))
        .bearer_auth(&t.issuer)
        .json(&json!({ "user_id": user_id }))
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else {
                "transport"
            };
            return (0, kind.into(), None);
        }
    };
    let status = resp.status().as_u16();
    let body: Value = match resp.json().await {
        Ok(v) => v,
        Err(_) => return (status, "unreadable_body".into(), None),
    };
    if status == 201 {
        let c = &body["coupon"];
        let coupon = match (c["id"].as_str(), c["code"].as_str()) {
            (Some(id), Some(code)) => Some((id.to_string(), code.to_string())),
            _ => None,
        };
        (status, "issued".into(), coupon)
    } else {
        let code = body["code"].as_str().unwrap_or("unknown").to_string();
        (status, code, None)
    }
}

/// One follow-up request of the mixed scenario: (status, code), status 0 for a transport
/// error; `code` is "ok" for a 2xx, else the problem's `code`.
async fn call(t: &Target, post: Option<Value>, path: &str) -> (u16, String) {
    let url = format!("{}{path}", t.base);
    let req = match post {
        Some(body) => t.client.post(url).json(&body),
        None => t.client.get(url),
    };
    let resp = match req.bearer_auth(&t.issuer).send().await {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else {
                "transport"
            };
            return (0, kind.into());
        }
    };
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        // Read the body so the connection goes back to the pool.
        let _ = resp.bytes().await;
        return (status, "ok".into());
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (
        status,
        body["code"].as_str().unwrap_or("unknown").to_string(),
    )
}

struct Live {
    done: AtomicU64,
    errors: AtomicU64,
    finished: AtomicBool,
}

async fn drive(args: &Args, plan: Plan, t: Arc<Target>) -> Result<bool, Error> {
    let campaigns = Arc::new(create_campaigns(&t, &plan).await?);
    let run_prefix = format!("lt{}", random_key("").get(..8).unwrap_or("0"));
    let sold_out: Arc<Vec<AtomicBool>> = Arc::new(
        (0..plan.campaigns)
            .map(|_| AtomicBool::new(false))
            .collect(),
    );
    let live = Arc::new(Live {
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        finished: AtomicBool::new(false),
    });
    let total = plan.total();
    let bar = if std::io::stdout().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ticker = {
        let live = live.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            while !live.finished.load(Ordering::Relaxed) {
                bar.set_position(live.done.load(Ordering::Relaxed));
                bar.set_message(format!("errors {}", live.errors.load(Ordering::Relaxed)));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
    let start = Instant::now();
    let plan = Arc::new(plan);
    let one = {
        let t = t.clone();
        let campaigns = campaigns.clone();
        let sold_out = sold_out.clone();
        let live = live.clone();
        let plan = plan.clone();
        let run_prefix = run_prefix.clone();
        move |k: u64, intended: Instant, tx: mpsc::UnboundedSender<Record>| {
            let t = t.clone();
            let campaigns = campaigns.clone();
            let sold_out = sold_out.clone();
            let live = live.clone();
            let plan = plan.clone();
            let user_id_prefix = run_prefix.clone();
            async move {
                let (user, c) = plan.request(k);
                if plan.until_sold_out && sold_out[c].load(Ordering::Relaxed) {
                    live.done.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let user_id = format!("{user_id_prefix}-u{user}");
                let (status, code, coupon) = issue_once(&t, &campaigns[c].0, &user_id).await;
                let latency_us = intended.elapsed().as_micros() as u64;
                if code == "sold_out" {
                    sold_out[c].store(true, Ordering::Relaxed);
                }
                if !(status == 201 || code == "already_issued" || code == "sold_out") {
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
                live.done.fetch_add(1, Ordering::Relaxed);
                let second = intended.saturating_duration_since(start).as_secs();
                let follow = if plan.mixed && status == 201 {
                    coupon.as_ref().map(|(id, _)| id.clone())
                } else {
                    None
                };
                let _ = tx.send(Record {
                    op: OP_ISSUE,
                    user,
                    campaign: c,
                    status,
                    code,
                    coupon,
                    latency_us,
                    second,
                });
                let Some(coupon_id) = follow else { return };
                let (redeem, cancel) = mixed_intent(user);
                let body = json!({ "user_id": user_id });
                let mut ops: Vec<(&'static str, Option<Value>, String)> = Vec::new();
                if redeem {
                    ops.push((
                        OP_REDEEM,
                        Some(body.clone()),
                        format!("/v1/coupons/{coupon_id}/redeem"),
                    ));
                }
                if cancel {
                    ops.push((
                        OP_CANCEL,
                        Some(body),
                        format!("/v1/coupons/{coupon_id}/cancel-redemption"),
                    ));
                }
                ops.push((OP_GET_COUPON, None, format!("/v1/coupons/{coupon_id}")));
                ops.push((
                    OP_GET_CAMPAIGN,
                    None,
                    format!("/v1/campaigns/{}", campaigns[c].0),
                ));
                for (op, post, path) in ops {
                    let sent = Instant::now();
                    let (status, code) = call(&t, post, &path).await;
                    let latency_us = sent.elapsed().as_micros() as u64;
                    if !(200..300).contains(&status) {
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tx.send(Record {
                        op,
                        user,
                        campaign: c,
                        status,
                        code,
                        coupon: None,
                        latency_us,
                        second: sent.saturating_duration_since(start).as_secs(),
                    });
                }
            }
        }
    };
    match plan.mode {
        Mode::Closed(n) => {
            let next = Arc::new(AtomicU64::new(0));
            let mut workers = Vec::new();
            for _ in 0..n {
                let next = next.clone();
                let tx = tx.clone();
                let one = one.clone();
                workers.push(tokio::spawn(async move {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= total {
                            break;
                        }
                        one(k, Instant::now(), tx.clone()).await;
                    }
                }));
            }
            for w in workers {
                let _ = w.await;
            }
        }
        Mode::Open(rate) => {
            let rate = rate.max(0.001);
            let mut tasks = Vec::with_capacity(total as usize);
            for k in 0..total {
                let intended = start + Duration::from_secs_f64(k as f64 / rate);
                tokio::time::sleep_until(intended.into()).await;
                tasks.push(tokio::spawn(one(k, intended, tx.clone())));
            }
            for task in tasks {
                let _ = task.await;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(tx);
    live.finished.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    bar.finish_and_clear();

    let mut records = Vec::new();
    while let Some(r) = rx.recv().await {
        records.push(r);
    }
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| err(e.to_string()))?;
    let mut per_sec: BTreeMap<u64, Histogram<u64>> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_op: BTreeMap<&'static str, Histogram<u64>> = BTreeMap::new();
    for r in &records {
        let v = r.latency_us.max(1);
        let _ = hist.record(v);
        let h = per_sec.entry(r.second).or_insert_with(hist_new);
        let _ = h.record(v);
        let _ = per_op.entry(r.op).or_insert_with(hist_new).record(v);
        let key = if r.status == 0 {
            format!("{} {}", r.op, r.code)
        } else {
            format!("{} {} {}", r.op, r.status, r.code)
        };
        *outcomes.entry(key).or_default() += 1;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let latency = |h: &Histogram<u64>| Latency {
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    };
    // Per operation only when there is more than one.
    let latency_by_op: BTreeMap<String, Latency> = if per_op.len() > 1 {
        per_op
            .iter()
            .map(|(op, h)| (op.to_string(), latency(h)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let last = per_sec.keys().next_back().copied().unwrap_or(0);
    let per_second = (0..=last)
        .map(|s| match per_sec.get(&s) {
            Some(h) => Second {
                t: s,
                requests: h.len(),
                p99_ms: ms(h.value_at_quantile(0.99)),
            },
            None => Second {
                t: s,
                requests: 0,
                p99_ms: 0.0,
            },
        })
        .collect();
    let violations = if args.no_verify {
        Vec::new()
    } else {
        verify(
            &t,
            &plan,
            &campaigns,
            &records,
            &run_prefix,
            args.verify_users,
        )
        .await?
    };
    let sent = records.len() as u64;
    let report = Report {
        scenario: plan.name.clone(),
        base_url: t.base.clone(),
        mode: match plan.mode {
            Mode::Closed(n) => format!("closed loop, {n} connections"),
            Mode::Open(r) => format!("open loop, {r} req/s"),
        },
        requests: sent,
        duration_secs: elapsed,
        throughput_rps: sent as f64 / elapsed.max(1e-9),
        latency_ms: latency(&hist),
        latency_by_op,
        outcomes,
        per_second,
        violations,
    };
    print!("{}", report.text());
    if let Some(p) = &args.json {
        let s = serde_json::to_string_pretty(&report).map_err(|e| err(e.to_string()))?;
        std::fs::write(p, s)?;
    }
    if let Some(p) = &args.html {
        std::fs::write(p, report.html())?;
    }
    Ok(report.violations.is_empty())
}

fn hist_new() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (1 us to an hour, 3 digits): a failure
    // here is a programming error, caught by the first run.
    #[allow(clippy::expect_used)]
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

async fn get_json(t: &Target, path: &str) -> Result<(u16, Value), Error> {
    get_json_as(t, path, &t.issuer).await
}

async fn get_json_as(t: &Target, path: &str, key: &str) -> Result<(u16, Value), Error> {
    let resp = t
        .client
        .get(format!("{}{path}", t.base))
        .bearer_auth(key)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn verify(
    t: &Arc<Target>,
    plan: &Plan,
    campaigns: &[(String, u32)],
    records: &[Record],
    prefix: &str,
    verify_users: usize,
) -> Result<Vec<String>, Error> {
    let mut v = Vec::new();
    // What the run saw, per campaign.
    let n = campaigns.len();
    let mut answered: Vec<HashSet<u64>> = vec![HashSet::new(); n];
    let mut unknown = vec![0u64; n];
    let mut wins: Vec<HashMap<u64, Vec<(String, String)>>> = vec![HashMap::new(); n];
    // Mixed: per (campaign, user), the redeem's and the cancel's status (0: none or unanswered).
    let mut redeems: HashMap<(usize, u64), u16> = HashMap::new();
    let mut cancels: HashMap<(usize, u64), u16> = HashMap::new();
    for r in records {
        if r.op == OP_REDEEM {
            redeems.insert((r.campaign, r.user), r.status);
        }
        if r.op == OP_CANCEL {
            cancels.insert((r.campaign, r.user), r.status);
        }
        if r.op != OP_ISSUE {
            continue;
        }
        match (r.status, r.code.as_str()) {
            (201, _) | (409, "already_issued" | "sold_out") => {
                answered[r.campaign].insert(r.user);
            }
            (0 | 500..=599, _) => unknown[r.campaign] += 1,
            _ => {}
        }
        if let Some(c) = &r.coupon {
            wins[r.campaign].entry(r.user).or_default().push(c.clone());
        }
    }
    for (i, (id, limit)) in campaigns.iter().enumerate() {
        let (status, body) = get_json(t, &format!("/v1/campaigns/{id}")).await?;
        if status != 200 {
            v.push(format!("GET campaign {id}: status {status}"));
            continue;
        }
        let issued = body["issued"].as_u64().unwrap_or(u64::MAX);
        let seen: u64 = wins[i].values().map(|c| c.len() as u64).sum();
        if issued > plan.stock {
            v.push(format!(
                "campaign {id}: issued {issued} > stock {}",
                plan.stock
            ));
        }
        if unknown[i] == 0 {
            let expected = plan.stock.min(answered[i].len() as u64);
            if issued != expected {
                v.push(format!(
                    "campaign {id}: issued {issued}, expected min(stock {}, distinct users {}) = {expected}",
                    plan.stock,
                    answered[i].len()
                ));
            }
            if issued != seen {
                v.push(format!(
                    "campaign {id}: issued {issued}, but {seen} 201s seen"
                ));
            }
        } else if issued < seen || issued > seen + unknown[i] {
            v.push(format!(
                "campaign {id}: issued {issued}, {seen} 201s seen, {} unanswered",
                unknown[i]
            ));
        }
        for (user, cs) in &wins[i] {
            if cs.len() > *limit as usize {
                v.push(format!(
                    "campaign {id}: user {user} got {} 201s (limit {limit})",
                    cs.len()
                ));
            }
        }
        if plan.mixed {
            if issued != plan.users {
                v.push(format!(
                    "campaign {id}: issued {issued}, expected users {}",
                    plan.users
                ));
            }
            let ok = |m: &HashMap<(usize, u64), u16>, code: u16| {
                m.iter()
                    .filter(|((c, _), s)| *c == i && **s == code)
                    .count() as u64
            };
            let redeemed_ok = ok(&redeems, 200);
            let cancelled_ok = ok(&cancels, 200);
            let unsure = redeems
                .iter()
                .chain(cancels.iter())
                .filter(|((c, _), s)| *c == i && (**s == 0 || **s >= 500))
                .count();
            let (status, body) =
                get_json_as(t, &format!("/v1/campaigns/{id}/stats"), &t.admin).await?;
            if status != 200 {
                v.push(format!("GET stats of {id}: status {status}"));
            } else if unsure == 0 {
                let redeemed = body["redeemed"].as_u64().unwrap_or(u64::MAX);
                let expected = redeemed_ok.saturating_sub(cancelled_ok);
                if redeemed != expected {
                    v.push(format!(
                        "campaign {id}: stats say redeemed {redeemed}, expected {redeemed_ok} redeems - {cancelled_ok} cancels = {expected}"
                    ));
                }
            }
        }
    }
    // Mixed: the status each coupon must show, where the run knows it for sure.
    let mut expect_status: HashMap<String, &'static str> = HashMap::new();
    if plan.mixed {
        for (i, m) in wins.iter().enumerate() {
            for (user, cs) in m {
                let r = redeems.get(&(i, *user)).copied();
                let c = cancels.get(&(i, *user)).copied();
                let expected = match (r, c) {
                    (None, _) => Some("issued"),
                    (Some(200), None) => Some("redeemed"),
                    (Some(200), Some(200)) => Some("issued"),
                    _ => None,
                };
                if let Some(e) = expected {
                    for (id, _) in cs {
                        expect_status.insert(id.clone(), e);
                    }
                }
            }
        }
    }
    let expect_status = Arc::new(expect_status);
    // Every coupon seen exists with the same code, and no coupon id was handed out twice.
    let coupons: Vec<(String, String)> = wins
        .iter()
        .flat_map(|m| m.values().flatten().cloned())
        .collect();
    let mut ids = HashSet::new();
    for (id, _) in &coupons {
        if !ids.insert(id.as_str()) {
            v.push(format!("coupon {id}: issued by more than one 201"));
        }
    }
    drop(ids);
    let coupons: Vec<(String, String)> = coupons
        .into_iter()
        .collect::<HashMap<_, _>>()
        .into_iter()
        .collect();
    let mut checks = futures::stream::iter(coupons.into_iter().map(|(id, code)| {
        let t = t.clone();
        let expect_status = expect_status.clone();
        async move {
            match get_json(&t, &format!("/v1/coupons/{id}")).await {
                Ok((200, body)) if body["code"].as_str() == Some(code.as_str()) => {
                    match expect_status.get(&id) {
                        Some(e) if body["status"].as_str() != Some(*e) => Some(format!(
                            "coupon {id}: status {}, expected {e}",
                            body["status"]
                        )),
                        _ => None,
                    }
                }
                Ok((200, body)) => Some(format!(
                    "coupon {id}: code {} but the 201 said {code}",
                    body["code"]
                )),
                Ok((s, _)) => Some(format!("coupon {id}: GET answered {s}")),
                Err(e) => Some(format!("coupon {id}: {e}")),
            }
        }
    }))
    .buffer_unordered(64);
    while let Some(r) = checks.next().await {
        if let Some(m) = r {
            v.push(m);
        }
    }
    // Nobody holds more than per_user_limit: the winners, or a sample of them.
    let mut users: Vec<(usize, u64)> = wins
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.keys().map(move |u| (i, *u)))
        .collect();
    users.sort_unstable();
    if users.len() > verify_users {
        let step = users.len().div_ceil(verify_users.max(1));
        users = users.into_iter().step_by(step).collect();
    }
    let mut checks = futures::stream::iter(users.into_iter().map(|(i, u)| {
        let t = t.clone();
        let (cid, limit) = campaigns[i].clone();
        let uid = format!("{prefix}-u{u}");
        async move {
            match get_json(
                &t,
                &format!("/v1/users/{uid}/coupons?campaign_id={cid}&limit=100"),
            )
            .await
            {
                Ok((200, body)) => {
                    let held = body["coupons"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter(|c| c["campaign_id"].as_str() == Some(cid.as_str()))
                                .count()
                        })
                        .unwrap_or(0);
                    if held > limit as usize {
                        Some(format!(
                            "user {uid} holds {held} coupons of {cid} (limit {limit})"
                        ))
                    } else if held == 0 {
                        Some(format!("user {uid} got a 201 for {cid} but holds none"))
                    } else {
                        None
                    }
                }
                Ok((s, _)) => Some(format!("coupons of {uid}: GET answered {s}")),
                Err(e) => Some(format!("coupons of {uid}: {e}")),
            }
        }
    }))
    .buffer_unordered(64);
    while let Some(r) = checks.next().await {
        if let Some(m) = r {
            v.push(m);
        }
    }
    Ok(v)
}
