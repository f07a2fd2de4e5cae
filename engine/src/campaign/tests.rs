//! The campaign actor under supervision: failures, restarts with decisions in flight,
//! and decisions queued back to back, against a real store in a temporary directory.

use std::sync::Arc;
use std::time::Duration;

use firstcome_storage::{Store, StoreConfig};

use super::CampaignMsg;
use crate::admission::Reply;
use crate::model::{CampaignPatch, CouponChange, CouponValidity, Idempotent, NewCampaign};
use crate::request::{CouponAction, CouponUse, IssueRequest};
use crate::{Engine, EngineConfig, EngineError, IssueOutcome, SystemClock};

/// An issue without a key, answered as the outcome itself.
pub(crate) async fn issue(engine: &Engine, campaign: &str, user: &str) -> IssueOutcome {
    match engine
        .issue(IssueRequest::new(campaign, user))
        .await
        .unwrap()
    {
        Idempotent::Fresh(o) => o,
        other => panic!("{other:?}"),
    }
}

/// A reply port for a message sent straight to an actor, holding an admission permit
/// like every request the engine sends.
fn reply<T>(
    engine: &Engine,
) -> (
    Reply<T>,
    ractor::concurrency::OneshotReceiver<Result<T, crate::EngineError>>,
) {
    let (tx, rx) = ractor::concurrency::oneshot();
    (
        Reply::new(tx.into(), engine.admission().admit().unwrap()),
        rx,
    )
}

pub(crate) fn spec(name: &str, stock: u64) -> NewCampaign {
    NewCampaign {
        name: name.into(),
        total_stock: stock,
        per_user_limit: 1,
        starts_at: None,
        ends_at: None,
        validity: CouponValidity::UntilCampaignEnds,
        store_id: None,
        discount: None,
    }
}

/// A new campaign's id.
pub(crate) async fn campaign(engine: &Engine, name: &str, stock: u64) -> String {
    engine
        .create_campaign(spec(name, stock))
        .await
        .unwrap()
        .record
        .id
}

/// Waits (bounded) until the supervisor has replaced the campaign's actor `old`.
async fn replaced(engine: &Engine, id: &str, old: ractor::ActorId) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while engine.actor_of(id).get_id() == old {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the campaign's actor was replaced");
}

async fn engine(dir: &std::path::Path) -> Engine {
    engine_with(dir, EngineConfig::default()).await
}

