//! The typed requests the facade takes: [`IssueRequest`] and [`CouponUse`]. Each carries
//! everything its decision needs, the optional idempotency key included, so there is one
//! entry point per operation.

use crate::mail::Contact;
use crate::model::{BatchOutcome, CouponChange, IdempotencyKey, IssueOutcome};

/// "Give this user a coupon of this campaign."
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub campaign_id: String,
    pub user_id: String,
    /// Sets the user's contact, in the same atomic batch as the decision (so the
    /// confirmation goes to this address).
    pub contact: Option<Contact>,
    /// A retry with the same key gets the first response again, even after a restart.
    pub idempotency: Option<IdempotencyKey<IssueOutcome>>,
}

impl IssueRequest {
    pub fn new(campaign_id: impl Into<String>, user_id: impl Into<String>) -> IssueRequest {
        IssueRequest {
            campaign_id: campaign_id.into(),
            user_id: user_id.into(),
            contact: None,
            idempotency: None,
        }
    }
}

/// The most users one [`IssueBatch`] names: it bounds the group record, the reply and
/// the time one actor spends on one message.
pub const MAX_BATCH_USERS: usize = 1000;

/// "Give each of these users a coupon of this campaign", decided for each user as an
/// [`IssueRequest`] would be (in the order given), and made durable as one group: all
/// of it or none.
#[derive(Debug, Clone)]
pub struct IssueBatch {
    pub campaign_id: String,
    /// 1 to [`MAX_BATCH_USERS`] user ids; a user named twice is decided twice.
    pub user_ids: Vec<String>,
    pub idempotency: Option<IdempotencyKey<BatchOutcome>>,
}

/// What a [`CouponUse`] does to its coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponAction {
    Redeem,
    /// Undo a redemption (with an order id: only the redemption for that order).
    CancelRedemption,
}

impl CouponAction {
    /// The label of metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CouponAction::Redeem => "redeem",
            CouponAction::CancelRedemption => "cancel_redemption",
        }
    }
}

/// Redeem a coupon for its holder, or cancel its redemption.
#[derive(Debug, Clone)]
pub struct CouponUse {
    pub action: CouponAction,
    pub coupon_id: String,
    pub user_id: String,
    /// Kept with a redemption; a cancellation that names one must match it.
    pub order_id: Option<String>,
    pub idempotency: Option<IdempotencyKey<CouponChange>>,
}

impl CouponUse {
    pub fn new(
        action: CouponAction,
        coupon_id: impl Into<String>,
        user_id: impl Into<String>,
    ) -> CouponUse {
        CouponUse {
            action,
            coupon_id: coupon_id.into(),
            user_id: user_id.into(),
            order_id: None,
            idempotency: None,
        }
    }
}
