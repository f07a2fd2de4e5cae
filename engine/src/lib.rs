//! # firstcome-engine
//!
//! Owns the business of first-come-first-served issuance: campaigns, their rules, and
//! the actors that apply them. It knows nothing of HTTP. Time comes from an injected
//! [`Clock`].
//!
//! Layers, each importing only those below it:
//! - model: [`model`](NewCampaign) types, ids, coupon codes, the [`Ledger`] rules, the
//!   typed requests, [`EngineError`];
//! - `context`: the store, the committer, the clock and the code key every actor uses;
//! - `idempotency` (key claims, pruning) and `admission` (the in-flight cap);
//! - `mail`: the outbox dispatcher and its workers; `campaign`: one actor per campaign,
//!   the only place that campaign's state changes (in mailbox order, without locks);
//! - `feed`: every campaign's durable public state, published to live subscribers from
//!   the commits' completions;
//! - `directory` and `supervisor`: which actor owns which campaign, and restarting a
//!   failed one alone;
//! - [`Engine`]: the facade the API, benches and tests use.

mod admission;
mod campaign;
mod clock;
mod codes;
mod context;
mod directory;
mod engine;
mod error;
mod feed;
mod idempotency;
mod ids;
mod ledger;
pub mod mail;
mod model;
mod request;
mod supervisor;
mod user_index;

pub use clock::{Clock, ManualClock, SystemClock};
pub use codes::{CodeError, CouponCodes, MAX_CODE_CHARS, is_well_formed as is_well_formed_code};
pub use engine::{
    CampaignCouponFilter, CouponFilter, CouponScan, DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUEUE_DEADLINE,
    Engine, EngineConfig, open_store,
};
pub use error::EngineError;
pub use feed::{
    Beat, CampaignSubscription, DEFAULT_LIVE_INTERVAL, Heartbeat, KEEP_ALIVE, LiveEvent, LiveView,
    StoreSnapshot, StoreSubscription,
};
pub use firstcome_storage::{
    CommitStats, CommitterConfig, DayStats, Discount, DiscountKind, Store, StoreConfig, Validity,
};
pub use ids::{is_campaign_id, parse_coupon_id};
pub use ledger::{Decision, Ledger};
pub use model::{
    BatchOutcome, CampaignPatch, CampaignStats, CampaignStatus, CampaignView, Coupon, CouponChange,
    CouponStatus, CouponValidity, IdempotencyKey, Idempotent, IssueOutcome, MAX_AMOUNT,
    MAX_TOTAL_STOCK, NewCampaign, NotActiveReason, Page, StoredResponse,
};
pub use request::{CouponAction, CouponUse, IssueBatch, IssueRequest, MAX_BATCH_USERS};
