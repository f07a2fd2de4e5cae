//! The request metrics the facade records, with their handles looked up once.
//!
//! `counter!(name, labels)` hashes the name and labels (and allocates the key) on every
//! call; on the issue path that is per request. The label sets here are small and fixed,
//! so every handle is made at start and a request only picks one.

use metrics::{Counter, Histogram};

use crate::error::EngineError;
use crate::model::Idempotent;

/// The value an answer decided, or the outcome label of one that decided nothing: a
/// replay, a reused key, a refusal before any decision. One mapping for every request.
pub(super) fn decided<T>(result: &Result<Idempotent<T>, EngineError>) -> Result<&T, &'static str> {
    match result {
        Ok(Idempotent::Fresh(v) | Idempotent::Recorded { value: v, .. }) => Ok(v),
        Ok(Idempotent::Replay(_)) => Err("replayed"),
        Ok(Idempotent::KeyReused) => Err("idempotency_key_reused"),
        Err(EngineError::CampaignNotFound) => Err("campaign_not_found"),
        Err(EngineError::CouponNotFound) => Err("coupon_not_found"),
        Err(EngineError::Overloaded) => Err("overloaded"),
        Err(_) => Err(OTHER),
    }
}

const ISSUE_OUTCOMES: [&str; 9] = [
    "issued",
    "already_issued",
    "sold_out",
    "not_active",
    "replayed",
    "idempotency_key_reused",
    "campaign_not_found",
    "overloaded",
    "error",
];

const USE_ACTIONS: [&str; 2] = ["redeem", "cancel_redemption"];
const USE_OUTCOMES: [&str; 10] = [
    "done",
    "not_owner",
    "already_redeemed",
    "expired",
    "not_redeemed",
    "order_mismatch",
    "replayed",
    "idempotency_key_reused",
    "coupon_not_found",
    "overloaded",
];
/// Where an outcome not in the lists above is counted.
const OTHER: &str = "error";

pub(super) struct OutcomeMetrics {
    issue: Vec<(&'static str, Counter)>,
    issue_duration: Histogram,
    coupon_use: Vec<(&'static str, &'static str, Counter)>,
}

impl OutcomeMetrics {
    /// Made after the recorder is installed (the API installs it before the engine
    /// starts); without one, the handles count nothing, as the macros would.
    pub(super) fn new() -> OutcomeMetrics {
        let issue = ISSUE_OUTCOMES
            .iter()
            .map(|&o| {
                (
                    o,
                    metrics::counter!("firstcome_issue_total", "outcome" => o),
                )
            })
            .collect();
        let mut coupon_use = Vec::new();
        for &action in &USE_ACTIONS {
            for &outcome in USE_OUTCOMES.iter().chain([OTHER].iter()) {
                let c = metrics::counter!(
                    "firstcome_coupon_use_total",
                    "action" => action,
                    "outcome" => outcome
                );
                coupon_use.push((action, outcome, c));
            }
        }
        OutcomeMetrics {
            issue,
            issue_duration: metrics::histogram!("firstcome_issue_duration_seconds"),
            coupon_use,
        }
    }

    pub(super) fn issue(&self, outcome: &str, seconds: f64) {
        self.issue_decision(outcome);
        self.issue_duration.record(seconds);
    }

    /// Counts one issue outcome without a duration (each user of a bulk issue: one
    /// request, so one duration, which is not an issue's).
    pub(super) fn issue_decision(&self, outcome: &str) {
        let counter = self
            .issue
            .iter()
            .find(|(o, _)| *o == outcome)
            .or_else(|| self.issue.iter().find(|(o, _)| *o == OTHER));
        if let Some((_, c)) = counter {
            c.increment(1);
        }
    }

    pub(super) fn coupon_use(&self, action: &str, outcome: &str) {
        let find = |o: &str| {
            self.coupon_use
                .iter()
                .find(|(a, x, _)| *a == action && *x == o)
        };
        if let Some((_, _, c)) = find(outcome).or_else(|| find(OTHER)) {
            c.increment(1);
        }
    }
}
