use firstcome_storage::StorageError;

/// Errors of the engine layer. Business refusals (sold out, already issued, not
/// active) are not errors: they are [`crate::IssueOutcome`] variants.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("campaign not found")]
    CampaignNotFound,
    #[error("coupon not found")]
    CouponNotFound,
    /// Not a coupon code, or one with a wrong check character (a typo).
    #[error(transparent)]
    InvalidCode(#[from] crate::codes::CodeError),
    /// A campaign that has issued coupons cannot be deleted (close it instead).
    #[error("the campaign has issued coupons")]
    CampaignHasCoupons,
    /// A campaign specification broke a rule; the message says which, for the client.
    #[error("{0}")]
    InvalidCampaign(String),
    /// A request field broke a rule (an e-mail address, a locale); the message says which.
    #[error("{0}")]
    InvalidInput(String),
    #[error("the user has no contact")]
    ContactNotFound,
    #[error("no such subscription")]
    SubscriptionNotFound,
    #[error("no such dead letter")]
    DeadLetterNotFound,
    /// The request needs the mailer, and mail is off in this server's configuration.
    #[error("mail is not enabled")]
    MailDisabled,
    /// The in-flight cap is reached: the request was refused before any work was done.
    #[error("too many requests in flight")]
    Overloaded,
    /// The campaign's actor is not running (it failed and could not be restarted).
    /// Retrying later may succeed.
    #[error("campaign {0} is unavailable")]
    Unavailable(String),
    /// The engine is stopping (its committer has stopped): retry against the next
    /// instance or after the restart.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A write failed earlier (disk full, an I/O error): the store refuses every write
    /// until the process is restarted. The cause was logged once, when it happened.
    #[error("the store failed a write and refuses every write until restarted")]
    StoreFailed,
    #[error("mail: {0}")]
    Mail(#[from] MailError),
    /// The store failed (it is now fail-stop) or holds a damaged record: an operator
    /// has to act.
    #[error("storage: {0}")]
    Storage(StorageError),
    #[error("actor system: {0}")]
    Actor(String),
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::CommitterStopped => EngineError::ShuttingDown,
            StorageError::FailStop { .. } => EngineError::StoreFailed,
            e => EngineError::Storage(e),
        }
    }
}

/// Errors of the mailer.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A template failed to load or render (a bug in an override): retrying cannot help.
    #[error("template {name}: {detail}")]
    Template { name: String, detail: String },
    /// The message could not be built (a bad address in the configuration or a job).
    #[error("building the message: {0}")]
    Message(String),
    /// The transport failed; `permanent` when the server refused for good (5xx).
    #[error("sending: {detail}")]
    Send {
        permanent: bool,
        /// The server was not reached or did not answer (refused, broken, timed out),
        /// as opposed to a reply about this mail.
        unreachable: bool,
        detail: String,
    },
    #[error("mail configuration: {0}")]
    Config(String),
}

impl MailError {
    /// Whether retrying later could succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            MailError::Send { permanent, .. } => *permanent,
            MailError::Template { .. } | MailError::Message(_) | MailError::Config(_) => true,
        }
    }
}
