//! The feeds against a real engine on a real store: what is published, and when.

use std::sync::Arc;
use std::time::Duration;

use firstcome_storage::{Store, StoreConfig, Writes};

use crate::campaign::CampaignMsg;
use crate::model::{CampaignStatus, IssueOutcome};
use crate::{Engine, EngineConfig, SystemClock};

async fn engine(dir: &std::path::Path) -> Engine {
    let store = Store::open(&StoreConfig::at(dir.join("store"), 8 << 20)).unwrap();
    let config = EngineConfig {
        live_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    };
    Engine::start(store, Arc::new(SystemClock), config)
        .await
        .unwrap()
}

async fn campaign(engine: &Engine, stock: u64) -> String {
    crate::campaign::tests::campaign(engine, "live", stock).await
}

async fn issue(engine: &Engine, id: &str, user: &str) {
    let outcome = crate::campaign::tests::issue(engine, id, user).await;
    assert!(matches!(outcome, IssueOutcome::Issued(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_is_published_only_once_its_commit_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, 2).await;
    let mut sub = engine.subscribe_campaign(&id).unwrap();
    assert_eq!(sub.events.borrow_and_update().view.issued, 0);
    // Hold the committer: a completion that waits for the test.
    let (release, held) = std::sync::mpsc::channel::<()>();
    engine.committer().submit(
        Writes::new(),
        Box::new(move |_| {
            let _ = held.recv();
        }),
    );
    let issuing = {
        let engine = engine.clone();
        let id = id.clone();
        tokio::spawn(async move { issue(&engine, &id, "u1").await })
    };
    // Decided, not durable: twenty publisher rounds go by with nothing to say.
    let early = tokio::time::timeout(Duration::from_millis(200), sub.events.changed()).await;
    assert!(early.is_err(), "a count went out before its fsync");
    assert!(!issuing.is_finished());
    release.send(()).unwrap();
    sub.events.changed().await.unwrap();
    let event = sub.events.borrow_and_update().clone();
    assert_eq!(
        (event.view.issued, event.view.status),
        (1, CampaignStatus::Active)
    );
    issuing.await.unwrap();
    // The last coupon: sold out, published with its count.
    issue(&engine, &id, "u2").await;
    sub.events.changed().await.unwrap();
    let event = sub.events.borrow_and_update().clone();
    assert_eq!(
        (event.view.issued, event.view.remaining(), event.view.status),
        (2, 0, CampaignStatus::SoldOut)
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_skips_to_the_latest_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, 50).await;
    let mut slow = engine.subscribe_campaign(&id).unwrap();
    let mut reader = engine.subscribe_campaign(&id).unwrap();
    let first = slow.events.borrow_and_update().id.clone();
    // A reader that keeps up sees the states as the 10 ms rounds publish them.
    let following = tokio::spawn(async move {
        let mut seen = 1;
        loop {
            reader.events.changed().await.unwrap();
            seen += 1;
            if reader.events.borrow_and_update().view.status == CampaignStatus::SoldOut {
                return seen;
            }
        }
    });
    for user in 0..50 {
        issue(&engine, &id, &format!("u{user}")).await;
        // Room for a round between two issues, so there are states to skip.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seen = tokio::time::timeout(Duration::from_secs(10), following)
        .await
        .expect("the sell-out was published")
        .unwrap();
    assert!(seen > 2, "nothing to skip: {seen} states");
    // The one that read nothing meanwhile reads the latest state at once, and only it.
    assert!(slow.events.has_changed().unwrap());
    let latest = slow.events.borrow_and_update().clone();
    assert_eq!(
        (latest.view.issued, latest.view.status),
        (50, CampaignStatus::SoldOut)
    );
    assert_ne!(latest.id, first);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_campaign_keeps_its_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, 10).await;
    issue(&engine, &id, "u1").await;
    let mut sub = engine.subscribe_campaign(&id).unwrap();
    sub.events.borrow_and_update();
    let old = engine.actor_of(&id).get_id();
    engine
        .actor_of(&id)
        .cast(CampaignMsg::InjectFailure)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while engine.actor_of(&id).get_id() == old {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the actor was replaced");
    issue(&engine, &id, "u2").await;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            sub.events.changed().await.unwrap();
            if sub.events.borrow_and_update().view.issued == 2 {
                break;
            }
        }
    })
    .await
    .expect("the replacement's coupon reached the old subscription");
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_feeds_ends_every_subscription_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, 10).await;
    let mut campaign_sub = engine.subscribe_campaign(&id).unwrap();
    let mut store_sub = engine.subscribe_store("shop").unwrap();
    engine.close_feeds();
    assert_eq!(campaign_sub.heartbeat.next().await, crate::Beat::Closed);
    assert_eq!(store_sub.heartbeat.next().await, crate::Beat::Closed);
    assert!(matches!(
        engine.subscribe_campaign(&id),
        Err(crate::EngineError::ShuttingDown)
    ));
    assert!(engine.subscribe_store("shop").is_err());
    engine.shutdown(Duration::from_secs(5)).await;
}