async fn engine_with(dir: &std::path::Path, config: EngineConfig) -> Engine {
    let store = Store::open(&StoreConfig::at(dir.join("store"), 8 << 20)).unwrap();
    Engine::start(store, Arc::new(SystemClock), config)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_waited_past_the_queue_deadline_is_shed_and_decides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = engine(dir.path()).await;
    let id = campaign(&first, "late", 10).await;
    first.shutdown(Duration::from_secs(5)).await;
    drop(first);
    // Every request has waited longer than no time at all.
    let impatient = EngineConfig {
        queue_deadline: Duration::ZERO,
        ..EngineConfig::default()
    };
    let late = engine_with(dir.path(), impatient).await;
    for user in ["u1", "u2", "u3"] {
        let shed = late.issue(IssueRequest::new(id.clone(), user)).await;
        assert!(matches!(shed, Err(EngineError::Overloaded)), "{shed:?}");
    }
    assert!(matches!(
        late.campaign(&id).await,
        Err(EngineError::Overloaded)
    ));
    late.shutdown(Duration::from_secs(5)).await;
    drop(late);
    let patient = engine(dir.path()).await;
    assert_eq!(patient.campaign(&id).await.unwrap().issued, 0);
    assert!(matches!(
        issue(&patient, &id, "u1").await,
        IssueOutcome::Issued(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_campaign_is_restarted_alone_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let a = campaign(&engine, "a", 10).await;
    let b = campaign(&engine, "b", 10).await;
    for user in ["a1", "a2"] {
        assert!(matches!(
            issue(&engine, &a, user).await,
            IssueOutcome::Issued(_)
        ));
    }
    assert!(matches!(
        issue(&engine, &b, "b1").await,
        IssueOutcome::Issued(_)
    ));
    let a_before = engine.actor_of(&a).get_id();
    let b_before = engine.actor_of(&b).get_id();

    engine
        .actor_of(&a)
        .cast(CampaignMsg::InjectFailure)
        .unwrap();
    replaced(&engine, &a, a_before).await;

    // a rebuilt its ledger from the store; b never noticed.
    assert_eq!(engine.campaign(&a).await.unwrap().issued, 2);
    assert!(matches!(
        issue(&engine, &a, "a1").await,
        IssueOutcome::AlreadyIssued { .. }
    ));
    assert!(matches!(
        issue(&engine, &a, "a3").await,
        IssueOutcome::Issued(_)
    ));
    assert_eq!(engine.actor_of(&b).get_id(), b_before);
    assert_eq!(engine.campaign(&b).await.unwrap().issued, 1);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_decisions_in_flight_never_reissues_a_promised_coupon() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, "racy", 100_000).await;
    let actor = engine.actor_of(&id);
    let old_id = actor.get_id();
    // 300 decisions queued in order, then the failure right behind them: when the
    // replacement starts, some of those decisions are still in the committer.
    let mut replies = Vec::new();
    for i in 0..300 {
        let (tx, rx) = reply(&engine);
        let user_id = format!("u{i}");
        actor
            .send_message(CampaignMsg::Issue(IssueRequest::new(&id, &user_id), tx))
            .unwrap();
        replies.push((user_id, rx));
    }
    actor.cast(CampaignMsg::InjectFailure).unwrap();
    let mut promised = Vec::new();
    for (user, rx) in replies {
        match rx.await.unwrap().unwrap() {
            Idempotent::Fresh(IssueOutcome::Issued(c)) => promised.push((user, c)),
            other => panic!("{other:?}"),
        }
    }
    replaced(&engine, &id, old_id).await;
    for i in 300..400 {
        let user = format!("u{i}");
        match issue(&engine, &id, &user).await {
            IssueOutcome::Issued(c) => promised.push((user, c)),
            other => panic!("{other:?}"),
        }
    }
    let mut seqs = std::collections::HashSet::new();
    for (user, c) in &promised {
        let (_, seq) = crate::ids::parse_coupon_id(&c.id).unwrap();
        assert!(seqs.insert(seq), "seq {seq} promised twice");
        let stored = engine.store().coupon(&id, seq).unwrap().unwrap();
        assert_eq!(&stored.user_id, user, "coupon {} was given away", c.id);
    }
    assert_eq!(engine.campaign(&id).await.unwrap().issued, 400);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_left_by_a_panicking_actor_never_lands_behind_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, "panicky", 100).await;
    let actor = engine.actor_of(&id);
    let old_id = actor.get_id();
    // Hold the committer: a completion that waits for the test.
    let (release, held) = std::sync::mpsc::channel::<()>();
    engine.committer().submit(
        firstcome_storage::Writes::new(),
        Box::new(move |_| {
            let _ = held.recv();
        }),
    );
    // An issue goes in flight behind it; a PATCH waits in the batch for the issue's
    // completion to submit it; then the actor panics (no flush on a panic).
    let (tx, issued) = reply(&engine);
    actor
        .send_message(CampaignMsg::Issue(IssueRequest::new(&id, "u1"), tx))
        .unwrap();
    let (tx, patched) = reply(&engine);
    let patch = CampaignPatch {
        total_stock: Some(50),
        ..CampaignPatch::default()
    };
    actor.send_message(CampaignMsg::Update(patch, tx)).unwrap();
    actor.cast(CampaignMsg::InjectPanic).unwrap();
    // The supervisor closes the failed actor's submissions before its barrier (which
    // waits behind the held completion): otherwise this never ends.
    tokio::time::timeout(Duration::from_secs(10), async {
        while engine.live().is_live(&id) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the failed actor's submissions were closed before the barrier");
    release.send(()).unwrap();
    // The issue was submitted: it is answered. The PATCH was not: it is dropped, never
    // acknowledged, and the replacement does not have it either.
    assert!(matches!(
        issued.await.unwrap().unwrap(),
        Idempotent::Fresh(IssueOutcome::Issued(_))
    ));
    assert!(patched.await.is_err(), "the PATCH was answered");
    replaced(&engine, &id, old_id).await;
    let view = engine.campaign(&id).await.unwrap();
    assert_eq!((view.record.total_stock, view.issued), (100, 1));
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeems_queued_back_to_back_see_each_others_unapplied_writes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, "once", 1).await;
    let coupon = match issue(&engine, &id, "holder").await {
        IssueOutcome::Issued(c) => c,
        other => panic!("{other:?}"),
    };
    let (_, seq) = crate::ids::parse_coupon_id(&coupon.id).unwrap();
    let actor = engine.actor_of(&id);
    // All 50 sit in the mailbox before the first redemption's write is applied by
    // the committer: only the actor's own record of it can refuse the other 49.
    let mut replies = Vec::new();
    for i in 0..50 {
        let (tx, rx) = reply(&engine);
        let mut request = CouponUse::new(CouponAction::Redeem, &coupon.id, "holder");
        request.order_id = Some(format!("o{i}"));
        actor
            .send_message(CampaignMsg::UseCoupon {
                seq,
                request,
                reply: tx,
            })
            .unwrap();
        replies.push(rx);
    }
    let mut done = 0;
    for rx in replies {
        match rx.await.unwrap().unwrap() {
            Idempotent::Fresh(CouponChange::Done(_)) => done += 1,
            Idempotent::Fresh(CouponChange::AlreadyRedeemed) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(done, 1);
    assert_eq!(
        engine.coupon(&coupon.id).unwrap().order_id.as_deref(),
        Some("o0")
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_queued_just_before_a_failure_survives_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, "patched", 100).await;
    let actor = engine.actor_of(&id);
    let old = actor.get_id();
    // The pause is decided and queued for commit; the failure follows at once, so the
    // supervisor may reload the record before the committer applied the pause.
    let (tx, rx) = reply(&engine);
    let patch = CampaignPatch {
        paused: Some(true),
        total_stock: Some(5),
        ..CampaignPatch::default()
    };
    actor.send_message(CampaignMsg::Update(patch, tx)).unwrap();
    actor.cast(CampaignMsg::InjectFailure).unwrap();
    let view = rx.await.unwrap().unwrap();
    assert!(view.record.paused);
    replaced(&engine, &id, old).await;
    let after = engine.campaign(&id).await.unwrap();
    assert!(after.record.paused, "the acknowledged pause was lost");
    assert_eq!(after.record.total_stock, 5);
    assert_eq!(
        issue(&engine, &id, "u").await,
        IssueOutcome::NotActive(crate::NotActiveReason::Paused)
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_racing_for_the_last_coupon_get_one_coupon_and_one_sold_out() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let id = campaign(&engine, "one", 1).await;
    let (first, second) = tokio::join!(issue(&engine, &id, "x"), issue(&engine, &id, "y"));
    let outcomes = [first, second];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, IssueOutcome::Issued(_)))
            .count(),
        1
    );
    assert!(outcomes.contains(&IssueOutcome::SoldOut));
    let store = engine.store().clone();
    assert_eq!(store.recover_holders(&id).unwrap().holders.len(), 1);
    engine.shutdown(Duration::from_secs(5)).await;
}
