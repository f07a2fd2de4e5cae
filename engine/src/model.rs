//! What the engine takes and gives: campaign specifications, views, coupons, outcomes.

use firstcome_storage::{
    CampaignRecord, CouponRecord, CouponStatus as StoredStatus, Discount, DiscountKind, Validity,
};
use jiff::Timestamp;

use crate::clock::from_micros;
use crate::error::EngineError;
use crate::ids::coupon_id;

pub const MAX_TOTAL_STOCK: u64 = 1_000_000_000;
pub(crate) const MAX_PER_USER_LIMIT: u32 = 1_000;
pub(crate) const MAX_NAME_LEN: usize = 200;
pub(crate) const MAX_STORE_ID_LEN: usize = 128;
/// Ten years: a validity beyond that is a typo, not a coupon.
pub(crate) const MAX_VALID_FOR_SECS: u64 = 10 * 366 * 24 * 3600;
/// The largest discount value or order amount: 2^53 - 1, the largest integer that a JSON
/// number carries exactly in every client (a JavaScript till would round anything above).
pub const MAX_AMOUNT: u64 = (1 << 53) - 1;

/// How a new campaign's coupons expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CouponValidity {
    /// Until the campaign's `ends_at`, or never when it has none.
    #[default]
    UntilCampaignEnds,
    ForSecs(u64),
    Until(Timestamp),
}

/// A campaign to create, as the client asked for it. [`NewCampaign::validate`] is the
/// one place its rules are checked.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub total_stock: u64,
    pub per_user_limit: u32,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub validity: CouponValidity,
    pub store_id: Option<String>,
    pub discount: Option<Discount>,
}

impl NewCampaign {
    pub fn validate(&self, now: Timestamp) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::InvalidCampaign(m.to_string()));
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > MAX_NAME_LEN {
            return bad("name must be 1 to 200 characters and not blank");
        }
        if self.name.chars().any(char::is_control) {
            return bad("name must not contain control characters");
        }
        if !(1..=MAX_TOTAL_STOCK).contains(&self.total_stock) {
            return bad("total_stock must be between 1 and 1000000000");
        }
        if !(1..=MAX_PER_USER_LIMIT).contains(&self.per_user_limit) {
            return bad("per_user_limit must be between 1 and 1000");
        }
        if let (Some(s), Some(e)) = (self.starts_at, self.ends_at) {
            if e <= s {
                return bad("ends_at must be after starts_at");
            }
        }
        if let Some(e) = self.ends_at {
            if e <= now {
                return bad("ends_at must be in the future");
            }
        }
        match self.validity {
            CouponValidity::UntilCampaignEnds => {}
            CouponValidity::ForSecs(s) => {
                if !(1..=MAX_VALID_FOR_SECS).contains(&s) {
                    return bad("coupon_valid_for_secs must be between 1 and 316224000");
                }
            }
            CouponValidity::Until(t) => {
                if t <= now || self.starts_at.is_some_and(|s| t <= s) {
                    return bad("coupon_valid_until must be in the future and after starts_at");
                }
            }
        }
        if let Some(s) = &self.store_id {
            if s.is_empty()
                || s.len() > MAX_STORE_ID_LEN
                || !s.chars().all(|c| c.is_ascii_graphic())
            {
                return bad("store_id must be 1 to 128 printable ASCII characters");
            }
        }
        if let Some(d) = &self.discount {
            match d.kind {
                DiscountKind::Percent if !(1..=100).contains(&d.value) => {
                    return bad("a percent discount's value must be between 1 and 100");
                }
                DiscountKind::Fixed if d.value == 0 => {
                    return bad("a fixed discount's value must be positive");
                }
                _ => {}
            }
            if d.max_discount_amount == Some(0) {
                return bad("max_discount_amount must be positive");
            }
            let amounts = [Some(d.value), d.min_order_amount, d.max_discount_amount];
            if amounts.into_iter().flatten().any(|a| a > MAX_AMOUNT) {
                return bad("discount amounts must be at most 9007199254740991 (2^53 - 1)");
            }
        }
        Ok(())
    }

    pub(crate) fn into_record(self, id: String, ordinal: u64, now: Timestamp) -> CampaignRecord {
        CampaignRecord {
            id,
            ordinal,
            name: self.name,
            total_stock: self.total_stock,
            per_user_limit: self.per_user_limit,
            starts_at: self.starts_at.map(|t| t.as_microsecond()),
            ends_at: self.ends_at.map(|t| t.as_microsecond()),
            validity: match self.validity {
                CouponValidity::UntilCampaignEnds => Validity::UntilCampaignEnds,
                CouponValidity::ForSecs(s) => Validity::ForSecs(s),
                CouponValidity::Until(t) => Validity::Until(t.as_microsecond()),
            },
            store_id: self.store_id,
            discount: self.discount,
            created_at: now.as_microsecond(),
            paused: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    Scheduled,
    Active,
    Paused,
    SoldOut,
    Ended,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Active => "active",
            CampaignStatus::Paused => "paused",
            CampaignStatus::SoldOut => "sold_out",
            CampaignStatus::Ended => "ended",
        }
    }
}

