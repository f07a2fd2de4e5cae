use firstcome_storage::StorageError;

/// Errors of the engine layer. Business refusals (sold out, already issued, not
/// active) are not errors: they are [`crate::IssueOutcome`] variants.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("campaign not found")]
    CampaignNotFound,
    #[error("coupon not found")]
    CouponNotFound,
    /// A campaign that has issued coupons cannot be deleted (close it instead).
    #[error("the campaign has issued coupons")]
    CampaignHasCoupons,
    /// A campaign specification broke a rule; the message says which, for the client.
    #[error("{0}")]
    InvalidCampaign(String),
    /// The campaign's actor is not running (it failed and could not be restarted, or
    /// the engine is shutting down). Retrying later may succeed.
    #[error("campaign {0} is unavailable")]
    Unavailable(String),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("actor system: {0}")]
    Actor(String),
}
