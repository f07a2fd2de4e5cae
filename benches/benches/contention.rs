//! Contention scenarios on the engine, without HTTP, each next to two baselines that
//! apply the same rules (issue window, stock, one coupon per user):
//!
//! - `engine`: [`Engine::issue`] end to end: the campaign actor's decision, the
//!   group-commit writer, sled's batch and flush on a real on-disk store in a temp dir,
//!   and the reply.
//! - `mutex_hashmap`: one `std::sync::Mutex<HashMap<campaign, state>>` holding a stock
//!   counter, a per-user `HashSet` and the window. Nothing is durable.
//! - `redis_lua`: one `EVALSHA` per request of a Lua script doing the window, duplicate
//!   and stock checks (`KEYS` stock key, issued set; `ARGV` user, now, starts, ends;
//!   returns 1 issued / 0 already / -1 sold out / -2 not active), over one multiplexed
//!   tokio connection to a `redis-server` the bench starts itself on a free port with
//!   `--save '' --appendonly no` (so not durable either) in a temp dir, and kills at
//!   the end. Without `redis-server` on `PATH` the case is skipped, with the reason
//!   printed.
//!
//! Every case runs its requests from N tokio tasks (2 worker threads), closed loop:
//! each task takes the next request from a shared cursor until the iteration's
//! requests are done. Throughput is in requests decided per second, whatever the
//! answer.
//!
//! Scenarios (one criterion group each, all three implementations in the group):
//!
//! - `contention/hot_campaign`: one campaign with stock 1e9 (it never runs out),
//!   1 / 8 / 64 / 512 tasks, every request from a new user, so every request issues.
//! - `contention/sell_out_100`: each iteration a fresh campaign of stock 100 and 1,000
//!   contenders, one task each, all at once; checks exactly 100 are issued.
//! - `contention/sell_out_10x10000`: each iteration 10 fresh campaigns of stock 10,000
//!   and 11,000 contenders each (110,000 requests interleaved over the campaigns) from
//!   512 tasks; flat sampling, so only ~10 iterations; checks exactly 100,000 issued.
//! - `contention/duplicate_storm`: one campaign, 64 tasks; 90% of requests come from
//!   one of 10,000 users who already hold a coupon (answer: already issued), 10% from
//!   new users.
//! - `contention/many_campaigns`: 1,000 campaigns of stock 1e9, 64 tasks, new users;
//!   the campaign is picked uniformly, or Zipf-skewed (s = 1.0, so the hottest campaign
//!   gets ~13% of requests) with a fixed-seed xorshift generator.
//! - `contention/durability`: the hot campaign with 64 tasks on the durable engine and
//!   on an engine whose committer skips the fsync (`CommitterConfig::durable = false`:
//!   the same actor, batches and sled writes, replies without waiting for the disk).
//!   Prints the group-commit batch sizes of each (requests released per group).
//!
//! After each group the bench prints, once, how many requests each implementation
//! issued, refused as duplicates, as sold out, or as not active.
//!
//! Run it with `cargo bench -p firstcome-benches --bench contention` (about 3 to 4
//! minutes on 2 cores). Filter with criterion's usual argument, for example
//! `cargo bench -p firstcome-benches --bench contention -- sell_out`.

// A benchmark is a measuring tool: a failed setup aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use firstcome_engine::{
    CommitterConfig, CouponValidity, Engine, EngineConfig, Idempotent, IssueOutcome, IssueRequest,
    NewCampaign, Store, StoreConfig, SystemClock,
};
use redis::aio::MultiplexedConnection;
use tokio::runtime::Runtime;

/// The allocator the `firstcome` binary ships with, so the engine is measured as it runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const NEVER_RUNS_OUT: u64 = 1_000_000_000;
const HOT_CLIENTS: [u64; 4] = [1, 8, 64, 512];
const CLIENTS: u64 = 64;
const DUPLICATE_HOLDERS: u64 = 10_000;
const CAMPAIGNS: usize = 1_000;
const ZIPF_S: f64 = 1.0;

