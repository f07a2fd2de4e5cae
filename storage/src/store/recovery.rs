//! Rebuilding a campaign's holders at start-up, from holder chunks and the coupon
//! records after the last chunk.

use super::{Store, corrupt};
use crate::{CouponRecord, StorageError, keys, records};

/// How many coupons one holder chunk covers. When a campaign has issued a multiple of
/// this, its actor writes the chunk: the user ids of those coupons in seq order, in one
/// value. Recovery reads chunks (a few large values) instead of every coupon record,
/// and only scans the coupons after the last chunk.
pub const HOLDER_CHUNK: u64 = 65_536;

/// What recovery found for one campaign: the holder of every durable coupon, by seq.
#[derive(Debug, Default)]
pub struct Recovered {
    pub holders: Vec<String>,
    /// How many of them came from holder chunks (the rest from coupon records).
    pub from_chunks: u64,
}

impl Store {
    /// Rebuilds the holder of every durable coupon of a campaign: holder chunks first,
    /// then the coupon records after the last chunk. Fails if the durable coupons are
    /// not a gap-free prefix, which the committer guarantees they are.
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
        let from = keys::coupon(campaign_id, from_chunks);
        for item in self.scan(&keys::coupon_prefix(campaign_id), Some(from), None) {
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
        Ok(Recovered {
            holders,
            from_chunks,
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
