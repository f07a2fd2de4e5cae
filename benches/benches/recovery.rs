//! Recovery time of a big campaign, against the invariant "a campaign with 1,000,000
//! issued coupons recovers in 1 s or less".
//!
//! It issues `RECOVERY_COUPONS` (default 1,000,000) coupons to distinct users of one
//! campaign on a real on-disk store, shuts the engine down, reopens the store and
//! times [`Engine::start`] (each campaign actor rebuilds its ledger in `pre_start`)
//! plus a first call to the campaign. It then checks that the recovered campaign is
//! sold out and still knows every holder, and breaks the recovery down into its
//! parts by calling the storage layer directly.
//!
//! Run it with `cargo bench -p firstcome-benches --bench recovery` (release build).
//! The store is just written, so its files are in the OS page cache: this is a
//! warm-cache number, a lower bound for a cold restart.
//!
//! Set `RUST_LOG=firstcome_engine=debug` to see the engine's own timings (each campaign's
//! ledger rebuild, the whole start) on stderr.
//!
//! Without `--bench` (that is, under `cargo test --benches`) it defaults to a
//! thousand coupons, a smoke test rather than a measurement.

// A benchmark is a measuring tool: a failed setup aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firstcome_engine::{
    CouponValidity, Engine, EngineConfig, Idempotent, IssueOutcome, IssueRequest, Ledger,
    NewCampaign, Store, StoreConfig, SystemClock,
};

const BUDGET: Duration = Duration::from_secs(1);
/// Enough requests in flight that the committer's group commits stay full; the cost
/// per request is then the actor and the batch, not the fsync.
const IN_FLIGHT: u64 = 256;

type Error = Box<dyn std::error::Error>;

fn coupons_to_issue() -> Result<u64, Error> {
    match std::env::var("RECOVERY_COUPONS") {
        Ok(v) => Ok(v.replace('_', "").parse()?),
        // `cargo bench` passes --bench; `cargo test --benches` runs this too, and in a
        // debug build a million coupons would take minutes.
        Err(_) if std::env::args().any(|a| a == "--bench") => Ok(1_000_000),
        Err(_) => Ok(1_000),
    }
}

fn open(path: &Path) -> Result<Store, Error> {
    Ok(Store::open(&StoreConfig::at(path.to_path_buf(), 64 << 20))?)
}

async fn start(store: Store) -> Result<Engine, Error> {
    Ok(Engine::start(store, Arc::new(SystemClock), EngineConfig::default()).await?)
}

fn user(i: u64) -> String {
    format!("user-{i:09}")
}

fn dir_size(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Issues `count` coupons to users `user(0..count)`, `IN_FLIGHT` requests at a time.
async fn issue_all(engine: &Engine, campaign: &Arc<str>, count: u64) -> Result<(), Error> {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..IN_FLIGHT.min(count))
        .map(|_| {
            let (engine, campaign, next) = (engine.clone(), campaign.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok(());
                    }
                    match engine.issue(IssueRequest::new(&*campaign, user(i))).await {
                        Ok(Idempotent::Fresh(IssueOutcome::Issued(_))) => {}
                        other => return Err(format!("issuing to {}: {other:?}", user(i))),
                    }
                }
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let count = coupons_to_issue()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store");
    println!("recovery: {count} coupons, {IN_FLIGHT} requests in flight");

    let engine = start(open(&path)?).await?;
    let view = engine
        .create_campaign(NewCampaign {
            name: "recovery".into(),
            total_stock: count,
            per_user_limit: 1,
            starts_at: None,
            ends_at: None,
            validity: CouponValidity::UntilCampaignEnds,
            store_id: None,
            discount: None,
        })
        .await?;
    let campaign: Arc<str> = view.record.id.into();
    let started = Instant::now();
    issue_all(&engine, &campaign, count).await?;
    let took = started.elapsed();
    println!(
        "issue:    {count} coupons in {:.2} s ({:.0} coupons/s)",
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64()
    );
    engine.shutdown(Duration::from_secs(30)).await;
    drop(engine);
    let size = dir_size(&path)?;
    println!(
        "store:    {:.1} MiB on disk ({:.0} bytes per coupon)",
        size as f64 / (1 << 20) as f64,
        size as f64 / count.max(1) as f64
    );

    // The measurement: what a restarted process does before it can answer.
    let t0 = Instant::now();
    let store = open(&path)?;
    let opened = t0.elapsed();
    let t1 = Instant::now();
    let engine = start(store).await?;
    let view = engine.campaign(&campaign).await?;
    let recovered = t1.elapsed();
    println!("recovery: store open {}", ms(opened));
    println!(
        "recovery: Engine::start + first campaign() {} (budget {}: {})",
        ms(recovered),
        ms(BUDGET),
        if recovered <= BUDGET { "ok" } else { "OVER" }
    );
    println!(
        "recovery: open + start + first call {}",
        ms(opened + recovered)
    );

    if view.issued != count {
        return Err(format!("recovered issued = {}, expected {count}", view.issued).into());
    }
    match engine
        .issue(IssueRequest::new(&*campaign, user(count / 2)))
        .await?
    {
        Idempotent::Fresh(IssueOutcome::AlreadyIssued { .. }) => {}
        other => return Err(format!("a holder asking again got {other:?}").into()),
    }
    match engine
        .issue(IssueRequest::new(&*campaign, "someone-new"))
        .await?
    {
        Idempotent::Fresh(IssueOutcome::SoldOut) => {}
        other => return Err(format!("a new user got {other:?}").into()),
    }
    println!("checks:   issued = {count}, a holder gets AlreadyIssued, a new user gets SoldOut");
    engine.shutdown(Duration::from_secs(30)).await;
    drop(engine);

    // Where the time goes, one layer down. Same steps as Engine::start and the
    // campaign actor's pre_start, timed one by one (the page cache is warm by now).
    let t = Instant::now();
    let store = open(&path)?;
    let opened = t.elapsed();
    let t = Instant::now();
    let records = store.campaigns(None, usize::MAX)?;
    let listed = t.elapsed();
    let record = records
        .into_iter()
        .find(|r| *r.id == *campaign)
        .ok_or("the campaign is missing")?;
    let t = Instant::now();
    let holders = store.recover_holders(&record.id)?;
    let read = t.elapsed();
    let (n, in_groups) = (
        holders.holders.len(),
        holders.holders.len() as u64 - holders.first_group_seq,
    );
    let t = Instant::now();
    let ledger = Ledger::recover(record.total_stock, record.per_user_limit, &holders.holders);
    let rebuilt = t.elapsed();
    println!("profile:  Store::open {}", ms(opened));
    println!("profile:  store.campaigns {}", ms(listed));
    println!(
        "profile:  store.recover_holders {} ({n} holders, {in_groups} from issued groups, {} from coupon records)",
        ms(read),
        n as u64 - in_groups
    );
    println!(
        "profile:  Ledger::recover {} ({} distinct holders; standalone: the engine reads its holders from the user index instead)",
        ms(rebuilt),
        ledger.distinct_holders()
    );
    Ok(())
}