/// The window every baseline campaign gets: open from an hour before the bench
/// started to a day after (engine campaigns have no window, which is always open).
const WINDOW_BEFORE_MS: i64 = 3_600_000;
const WINDOW_AFTER_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Issued,
    Already,
    SoldOut,
    NotActive,
}

/// What one implementation answered during one scenario.
#[derive(Default)]
struct Tally([AtomicU64; 4]);

impl Tally {
    fn add(&self, o: Outcome) {
        self.0[o as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn issued(&self) -> u64 {
        self.0[Outcome::Issued as usize].load(Ordering::Relaxed)
    }

    fn report(&self, group: &str, backend: &str) {
        let [i, a, s, n] = [0, 1, 2, 3].map(|k| self.0[k].load(Ordering::Relaxed));
        println!(
            "{group}: {backend}: issued {i}, already issued {a}, sold out {s}, not active {n}"
        );
    }
}

/// Tiny xorshift64* generator: fixed seeds, so every run draws the same requests.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf over ranks `0..n`: P(k) proportional to 1 / (k + 1)^s, by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut XorShift) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

// ---------------------------------------------------------------- Mutex<HashMap>

struct MemCampaign {
    total_stock: u64,
    issued: u64,
    starts_ms: i64,
    ends_ms: i64,
    holders: HashSet<String>,
}

#[derive(Default)]
struct MemStore {
    campaigns: Mutex<HashMap<String, MemCampaign>>,
    next_id: AtomicU64,
}

impl MemStore {
    fn create(&self, stock: u64) -> Arc<str> {
        let id = format!("m{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let now = now_ms();
        let campaign = MemCampaign {
            total_stock: stock,
            issued: 0,
            starts_ms: now - WINDOW_BEFORE_MS,
            ends_ms: now + WINDOW_AFTER_MS,
            holders: HashSet::new(),
        };
        self.campaigns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), campaign);
        id.into()
    }

    fn issue(&self, campaign: &str, user: &str, now: i64) -> Outcome {
        let mut campaigns = self.campaigns.lock().unwrap_or_else(|p| p.into_inner());
        let c = campaigns.get_mut(campaign).expect("campaign exists");
        if now < c.starts_ms || now >= c.ends_ms {
            return Outcome::NotActive;
        }
        if c.holders.contains(user) {
            return Outcome::Already;
        }
        if c.issued >= c.total_stock {
            return Outcome::SoldOut;
        }
        c.issued += 1;
        c.holders.insert(user.to_string());
        Outcome::Issued
    }
}

// ---------------------------------------------------------------- Redis + Lua

const ISSUE_LUA: &str = r"
local now = tonumber(ARGV[2])
if now < tonumber(ARGV[3]) or now >= tonumber(ARGV[4]) then
  return -2
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return 0
end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then
  return -1
end
redis.call('DECR', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
";

/// A `redis-server` of our own, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_redis_server() -> Result<RedisServer, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server ({e})"))?;
    Ok(RedisServer {
        child,
        port,
        _dir: dir,
    })
}

#[derive(Clone)]
struct RedisStore {
    con: MultiplexedConnection,
    script: Arc<redis::Script>,
    next_id: Arc<AtomicU64>,
    starts_ms: i64,
    ends_ms: i64,
}

impl RedisStore {
    async fn connect(port: u16) -> Result<RedisStore, String> {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
        // No response timeout: 512 requests in flight on one connection may wait
        // longer than the default 500 ms behind each other.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut con = loop {
            match client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(con) => break con,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("redis-server did not answer: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut con)
            .await
            .map_err(|e| e.to_string())?;
        let now = now_ms();
        Ok(RedisStore {
            con,
            script: Arc::new(redis::Script::new(ISSUE_LUA)),
            next_id: Arc::new(AtomicU64::new(0)),
            starts_ms: now - WINDOW_BEFORE_MS,
            ends_ms: now + WINDOW_AFTER_MS,
        })
    }

    async fn create(&self, stock: u64) -> Arc<str> {
        let id = format!("r{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut con = self.con.clone();
        let _: () = redis::pipe()
            .atomic()
            .set(format!("{id}:stock"), stock)
            .ignore()
            .del(format!("{id}:issued"))
            .ignore()
            .query_async(&mut con)
            .await
            .expect("creating a redis campaign");
        id.into()
    }

    async fn issue(&self, campaign: &str, user: &str, now: i64) -> Outcome {
        let mut con = self.con.clone();
        let mut invocation = self.script.key(format!("{campaign}:stock"));
        invocation
            .key(format!("{campaign}:issued"))
            .arg(user)
            .arg(now)
            .arg(self.starts_ms)
            .arg(self.ends_ms);
        let answer: i64 = invocation
            .invoke_async(&mut con)
            .await
            .expect("EVALSHA issue");
        match answer {
            1 => Outcome::Issued,
            0 => Outcome::Already,
            -1 => Outcome::SoldOut,
            -2 => Outcome::NotActive,
            other => panic!("unexpected script answer {other}"),
        }
    }
}

// ---------------------------------------------------------------- the three, alike

#[derive(Clone)]
enum Backend {
    Engine(Engine),
    Mutex(Arc<MemStore>),
    Redis(RedisStore),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Engine(_) => "engine",
            Backend::Mutex(_) => "mutex_hashmap",
            Backend::Redis(_) => "redis_lua",
        }
    }

