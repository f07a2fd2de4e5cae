use std::sync::Arc;

/// Everything that can go wrong below the engine.
///
/// `Clone` because one failed group commit fails every request in the batch, and each
/// of them gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("sled: {0}")]
    Sled(Arc<sled::Error>),
    /// The store holds less than it did (or is not whole): refused, not served, unless
    /// the operator accepts it (`StoreConfig::accept_damage`).
    #[error("the store is damaged: {0}")]
    Damaged(String),
    #[error("a stored record could not be decoded ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("a record could not be encoded: {0}")]
    Encode(String),
    /// The journal file (crate docs, Journal) could not be opened, written or synced.
    #[error("{what}: {detail}")]
    Io { what: &'static str, detail: String },
    /// A group commit failed (`cause`): the committer is fail-stop, and this and every
    /// later request that needs it gets this, until the process restarts.
    #[error("the store failed ({cause}) and refuses every write until it is restarted")]
    FailStop { cause: Arc<StorageError> },
    /// A completion panicked on the committer thread: the committer stops writing.
    #[error("a commit completion panicked")]
    CompletionPanicked,
    #[error("the committer has stopped")]
    CommitterStopped,
    /// The store was written by a newer build: reading it could misread it.
    #[error("the store has format {found}; this build reads formats up to {supported}")]
    Format { found: u64, supported: u64 },
    #[error("starting the committer thread: {0}")]
    Spawn(String),
}

impl StorageError {
    /// Whether this is damage found in the store (as opposed to an I/O failure now).
    pub fn is_damage(&self) -> bool {
        match self {
            StorageError::Damaged(_) | StorageError::Corrupt { .. } => true,
            StorageError::Sled(e) => matches!(**e, sled::Error::Corruption { .. }),
            _ => false,
        }
    }
}

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        StorageError::Sled(Arc::new(e))
    }
}
