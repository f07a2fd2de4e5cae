//! # firstcome-engine
//!
//! Owns the business of first-come-first-served issuance: campaigns, their rules, and
//! the actors that apply them.
//!
//! - [`CampaignActor`]: one per campaign, the only place that campaign's state changes
//!   (in mailbox order, without locks). It decides in memory against its [`Ledger`] and
//!   hands the writes and the reply to the storage layer's group-commit writer.
//! - [`CampaignSupervisor`]: creates campaign actors and restarts a failed one alone.
//! - [`Engine`]: the facade the API, benches and tests use.
//!
//! It knows nothing of HTTP. Time comes from an injected [`Clock`].

mod campaign;
mod clock;
mod codes;
mod engine;
mod error;
mod ids;
mod ledger;
pub mod mail;
mod model;
mod supervisor;

pub use campaign::{CampaignActor, CampaignMsg, CouponUse};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codes::{CouponCodes, is_well_formed as is_well_formed_code};
pub use engine::{CouponFilter, Engine, EngineConfig};
pub use error::EngineError;
pub use firstcome_storage::DayStats;
pub use firstcome_storage::{
    CommitStats, CommitterConfig, Discount, DiscountKind, Store, StoreConfig,
};
pub use ids::{is_campaign_id, parse_coupon_id};
pub use ledger::{Decision, Ledger};
pub use model::{
    CampaignPatch, CampaignStats, CampaignStatus, CampaignView, Coupon, CouponChange, CouponStatus,
    CouponValidity, IdempotencyKey, Idempotent, IssueOutcome, MAX_TOTAL_STOCK, NewCampaign,
    NotActiveReason, StoredResponse,
};
pub use supervisor::{CampaignSupervisor, SupervisorMsg};
