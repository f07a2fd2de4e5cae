//! Coupon codes: what a customer types at a till.
//!
//! A code is a keyed permutation of (campaign ordinal, seq), written in Crockford
//! base32 with Crockford's mod-37 check character, e.g. `7Q2M-K9XD-3HWT-AR`.
//! - Unique: the permutation is a bijection on 64-bit blocks and (ordinal, seq) is
//!   unique, so no two coupons of this server ever share a code, with no lookup.
//! - Not guessable: the permutation is a 6-round Feistel network whose round function
//!   is SipHash-1-3 keyed with a secret kept in the store. Without the key, one code
//!   says nothing about its neighbours (Luby-Rackoff: a Feistel network of 4 or more
//!   rounds over a PRF is a strong pseudo-random permutation).
//! - Human-friendly: no I, L, O or U; case-insensitive; one typo is caught by the check
//!   character.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use crate::ids::CROCKFORD;

const CHECK_SYMBOLS: &[u8; 37] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U";
const ROUNDS: u32 = 6;

#[derive(Clone)]
pub struct CouponCodes {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for CouponCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CouponCodes { .. }") // never print the key
    }
}

impl CouponCodes {
    pub fn from_key(key: [u8; 16]) -> Self {
        // The low half is the first 8 bytes read little-endian, the high half the last 8:
        // the same two keys as ever, so stored codes keep their meaning.
        let k = u128::from_le_bytes(key);
        CouponCodes {
            k0: k as u64,
            k1: (k >> 64) as u64,
        }
    }

    fn round(&self, round: u32, half: u32) -> u32 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write_u32(round);
        h.write_u32(half);
        h.finish() as u32
    }

    fn permute(&self, block: u64) -> u64 {
        let (mut l, mut r) = ((block >> 32) as u32, block as u32);
        for i in 0..ROUNDS {
            (l, r) = (r, l ^ self.round(i, r));
        }
        ((l as u64) << 32) | r as u64
    }

    /// The inverse of [`Self::permute`]: the rounds backwards.
    fn unpermute(&self, block: u64) -> u64 {
        let (mut l, mut r) = ((block >> 32) as u32, block as u32);
        for i in (0..ROUNDS).rev() {
            (l, r) = (r ^ self.round(i, l), l);
        }
        ((l as u64) << 32) | r as u64
    }

    /// The (campaign ordinal, seq) a code names, the inverse of [`Self::code`]: O(1), no
    /// lookup. A well-formed code that no coupon of this server has (typed with two
    /// errors, or made up) decodes to some pair too; the caller finds no such coupon.
    pub fn decode(&self, code: &str) -> Result<(u64, u64), CodeError> {
        let v = parse(code)?;
        let block = self.unpermute(v);
        Ok((block >> 32, block & 0xffff_ffff))
    }

    /// The code of coupon `seq` of the campaign with `ordinal`. Both must be below
    /// 2^32 (stock is at most 10^9; the engine refuses to create campaign 2^32).
    pub fn code(&self, ordinal: u64, seq: u64) -> String {
        debug_assert!(ordinal < 1 << 32 && seq < 1 << 32);
        let v = self.permute((ordinal << 32) | (seq & 0xffff_ffff));
        let mut chars = [0u8; 14];
        for (i, c) in chars[..13].iter_mut().enumerate() {
            // 13 symbols of 5 bits hold 65 bits: the top symbol carries 4.
            let shift = 5 * (12 - i);
            *c = CROCKFORD[((v as u128 >> shift) & 31) as usize];
        }
        chars[13] = CHECK_SYMBOLS[(v % 37) as usize];
        let mut out = String::with_capacity(17);
        for (i, c) in chars.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            out.push(*c as char);
        }
        out
    }
}

/// Why a string is not a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not 14 symbols of the code alphabet (after normalisation), or too large.
    #[error("not a coupon code")]
    Malformed,
    /// Well-formed, but the check character does not match: a typo.
    #[error("the check character does not match: the code is mistyped")]
    CheckMismatch,
}

/// The longest text that can still be a code: 14 symbols and dashes between every two.
pub const MAX_CODE_CHARS: usize = 27;

