//! # firstcome-storage
//!
//! Owns everything firstcome keeps on disk: the sled database, the commit journal, the
//! key layout, the versioned bincode encoding of records, and the [`Committer`], which
//! makes the writes of many decisions durable as one journal record (atomic: one
//! checksum) and releases their replies after its one sync (group commit).
//!
//! It knows nothing of actors or HTTP. The API it offers is deliberately narrow (typed
//! reads, a [`Writes`] list, the committer) so that sled could be replaced inside this
//! crate alone.
//!
//! ## Key layout
//! Everything lives in one sled tree. A decision's writes are atomic through the journal
//! (one record per group commit, replayed whole), not through sled. Keys start with a
//! one-byte kind; integers are big-endian so keys sort numerically.
//!
//! | key | value |
//! |---|---|
//! | `c` campaign_id | [`CampaignRecord`] |
//! | `k` campaign_id seq(u64) | [`CouponRecord`]: a format-1 coupon, or a coupon changed after its issue |
//! | `u` user_id 0x00 campaign_id seq(u64) | empty: the user's coupon index (format 1; no longer read) |
//! | `h` campaign_id chunk(u32) | holder chunk: the user ids of seqs `chunk*HOLDER_CHUNK ..` (format 1) |
//! | `s` campaign_id | statistics totals (redeemed, expired) |
//! | `s` campaign_id day(i32) | one UTC day's counts ([`DayStats`]); a change rewrites only its day |
//! | `x` campaign_id expires_at(i64) seq(u64) | empty: the expiry index, in time order (format-1 coupons, and group coupons out of seq order) |
//! | `i` idempotency key | [`IdempotencyRecord`]: the response to replay |
//! | `j` created_at(i64) idempotency key | empty: idempotency records by age, for pruning |
//! | `m` name | metadata (the store format, the code key, the campaign ordinal counter, the last group commit at the last checkpoint: `journal_lsn`) |
//! | `e` user_id | [`ContactRecord`]: where the user's mail goes |
//! | `b` store_id 0x00 user_id | empty: a store's subscribers |
//! | `p` user_id 0x00 store_id | empty: a user's subscriptions (written with `b`) |
//! | `o` job_id | [`MailJob`]: the outbox |
//! | `q` due_at(i64) job_id | empty: the outbox in the order its jobs are due |
//! | `d` job_id | [`MailJob`]: dead letters, given up on until an operator retries them |
//! | `r` campaign_id remind_at(i64) seq(u64) | empty: coupons awaiting their expiry reminder |
//! | `a` campaign_id | empty: the campaign's activation was announced to subscribers |
//! | `f` campaign_id | [`FanOutRecord`]: an announcement still being expanded into mail jobs |
//! | `g` campaign_id first_seq(u64) | the coupons one commit issued ([`IssuedCoupon`]s, format 2) |
//! | `n` campaign_id | how far the campaign's expiry walk has come (format 2) |
//!
//! ## Formats
//! The layout has a version, `m store_format`. Format 1 wrote every coupon as its own
//! record (`k`) with a user-index entry (`u`), an expiry-index entry (`x`) and holder
//! chunks (`h`): four or five sled keys per coupon, and sled's cost is per key. Format 2
//! writes the coupons of one commit as one `g` record; a coupon gets a `k` record only
//! when it changes after its issue (redeem, cancel, expiry by an operation), which then
//! overrides its group entry; the user index is kept in memory and rebuilt at start;
//! expiry finds coupons in seq order (`n`) and indexes only those out of order. A format-1
//! store is read in place: its coupons stay in `k` records, `h` chunks and `x` entries,
//! and the coupons issued after the upgrade follow in groups. A store of a newer format
//! than this build knows is refused.
//!
//! Format 3 adds the journal (`firstcome-journal` in sled's directory; see `journal.rs`):
//! a group commit is durable once its journal record is synced, and sled is flushed only
//! at checkpoints, so an acknowledged group may exist only in the journal until then. A
//! format-2 build would open such a store without replaying it, so raising the format is
//! what makes it refuse. Formats 1 and 2 open in place (their journal starts empty).

mod committer;
mod error;
mod journal;
mod keys;
mod records;
mod seal;
mod store;

pub use committer::{CommitStats, Committer, CommitterConfig, Completion};
pub use error::StorageError;
pub use records::{
    CAMPAIGN_ID_LEN, CampaignRecord, ContactRecord, CouponRecord, CouponStatus, DayStats, Discount,
    DiscountKind, FanOutRecord, IdempotencyRecord, IssuedCoupon, MailCampaign, MailCoupon, MailJob,
    MailKind, StatsRecord, Validity,
};
pub use store::{HOLDER_CHUNK, Recovered, STORE_FORMAT, Store, StoreConfig, Writes};