    async fn create(&self, stock: u64) -> Arc<str> {
        match self {
            Backend::Engine(engine) => engine
                .create_campaign(NewCampaign {
                    name: "contention".into(),
                    total_stock: stock,
                    per_user_limit: 1,
                    starts_at: None,
                    ends_at: None,
                    validity: CouponValidity::UntilCampaignEnds,
                    store_id: None,
                    discount: None,
                })
                .await
                .expect("creating a campaign")
                .record
                .id
                .into(),
            Backend::Mutex(store) => store.create(stock),
            Backend::Redis(store) => store.create(stock).await,
        }
    }

    async fn create_many(&self, count: usize, stock: u64) -> Arc<[Arc<str>]> {
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count.div_ceil(100) {
            let n = (count - ids.len()).min(100);
            ids.extend(futures::future::join_all((0..n).map(|_| self.create(stock))).await);
        }
        ids.into()
    }

    async fn issue(&self, campaign: &str, user: &str) -> Outcome {
        match self {
            Backend::Engine(engine) => {
                match engine.issue(IssueRequest::new(campaign, user)).await {
                    Ok(Idempotent::Fresh(IssueOutcome::Issued(_))) => Outcome::Issued,
                    Ok(Idempotent::Fresh(IssueOutcome::AlreadyIssued { .. })) => Outcome::Already,
                    Ok(Idempotent::Fresh(IssueOutcome::SoldOut)) => Outcome::SoldOut,
                    Ok(Idempotent::Fresh(IssueOutcome::NotActive(_))) => Outcome::NotActive,
                    Ok(other) => panic!("engine issue to {user} without a key: {other:?}"),
                    Err(e) => panic!("engine issue to {user}: {e}"),
                }
            }
            Backend::Mutex(store) => store.issue(campaign, user, now_ms()),
            Backend::Redis(store) => store.issue(campaign, user, now_ms()).await,
        }
    }
}

/// Picks request `i`'s campaign and user.
type Requests = Arc<dyn Fn(&mut XorShift, u64) -> (Arc<str>, String) + Send + Sync>;

/// Runs `total` requests from `clients` closed-loop tasks; returns the wall time.
async fn drive(
    backend: &Backend,
    clients: u64,
    total: u64,
    seed: u64,
    tally: &Arc<Tally>,
    requests: &Requests,
) -> Duration {
    let cursor = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.min(total))
        .map(|task| {
            let (backend, cursor, tally, requests) = (
                backend.clone(),
                cursor.clone(),
                tally.clone(),
                requests.clone(),
            );
            let mut rng = XorShift::new(seed.wrapping_mul(1_000_003).wrapping_add(task + 1));
            tokio::spawn(async move {
                loop {
                    let i = cursor.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let (campaign, user) = requests(&mut rng, i);
                    tally.add(backend.issue(&campaign, &user).await);
                }
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.expect("issuing task panicked");
    }
    started.elapsed()
}

/// Shared by every scenario.
struct Bench {
    rt: Runtime,
    backends: Vec<Backend>,
    /// Distinct user names across the whole run.
    next_user: Arc<AtomicU64>,
    /// Fresh RNG seeds, in a fixed order.
    next_seed: Arc<AtomicU64>,
}

impl Bench {
    fn new_user(next_user: &AtomicU64) -> String {
        format!("user-{}", next_user.fetch_add(1, Ordering::Relaxed))
    }

    fn hot_campaign(&self, c: &mut Criterion) {
        let name = "contention/hot_campaign";
        let mut group = c.benchmark_group(name);
        let mut tallies = Vec::new();
        for backend in &self.backends {
            let campaign = self.rt.block_on(backend.create(NEVER_RUNS_OUT));
            let next_user = self.next_user.clone();
            let requests: Requests =
                Arc::new(move |_, _| (campaign.clone(), Self::new_user(&next_user)));
            let tally = Arc::new(Tally::default());
            for clients in HOT_CLIENTS {
                group.throughput(Throughput::Elements(clients));
                group.bench_function(BenchmarkId::new(backend.name(), clients), |b| {
                    b.to_async(&self.rt).iter_custom(|iters| {
                        let (backend, tally, requests) =
                            (backend.clone(), tally.clone(), requests.clone());
                        let seed = self.next_seed.fetch_add(1, Ordering::Relaxed);
                        async move {
                            drive(&backend, clients, clients * iters, seed, &tally, &requests).await
                        }
                    });
                });
            }
            tallies.push((backend.name().to_string(), tally));
        }
        group.finish();
        report(name, &tallies);
    }

    /// Each iteration: `campaigns` fresh campaigns of `stock`, `contenders` users for
    /// each, interleaved, from `clients` tasks. Campaign creation is not timed.
    fn sell_out(
        &self,
        c: &mut Criterion,
        name: &str,
        (campaigns, stock, contenders, clients): (usize, u64, u64, u64),
        flat: bool,
    ) {
        let mut group = c.benchmark_group(name);
        if flat {
            group.sampling_mode(SamplingMode::Flat);
        }
        let total = campaigns as u64 * contenders;
        group.throughput(Throughput::Elements(total));
        let id = format!("{campaigns}x{stock}_{contenders}_each");
        let mut tallies = Vec::new();
        for backend in &self.backends {
            let tally = Arc::new(Tally::default());
            group.bench_function(BenchmarkId::new(backend.name(), &id), |b| {
                b.to_async(&self.rt).iter_custom(|iters| {
                    let (backend, tally) = (backend.clone(), tally.clone());
                    let seed = self.next_seed.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let mut took = Duration::ZERO;
                        for _ in 0..iters {
                            let ids = backend.create_many(campaigns, stock).await;
                            let requests: Requests = Arc::new(move |_, i| {
                                let n = ids.len() as u64;
                                (ids[(i % n) as usize].clone(), format!("c{}", i / n))
                            });
                            let before = tally.issued();
                            took += drive(&backend, clients, total, seed, &tally, &requests).await;
                            let issued = tally.issued() - before;
                            assert_eq!(
                                issued,
                                campaigns as u64 * stock,
                                "{}: sold out with the wrong count",
                                backend.name()
                            );
                        }
                        took
                    }
                });
            });
            tallies.push((backend.name().to_string(), tally));
        }
        group.finish();
        report(name, &tallies);
    }

    fn duplicate_storm(&self, c: &mut Criterion) {
        let name = "contention/duplicate_storm";
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(CLIENTS));
        let mut tallies = Vec::new();
        for backend in &self.backends {
            let campaign = self.rt.block_on(backend.create(NEVER_RUNS_OUT));
            let prefix = format!("holder-{}-", backend.name());
            // The holders get their coupons first, untimed and uncounted.
            {
                let (campaign, prefix) = (campaign.clone(), prefix.clone());
                let setup: Requests =
                    Arc::new(move |_, i| (campaign.clone(), format!("{prefix}{i}")));
                let tally = Arc::new(Tally::default());
                self.rt.block_on(drive(
                    backend,
                    CLIENTS,
                    DUPLICATE_HOLDERS,
                    0,
                    &tally,
                    &setup,
                ));
                assert_eq!(tally.issued(), DUPLICATE_HOLDERS);
            }
            let next_user = self.next_user.clone();
            let requests: Requests = Arc::new(move |rng, _| {
                let user = if rng.below(10) < 9 {
                    format!("{prefix}{}", rng.below(DUPLICATE_HOLDERS))
                } else {
                    Self::new_user(&next_user)
                };
                (campaign.clone(), user)
            });
            let tally = Arc::new(Tally::default());
            group.bench_function(BenchmarkId::new(backend.name(), "90pct_holders"), |b| {
                b.to_async(&self.rt).iter_custom(|iters| {
                    let (backend, tally, requests) =
                        (backend.clone(), tally.clone(), requests.clone());
                    let seed = self.next_seed.fetch_add(1, Ordering::Relaxed);
                    async move {
                        drive(&backend, CLIENTS, CLIENTS * iters, seed, &tally, &requests).await
                    }
                });
            });
            tallies.push((backend.name().to_string(), tally));
        }
        group.finish();
        report(name, &tallies);
    }

    fn many_campaigns(&self, c: &mut Criterion) {
        let name = "contention/many_campaigns";
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(CLIENTS));
        let zipf = Arc::new(Zipf::new(CAMPAIGNS, ZIPF_S));
        let mut tallies = Vec::new();
        for backend in &self.backends {
            let ids = self
                .rt
                .block_on(backend.create_many(CAMPAIGNS, NEVER_RUNS_OUT));
            for skewed in [false, true] {
                let (ids, zipf, next_user) = (ids.clone(), zipf.clone(), self.next_user.clone());
                let requests: Requests = Arc::new(move |rng, _| {
                    let k = if skewed {
                        zipf.sample(rng)
                    } else {
                        rng.below(ids.len() as u64) as usize
                    };
                    (ids[k].clone(), Self::new_user(&next_user))
                });
                let tally = Arc::new(Tally::default());
                let spread = if skewed { "zipf" } else { "uniform" };
                group.bench_function(BenchmarkId::new(backend.name(), spread), |b| {
                    b.to_async(&self.rt).iter_custom(|iters| {
                        let (backend, tally, requests) =
                            (backend.clone(), tally.clone(), requests.clone());
                        let seed = self.next_seed.fetch_add(1, Ordering::Relaxed);
                        async move {
                            drive(&backend, CLIENTS, CLIENTS * iters, seed, &tally, &requests).await
                        }
                    });
                });
                tallies.push((format!("{}/{spread}", backend.name()), tally));
            }
        }
        group.finish();
        report(name, &tallies);
    }
}