/// The 64-bit value a code spells, after Crockford's normalisation (any case, hyphens
/// anywhere, I and L read as 1, O as 0), with its check character verified.
fn parse(code: &str) -> Result<u64, CodeError> {
    if code.len() > MAX_CODE_CHARS {
        return Err(CodeError::Malformed);
    }
    let mut v: u128 = 0;
    let mut symbols = 0usize;
    let mut check = None;
    for b in code.bytes().filter(|b| *b != b'-') {
        let c = match b.to_ascii_uppercase() {
            b'I' | b'L' => b'1',
            b'O' => b'0',
            c => c,
        };
        symbols += 1;
        if symbols == 14 {
            check = Some(c);
            continue;
        }
        match CROCKFORD.iter().position(|s| *s == c) {
            Some(d) if symbols < 14 => v = (v << 5) | d as u128,
            _ => return Err(CodeError::Malformed),
        }
    }
    let Some(check) = check else {
        return Err(CodeError::Malformed);
    };
    // 13 symbols hold 65 bits; a code spells 64.
    if v >> 64 != 0 || !CHECK_SYMBOLS.contains(&check) {
        return Err(CodeError::Malformed);
    }
    if CHECK_SYMBOLS[(v % 37) as usize] != check {
        return Err(CodeError::CheckMismatch);
    }
    Ok(v as u64)
}

/// Whether `code` reads as a well-formed code with a correct check character, after
/// Crockford's normalisation (case, hyphens, I/L read as 1, O as 0). A till can
/// reject a typo before asking the server.
pub fn is_well_formed(code: &str) -> bool {
    parse(code).is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn codes() -> CouponCodes {
        CouponCodes::from_key(*b"0123456789abcdef")
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let c = codes();
        let mut seen = HashSet::new();
        for ordinal in 0..4 {
            for seq in 0..20_000 {
                let code = c.code(ordinal, seq);
                assert!(is_well_formed(&code), "{code}");
                assert!(seen.insert(code));
            }
        }
    }

    #[test]
    fn neighbouring_codes_share_no_visible_structure() {
        let c = codes();
        let a = c.code(1, 1000);
        let b = c.code(1, 1001);
        let same = a.chars().zip(b.chars()).filter(|(x, y)| x == y).count();
        // 3 hyphens always match; a counter would share most of the rest.
        assert!(same < 3 + 6, "{a} vs {b}");
        // Another key gives other codes.
        let other = CouponCodes::from_key(*b"fedcba9876543210");
        assert_ne!(other.code(1, 1000), a);
    }

    #[test]
    fn the_check_character_catches_a_typo() {
        let code = codes().code(7, 7);
        assert!(is_well_formed(&code.to_lowercase()));
        let mut typo: Vec<char> = code.chars().collect();
        typo[0] = if typo[0] == '2' { '3' } else { '2' };
        assert!(!is_well_formed(&typo.into_iter().collect::<String>()));
        assert!(!is_well_formed("not a code"));
    }

    #[test]
    fn a_code_decodes_to_its_coupon_however_it_is_typed() {
        let c = codes();
        for (ordinal, seq) in [(0, 0), (1, 1000), (7, 999_999_999), ((1 << 32) - 1, 3)] {
            let code = c.code(ordinal, seq);
            assert_eq!(c.decode(&code), Ok((ordinal, seq)), "{code}");
            // Lower case, no dashes, and the look-alikes a customer reads out.
            let typed: String = code
                .chars()
                .filter(|ch| *ch != '-')
                .map(|ch| match ch {
                    '0' => 'o',
                    '1' => 'l',
                    ch => ch.to_ascii_lowercase(),
                })
                .collect();
            assert_eq!(c.decode(&typed), Ok((ordinal, seq)), "{typed}");
        }
        // Another key reads the same code as another coupon.
        let other = CouponCodes::from_key(*b"fedcba9876543210");
        assert_ne!(other.decode(&c.code(1, 1000)), Ok((1, 1000)));
    }

    #[test]
    fn a_typo_is_told_from_a_string_that_is_no_code() {
        let c = codes();
        let code = c.code(3, 42);
        let mut typo: Vec<char> = code.chars().collect();
        typo[1] = if typo[1] == '7' { '8' } else { '7' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(c.decode(&typo), Err(CodeError::CheckMismatch));
        for bad in [
            "",
            "----",
            "not a code",
            &code[..code.len() - 1],
            &format!("{code}0"),
            "7Q2M-K9XD-3HWT-A\u{e9}",
            "ZZZZ-ZZZZ-ZZZZ-Z0",
            &"-".repeat(100),
        ] {
            assert_eq!(c.decode(bad), Err(CodeError::Malformed), "{bad:?}");
        }
    }
}