/// Why a campaign does not issue right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotActiveReason {
    NotStarted,
    Ended,
    Paused,
}

impl NotActiveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NotActiveReason::NotStarted => "not_started",
            NotActiveReason::Ended => "ended",
            NotActiveReason::Paused => "paused",
        }
    }
}

/// A campaign with its live counters, as of the moment its actor answered.
#[derive(Debug, Clone)]
pub struct CampaignView {
    pub record: CampaignRecord,
    pub issued: u64,
    pub status: CampaignStatus,
}

impl CampaignView {
    pub fn remaining(&self) -> u64 {
        self.record.total_stock.saturating_sub(self.issued)
    }
}

/// The issue window: `Ok` when `now` is inside it.
pub(crate) fn window(rec: &CampaignRecord, now: Timestamp) -> Result<(), NotActiveReason> {
    let now = now.as_microsecond();
    // A coupon valid until a fixed time is worthless after it: issuing then would spend
    // stock and the user's limit on a coupon born expired.
    let valid_until_passed = matches!(rec.validity, Validity::Until(t) if now >= t);
    if rec.ends_at.is_some_and(|e| now >= e) || valid_until_passed {
        return Err(NotActiveReason::Ended);
    }
    if rec.paused {
        return Err(NotActiveReason::Paused);
    }
    if rec.starts_at.is_some_and(|s| now < s) {
        return Err(NotActiveReason::NotStarted);
    }
    Ok(())
}

pub(crate) fn status(rec: &CampaignRecord, issued: u64, now: Timestamp) -> CampaignStatus {
    match window(rec, now) {
        Err(NotActiveReason::Ended) => CampaignStatus::Ended,
        Err(NotActiveReason::Paused) => CampaignStatus::Paused,
        Err(NotActiveReason::NotStarted) => CampaignStatus::Scheduled,
        Ok(()) if issued >= rec.total_stock => CampaignStatus::SoldOut,
        Ok(()) => CampaignStatus::Active,
    }
}

/// When a coupon issued at `issued_at` expires, in micros.
pub(crate) fn expires_at(rec: &CampaignRecord, issued_at: i64) -> Option<i64> {
    match rec.validity {
        Validity::UntilCampaignEnds => rec.ends_at,
        Validity::ForSecs(s) => {
            Some(issued_at.saturating_add((s as i64).saturating_mul(1_000_000)))
        }
        Validity::Until(t) => Some(t),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponStatus {
    Issued,
    Redeemed,
    Expired,
}

impl CouponStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponStatus::Issued => "issued",
            CouponStatus::Redeemed => "redeemed",
            CouponStatus::Expired => "expired",
        }
    }
}

/// The status a stored coupon has at `now`: an issued coupon past `expires_at` is
/// expired for every read and every operation, whether or not that was written yet.
pub(crate) fn effective_status(r: &CouponRecord, now: Timestamp) -> CouponStatus {
    match r.status {
        StoredStatus::Redeemed => CouponStatus::Redeemed,
        StoredStatus::Expired => CouponStatus::Expired,
        StoredStatus::Issued if r.expires_at.is_some_and(|e| now.as_microsecond() >= e) => {
            CouponStatus::Expired
        }
        StoredStatus::Issued => CouponStatus::Issued,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub id: String,
    pub code: String,
    pub campaign_id: String,
    pub user_id: String,
    pub issued_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub status: CouponStatus,
    pub redeemed_at: Option<Timestamp>,
    pub order_id: Option<String>,
}

impl Coupon {
    /// The coupon as seen at `now`.
    pub fn at(r: CouponRecord, now: Timestamp) -> Self {
        Coupon {
            id: coupon_id(&r.campaign_id, r.seq),
            status: effective_status(&r, now),
            code: r.code,
            campaign_id: r.campaign_id,
            user_id: r.user_id,
            issued_at: from_micros(r.issued_at),
            expires_at: r.expires_at.map(from_micros),
            redeemed_at: r.redeemed_at.map(from_micros),
            order_id: r.order_id,
        }
    }
}

/// The answer to a redeem or cancel-redemption request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponChange {
    Done(Coupon),
    /// The user is not the coupon's holder.
    NotOwner,
    AlreadyRedeemed,
    Expired,
    NotRedeemed,
    /// cancel-redemption named another order than the one the coupon was redeemed for.
    OrderMismatch,
}

