//! The records firstcome stores, and their encoding.
//!
//! Every stored value is one version byte followed by the bincode 2 (serde, standard
//! config) encoding of the record. bincode is not self-describing, so a change of a
//! record's shape gets a new version byte and a decoder for the old one.
//!
//! Times are microseconds since the Unix epoch (UTC): plain integers keep the encoding
//! independent of any date library's serde format.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::StorageError;

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
    /// Paused campaigns refuse to issue. (Version 2; a version-1 record is not paused.)
    pub paused: bool,
}

/// Version 2 added `paused`.
pub(crate) const CAMPAIGN_VERSION: u8 = 2;

#[derive(serde::Deserialize)]
struct CampaignRecordV1 {
    id: String,
    ordinal: u64,
    name: String,
    total_stock: u64,
    per_user_limit: u32,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    validity: Validity,
    store_id: Option<String>,
    discount: Option<Discount>,
    created_at: i64,
}

pub(crate) fn encode_campaign(c: &CampaignRecord) -> Result<Vec<u8>, StorageError> {
    let mut out = encode(c)?;
    out[0] = CAMPAIGN_VERSION;
    Ok(out)
}

pub(crate) fn decode_campaign(bytes: &[u8]) -> Result<CampaignRecord, StorageError> {
    match bytes.first() {
        Some(&CAMPAIGN_VERSION) => decode_body("campaign", &bytes[1..]),
        Some(&RECORD_VERSION) => {
            let o: CampaignRecordV1 = decode("campaign v1", bytes)?;
            Ok(CampaignRecord {
                id: o.id,
                ordinal: o.ordinal,
                name: o.name,
                total_stock: o.total_stock,
                per_user_limit: o.per_user_limit,
                starts_at: o.starts_at,
                ends_at: o.ends_at,
                validity: o.validity,
                store_id: o.store_id,
                discount: o.discount,
                created_at: o.created_at,
                paused: false,
            })
        }
        _ => decode("campaign", bytes),
    }
}

/// Counts of one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayStats {
    pub issued: u64,
    pub redeemed: u64,
    pub cancelled: u64,
    pub expired: u64,
}

/// A campaign's live statistics, written in the same batch as every change it counts,
/// so they are exact after any restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatsRecord {
    /// Coupons redeemed now (redemptions minus cancelled ones).
    pub redeemed: u64,
    /// Coupons whose expiry was recorded.
    pub expired: u64,
    /// Days since the Unix epoch (UTC) -> that day's counts.
    pub per_day: std::collections::BTreeMap<i32, DayStats>,
}

/// One coupon as issued, in the group record of the commit that made it durable. Its
/// code is not stored: the engine derives it from (campaign ordinal, seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCoupon {
    pub seq: u64,
    pub user_id: String,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
    /// Whether its expiry is kept in the per-coupon time index (`x`). Most coupons'
    /// `expires_at` grows with their seq, and the campaign's expiry walk finds them in
    /// seq order without an index entry; one that would expire before an earlier coupon
    /// (the campaign's end was moved earlier, the clock stepped back) is indexed.
    pub expiry_indexed: bool,
}

