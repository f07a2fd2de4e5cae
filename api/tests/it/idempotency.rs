//! Idempotency-Key (being written).
