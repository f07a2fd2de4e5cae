//! Campaign management and statistics (being written).