/// The stored form of a group: times as deltas, so a coupon costs its user id and a
/// few bytes (bincode's varints).
#[derive(serde::Serialize, serde::Deserialize)]
struct IssuedGroupV1 {
    /// `issued_at` of the first coupon.
    base_at: i64,
    coupons: Vec<IssuedEntryV1>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IssuedEntryV1 {
    user_id: String,
    /// `issued_at - base_at` (may be negative if the clock stepped back).
    issued_delta: i64,
    /// `expires_at - issued_at`.
    expires_delta: Option<i64>,
    expiry_indexed: bool,
}

pub(crate) fn encode_issued_group(coupons: &[IssuedCoupon]) -> Result<Vec<u8>, StorageError> {
    let base_at = coupons.first().map_or(0, |c| c.issued_at);
    let group = IssuedGroupV1 {
        base_at,
        coupons: coupons
            .iter()
            .map(|c| IssuedEntryV1 {
                user_id: c.user_id.clone(),
                issued_delta: c.issued_at.wrapping_sub(base_at),
                expires_delta: c.expires_at.map(|e| e.wrapping_sub(c.issued_at)),
                expiry_indexed: c.expiry_indexed,
            })
            .collect(),
    };
    encode(&group)
}

/// The coupons of a group whose first seq is `first_seq`.
pub(crate) fn decode_issued_group(
    first_seq: u64,
    bytes: &[u8],
) -> Result<Vec<IssuedCoupon>, StorageError> {
    let group: IssuedGroupV1 = decode("issued group", bytes)?;
    if group.coupons.is_empty() {
        return Err(StorageError::Corrupt {
            what: "issued group",
            detail: "no coupons".into(),
        });
    }
    Ok(group
        .coupons
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let issued_at = group.base_at.wrapping_add(e.issued_delta);
            IssuedCoupon {
                seq: first_seq + i as u64,
                user_id: e.user_id,
                issued_at,
                expires_at: e.expires_delta.map(|d| issued_at.wrapping_add(d)),
                expiry_indexed: e.expiry_indexed,
            }
        })
        .collect())
}

/// A response kept for an `Idempotency-Key`, replayed to a retry of the same request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyRecord {
    /// Hash of what identifies the request (method, route, target, body).
    pub fingerprint: [u8; 16],
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub created_at: i64,
}

/// Where a user's mail goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContactRecord {
    pub email: String,
    /// A language tag (`en`, `ko`, `ko-KR`); `None` means the default language.
    pub locale: Option<String>,
    pub updated_at: i64,
}

/// Why a mail is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MailKind {
    /// A coupon was issued.
    Confirmation,
    /// An issued coupon expires soon.
    Reminder,
    /// A campaign of a store the user subscribes to became active.
    NewCampaign,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Reminder => "reminder",
            MailKind::NewCampaign => "new_campaign",
        }
    }
}

/// What a mail says about its campaign, copied when the job is written so that the mail
/// describes the campaign as it was then.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailCampaign {
    pub id: String,
    pub name: String,
    pub store_id: Option<String>,
    pub discount: Option<Discount>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
}

impl MailCampaign {
    pub fn of(c: &CampaignRecord) -> MailCampaign {
        MailCampaign {
            id: c.id.clone(),
            name: c.name.clone(),
            store_id: c.store_id.clone(),
            discount: c.discount.clone(),
            starts_at: c.starts_at,
            ends_at: c.ends_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailCoupon {
    pub id: String,
    pub code: String,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
}

/// One mail in the outbox (or, once given up on, in the dead letters). Its id is derived
/// from its cause (`confirmation.<coupon id>`), so writing it twice leaves one job, and
/// every attempt to send it carries the same Message-ID.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailJob {
    pub id: String,
    pub kind: MailKind,
    pub user_id: String,
    pub to: String,
    pub locale: Option<String>,
    pub campaign: MailCampaign,
    pub coupon: Option<MailCoupon>,
    /// When the job was written (or re-queued from the dead letters): the start of its
    /// retry budget.
    pub created_at: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due; the key of its entry in the due index.
    pub due_at: i64,
    pub last_error: Option<String>,
    /// Set when it was moved to the dead letters.
    pub dead_at: Option<i64>,
}

/// A new-campaign announcement still being expanded into one mail per subscriber.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FanOutRecord {
    pub campaign: MailCampaign,
    pub store_id: String,
    /// Subscribers up to and including this user id have their mail job.
    pub after_user: Option<String>,
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
    Redeemed,
    Expired,
}

/// One issued coupon. Its id is derived (`campaign_id` + `-` + seq), not stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CouponRecord {
    pub campaign_id: String,
    /// Position in the campaign's issue order, from 0. Durable coupons of a campaign
    /// always form a gap-free prefix 0..issued, because its actor applies its decisions
    /// in order.
    pub seq: u64,
    pub user_id: String,
    pub code: String,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
    pub status: CouponStatus,
    /// Set while redeemed.
    pub redeemed_at: Option<i64>,
    pub order_id: Option<String>,
}

