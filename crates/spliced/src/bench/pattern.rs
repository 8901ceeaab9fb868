//! The bytes the load generator sends, and the check of what comes back.
//!
//! A fixed pseudo-random block of [`PERIOD`] bytes (a length that is not a
//! multiple of any page or buffer size, so a shifted or repeated chunk
//! never lines up by accident) stored twice in a row, so that any window
//! of up to `PERIOD` bytes at any offset is one contiguous slice. Stream
//! `k` starts at its own offset, so bytes crossing from one connection to
//! another are caught too.

use std::sync::OnceLock;

/// Length of the repeating block.
pub(crate) const PERIOD: usize = 256 * 1024 + 13;

/// The shared block, built on first use.
pub(crate) fn pattern() -> &'static Pattern {
    static PATTERN: OnceLock<Pattern> = OnceLock::new();
    PATTERN.get_or_init(Pattern::new)
}

/// The repeating block, twice.
#[derive(Debug)]
pub(crate) struct Pattern {
    doubled: Vec<u8>,
}

impl Pattern {
    fn new() -> Pattern {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = Vec::with_capacity(PERIOD * 2);
        while block.len() < PERIOD {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let take = (PERIOD - block.len()).min(8);
            block.extend_from_slice(&word.to_le_bytes()[..take]);
        }
        block.extend_from_within(..PERIOD);
        Pattern { doubled: block }
    }

    /// Where stream number `id` starts.
    pub(crate) fn start_of(id: u64) -> u64 {
        id.wrapping_mul(7919) % PERIOD as u64
    }

    /// The bytes at stream position `offset`, at most `max` of them (and
    /// at most [`PERIOD`]).
    pub(crate) fn slice(&self, offset: u64, max: usize) -> &[u8] {
        let start = (offset % PERIOD as u64) as usize;
        &self.doubled[start..start + max.min(PERIOD)]
    }

    /// Whether `got` is what was sent at stream position `offset`.
    pub(crate) fn matches(&self, mut offset: u64, mut got: &[u8]) -> bool {
        while !got.is_empty() {
            let want = self.slice(offset, got.len());
            if got[..want.len()] != *want {
                return false;
            }
            got = &got[want.len()..];
            offset += want.len() as u64;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_wrap_around_the_period() {
        let p = pattern();
        let offset = PERIOD as u64 - 5;
        let a = p.slice(offset, 10).to_vec();
        assert_eq!(a.len(), 10);
        assert_eq!(&a[5..], p.slice(0, 5));
        assert!(p.matches(offset, &a));
        let mut long = Vec::new();
        long.extend_from_slice(p.slice(3, PERIOD));
        long.extend_from_slice(p.slice(3 + PERIOD as u64, 100));
        assert!(p.matches(3, &long));
    }

    #[test]
    fn a_changed_or_shifted_byte_is_caught() {
        let p = pattern();
        let mut got = p.slice(100, 4096).to_vec();
        assert!(!p.matches(101, &got));
        got[4000] ^= 1;
        assert!(!p.matches(100, &got));
    }
}
