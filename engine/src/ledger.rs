//! The issuance rules of one campaign, as plain data: who holds what, how much stock is
//! left. Owned by exactly one campaign actor, so it needs no lock, and free of
//! I/O and time, so its rules are unit-tested directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use smallvec::SmallVec;

use crate::user_index::UserIndex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Issue coupon `seq` to the user.
    Issue {
        seq: u64,
    },
    /// The user holds `per_user_limit` coupons already: their seqs.
    AlreadyIssued(Vec<u64>),
    SoldOut,
}

pub struct Ledger {
    total_stock: u64,
    per_user_limit: u32,
    issued: u64,
    /// Holders by [`user_key`], not by id: 16 bytes and no allocation per holder. Most
    /// campaigns allow one coupon per user: one seq inline. With a [`Durable`] view,
    /// only the holders the user index does not list yet.
    holders: HashMap<u128, SmallVec<[u64; 1]>, KeyedUser>,
    durable: Option<Durable>,
    /// `holders` is pruned when it reaches this size (amortised: doubled each time).
    prune_at: usize,
}

/// The engine's ledger keeps no copy of its durable holders: the [`UserIndex`] already
/// lists every user's coupons by the same key, and a second map of a million holders
/// cost about 70 MB (docs/performance.md, A million coupons). The ledger reads the
/// campaign's coupons there, plus its own map of those the index does not list yet.
pub(crate) struct Durable {
    pub(crate) index: Arc<UserIndex>,
    pub(crate) ordinal: u64,
    /// The index lists every coupon of this campaign below this seq: set by the
    /// completion after it adds them (Release), read before pruning (Acquire).
    pub(crate) indexed: Arc<AtomicU64>,
}

/// The smallest map size at which an index-backed ledger prunes.
const PRUNE_AT_LEAST: usize = 1024;

/// Hashes a [`user_key`] by taking its low bits: the key is already a keyed SipHash,
/// uniform and unpredictable from outside, so hashing it again (std's default) would
/// only cost time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyedUser;

impl std::hash::BuildHasher for KeyedUser {
    type Hasher = KeyedUserHasher;

    fn build_hasher(&self) -> KeyedUserHasher {
        KeyedUserHasher(0)
    }
}

#[derive(Debug, Default)]
pub(crate) struct KeyedUserHasher(u64);

impl std::hash::Hasher for KeyedUserHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used for the keys; anything else is folded in, still
        // correct if slower.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

/// A user id as the engine's in-memory indexes key it: SipHash-1-3 (128 bits) under a
/// key drawn once per process, so it cannot be steered into collisions from outside.
/// Two ids share a key with probability about n^2 / 2^129 (for a billion holders,
/// 10^-21): then the second would be told it already holds the first's coupon.
pub(crate) fn user_key(user: &str) -> u128 {
    use siphasher::sip128::{Hasher128, SipHasher13};
    use std::hash::Hasher;
    static KEY: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    let (k0, k1) = *KEY.get_or_init(|| (rand::random(), rand::random()));
    let mut h = SipHasher13::new_with_keys(k0, k1);
    h.write(user.as_bytes());
    h.finish128().as_u128()
}

impl Ledger {
    pub fn new(total_stock: u64, per_user_limit: u32) -> Self {
        Ledger {
            total_stock,
            per_user_limit,
            issued: 0,
            holders: HashMap::default(),
            durable: None,
            prune_at: usize::MAX,
        }
    }

    /// The engine's ledger: `issued` coupons, every one of them already in the index
    /// (recovered, or none yet), and what is issued from now on kept here until the
    /// index lists it.
    pub(crate) fn over_index(
        total_stock: u64,
        per_user_limit: u32,
        issued: u64,
        durable: Durable,
    ) -> Self {
        Ledger {
            total_stock,
            per_user_limit,
            issued,
            holders: HashMap::default(),
            durable: Some(durable),
            prune_at: PRUNE_AT_LEAST,
        }
    }

    /// Rebuilds the ledger from the holders of the durable coupons, by seq.
    pub fn recover(total_stock: u64, per_user_limit: u32, holders: &[String]) -> Self {
        let mut map: HashMap<u128, SmallVec<[u64; 1]>, KeyedUser> =
            HashMap::with_capacity_and_hasher(holders.len(), KeyedUser);
        for (seq, user) in holders.iter().enumerate() {
            map.entry(user_key(user)).or_default().push(seq as u64);
        }
        Ledger {
            total_stock,
            per_user_limit,
            issued: holders.len() as u64,
            holders: map,
            durable: None,
            prune_at: usize::MAX,
        }
    }

    /// A new stock (the caller checked it is at least `issued`).
    pub fn set_total_stock(&mut self, total_stock: u64) {
        self.total_stock = total_stock;
    }

    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Distinct holders in the ledger's own map (without a durable view: all of them).
    pub fn distinct_holders(&self) -> usize {
        self.holders.len()
    }

    /// The seqs the user holds, in order.
    pub fn held_by(&self, user: &str) -> Vec<u64> {
        self.held(user_key(user)).to_vec()
    }