impl CouponChange {
    /// Stable label for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            CouponChange::Done(_) => "done",
            CouponChange::NotOwner => "not_owner",
            CouponChange::AlreadyRedeemed => "already_redeemed",
            CouponChange::Expired => "expired",
            CouponChange::NotRedeemed => "not_redeemed",
            CouponChange::OrderMismatch => "order_mismatch",
        }
    }
}

/// Changes to a campaign; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CampaignPatch {
    pub paused: Option<bool>,
    pub ends_at: Option<Timestamp>,
    pub total_stock: Option<u64>,
    pub name: Option<String>,
}

impl CampaignPatch {
    /// Checks the patch against the campaign as it is (with `issued` coupons) at `now`,
    /// and applies it to `rec`.
    pub(crate) fn apply(
        &self,
        rec: &mut CampaignRecord,
        issued: u64,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::InvalidCampaign(m.to_string()));
        if let Some(name) = &self.name {
            if name.trim().is_empty()
                || name.chars().count() > MAX_NAME_LEN
                || name.chars().any(char::is_control)
            {
                return bad(
                    "name must be 1 to 200 characters, not blank, without control characters",
                );
            }
        }
        if let Some(stock) = self.total_stock {
            if stock < issued.max(1) || stock > MAX_TOTAL_STOCK {
                return bad(
                    "total_stock must be at least the coupons issued and at most 1000000000",
                );
            }
        }
        if let Some(e) = self.ends_at {
            let e = e.as_microsecond();
            if e <= now.as_microsecond() || rec.starts_at.is_some_and(|s| e <= s) {
                return bad("ends_at must be in the future and after starts_at");
            }
        }
        if let Some(name) = &self.name {
            rec.name = name.clone();
        }
        if let Some(stock) = self.total_stock {
            rec.total_stock = stock;
        }
        if let Some(e) = self.ends_at {
            rec.ends_at = Some(e.as_microsecond());
        }
        if let Some(p) = self.paused {
            rec.paused = p;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.paused.is_none()
            && self.ends_at.is_none()
            && self.total_stock.is_none()
            && self.name.is_none()
    }
}

/// A campaign's statistics, live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignStats {
    pub total_stock: u64,
    pub issued: u64,
    /// Redeemed now.
    pub redeemed: u64,
    pub expired: u64,
    pub remaining: u64,
    /// (UTC date, counts), in date order.
    pub per_day: Vec<(jiff::civil::Date, firstcome_storage::DayStats)>,
}

/// The UTC day of a time in micros, as days since the epoch.
pub(crate) fn day_of(us: i64) -> i32 {
    us.div_euclid(86_400_000_000) as i32
}

pub(crate) fn date_of_day(day: i32) -> jiff::civil::Date {
    let epoch = jiff::civil::date(1970, 1, 1);
    epoch
        .checked_add(jiff::Span::new().days(day as i64))
        .unwrap_or(epoch)
}

/// What a client sent with an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotencyKey<T> {
    pub key: String,
    /// Identifies the request (method, route, target, body): the same key with another
    /// fingerprint is a client error.
    pub fingerprint: [u8; 16],
    /// Renders an outcome as the response to keep; the API passes the same function
    /// it answers with, so a replay is byte for byte the first response.
    pub render: fn(&T) -> StoredResponse,
}

/// A response as kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The answer to a request that may carry an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent<T> {
    /// Decided now, for a request without a key.
    Fresh(T),
    /// Decided now, for a request with a key: the value, and the response kept for the
    /// key. It was rendered once, when the decision was made; answer with it as it is,
    /// so that the first answer and every replay are the same bytes.
    Recorded { value: T, response: StoredResponse },
    /// A retry: the first response, as it was.
    Replay(StoredResponse),
    /// The key was used before for a different request.
    KeyReused,
}

impl<T> Idempotent<T> {
    /// The value decided now (`Fresh` or `Recorded`); `None` for a replay or a reused key.
    pub fn decided(self) -> Option<T> {
        match self {
            Idempotent::Fresh(v) | Idempotent::Recorded { value: v, .. } => Some(v),
            Idempotent::Replay(_) | Idempotent::KeyReused => None,
        }
    }
}

/// A page and the cursor to continue after it, if more may follow.
pub type Page<T> = (Vec<T>, Option<String>);

/// The answer to an issue request. Every variant is final and reflects durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    Issued(Coupon),
    /// The user already holds `per_user_limit` coupons of the campaign: these.
    AlreadyIssued {
        coupon_ids: Vec<String>,
    },
    SoldOut,
    NotActive(NotActiveReason),
}

