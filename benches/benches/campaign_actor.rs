//! Issue throughput of one campaign actor, end to end through [`Engine::issue`]: the
//! actor's decision, the group-commit writer, sled's batch and fsync on a real on-disk
//! store, and the reply. Every request goes to a new user of a campaign whose stock
//! never runs out, so every request issues a coupon.
//!
//! Two cases: 1 client (each request pays a whole fsync) and 64 concurrent clients (the
//! committer shares one fsync among the requests queued meanwhile).
//!
//! Run it with `cargo bench -p firstcome-benches --bench campaign_actor`; it takes
//! about a minute. Throughput is in coupons issued per second.

// A benchmark is a measuring tool: a failed setup aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use firstcome_engine::{
    CouponValidity, Engine, EngineConfig, Idempotent, IssueOutcome, IssueRequest, NewCampaign,
    Store, StoreConfig, SystemClock,
};

const CONCURRENCY: [u64; 2] = [1, 64];

/// Runs `clients` closed-loop clients, each issuing `rounds` coupons one after the
/// other, and returns the wall time. Closed loop rather than a `join_all` barrier per
/// round: a barrier would make every round wait for its slowest request and leave the
/// committer idle in between, which measures the barrier, not the actor.
async fn issue_rounds(
    engine: &Engine,
    campaign: &Arc<str>,
    next_user: &Arc<AtomicU64>,
    clients: u64,
    rounds: u64,
) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let engine = engine.clone();
            let campaign = campaign.clone();
            let next_user = next_user.clone();
            tokio::spawn(async move {
                for _ in 0..rounds {
                    let user = format!("user-{}", next_user.fetch_add(1, Ordering::Relaxed));
                    match engine.issue(IssueRequest::new(&*campaign, &user)).await {
                        Ok(Idempotent::Fresh(IssueOutcome::Issued(_))) => {}
                        other => panic!("expected a coupon for {user}, got {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.expect("issuing task panicked");
    }
    started.elapsed()
}

fn bench_issue(c: &mut Criterion) {
    // Two workers: the machines this runs on have two cores, and the committer has
    // its own OS thread besides.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&StoreConfig::at(dir.path().join("store"), 64 << 20))
        .expect("opening the store");
    let engine = rt
        .block_on(Engine::start(
            store,
            Arc::new(SystemClock),
            EngineConfig::default(),
        ))
        .expect("starting the engine");
    let view = rt
        .block_on(engine.create_campaign(NewCampaign {
            name: "bench".into(),
            total_stock: 1_000_000_000,
            per_user_limit: 1,
            starts_at: None,
            ends_at: None,
            validity: CouponValidity::UntilCampaignEnds,
            store_id: None,
            discount: None,
        }))
        .expect("creating the campaign");
    let campaign: Arc<str> = view.record.id.into();
    // Shared by both cases, warm-up included, so no user ever asks twice.
    let next_user = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("campaign_actor/issue");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for clients in CONCURRENCY {
        group.throughput(Throughput::Elements(clients));
        group.bench_with_input(
            BenchmarkId::new("clients", clients),
            &clients,
            |b, &clients| {
                b.to_async(&rt).iter_custom(|rounds| {
                    let (engine, campaign, next_user) =
                        (engine.clone(), campaign.clone(), next_user.clone());
                    async move { issue_rounds(&engine, &campaign, &next_user, clients, rounds).await }
                });
            },
        );
    }
    group.finish();

    rt.block_on(engine.shutdown(Duration::from_secs(30)));
}

criterion_group!(benches, bench_issue);
criterion_main!(benches);