impl Bench {
    /// The hot campaign at 64 tasks on engines that differ only in the fsync.
    fn durability(&self, c: &mut Criterion, engines: &[(&'static str, &Engine)]) {
        let name = "contention/durability";
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(CLIENTS));
        for (label, engine) in engines {
            let backend = Backend::Engine((*engine).clone());
            let campaign = self.rt.block_on(backend.create(NEVER_RUNS_OUT));
            let next_user = self.next_user.clone();
            let requests: Requests =
                Arc::new(move |_, _| (campaign.clone(), Self::new_user(&next_user)));
            let tally = Arc::new(Tally::default());
            let before = engine.commit_stats();
            group.bench_function(BenchmarkId::new(*label, CLIENTS), |b| {
                b.to_async(&self.rt).iter_custom(|iters| {
                    let (backend, tally, requests) =
                        (backend.clone(), tally.clone(), requests.clone());
                    let seed = self.next_seed.fetch_add(1, Ordering::Relaxed);
                    async move {
                        drive(&backend, CLIENTS, CLIENTS * iters, seed, &tally, &requests).await
                    }
                });
            });
            let after = engine.commit_stats();
            let groups = after.groups - before.groups;
            let submissions = after.requests - before.requests;
            // A campaign submits its decisions in batches, so the committer's own count
            // (submissions) understates what one flush carries: count the decisions.
            let decided = tally.issued();
            println!(
                "{name}/{label}: {decided} requests decided in {groups} group commits \
                 ({submissions} submissions), {:.1} requests per group commit",
                decided as f64 / groups.max(1) as f64
            );
        }
        group.finish();
    }
}

fn report(group: &str, tallies: &[(String, Arc<Tally>)]) {
    for (backend, tally) in tallies {
        tally.report(group, backend);
    }
}

fn open_store(path: &Path) -> Store {
    Store::open(&StoreConfig::at(path.to_path_buf(), 64 << 20)).expect("opening the store")
}

fn main() {
    // Two workers: the machines this runs on have two cores, and the committer has its
    // own OS thread besides (so does redis-server, when it runs).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = rt
        .block_on(Engine::start(
            open_store(&dir.path().join("store")),
            Arc::new(SystemClock),
            EngineConfig::default(),
        ))
        .expect("starting the engine");
    let mut backends = vec![
        Backend::Engine(engine.clone()),
        Backend::Mutex(Arc::new(MemStore::default())),
    ];
    let redis_server = match start_redis_server() {
        Ok(server) => match rt.block_on(RedisStore::connect(server.port)) {
            Ok(store) => {
                backends.push(Backend::Redis(store));
                Some(server)
            }
            Err(e) => {
                println!("skipping the Redis + Lua baseline: {e}");
                None
            }
        },
        Err(e) => {
            println!("skipping the Redis + Lua baseline: {e}");
            None
        }
    };

    let bench = Bench {
        rt,
        backends,
        next_user: Arc::new(AtomicU64::new(0)),
        next_seed: Arc::new(AtomicU64::new(1)),
    };
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench.hot_campaign(&mut c);
    bench.sell_out(
        &mut c,
        "contention/sell_out_100",
        (1, 100, 1_000, 1_000),
        false,
    );
    bench.sell_out(
        &mut c,
        "contention/sell_out_10x10000",
        (10, 10_000, 11_000, 512),
        true,
    );
    bench.duplicate_storm(&mut c);
    bench.many_campaigns(&mut c);
    let no_fsync_dir = tempfile::tempdir().expect("temp dir");
    let no_fsync = bench
        .rt
        .block_on(Engine::start(
            open_store(&no_fsync_dir.path().join("store")),
            Arc::new(SystemClock),
            EngineConfig {
                committer: CommitterConfig {
                    durable: false,
                    ..CommitterConfig::default()
                },
                mail: None,
                ..EngineConfig::default()
            },
        ))
        .expect("starting the engine without fsync");
    bench.durability(&mut c, &[("durable", &engine), ("no_fsync", &no_fsync)]);
    c.final_summary();

    bench
        .rt
        .block_on(no_fsync.shutdown(Duration::from_secs(30)));
    bench.rt.block_on(engine.shutdown(Duration::from_secs(30)));
    drop(redis_server);
}
