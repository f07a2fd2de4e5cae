//! [`UserIndex`]: every user's coupons across campaigns, in memory.
//!
//! Format 2 writes no per-coupon index entry (sled's cost is per key), so a user's
//! coupons are found here. It is rebuilt at start from what each campaign recovers, and a
//! new coupon is added by the completion of the commit that made it durable, before its
//! reply: a client that got a coupon sees it in every later listing, and nobody sees a
//! coupon that a crash could take back.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use smallvec::SmallVec;

use crate::ledger::{KeyedUser, user_key};

/// Shards, so that recovery and the commits of many campaigns rarely meet on one lock.
const SHARDS: usize = 64;

/// One coupon: its campaign's ordinal and its seq. Both fit 32 bits (ordinals are
/// refused past 2^32, seqs stay below `MAX_TOTAL_STOCK`), so an entry is 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CouponRef {
    ordinal: u32,
    seq: u32,
}

type Shard = HashMap<u128, SmallVec<[CouponRef; 1]>, KeyedUser>;

pub(crate) struct UserIndex {
    /// By [`user_key`]: a listing checks each coupon's user id, so a key collision can
    /// never show one user another's coupon. std RwLocks: held for one map operation.
    shards: Vec<RwLock<Shard>>,
    /// Campaign ordinal -> id.
    campaigns: RwLock<HashMap<u32, Arc<str>>>,
}

impl Default for UserIndex {
    fn default() -> Self {
        UserIndex {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            campaigns: RwLock::default(),
        }
    }
}

/// The shard of a key, by its high half: the maps inside hash by the low half
/// ([`KeyedUser`]), and keys that shared their low bits would crowd a few buckets.
fn shard_of(key: u128) -> usize {
    ((key >> 64) as u64 % SHARDS as u64) as usize
}

fn coupon_ref(ordinal: u64, seq: u64) -> CouponRef {
    // Paired with the limits where ordinals and seqs are handed out.
    assert!(
        ordinal < 1 << 32 && seq < 1 << 32,
        "coupon ({ordinal}, {seq})"
    );
    CouponRef {
        ordinal: ordinal as u32,
        seq: seq as u32,
    }
}

impl UserIndex {
    fn shard(&self, key: u128) -> std::sync::RwLockWriteGuard<'_, Shard> {
        // A poisoned shard is still consistent: every operation is one push.
        self.shards[shard_of(key)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Names campaign `ordinal`; false if it was named already (its actor was replaced).
    pub(crate) fn register_campaign(&self, ordinal: u64, id: &str) -> bool {
        self.campaigns
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ordinal as u32, id.into())
            .is_none()
    }

    /// The id of campaign `ordinal`, if it is registered.
    pub(crate) fn campaign_of(&self, ordinal: u64) -> Option<Arc<str>> {
        let ordinal = u32::try_from(ordinal).ok()?;
        self.campaigns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ordinal)
            .cloned()
    }

    /// A deleted campaign (it had no coupons, so no user lists it).
    pub(crate) fn forget_campaign(&self, ordinal: u64) {
        self.campaigns
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(ordinal as u32));
    }

    /// Adds coupons by the users' keys: `(user_key, seq)`.
    pub(crate) fn add(&self, ordinal: u64, coupons: &[(u128, u64)]) {
        for &(key, seq) in coupons {
            self.shard(key)
                .entry(key)
                .or_default()
                .push(coupon_ref(ordinal, seq));
        }
    }

    /// Adds a recovered campaign's holders, by seq.
    pub(crate) fn add_holders(&self, ordinal: u64, holders: &[String]) {
        for (seq, user) in holders.iter().enumerate() {
            let key = user_key(user);
            self.shard(key)
                .entry(key)
                .or_default()
                .push(coupon_ref(ordinal, seq as u64));
        }
    }

    /// Appends the seqs of the coupons the user's key holds in campaign `ordinal`.
    pub(crate) fn seqs_in(&self, key: u128, ordinal: u64, out: &mut SmallVec<[u64; 2]>) {
        let shard = self.shards[shard_of(key)]
            .read()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(refs) = shard.get(&key) {
            out.extend(
                refs.iter()
                    .filter(|r| u64::from(r.ordinal) == ordinal)
                    .map(|r| u64::from(r.seq)),
            );
        }
    }

    /// The user's coupons as (campaign id, campaign ordinal, seq), in (id, seq) order. May
    /// include another user's coupon on a key collision: the caller checks the holder.
    pub(crate) fn coupons_of(&self, user: &str) -> Vec<(Arc<str>, u64, u64)> {
        let key = user_key(user);
        let refs: SmallVec<[CouponRef; 4]> = self.shards[shard_of(key)]
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        let campaigns = self.campaigns.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(Arc<str>, u64, u64)> = refs
            .iter()
            .filter_map(|r| {
                let id = campaigns.get(&r.ordinal)?;
                Some((id.clone(), r.ordinal as u64, r.seq as u64))
            })
            .collect();
        out.sort_unstable_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_coupons_come_back_in_campaign_and_seq_order() {
        let index = UserIndex::default();
        index.register_campaign(1, "bbbbbbbbbbbbbbbb");
        index.register_campaign(2, "aaaaaaaaaaaaaaaa");
        index.add_holders(1, &["u".into(), "v".into(), "u".into()]);
        index.add(2, &[(user_key("u"), 7)]);
        let got: Vec<(String, u64)> = index
            .coupons_of("u")
            .into_iter()
            .map(|(id, _, seq)| (id.to_string(), seq))
            .collect();
        assert_eq!(
            got,
            vec![
                ("aaaaaaaaaaaaaaaa".into(), 7),
                ("bbbbbbbbbbbbbbbb".into(), 0),
                ("bbbbbbbbbbbbbbbb".into(), 2)
            ]
        );
        assert!(index.coupons_of("nobody").is_empty());
    }
}
