//! Rebuilding a campaign's holders at start-up, from holder chunks and the coupon
//! records after the last chunk.

use super::reads::group_first_seq;
use super::{Store, corrupt};
use crate::error::StorageError;
use crate::records::CouponRecord;
use crate::{keys, records};

/// How many coupons one holder chunk covers. When a campaign has issued a multiple of
/// this, its actor writes the chunk: the user ids of those coupons in seq order, in one
/// value. Recovery reads chunks (a few large values) instead of every coupon record,
/// and only scans the coupons after the last chunk.
pub const HOLDER_CHUNK: u64 = 65_536;

/// What recovery found for one campaign.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The holder of every durable coupon, by seq.
    pub holders: Vec<String>,
    /// How many of them came from format-1 holder chunks.
    pub from_chunks: u64,
    /// The first seq held in an issued group (format 2): the coupons before it are
    /// format-1 records, whose expiry is in the time index.
    pub first_group_seq: u64,
    /// Group coupons whose expiry is in the time index (out of seq order).
    pub expiry_indexed: Vec<u64>,
    /// The expiry (`i64::MAX` for none) of the last group coupon in seq order, which a
    /// new coupon must not undercut to stay out of the index; `i64::MIN` if none.
    pub last_in_order_expiry: i64,
    /// Where the expiry walk continues (every walked coupon before it was looked at).
    pub expiry_walk: u64,
}

impl Store {
    /// Rebuilds a campaign from what is durable: format-1 holder chunks and coupon
    /// records first, then the issued groups. Fails if the durable coupons are not a
    /// gap-free prefix, which the committer guarantees they are.
    pub fn recover_holders(&self, campaign_id: &str) -> Result<Recovered, StorageError> {
        let mut holders: Vec<String> = Vec::new();
        for item in self.scan(&keys::holder_chunk_prefix(campaign_id), None, None) {
            let (k, v) = item?;
            let expected = (holders.len() as u64 / HOLDER_CHUNK) as u32;
            let chunk = u32::from_be_bytes(
                k[k.len() - 4..]
                    .try_into()
                    .map_err(|_| corrupt("holder chunk key", "short key"))?,
            );
            if chunk != expected {
                return Err(corrupt(
                    "holder chunks",
                    &format!("expected chunk {expected}, found {chunk}"),
                ));
            }
            let users: Vec<String> = records::decode("holder chunk", &v)?;
            if users.len() as u64 != HOLDER_CHUNK {
                return Err(corrupt("holder chunk", "wrong length"));
            }
            holders.extend(users);
        }
        let from_chunks = holders.len() as u64;
        // Format-1 coupon records run up to the first group; `k` records after it are
        // changes of group coupons, not issues.
        let group_prefix = keys::simple(keys::ISSUED_GROUP, campaign_id);
        let first_group = match self.scan(&group_prefix, None, None).next() {
            Some(item) => Some(group_first_seq(&group_prefix, &item?.0)?),
            None => None,
        };
        let from = keys::coupon(campaign_id, from_chunks);
        let before = first_group.map(|s| keys::coupon(campaign_id, s));
        for item in self.scan(&keys::coupon_prefix(campaign_id), Some(from), before) {
            let (_, v) = item?;
            let c: CouponRecord = records::decode_coupon(&v)?;
            if c.seq != holders.len() as u64 {
                return Err(corrupt(
                    "coupons",
                    &format!("gap: expected seq {}, found {}", holders.len(), c.seq),
                ));
            }
            holders.push(c.user_id);
        }
        let first_group_seq = holders.len() as u64;
        let mut expiry_indexed = Vec::new();
        let mut last_in_order_expiry = i64::MIN;
        for item in self.scan(&group_prefix, None, None) {
            let (k, v) = item?;
            let first = group_first_seq(&group_prefix, &k)?;
            if first != holders.len() as u64 {
                return Err(corrupt(
                    "issued groups",
                    &format!("gap: expected seq {}, found {first}", holders.len()),
                ));
            }
            for c in records::decode_issued_group(first, &v)? {
                if c.expiry_indexed {
                    expiry_indexed.push(c.seq);
                } else {
                    last_in_order_expiry = c.expires_at.unwrap_or(i64::MAX);
                }
                holders.push(c.user_id);
            }
        }
        let expiry_walk = self.expiry_walk(campaign_id)?.unwrap_or(first_group_seq);
        Ok(Recovered {
            holders,
            from_chunks,
            first_group_seq,
            expiry_indexed,
            last_in_order_expiry,
            expiry_walk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{HOLDER_CHUNK, Store};
    use crate::{CouponRecord, CouponStatus, StorageError, StoreConfig, Writes};

    const CID: &str = "cccccccccccccccc";

    fn coupon(seq: u64) -> CouponRecord {
        CouponRecord {
            campaign_id: CID.into(),
            seq,
            user_id: format!("u{seq}"),
            code: String::new(),
            issued_at: 0,
            expires_at: None,
            status: CouponStatus::Issued,
            redeemed_at: None,
            order_id: None,
        }
    }

    #[test]
    fn holder_chunks_and_the_coupons_after_them_recover_in_order() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        let n = HOLDER_CHUNK + 3;
        for seq in 0..n {
            let mut w = Writes::new();
            w.put_coupon(&coupon(seq)).unwrap();
            store.apply(w).unwrap();
        }
        // Without a chunk, recovery reads every coupon.
        let r = store.recover_holders(CID).unwrap();
        assert_eq!((r.holders.len() as u64, r.from_chunks), (n, 0));
        // With chunk 0, it reads the chunk and only the 3 coupons after it. Make the
        // chunk differ from the coupons to prove it is what recovery used.
        let users: Vec<String> = (0..HOLDER_CHUNK).map(|s| format!("chunked{s}")).collect();
        let mut w = Writes::new();
        w.put_holder_chunk(CID, 0, &users).unwrap();
        store.apply(w).unwrap();
        let r = store.recover_holders(CID).unwrap();
        assert_eq!(r.from_chunks, HOLDER_CHUNK);
        assert_eq!(r.holders.len() as u64, n);
        assert_eq!(r.holders[5], "chunked5");
        assert_eq!(r.holders[HOLDER_CHUNK as usize], format!("u{HOLDER_CHUNK}"));
    }

    #[test]
    fn a_gap_in_the_coupons_is_refused() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        for seq in [0, 1, 3] {
            let mut w = Writes::new();
            w.put_coupon(&coupon(seq)).unwrap();
            store.apply(w).unwrap();
        }
        assert!(matches!(
            store.recover_holders(CID),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
