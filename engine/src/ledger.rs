//! The issuance rules of one campaign, as plain data: who holds what, how much stock is
//! left. Owned by exactly one [`crate::CampaignActor`], so it needs no lock, and free of
//! I/O and time, so its rules are unit-tested directly.

use std::collections::HashMap;

use firstcome_storage::{HOLDER_CHUNK, Recovered};
use smallvec::SmallVec;

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

#[derive(Debug)]
pub struct Ledger {
    total_stock: u64,
    per_user_limit: u32,
    issued: u64,
    // Most campaigns allow one coupon per user: one seq inline, no second allocation.
    // Box<str>, not Arc<str>: recovery turns each decoded String into a key without
    // copying it (a million copies were a third of the recovery time).
    holders: HashMap<Box<str>, SmallVec<[u64; 1]>>,
    /// Holders of the seqs after the last complete holder chunk, in seq order (a copy of
    /// the key, at most HOLDER_CHUNK of them, so the chunk can be written when full).
    chunk_tail: Vec<Box<str>>,
}

/// A full holder chunk, ready to be written.
#[derive(Debug)]
pub struct FullChunk {
    pub chunk: u32,
    pub users: Vec<Box<str>>,
}

impl Ledger {
    pub fn new(total_stock: u64, per_user_limit: u32) -> Self {
        Ledger::recover(total_stock, per_user_limit, Recovered::default())
    }

    /// Rebuilds the ledger from the holders of the durable coupons, by seq.
    pub fn recover(total_stock: u64, per_user_limit: u32, recovered: Recovered) -> Self {
        let mut holders: HashMap<Box<str>, SmallVec<[u64; 1]>> =
            HashMap::with_capacity(recovered.holders.len());
        let mut chunk_tail = Vec::new();
        let chunked = recovered.from_chunks as usize;
        for (seq, user) in recovered.holders.into_iter().enumerate() {
            let user = user.into_boxed_str();
            if seq >= chunked {
                chunk_tail.push(user.clone());
            }
            holders.entry(user).or_default().push(seq as u64);
        }
        let issued = chunked as u64 + chunk_tail.len() as u64;
        Ledger {
            total_stock,
            per_user_limit,
            issued,
            holders,
            chunk_tail,
        }
    }

    /// A new stock (the caller checked it is at least `issued`).
    pub fn set_total_stock(&mut self, total_stock: u64) {
        self.total_stock = total_stock;
    }

    pub fn issued(&self) -> u64 {
        self.issued
    }

    pub fn distinct_holders(&self) -> usize {
        self.holders.len()
    }

    pub fn held_by(&self, user: &str) -> &[u64] {
        self.holders.get(user).map(|s| s.as_slice()).unwrap_or(&[])
    }

    /// Decides one request. Issuing records the holder at once, so the next request in
    /// the mailbox already sees it: that is what makes duplicates and oversell
    /// impossible without a lock.
    pub fn decide(&mut self, user: &str) -> Decision {
        let held = self.held_by(user);
        if held.len() as u64 >= self.per_user_limit as u64 {
            return Decision::AlreadyIssued(held.to_vec());
        }
        if self.issued >= self.total_stock {
            return Decision::SoldOut;
        }
        let seq = self.issued;
        self.issued += 1;
        self.chunk_tail.push(user.into());
        match self.holders.get_mut(user) {
            Some(held) => held.push(seq),
            None => {
                self.holders.insert(user.into(), smallvec::smallvec![seq]);
            }
        }
        Decision::Issue { seq }
    }

    /// Takes the holder chunks that are complete and not yet written. After a restart
    /// that lost a chunk write, there can be more than one.
    pub fn take_full_chunks(&mut self) -> Vec<FullChunk> {
        let mut out = Vec::new();
        let chunk_len = HOLDER_CHUNK as usize;
        while self.chunk_tail.len() >= chunk_len {
            let first_seq = self.issued - self.chunk_tail.len() as u64;
            let rest = self.chunk_tail.split_off(chunk_len);
            let users = std::mem::replace(&mut self.chunk_tail, rest);
            out.push(FullChunk {
                chunk: (first_seq / HOLDER_CHUNK) as u32,
                users,
            });
        }
        out
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
    fn recovery_restores_holders_stock_and_the_chunk_tail() {
        let mut holders: Vec<String> = (0..HOLDER_CHUNK).map(|i| format!("u{i}")).collect();
        holders.push("late".into());
        let mut l = Ledger::recover(
            HOLDER_CHUNK + 10,
            1,
            Recovered {
                holders,
                from_chunks: HOLDER_CHUNK,
            },
        );
        assert_eq!(l.issued(), HOLDER_CHUNK + 1);
        assert_eq!(l.decide("u5"), Decision::AlreadyIssued(vec![5]));
        assert_eq!(
            l.decide("late"),
            Decision::AlreadyIssued(vec![HOLDER_CHUNK])
        );
        assert_eq!(
            l.decide("new"),
            Decision::Issue {
                seq: HOLDER_CHUNK + 1
            }
        );
        assert!(l.take_full_chunks().is_empty());
    }

    #[test]
    fn chunks_come_out_when_full_and_in_order() {
        let mut l = Ledger::new(3 * HOLDER_CHUNK, 1);
        for i in 0..HOLDER_CHUNK - 1 {
            l.decide(&format!("u{i}"));
        }
        assert!(l.take_full_chunks().is_empty());
        l.decide("last");
        let chunks = l.take_full_chunks();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].chunk, 0);
        assert_eq!(&*chunks[0].users[0], "u0");
        assert_eq!(&*chunks[0].users[HOLDER_CHUNK as usize - 1], "last");
        l.decide("next");
        assert!(l.take_full_chunks().is_empty());
    }

    #[test]
    fn unwritten_chunks_found_at_recovery_are_all_returned() {
        let holders: Vec<String> = (0..2 * HOLDER_CHUNK + 3).map(|i| format!("u{i}")).collect();
        let mut l = Ledger::recover(
            3 * HOLDER_CHUNK,
            1,
            Recovered {
                holders,
                from_chunks: 0,
            },
        );
        let chunks = l.take_full_chunks();
        assert_eq!(
            chunks.iter().map(|c| c.chunk).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(&*chunks[1].users[0], &format!("u{HOLDER_CHUNK}"));
        assert_eq!(
            l.decide("x"),
            Decision::Issue {
                seq: 2 * HOLDER_CHUNK + 3
            }
        );
    }
}
