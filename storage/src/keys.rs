//! Key construction. One byte of kind, then fixed-width or NUL-terminated parts, so
//! that prefix scans and numeric order both work on raw bytes.

pub(crate) const CAMPAIGN: u8 = b'c';
pub(crate) const COUPON: u8 = b'k';
pub(crate) const HOLDER_CHUNK: u8 = b'h';
pub(crate) const META: u8 = b'm';
pub(crate) const STATS: u8 = b's';
pub(crate) const EXPIRY: u8 = b'x';
pub(crate) const IDEMPOTENCY: u8 = b'i';
pub(crate) const IDEMPOTENCY_AGE: u8 = b'j';
pub(crate) const CONTACT: u8 = b'e';
pub(crate) const SUBSCRIBER: u8 = b'b';
pub(crate) const SUBSCRIPTION: u8 = b'p';
pub(crate) const MAIL_JOB: u8 = b'o';
pub(crate) const MAIL_DUE: u8 = b'q';
pub(crate) const MAIL_DEAD: u8 = b'd';
pub(crate) const REMINDER: u8 = b'r';
pub(crate) const ANNOUNCED: u8 = b'a';
pub(crate) const FAN_OUT: u8 = b'f';
pub(crate) const ISSUED_GROUP: u8 = b'g';
pub(crate) const PROGRESS: u8 = b'n';

/// `kind id`: the simple one-part keys.
pub(crate) fn simple(kind: u8, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(kind);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `kind a 0x00 b`: the two-part keys of subscriptions (store and user ids are printable,
/// so the NUL separates them unambiguously and a prefix scan of `kind a 0x00` sees only `a`).
pub(crate) fn pair(kind: u8, a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + a.len() + b.len());
    k.push(kind);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// `q due_at(i64) job_id`: pending mail in the order it is due.
pub(crate) fn mail_due(due_at: i64, job_id: &str) -> Vec<u8> {
    let mut k = vec![MAIL_DUE];
    k.extend_from_slice(&ordered_i64(due_at));
    k.extend_from_slice(job_id.as_bytes());
    k
}

/// `kind campaign at(i64) seq`: a campaign's coupons in time order (expiry, reminders).
pub(crate) fn timed(kind: u8, campaign_id: &str, at: i64, seq: u64) -> Vec<u8> {
    let mut k = simple(kind, campaign_id);
    k.extend_from_slice(&ordered_i64(at));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// i64 to big-endian bytes that sort like the signed numbers.
pub(crate) fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn from_ordered_i64(b: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(b.try_into().ok()?) ^ (1 << 63)) as i64)
}

pub(crate) fn stats(campaign_id: &str) -> Vec<u8> {
    let mut k = vec![STATS];
    k.extend_from_slice(campaign_id.as_bytes());
    k
}

/// `s campaign day(i32)`: one UTC day's counts, so that a change rewrites only its day.
pub(crate) fn stats_day(campaign_id: &str, day: i32) -> Vec<u8> {
    let mut k = stats(campaign_id);
    // Sign bit flipped, so days sort in order across the epoch.
    k.extend_from_slice(&((day as u32) ^ (1 << 31)).to_be_bytes());
    k
}

/// `x campaign expires_at seq`: a campaign's coupons in expiry order.
pub(crate) fn expiry(campaign_id: &str, expires_at: i64, seq: u64) -> Vec<u8> {
    timed(EXPIRY, campaign_id, expires_at, seq)
}

pub(crate) fn idempotency(key: &str) -> Vec<u8> {
    let mut k = vec![IDEMPOTENCY];
    k.extend_from_slice(key.as_bytes());
    k
}

/// `j created_at key`: idempotency records in age order, for pruning.
pub(crate) fn idempotency_age(created_at: i64, key: &str) -> Vec<u8> {
    let mut k = vec![IDEMPOTENCY_AGE];
    k.extend_from_slice(&ordered_i64(created_at));
    k.extend_from_slice(key.as_bytes());
    k
}

pub(crate) fn campaign(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(CAMPAIGN);
    k.extend_from_slice(id.as_bytes());
    k
}

pub(crate) fn coupon_prefix(campaign_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + campaign_id.len() + 8);
    k.push(COUPON);
    k.extend_from_slice(campaign_id.as_bytes());
    k
}

pub(crate) fn coupon(campaign_id: &str, seq: u64) -> Vec<u8> {
    let mut k = coupon_prefix(campaign_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn holder_chunk_prefix(campaign_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + campaign_id.len() + 4);
    k.push(HOLDER_CHUNK);
    k.extend_from_slice(campaign_id.as_bytes());
    k
}

#[cfg(test)]
pub(crate) fn holder_chunk(campaign_id: &str, chunk: u32) -> Vec<u8> {
    let mut k = holder_chunk_prefix(campaign_id);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

pub(crate) fn meta(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(META);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The smallest key after `key`: where a scan resumes after a cursor, or the exclusive
/// end that makes a scan include `key` itself.
pub(crate) fn after(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

/// The smallest key after every key that starts with `prefix`, or `None` if there is
/// none (the prefix is empty or all 0xFF), which is how sled's `scan_prefix` bounds it.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// `g campaign first_seq`: the coupons one commit group issued, from `first_seq` on.
pub(crate) fn issued_group(campaign_id: &str, first_seq: u64) -> Vec<u8> {
    let mut k = simple(ISSUED_GROUP, campaign_id);
    k.extend_from_slice(&first_seq.to_be_bytes());
    k
}

/// `n campaign`: how far the campaign's expiry walk has come.
pub(crate) fn progress(campaign_id: &str) -> Vec<u8> {
    simple(PROGRESS, campaign_id)
}
