//! The handlers, one module per resource.

pub mod campaigns;
pub mod coupons;
pub mod mail;
pub mod ops;
