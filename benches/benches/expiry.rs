//! What expiry costs with many coupons pending: `EXPIRY_COUPONS` (default 1,000,000)
//! coupons valid for 60 s are issued on a real on-disk store with a manual clock; the
//! clock then jumps past their expiry and the bench times how long the campaign actor
//! takes to expire all of them through its time-ordered index (rounds of 1,000, each
//! one group commit), and what one round costs.
//!
//! Run it with `cargo bench -p firstcome-benches --bench expiry`. Without `--bench`
//! (under `cargo test --benches`) it runs 2,000 coupons as a smoke test.

// A benchmark is a measuring tool: a failed setup aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firstcome_engine::{
    CouponValidity, Engine, EngineConfig, Idempotent, IssueOutcome, IssueRequest, ManualClock,
    NewCampaign, Store, StoreConfig,
};

type Error = Box<dyn std::error::Error>;

const IN_FLIGHT: u64 = 256;

fn count() -> Result<u64, Error> {
    match std::env::var("EXPIRY_COUPONS") {
        Ok(v) => Ok(v.replace('_', "").parse()?),
        Err(_) if std::env::args().any(|a| a == "--bench") => Ok(1_000_000),
        Err(_) => Ok(2_000),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let count = count()?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(&StoreConfig::at(dir.path().join("store"), 64 << 20))?;
    let clock = ManualClock::new("2026-11-22T00:00:00Z".parse()?);
    let engine = Engine::start(store, Arc::new(clock.clone()), EngineConfig::default()).await?;
    let id: Arc<str> = engine
        .create_campaign(NewCampaign {
            name: "expiry".into(),
            total_stock: count,
            per_user_limit: 1,
            starts_at: None,
            ends_at: None,
            validity: CouponValidity::ForSecs(60),
            store_id: None,
            discount: None,
        })
        .await?
        .record
        .id
        .into();

    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..IN_FLIGHT.min(count))
        .map(|_| {
            let (engine, id, next) = (engine.clone(), id.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<(), String>(());
                    }
                    match engine
                        .issue(IssueRequest::new(&*id, format!("user-{i:09}")))
                        .await
                    {
                        Ok(Idempotent::Fresh(IssueOutcome::Issued(_))) => {}
                        other => return Err(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t??;
    }
    println!(
        "issue:   {count} coupons with an expiry in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Nothing is due yet: a stats request (which runs one expiry round first) costs
    // one empty index scan.
    let t = Instant::now();
    assert_eq!(engine.stats(&id).await?.expired, 0);
    println!(
        "idle:    stats with nothing due {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    clock.advance(Duration::from_secs(61));
    // One round: 1,000 coupons read, rewritten, unindexed, counted, committed.
    let t = Instant::now();
    let first = engine.stats(&id).await?.expired;
    let round = t.elapsed();
    println!(
        "round:   {first} coupons expired in {:.2} ms",
        round.as_secs_f64() * 1e3
    );

    // The rest: the actor continues round after round by itself (5 ms apart).
    let t = Instant::now();
    loop {
        let s = engine.stats(&id).await?;
        if s.expired == count {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            return Err(format!("only {} of {count} expired after 600 s", s.expired).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = t.elapsed();
    println!(
        "all:     {count} coupons expired in {:.2} s ({:.0} coupons/s)",
        all.as_secs_f64(),
        count as f64 / all.as_secs_f64()
    );
    let c = engine.coupon(&format!("{id}-0"))?;
    assert_eq!(c.status.as_str(), "expired");
    engine.shutdown(Duration::from_secs(30)).await;
    Ok(())
}