/// Version 2 added redemption. A version-1 coupon is read as a never-redeemed one.
pub(crate) const COUPON_VERSION: u8 = 2;

#[derive(serde::Deserialize)]
struct CouponRecordV1 {
    campaign_id: String,
    seq: u64,
    user_id: String,
    code: String,
    issued_at: i64,
    expires_at: Option<i64>,
    _status: u32,
}

pub(crate) fn encode_coupon(c: &CouponRecord) -> Result<Vec<u8>, StorageError> {
    let mut out = encode(c)?;
    out[0] = COUPON_VERSION;
    Ok(out)
}

pub(crate) fn decode_coupon(bytes: &[u8]) -> Result<CouponRecord, StorageError> {
    match bytes.first() {
        Some(&COUPON_VERSION) => decode_body("coupon", &bytes[1..]),
        Some(&RECORD_VERSION) => {
            let old: CouponRecordV1 = decode("coupon v1", bytes)?;
            Ok(CouponRecord {
                campaign_id: old.campaign_id,
                seq: old.seq,
                user_id: old.user_id,
                code: old.code,
                issued_at: old.issued_at,
                expires_at: old.expires_at,
                status: CouponStatus::Issued,
                redeemed_at: None,
                order_id: None,
            })
        }
        _ => decode("coupon", bytes),
    }
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
        Some((&RECORD_VERSION, body)) => decode_body(what, body),
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

fn decode_body<T: DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<T, StorageError> {
    bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| StorageError::Corrupt {
            what,
            detail: e.to_string(),
        })
}

/// An issued coupon of `campaign_id` held by `user-{seq}`, for the storage tests.
#[cfg(test)]
pub(crate) fn test_coupon(campaign_id: &str, seq: u64) -> CouponRecord {
    CouponRecord {
        campaign_id: campaign_id.into(),
        seq,
        user_id: format!("user-{seq}"),
        code: format!("CODE{seq}"),
        issued_at: 0,
        expires_at: None,
        status: CouponStatus::Issued,
        redeemed_at: None,
        order_id: None,
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
            status: CouponStatus::Redeemed,
            redeemed_at: Some(1_700_000_050_000_000),
            order_id: Some("order-7".into()),
        };
        let bytes = encode_coupon(&c).unwrap();
        assert_eq!(bytes[0], COUPON_VERSION);
        assert_eq!(decode_coupon(&bytes).unwrap(), c);
    }

    #[test]
    fn issued_groups_round_trip_compactly() {
        let coupons: Vec<IssuedCoupon> = (0..64)
            .map(|i| IssuedCoupon {
                seq: 1_000 + i,
                user_id: format!("user-{i:06}"),
                issued_at: 1_700_000_000_000_000 + i as i64 * 37,
                expires_at: (i % 3 != 0).then_some(1_700_000_604_800_000_000 + i as i64),
                expiry_indexed: i == 5,
            })
            .collect();
        let bytes = encode_issued_group(&coupons).unwrap();
        assert_eq!(decode_issued_group(1_000, &bytes).unwrap(), coupons);
        // The user id (11 bytes) and a few bytes of times and flags per coupon.
        assert!(bytes.len() < 64 * 24, "{} bytes", bytes.len());
    }

    #[test]
    fn version_1_coupons_still_read() {
        #[derive(serde::Serialize)]
        struct V1<'a>(&'a str, u64, &'a str, &'a str, i64, Option<i64>, u32);
        let bytes = encode(&V1("0123456789abcdef", 3, "u", "CODE", 5, None, 0)).unwrap();
        let c = decode_coupon(&bytes).unwrap();
        assert_eq!(
            (c.seq, c.status, c.order_id),
            (3, CouponStatus::Issued, None)
        );
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
