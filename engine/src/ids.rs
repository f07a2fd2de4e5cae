//! Identifiers. Campaign ids are random, fixed-width, lower-case Crockford base32;
//! coupon ids are `{campaign_id}-{seq}`, so a coupon is found by one key lookup
//! without a separate index.

use firstcome_storage::CAMPAIGN_ID_LEN;
use rand::Rng;

pub(crate) const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 16 characters of 5 bits: 80 random bits, URL-safe.
pub(crate) fn new_campaign_id() -> String {
    let mut rng = rand::rng();
    (0..CAMPAIGN_ID_LEN)
        .map(|_| (CROCKFORD[rng.random_range(0..32)] as char).to_ascii_lowercase())
        .collect()
}

pub fn is_campaign_id(s: &str) -> bool {
    s.len() == CAMPAIGN_ID_LEN
        && s.bytes()
            .all(|b| CROCKFORD.contains(&b.to_ascii_uppercase()) && !b.is_ascii_uppercase())
}

pub(crate) fn coupon_id(campaign_id: &str, seq: u64) -> String {
    format!("{campaign_id}-{seq}")
}

/// `None` for anything that is not exactly a coupon id this engine would make.
pub fn parse_coupon_id(id: &str) -> Option<(&str, u64)> {
    let (cid, seq) = id.split_once('-')?;
    if !is_campaign_id(cid) || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // No leading zeros, so that one coupon has exactly one id.
    if seq.len() > 1 && seq.starts_with('0') {
        return None;
    }
    Some((cid, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_ids_are_fixed_width_url_safe_and_distinct() {
        let a = new_campaign_id();
        let b = new_campaign_id();
        assert!(is_campaign_id(&a), "{a}");
        assert_ne!(a, b);
        assert!(!is_campaign_id("short"));
        assert!(!is_campaign_id("ABCDEFGHJKMNPQRS")); // upper case is not what we issue
        assert!(!is_campaign_id("abcdefghjkmnpqr/"));
    }

    #[test]
    fn coupon_ids_round_trip_and_reject_lookalikes() {
        let cid = new_campaign_id();
        let id = coupon_id(&cid, 42);
        assert_eq!(parse_coupon_id(&id), Some((cid.as_str(), 42)));
        assert_eq!(parse_coupon_id(&format!("{cid}-042")), None);
        assert_eq!(parse_coupon_id(&format!("{cid}-")), None);
        assert_eq!(parse_coupon_id(&format!("{cid}-+1")), None);
        assert_eq!(
            parse_coupon_id(&format!("{cid}-99999999999999999999999")),
            None
        );
        assert_eq!(parse_coupon_id("nope"), None);
    }
}