impl IssueOutcome {
    /// Stable label for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            IssueOutcome::Issued(_) => "issued",
            IssueOutcome::AlreadyIssued { .. } => "already_issued",
            IssueOutcome::SoldOut => "sold_out",
            IssueOutcome::NotActive(_) => "not_active",
        }
    }
}

/// The decisions of an [`IssueBatch`](crate::IssueBatch): one per user, in its order.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    pub results: Vec<(String, IssueOutcome)>,
}

impl BatchOutcome {
    /// How many coupons the batch issued.
    pub fn issued(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, IssueOutcome::Issued(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NewCampaign {
        NewCampaign {
            name: "Black Friday".into(),
            total_stock: 100,
            per_user_limit: 1,
            starts_at: None,
            ends_at: None,
            validity: CouponValidity::UntilCampaignEnds,
            store_id: None,
            discount: None,
        }
    }

    fn now() -> Timestamp {
        "2026-11-22T00:00:00Z".parse().unwrap()
    }

    fn invalid(s: NewCampaign) -> bool {
        matches!(s.validate(now()), Err(EngineError::InvalidCampaign(_)))
    }

    #[test]
    fn a_plain_campaign_is_valid() {
        spec().validate(now()).unwrap();
    }

    #[test]
    fn stock_limits_and_windows_are_checked() {
        assert!(invalid(NewCampaign {
            total_stock: 0,
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            total_stock: MAX_TOTAL_STOCK + 1,
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            per_user_limit: 0,
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            name: "  ".into(),
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            name: "x".repeat(201),
            ..spec()
        }));
        let t = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        assert!(invalid(NewCampaign {
            starts_at: t("2026-12-02T00:00:00Z"),
            ends_at: t("2026-12-01T00:00:00Z"),
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            ends_at: t("2026-11-21T00:00:00Z"),
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            validity: CouponValidity::ForSecs(0),
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            discount: Some(Discount {
                kind: DiscountKind::Percent,
                value: 101,
                min_order_amount: None,
                max_discount_amount: None
            }),
            ..spec()
        }));
        let fixed = |value, min_order_amount, max_discount_amount| {
            Some(Discount {
                kind: DiscountKind::Fixed,
                value,
                min_order_amount,
                max_discount_amount,
            })
        };
        assert!(!invalid(NewCampaign {
            discount: fixed(MAX_AMOUNT, Some(MAX_AMOUNT), Some(MAX_AMOUNT)),
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            discount: fixed(MAX_AMOUNT + 1, None, None),
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            discount: fixed(1, Some(MAX_AMOUNT + 1), None),
            ..spec()
        }));
        assert!(invalid(NewCampaign {
            discount: fixed(1, None, Some(MAX_AMOUNT + 1)),
            ..spec()
        }));
    }

    #[test]
    fn status_follows_the_window_then_the_stock() {
        let mut rec = spec().into_record("a".repeat(16), 0, now());
        rec.starts_at = Some(now().as_microsecond() + 10);
        rec.ends_at = Some(now().as_microsecond() + 20);
        let at = |us: i64| Timestamp::from_microsecond(now().as_microsecond() + us).unwrap();
        assert_eq!(status(&rec, 0, at(0)), CampaignStatus::Scheduled);
        assert_eq!(status(&rec, 0, at(10)), CampaignStatus::Active);
        assert_eq!(status(&rec, 100, at(10)), CampaignStatus::SoldOut);
        assert_eq!(status(&rec, 0, at(20)), CampaignStatus::Ended);
        assert_eq!(window(&rec, at(19)), Ok(()));
        assert_eq!(window(&rec, at(9)), Err(NotActiveReason::NotStarted));
        // Coupons valid until a fixed time are not issued after it, before ends_at too.
        rec.validity = Validity::Until(now().as_microsecond() + 15);
        assert_eq!(window(&rec, at(15)), Err(NotActiveReason::Ended));
        assert_eq!(status(&rec, 0, at(15)), CampaignStatus::Ended);
    }

    #[test]
    fn expiry_follows_the_validity_rule() {
        let mut rec = spec().into_record("a".repeat(16), 0, now());
        assert_eq!(expires_at(&rec, 5), None);
        rec.ends_at = Some(99);
        assert_eq!(expires_at(&rec, 5), Some(99));
        rec.validity = Validity::ForSecs(2);
        assert_eq!(expires_at(&rec, 5), Some(2_000_005));
        rec.validity = Validity::Until(7);
        assert_eq!(expires_at(&rec, 5), Some(7));
    }
}
