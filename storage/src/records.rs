//! The records firstcome stores, and their encoding.
//!
//! Every stored value is one version byte followed by the bincode 2 (serde, standard
//! config) encoding of the record. bincode is not self-describing, so a change of a
//! record's shape gets a new version byte and a decoder for the old one.
//!
//! Times are microseconds since the Unix epoch (UTC): plain integers keep the encoding
//! independent of any date library's serde format.

use serde::{Serialize, de::DeserializeOwned};

use crate::StorageError;

/// The version byte in front of every record written by this build.
pub(crate) const RECORD_VERSION: u8 = 1;

/// Campaign ids are this many Crockford base32 characters. Fixed width keeps the
/// coupon and user-index keys unambiguous without separators.
pub const CAMPAIGN_ID_LEN: usize = 16;

/// A campaign as created: its rules, never its live counters (those are derived from
/// the coupons on recovery).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CampaignRecord {
    pub id: String,
    /// Dense number given at creation; it keys the coupon-code permutation.
    pub ordinal: u64,
    pub name: String,
    pub total_stock: u64,
    pub per_user_limit: u32,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub validity: Validity,
    pub store_id: Option<String>,
    pub discount: Option<Discount>,
    pub created_at: i64,
}

/// How long a coupon issued by a campaign stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Validity {
    /// Valid until the campaign's `ends_at`, or forever when it has none.
    UntilCampaignEnds,
    /// Valid for this many seconds after issue.
    ForSecs(u64),
    /// Valid until this instant (microseconds since the epoch).
    Until(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DiscountKind {
    Fixed,
    Percent,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Discount {
    pub kind: DiscountKind,
    pub value: u64,
    pub min_order_amount: Option<u64>,
    pub max_discount_amount: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CouponStatus {
    Issued,
}

/// One issued coupon. Its id is derived (`campaign_id` + `-` + seq), not stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CouponRecord {
    pub campaign_id: String,
    /// Position in the campaign's issue order, from 0. Durable coupons of a campaign
    /// always form a gap-free prefix 0..issued, because the committer applies batches
    /// in submission order.
    pub seq: u64,
    pub user_id: String,
    pub code: String,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
    pub status: CouponStatus,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![RECORD_VERSION];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StorageError::Encode(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            bincode::serde::decode_from_slice(body, bincode::config::standard())
                .map(|(v, _)| v)
                .map_err(|e| StorageError::Corrupt {
                    what,
                    detail: e.to_string(),
                })
        }
        Some((v, _)) => Err(StorageError::Corrupt {
            what,
            detail: format!("unknown record version {v}"),
        }),
        None => Err(StorageError::Corrupt {
            what,
            detail: "empty value".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_a_version_byte() {
        let c = CouponRecord {
            campaign_id: "0123456789abcdef".into(),
            seq: 42,
            user_id: "user-1".into(),
            code: "ABCD-EFGH".into(),
            issued_at: 1_700_000_000_000_000,
            expires_at: Some(1_700_000_100_000_000),
            status: CouponStatus::Issued,
        };
        let bytes = encode(&c).unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<CouponRecord>("coupon", &bytes).unwrap(), c);
    }

    #[test]
    fn unknown_versions_and_garbage_are_corrupt_not_panics() {
        assert!(matches!(
            decode::<CouponRecord>("coupon", &[9, 1, 2]),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<CouponRecord>("coupon", &[]),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<CouponRecord>("coupon", &[RECORD_VERSION, 0xff]),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