    fn held(&self, key: u128) -> SmallVec<[u64; 2]> {
        let mut held: SmallVec<[u64; 2]> = self
            .holders
            .get(&key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if let Some(d) = &self.durable {
            d.index.seqs_in(key, d.ordinal, &mut held);
            // A coupon is in both while its completion runs: count it once.
            held.sort_unstable();
            held.dedup();
        }
        held
    }

    /// Decides one request. Issuing records the holder at once, so the next request in
    /// the mailbox already sees it: that is what makes duplicates and oversell
    /// impossible without a lock.
    pub fn decide(&mut self, user: &str) -> Decision {
        let key = user_key(user);
        let held = self.held(key);
        if held.len() as u64 >= self.per_user_limit as u64 {
            return Decision::AlreadyIssued(held.to_vec());
        }
        if self.issued >= self.total_stock {
            return Decision::SoldOut;
        }
        let seq = self.issued;
        self.issued += 1;
        self.holders.entry(key).or_default().push(seq);
        // Paired with the check above, where the count is read.
        debug_assert!(held.len() < self.per_user_limit as usize);
        if self.holders.len() >= self.prune_at {
            self.prune();
        }
        Decision::Issue { seq }
    }

    /// Drops the holders the index lists now. Only the actor removes from its map, and
    /// only what the index already has, so a holder is never in neither.
    fn prune(&mut self) {
        let Some(d) = &self.durable else {
            return;
        };
        let indexed = d.indexed.load(Ordering::Acquire);
        self.holders
            .retain(|_, seqs| seqs.iter().any(|&s| s >= indexed));
        self.prune_at = (self.holders.len() * 2).max(PRUNE_AT_LEAST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_stock() {
        let mut l = Ledger::new(3, 1);
        let issued = (0..10)
            .filter(|i| matches!(l.decide(&format!("u{i}")), Decision::Issue { .. }))
            .count();
        assert_eq!(issued, 3);
        assert_eq!(l.decide("late"), Decision::SoldOut);
        assert_eq!(l.issued(), 3);
    }

    #[test]
    fn never_more_than_the_per_user_limit() {
        let mut l = Ledger::new(100, 2);
        assert_eq!(l.decide("a"), Decision::Issue { seq: 0 });
        assert_eq!(l.decide("b"), Decision::Issue { seq: 1 });
        assert_eq!(l.decide("a"), Decision::Issue { seq: 2 });
        assert_eq!(l.decide("a"), Decision::AlreadyIssued(vec![0, 2]));
        assert_eq!(l.issued(), 3);
    }

    #[test]
    fn a_holder_of_a_sold_out_campaign_hears_already_issued() {
        let mut l = Ledger::new(1, 1);
        assert_eq!(l.decide("a"), Decision::Issue { seq: 0 });
        assert_eq!(l.decide("a"), Decision::AlreadyIssued(vec![0]));
        assert_eq!(l.decide("b"), Decision::SoldOut);
    }

    #[test]
    fn over_the_index_a_holder_counts_once_before_and_after_the_index_lists_it() {
        let index = Arc::new(UserIndex::default());
        index.register_campaign(7, "cccccccccccccccc");
        let indexed = Arc::new(AtomicU64::new(0));
        let durable = Durable {
            index: index.clone(),
            ordinal: 7,
            indexed: indexed.clone(),
        };
        let mut l = Ledger::over_index(10_000, 1, 0, durable);
        let user = |i: u64| format!("u{i}");
        for i in 0..3000 {
            assert_eq!(l.decide(&user(i)), Decision::Issue { seq: i });
        }
        // Nothing is indexed yet: the prunes on the way found nothing to drop.
        assert_eq!(l.distinct_holders(), 3000);
        // The completions index the first 2000 (in both places now: counted once).
        let keys: Vec<(u128, u64)> = (0..2000).map(|i| (user_key(&user(i)), i)).collect();
        index.add(7, &keys);
        indexed.store(2000, Ordering::Release);
        assert_eq!(l.decide(&user(5)), Decision::AlreadyIssued(vec![5]));
        // The next prune (at 4096 holders) drops what the index lists.
        for i in 3000..4096 {
            assert_eq!(l.decide(&user(i)), Decision::Issue { seq: i });
        }
        assert_eq!(l.distinct_holders(), 2096);
        assert_eq!(l.decide(&user(5)), Decision::AlreadyIssued(vec![5]));
        assert_eq!(l.decide(&user(3500)), Decision::AlreadyIssued(vec![3500]));
        assert_eq!(l.issued(), 4096);
        // Another campaign's coupons in the index are not this one's.
        index.register_campaign(8, "dddddddddddddddd");
        index.add(8, &[(user_key("elsewhere"), 0)]);
        assert_eq!(l.decide("elsewhere"), Decision::Issue { seq: 4096 });
    }

    #[test]
    fn recovery_restores_holders_and_stock() {
        let mut holders: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
        holders.push("u5".into());
        let mut l = Ledger::recover(1010, 2, &holders);
        assert_eq!(l.issued(), 1001);
        assert_eq!(l.held_by("u5"), vec![5, 1000]);
        assert_eq!(l.decide("u5"), Decision::AlreadyIssued(vec![5, 1000]));
        assert_eq!(l.decide("new"), Decision::Issue { seq: 1001 });
        assert_eq!(l.distinct_holders(), 1001);
    }
}
